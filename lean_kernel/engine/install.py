"""Installing the REPL: the elan toolchain, a git clone of the matching tag, ``lake build``.

It happens once per Lean version, under a file lock shared by every process on the machine, and
ends by writing a marker; afterwards the build is found from that marker alone.
Every external command runs through ``steps.SetupSteps`` (own session, timeout, progress), and
every failure is a ``ReplSetupError`` whose message names the command or setting that fixes it.
elan itself is installed by ``elan.py`` (``python -m lean_kernel setup``), never here.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from filelock import FileLock, Timeout

from lean_kernel.engine.launch import (
    CACHE_ENV_VAR,
    DEFAULT_LEAN_VERSION,
    REPL_ENV_VAR,
    UPSTREAM_REPL_GIT,
    FlavorChoice,
)
from lean_kernel.engine.steps import SetupSteps, tail, without_network
from lean_kernel.errors import ReplSetupError

SETUP_COMMAND = "python -m lean_kernel setup"
#: What ``setup`` does, for the messages that send people to it.
SETUP_DOES = "it installs elan and Lean if they are missing, and builds the REPL"
ELAN_INSTALL = (
    "install elan: curl https://raw.githubusercontent.com/leanprover/elan/master/elan-init.sh "
    "-sSf | sh"
)
OR_SET_REPL = f"or set {REPL_ENV_VAR} to a REPL command"
LEAN_RELEASES = "https://github.com/leanprover/lean4/releases"

#: Where ``lake build`` leaves the REPL executable, relative to the REPL checkout (Lake before
#: Lean 4.3 used ``build/`` without ``.lake/``).
REPL_BINARY = Path(".lake") / "build" / "bin" / "repl"
_OLD_REPL_BINARY = Path("build") / "bin" / "repl"
#: Written after a finished build; its presence makes the next resolve() free.
BUILD_MARKER = "lean_kernel-build.json"

# Seconds. Generous: a toolchain download or a cold build is slow, but never unbounded.
QUERY_TIMEOUT = 60.0
TOOLCHAIN_INSTALL_TIMEOUT = 1800.0
CLONE_TIMEOUT = 600.0
BUILD_TIMEOUT = 3600.0
LOCK_TIMEOUT = TOOLCHAIN_INSTALL_TIMEOUT + CLONE_TIMEOUT + BUILD_TIMEOUT

_MISSING_REF = ("not found in upstream", "Could not find remote branch")


# -- finding tools ------------------------------------------------------------------------------


def elan_bin() -> Path:
    """elan's folder of executables (``$ELAN_HOME/bin``, default ``~/.elan/bin``)."""
    return Path(os.environ.get("ELAN_HOME") or Path.home() / ".elan") / "bin"


def find_tool(name: str) -> str | None:
    """Absolute path of a tool: a path as given, else PATH, else elan's bin folder.

    elan's folder is searched because a Jupyter server started from a desktop launcher often
    lacks the PATH line elan adds to shell profiles.
    """
    if os.sep in name or (os.altsep and os.altsep in name):
        path = Path(name).expanduser()
        return str(path.resolve()) if is_executable(path) else None
    found = shutil.which(name)
    if found:
        return os.path.abspath(found)
    path = elan_bin() / name
    return str(path) if is_executable(path) else None


def is_executable(path: Path) -> bool:
    """Whether ``path`` is a file this process may run."""
    return path.is_file() and os.access(path, os.X_OK)


def repl_binary(repl_dir: Path) -> Path:
    """The built REPL executable in a checkout (the usual place if there is none yet)."""
    for relative in (REPL_BINARY, _OLD_REPL_BINARY):
        if is_executable(repl_dir / relative):
            return repl_dir / relative
    return repl_dir / REPL_BINARY


def extra_env(tool: str) -> dict[str, str] | None:
    """PATH with the tool's folder first when that folder is not on PATH (see find_tool)."""
    folder = os.path.dirname(tool)
    path = os.environ.get("PATH", "")
    if folder in path.split(os.pathsep):
        return None
    return {"PATH": folder + os.pathsep + path if path else folder}


def lake_for_cached_repl(lake_path: str) -> tuple[str, dict[str, str] | None]:
    """(lake, extra environment) to run a cached REPL with ``lake env``."""
    lake = find_tool(lake_path)
    if lake is None:
        raise ReplSetupError(
            f"`{lake_path}` (lake_path) was not found on PATH or in {elan_bin()}, so the "
            "cached REPL cannot be started.\n"
            f"Fix: {ELAN_INSTALL}, or pass lake_path='/path/to/lake', {OR_SET_REPL}."
        )
    return lake, extra_env(lake)


# -- locks and builds ---------------------------------------------------------------------------


@contextmanager
def holding(path: Path, steps: SetupSteps) -> Iterator[None]:
    """Hold a file lock across processes; say so when another process makes us wait."""
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        steps.say(f"Waiting for another process setting up the REPL (lock {path})")
        try:
            lock.acquire(timeout=LOCK_TIMEOUT)
        except Timeout:
            raise ReplSetupError(
                f"Another process held {path} for over {LOCK_TIMEOUT:.0f} s while setting up "
                f"the REPL.\nFix: wait for it to finish; if no such process runs, delete it."
            ) from None
    try:
        yield
    finally:
        lock.release()


def lake_build(lake: str, repl_dir: Path, steps: SetupSteps, fix: str) -> None:
    """``lake build`` in ``repl_dir``; ``fix`` ends the error message when it fails."""
    argv = [lake, "build"]
    code, out, err = steps.run(argv, repl_dir, BUILD_TIMEOUT, extra_env(lake), fix, echo=True)
    if code != 0:
        raise ReplSetupError(
            f"`{shlex.join(argv)}` failed (exit {code}) in {repl_dir}:\n{tail(out, err)}\n"
            f"Fix: {fix}."
        )


# -- the cached REPL build ----------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One place a REPL for a Lean version can be cloned from."""

    flavor: Literal["fork", "upstream"]
    git: str
    tag: str


@dataclass(frozen=True)
class BuiltRepl:
    """A finished REPL build in the cache: its checkout, executable and origin."""

    directory: Path
    binary: Path
    source: Source


def repl_sources(version: str, flavor: FlavorChoice, repl_git: str, repl_rev: str) -> list[Source]:
    """Where a REPL for ``version`` may come from, in the order to try: the fork, then upstream."""
    sources = []
    if flavor in ("auto", "fork"):
        sources.append(Source("fork", repl_git, f"{repl_rev}_lean-toolchain-{version}"))
    if flavor in ("auto", "upstream"):
        sources.append(Source("upstream", UPSTREAM_REPL_GIT, version))
    return sources


def ensure_repl(
    root: Path,
    version: str,
    sources: list[Source],
    lake_path: str,
    steps: SetupSteps,
    install: bool,
) -> BuiltRepl:
    """A finished build for ``version`` under ``root``: from its marker, else installed under
    the lock (with ``install=False``, a ReplSetupError saying to run setup)."""
    built = _finished_build(root, version, sources)
    if built is not None:
        return built
    if not install:
        raise ReplSetupError(
            f"The REPL for Lean {version} is not built yet (looked in {root}).\n"
            f"Fix: run `{SETUP_COMMAND}` ({SETUP_DOES}; it needs network once), {OR_SET_REPL}."
        )
    elan = find_tool("elan")
    if elan is None:
        raise ReplSetupError(
            f"Lean is not installed: `elan` (the Lean toolchain manager) was not found on PATH "
            f"or in {elan_bin()}.\nFix: run `{SETUP_COMMAND}` ({SETUP_DOES}), or "
            f"{ELAN_INSTALL}, {OR_SET_REPL} "
            f"(e.g. {REPL_ENV_VAR}='lake env /path/to/repl/.lake/build/bin/repl')."
        )
    git = find_tool("git")
    if git is None:
        raise ReplSetupError(
            "`git` was not found on PATH; it is needed once to download the REPL sources.\n"
            "Fix: install git (e.g. `apt-get install git`), or set local_repl_path to a REPL "
            f"checkout, {OR_SET_REPL}."
        )
    lake, _ = lake_for_cached_repl(lake_path)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReplSetupError(
            f"Cannot create the cache folder {root}: {exc}.\n"
            f"Fix: set {CACHE_ENV_VAR} (or cache_dir) to a writable folder."
        ) from None
    with holding(root / f"{version}.lock", steps):
        built = _finished_build(root, version, sources)
        if built is not None:
            steps.say(f"Another process finished the REPL for Lean {version}")
            return built
        _install_toolchain(elan, version, root, steps)
        repl_dir, source = _clone(git, version, root, sources, steps)
        toolchain = f"leanprover/lean4:{version}\n"
        (repl_dir / "lean-toolchain").write_text(toolchain, encoding="utf-8")
        steps.say(f"Building the REPL: `lake build` in {repl_dir}")
        fix = f"delete {repl_dir} and run `{SETUP_COMMAND}` again, {OR_SET_REPL}"
        lake_build(lake, repl_dir, steps, fix)
        built = BuiltRepl(repl_dir, repl_binary(repl_dir), source)
        if not is_executable(built.binary):
            raise ReplSetupError(
                f"`lake build` in {repl_dir} succeeded but left no {built.binary}.\nFix: {fix}."
            )
        _write_marker(built, version)
        steps.say(f"REPL for Lean {version} built in {built.directory}")
        return built


def _install_toolchain(elan: str, version: str, cwd: Path, steps: SetupSteps) -> None:
    name = f"leanprover/lean4:{version}"
    listing = [elan, "toolchain", "list"]
    code, out, err = steps.run(listing, cwd, QUERY_TIMEOUT, extra_env(elan), ELAN_INSTALL)
    if code != 0:
        raise ReplSetupError(
            f"`{shlex.join(listing)}` failed (exit {code}):\n{tail(out, err)}\n"
            f"Fix: repair elan (`elan self update`, or {ELAN_INSTALL}), {OR_SET_REPL}."
        )
    installed = {line.split()[0] for line in out.splitlines() if line.strip()}
    folder_name = name.replace("/", "--").replace(":", "---")  # how older elan lists them
    if name in installed or folder_name in installed:
        steps.say(f"Lean toolchain {name} is installed")
        return
    steps.say(
        f"Installing the Lean toolchain: `elan toolchain install {name}` (a download of a few "
        "hundred MB; elan reports its size and progress)"
    )
    argv = [elan, "toolchain", "install", name]
    fix = f"retry with network access, {OR_SET_REPL}"
    timeout = TOOLCHAIN_INSTALL_TIMEOUT
    code, out, err = steps.run(argv, cwd, timeout, extra_env(elan), fix, echo=True)
    if code != 0:
        raise ReplSetupError(
            f"`{shlex.join(argv)}` failed (exit {code}):\n{tail(out, err)}\n"
            f"(Is {version} a Lean release? See {LEAN_RELEASES}.)\n"
            + without_network(f"the Lean toolchain {name}", LEAN_RELEASES)
        )


def _clone(
    git: str, version: str, root: Path, sources: list[Source], steps: SetupSteps
) -> tuple[Path, Source]:
    """Clone the first source that has a tag for ``version``; its folder and source."""
    missing: list[Source] = []
    offline_fix = (
        "this needs network access once (the build is cached afterwards); retry online, or "
        f"set local_repl_path to a local REPL checkout, {OR_SET_REPL}"
    )
    checkout = "\n  - in Python: LeanREPLConfig(local_repl_path=...), a REPL checkout to build."
    for source in sources:
        target = _build_dir(root, source, version)
        shutil.rmtree(target, ignore_errors=True)
        argv = [git, "clone", "--depth", "1", "--branch", source.tag, source.git, str(target)]
        steps.say(f"Downloading the REPL: `git clone --depth 1 --branch {source.tag} {source.git}`")
        code, out, err = steps.run(argv, root, CLONE_TIMEOUT, None, offline_fix)
        if code == 0:
            return target, source
        shutil.rmtree(target, ignore_errors=True)
        if any(marker in err for marker in _MISSING_REF):
            steps.say(f"{source.git} has no tag {source.tag}")
            missing.append(source)
            continue
        raise ReplSetupError(
            f"Could not download the Lean REPL: `{shlex.join(argv)}` failed (exit {code}):\n"
            f"{tail(out, err)}\n"
            + without_network(f"the REPL's sources (tag {source.tag})", source.git)
            + checkout
        )
    tried = " and ".join(f"tag {s.tag} is not in {s.git}" for s in missing)
    raise ReplSetupError(
        f"No REPL release matches Lean {version}: {tried}.\n"
        f"Fix: choose another lean_version (e.g. {DEFAULT_LEAN_VERSION}), or set "
        f"local_repl_path to a REPL built for Lean {version}, {OR_SET_REPL}."
    )


# -- markers ------------------------------------------------------------------------------------


def _build_dir(root: Path, source: Source, version: str) -> Path:
    return root / f"{source.flavor}-{version}"


def _finished_build(root: Path, version: str, sources: list[Source]) -> BuiltRepl | None:
    """The first source whose marker says it was built from the same tag and still exists."""
    for source in sources:
        directory = _build_dir(root, source, version)
        try:
            marker = json.loads((directory / BUILD_MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        binary = repl_binary(directory)
        expected = {"lean_version": version, "git": source.git, "tag": source.tag}
        if all(marker.get(k) == v for k, v in expected.items()) and is_executable(binary):
            return BuiltRepl(directory, binary, source)
    return None


def _write_marker(built: BuiltRepl, version: str) -> None:
    marker = {
        "lean_version": version,
        "flavor": built.source.flavor,
        "git": built.source.git,
        "tag": built.source.tag,
        "binary": str(built.binary),
    }
    tmp = built.directory / (BUILD_MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, built.directory / BUILD_MARKER)

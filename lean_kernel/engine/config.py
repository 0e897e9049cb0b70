"""Where the Lean REPL comes from, and how to start it.

``LeanREPLConfig`` is a picklable value (it travels to worker processes); ``resolve()`` turns it
into a ``ReplLaunch``: the exact argv, working directory and environment of one REPL process.
Resolution order, first match wins:

a. an explicit command: ``repl_command``, else the ``LEAN_KERNEL_REPL`` environment variable;
b. a local REPL checkout (``local_repl_path``), built with ``lake build`` first;
c. a Lake project (``project_dir``, or found by walking up from ``working_dir``): a REPL built
   for the project's Lean version, run with ``lake env`` inside the project so its dependencies
   (Mathlib ...) resolve;
d. a REPL built for ``lean_version`` (default ``DEFAULT_LEAN_VERSION``) in the cache directory.

Installing (elan toolchain, git clone, lake build) happens once, under a file lock, and leaves a
marker; afterwards ``resolve()`` only reads that marker. Every failure is a ``ReplSetupError``
whose message names the command or setting that fixes it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout

from lean_kernel.errors import ReplSetupError

Flavor = Literal["fork", "upstream", "unknown"]
FlavorChoice = Literal["auto", "fork", "upstream"]

#: Newest stable Lean release with a REPL tag in both the fork and upstream; what "latest" means.
DEFAULT_LEAN_VERSION = "v4.32.0"
#: Fork release whose tags are named ``<repl_rev>_lean-toolchain-<lean version>``.
DEFAULT_REPL_REV = "v1.3.18"
#: The fork adds incrementality and ``setOptions`` (parallel elaboration) to the REPL.
FORK_REPL_GIT = "https://github.com/augustepoiroux/repl"
#: Upstream tags are the Lean version itself (``v4.19.0``); used when the fork has no such tag.
UPSTREAM_REPL_GIT = "https://github.com/leanprover-community/repl"

REPL_ENV_VAR = "LEAN_KERNEL_REPL"
FLAVOR_ENV_VAR = "LEAN_KERNEL_REPL_FLAVOR"
CACHE_ENV_VAR = "LEAN_KERNEL_CACHE_DIR"
SETUP_COMMAND = "python -m lean_kernel setup"
ELAN_INSTALL = (
    "install elan: curl https://raw.githubusercontent.com/leanprover/elan/master/elan-init.sh "
    "-sSf | sh"
)
OR_SET_REPL = f"or set {REPL_ENV_VAR} to a REPL command"

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

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.]+))?$")
_MISSING_REF = ("not found in upstream", "Could not find remote branch")
_TAIL_LINES = 20


@dataclass(frozen=True)
class ReplLaunch:
    """Everything needed to start one REPL process, and a sentence saying why it is this one."""

    argv: list[str]
    cwd: str
    env: dict[str, str] | None
    description: str
    flavor: Flavor
    lean_version: str | None


def normalize_lean_version(version: str) -> str | None:
    """``leanprover/lean4:v4.19.0``, ``v4.19.0`` or ``4.19.0`` -> ``v4.19.0``; None if not one."""
    text = version.strip().removeprefix("leanprover/lean4:")
    match = _VERSION_RE.match(text)
    if match is None:
        return None
    return "v" + text.removeprefix("v")


def _version_key(version: str) -> tuple[int, int, int, int] | None:
    """Orders releases; a pre-release (``-rc2``) sorts before its release."""
    match = _VERSION_RE.match(version)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    rc = re.fullmatch(r"rc(\d+)", pre or "")
    rank = sys.maxsize if pre is None else int(rc.group(1)) if rc else 0
    return int(major), int(minor), int(patch), rank


def _at_least(version: str | None, minimum: str) -> bool:
    key = _version_key(version) if version else None
    floor = _version_key(minimum)
    assert floor is not None
    return key is not None and key >= floor


def supports_incrementality(flavor: Flavor, lean_version: str | None) -> bool:
    """Whether to send ``incrementality``: only the fork implements it (Lean >= 4.8).

    An unknown REPL may be the fork, and upstream ignores unknown fields, so it gets the field
    too unless its Lean version is known to predate the feature.
    """
    if flavor == "upstream":
        return False
    return lean_version is None or _at_least(lean_version, "v4.8.0-rc1")


def supports_parallel_elaboration(flavor: Flavor, lean_version: str | None) -> bool:
    """Whether ``setOptions`` with ``Elab.async`` works: the fork's field, Lean >= 4.19."""
    return flavor == "fork" and _at_least(lean_version, "v4.19.0")


def find_lake_project(start: str | os.PathLike[str]) -> Path | None:
    """The nearest folder at or above ``start`` with a lakefile and a ``lean-toolchain``."""
    folder = Path(start).resolve()
    for candidate in (folder, *folder.parents):
        if _is_lake_project(candidate):
            return candidate
    return None


def _is_lake_project(folder: Path) -> bool:
    has_lakefile = (folder / "lakefile.lean").is_file() or (folder / "lakefile.toml").is_file()
    return has_lakefile and (folder / "lean-toolchain").is_file()


def _toolchain_version(folder: Path) -> tuple[str | None, str]:
    """(normalized version or None, the raw ``lean-toolchain`` text) of a folder."""
    try:
        raw = (folder / "lean-toolchain").read_text(encoding="utf-8").strip()
    except OSError:
        return None, ""
    return normalize_lean_version(raw), raw


def _elan_bin() -> Path:
    return Path(os.environ.get("ELAN_HOME") or Path.home() / ".elan") / "bin"


def _find_tool(name: str) -> str | None:
    """Absolute path of a tool: a path as given, else PATH, else elan's bin folder.

    elan's folder is searched because a Jupyter server started from a desktop launcher often
    lacks the PATH line elan adds to shell profiles.
    """
    if os.sep in name or (os.altsep and os.altsep in name):
        path = Path(name).expanduser()
        return str(path.resolve()) if _is_executable(path) else None
    found = shutil.which(name)
    if found:
        return os.path.abspath(found)
    path = _elan_bin() / name
    return str(path) if _is_executable(path) else None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _repl_binary(repl_dir: Path) -> Path:
    """The built REPL executable in a checkout (the usual place if there is none yet)."""
    for relative in (REPL_BINARY, _OLD_REPL_BINARY):
        if _is_executable(repl_dir / relative):
            return repl_dir / relative
    return repl_dir / REPL_BINARY


def _extra_env(tool: str) -> dict[str, str] | None:
    """PATH with the tool's folder first when that folder is not on PATH (see _find_tool)."""
    folder = os.path.dirname(tool)
    path = os.environ.get("PATH", "")
    if folder in path.split(os.pathsep):
        return None
    return {"PATH": folder + os.pathsep + path if path else folder}


def _tail(*outputs: str) -> str:
    lines = "\n".join(o.strip() for o in outputs if o and o.strip()).splitlines()
    if not lines:
        return "  (no output)"
    return "\n".join("  " + line for line in lines[-_TAIL_LINES:])


@dataclass(frozen=True)
class _Source:
    """One place a REPL for a Lean version can be cloned from."""

    flavor: Literal["fork", "upstream"]
    git: str
    tag: str


@dataclass(frozen=True)
class _BuiltRepl:
    directory: Path
    binary: Path
    source: _Source


class _Steps:
    """One resolve() call's side effects: step reports and bounded subprocesses."""

    def __init__(self, progress: Callable[[str], None] | None, verbose: bool) -> None:
        self._progress = progress
        self._verbose = verbose

    def say(self, line: str) -> None:
        if self._progress is not None:
            self._progress(line)
        if self._verbose:
            print(f"lean_kernel: {line}", file=sys.stderr, flush=True)

    def run(
        self, argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None, fix: str
    ) -> tuple[int, str, str]:
        """(exit code, stdout, stderr); in its own session so a timeout kills the whole tree."""
        full_env = {**os.environ, **(env or {}), "GIT_TERMINAL_PROMPT": "0"}
        command = shlex.join(argv)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise ReplSetupError(
                f"Could not run `{command}` in {cwd}: {exc}.\nFix: {fix}"
            ) from None
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            out, err = proc.communicate()
            raise ReplSetupError(
                f"`{command}` did not finish within {timeout:g} s in {cwd}; it was killed.\n"
                f"{_tail(out, err)}\nFix: {fix}"
            ) from None
        return proc.returncode, out, err


def _kill_tree(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (AttributeError, ProcessLookupError, PermissionError):
        proc.kill()


class LeanREPLConfig:
    """How to find, install and start the Lean REPL, plus the limits every REPL process gets.

    A plain value: building one does no I/O, and it pickles (the resolved launch is dropped, so a
    worker on another machine resolves against its own files). Argument names follow
    LeanInteract's ``LeanREPLConfig`` where they overlap.
    """

    def __init__(
        self,
        lean_version: str | None = None,
        *,
        project: Any = None,
        project_dir: str | os.PathLike[str] | None = None,
        repl_rev: str = DEFAULT_REPL_REV,
        repl_git: str = FORK_REPL_GIT,
        cache_dir: str | os.PathLike[str] | None = None,
        local_repl_path: str | os.PathLike[str] | None = None,
        build_repl: bool = True,
        lake_path: str | os.PathLike[str] = "lake",
        memory_hard_limit_mb: int | None = None,
        enable_incremental_optimization: bool = True,
        enable_parallel_elaboration: bool = True,
        verbose: bool = False,
        repl_command: str | Sequence[str] | None = None,
        repl_flavor: FlavorChoice = "auto",
        timeout: float | None = None,
        working_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Check the arguments only; nothing is looked up until ``resolve()``.

        Args:
            lean_version: e.g. ``"v4.19.0"``, ``"4.19.0"`` or ``"latest"`` (=
                ``DEFAULT_LEAN_VERSION``). Giving it turns off the walk up to a Lake project.
            project: a LeanInteract project object (anything with ``directory``) or a path;
                same as ``project_dir``.
            project_dir: a Lake project whose dependencies the REPL should see.
            repl_rev: the fork release whose tag ``<repl_rev>_lean-toolchain-<version>`` is built.
            repl_git: the fork's git URL.
            cache_dir: where REPL builds live; default ``$LEAN_KERNEL_CACHE_DIR`` or
                ``~/.cache/lean_kernel``.
            local_repl_path: a REPL checkout to use instead of a cached one.
            build_repl: run ``lake build`` in ``local_repl_path`` before using it.
            lake_path: the ``lake`` executable (name on PATH, or a path).
            memory_hard_limit_mb: memory limit of one REPL process tree; None for none.
            enable_incremental_optimization: send ``incrementality`` where the REPL supports it.
            enable_parallel_elaboration: turn on ``Elab.async`` where the REPL supports it.
            verbose: print setup steps to stderr.
            repl_command: a REPL command line (shell-quoted string or argv), used as is.
            repl_flavor: which REPL flavour to build or to assume for an explicit command.
            timeout: default per-command timeout in seconds; None for none.
            working_dir: where the walk up to a Lake project starts, and the working directory
                of an explicit command; default: the current directory at resolve time.
        """
        if project is not None and project_dir is not None:
            raise ValueError("Give `project` or `project_dir`, not both.")
        if project is not None:
            project_dir = _project_directory(project)
        if repl_flavor not in ("auto", "fork", "upstream"):
            raise ValueError(
                f"repl_flavor must be 'auto', 'fork' or 'upstream', not {repl_flavor!r}"
            )
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive or None, not {timeout!r}")
        if memory_hard_limit_mb is not None and memory_hard_limit_mb <= 0:
            raise ValueError(
                f"memory_hard_limit_mb must be positive or None, not {memory_hard_limit_mb}"
            )
        if lean_version is not None:
            lean_version = _parse_requested_version(lean_version)
        if isinstance(repl_command, Sequence) and not isinstance(repl_command, str):
            repl_command = [str(part) for part in repl_command]

        self.lean_version = lean_version
        self.project = project
        self.project_dir = Path(project_dir).expanduser() if project_dir is not None else None
        self.repl_rev = repl_rev
        self.repl_git = repl_git
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.local_repl_path = (
            Path(local_repl_path).expanduser() if local_repl_path is not None else None
        )
        self.build_repl = build_repl
        self.lake_path = str(lake_path)
        self.memory_hard_limit_mb = memory_hard_limit_mb
        self.enable_incremental_optimization = enable_incremental_optimization
        self.enable_parallel_elaboration = enable_parallel_elaboration
        self.verbose = verbose
        self.repl_command = repl_command
        self.repl_flavor: FlavorChoice = repl_flavor
        self.timeout = timeout
        self.working_dir = Path(working_dir).expanduser() if working_dir is not None else None
        self._launch: ReplLaunch | None = None
        self._resolve_lock = threading.Lock()

    # -- pickling: the launch describes this machine's files; the lock cannot travel ----------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_launch"] = None
        del state["_resolve_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._resolve_lock = threading.Lock()

    def __repr__(self) -> str:
        fields = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return "LeanREPLConfig(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"

    # -- public API -----------------------------------------------------------------------------

    @property
    def cache_root(self) -> Path:
        """The folder holding REPL builds (``cache_dir`` or its default)."""
        if self.cache_dir is not None:
            return self.cache_dir
        env_dir = os.environ.get(CACHE_ENV_VAR)
        return Path(env_dir).expanduser() if env_dir else Path.home() / ".cache" / "lean_kernel"

    def resolve(
        self, progress: Callable[[str], None] | None = None, *, install: bool = True
    ) -> ReplLaunch:
        """Find (and if needed install and build) the REPL; return how to start it.

        ``progress`` receives one line per step. With ``install=False`` nothing is installed or
        built: a missing piece is a ReplSetupError saying how to get it (used by ``describe``).
        The result is kept on the instance, so later calls cost nothing.
        """
        if install and self._launch is not None:
            return self._launch
        with self._resolve_lock:
            if install and self._launch is not None:
                return self._launch
            launch = self._resolve(_Steps(progress, self.verbose), install)
            if install:
                self._launch = launch
            return launch

    def use_incrementality(self, launch: ReplLaunch) -> bool:
        """Whether requests to this REPL should carry ``incrementality: true``."""
        return self.enable_incremental_optimization and supports_incrementality(
            launch.flavor, launch.lean_version
        )

    def use_parallel_elaboration(self, launch: ReplLaunch) -> bool:
        """Whether requests to this REPL should set ``Elab.async``."""
        return self.enable_parallel_elaboration and supports_parallel_elaboration(
            launch.flavor, launch.lean_version
        )

    def describe(self) -> str:
        """Multi-line report for ``doctor``: which REPL runs and why, tools, flavour, limits.

        Installs and builds nothing; a missing piece is reported with its fix.
        """
        lines: list[str] = []
        try:
            launch = self._launch or self.resolve(install=False)
        except ReplSetupError as exc:
            lines.append("REPL: not ready")
            lines.extend("  " + line for line in str(exc).splitlines())
        else:
            incremental = "on" if self.use_incrementality(launch) else "off"
            parallel = "on" if self.use_parallel_elaboration(launch) else "off"
            lines += [
                f"REPL: {launch.description}",
                f"command: {shlex.join(launch.argv)}",
                f"working directory: {launch.cwd}",
                f"extra environment: {launch.env or 'none'}",
                f"Lean version: {launch.lean_version or 'unknown'}",
                f"flavor: {launch.flavor}",
                f"incrementality: {incremental} (enabled={self.enable_incremental_optimization})",
                f"parallel elaboration: {parallel} (enabled={self.enable_parallel_elaboration}; "
                "needs the fork and Lean >= v4.19.0)",
            ]
        memory = f"{self.memory_hard_limit_mb} MB" if self.memory_hard_limit_mb else "none"
        timeout = f"{self.timeout:g} s" if self.timeout else "none"
        tools = ", ".join(
            f"{name}={_find_tool(path) or 'not found'}"
            for name, path in (("elan", "elan"), ("lake", self.lake_path), ("git", "git"))
        )
        lines += [
            f"limits: memory per REPL {memory}, timeout per command {timeout}",
            f"cache: {self.cache_root}",
            f"REPL sources: fork {self.repl_git} at {self.repl_rev}, upstream {UPSTREAM_REPL_GIT}",
            f"tools: {tools}",
        ]
        return "\n".join(lines)

    # -- resolution -----------------------------------------------------------------------------

    def _resolve(self, steps: _Steps, install: bool) -> ReplLaunch:
        explicit = self._explicit_command()
        if explicit is not None:
            return self._launch_command(*explicit, steps)
        project, why = self._project()
        if self.local_repl_path is not None:
            return self._launch_local_repl(project, why, steps, install)
        if project is not None:
            return self._launch_project(project, why, steps, install)
        version = self.lean_version or DEFAULT_LEAN_VERSION
        built = self._ensure_repl(version, steps, install)
        origin = "lean_version" if self.lean_version else "lean_kernel's default"
        lake, env = self._lake_for_cached_repl()
        source = built.source
        description = (
            f"REPL ({source.flavor}, tag {source.tag}) for Lean {version} ({origin}), built in "
            f"{built.directory}; it runs in its own folder ({why})"
        )
        steps.say(f"Ready: {description}")
        return ReplLaunch(
            argv=[lake, "env", str(built.binary)],
            cwd=str(built.directory),
            env=env,
            description=description,
            flavor=built.source.flavor,
            lean_version=version,
        )

    def _start_dir(self) -> Path:
        folder = (self.working_dir if self.working_dir is not None else Path.cwd()).resolve()
        if not folder.is_dir():
            raise ReplSetupError(
                f"working_dir {folder} is not a folder.\nFix: pass an existing working_dir."
            )
        return folder

    def _explicit_command(self) -> tuple[list[str], str] | None:
        """(argv, the setting it came from), or None when no command was given."""
        if self.repl_command is not None:
            source, text = "repl_command", self.repl_command
        else:
            env_text = os.environ.get(REPL_ENV_VAR, "")
            if not env_text.strip():
                return None
            source, text = REPL_ENV_VAR, env_text
        if isinstance(text, str):
            try:
                argv = shlex.split(text)
            except ValueError as exc:
                raise ReplSetupError(
                    f"{source} is not a valid shell-quoted command line ({exc}): {text!r}.\n"
                    f"Fix: quote it as a shell would, e.g. {REPL_ENV_VAR}='lake env \"/a b/repl\"'."
                ) from None
        else:
            argv = list(text)
        if not argv:
            raise ReplSetupError(
                f"{source} is empty.\nFix: set {source} to a REPL command, or unset it to let "
                "lean_kernel find or install the REPL."
            )
        return argv, source

    def _launch_command(self, argv: list[str], source: str, steps: _Steps) -> ReplLaunch:
        cwd = self._start_dir()
        if argv[0].startswith("~"):
            argv = [os.path.expanduser(argv[0]), *argv[1:]]
        program = argv[0]
        has_dir = os.sep in program or bool(os.altsep and os.altsep in program)
        found = _is_executable(cwd / program) if has_dir else shutil.which(program)
        if not found:
            raise ReplSetupError(
                f"{source} names `{program}`, which is not an executable file"
                f"{'' if has_dir else ' on PATH'} (command: {shlex.join(argv)}).\n"
                f"Fix: set {source} to a working REPL command (shell-quoted, e.g. "
                f"{REPL_ENV_VAR}='lake env /path/to/repl/.lake/build/bin/repl'), or unset it to "
                "let lean_kernel find or install the REPL."
            )
        flavor = self._declared_flavor()
        description = f"{source}: `{shlex.join(argv)}`, used as is (an explicit command wins)"
        steps.say(f"Ready: {description}")
        return ReplLaunch(
            argv=argv,
            cwd=str(cwd),
            env=None,
            description=description,
            flavor=flavor,
            lean_version=self.lean_version,
        )

    def _declared_flavor(self) -> Flavor:
        if self.repl_flavor != "auto":
            return self.repl_flavor
        value = os.environ.get(FLAVOR_ENV_VAR, "").strip()
        if not value:
            return "unknown"
        if value not in ("fork", "upstream", "unknown"):
            raise ReplSetupError(
                f"{FLAVOR_ENV_VAR}={value!r} is not a REPL flavour.\n"
                f"Fix: set {FLAVOR_ENV_VAR} to fork, upstream or unknown, or unset it."
            )
        return value  # type: ignore[return-value]

    def _project(self) -> tuple[Path | None, str]:
        """(the Lake project to run in, how it was chosen)."""
        if self.project_dir is not None:
            folder = self.project_dir.resolve()
            if not _is_lake_project(folder):
                raise ReplSetupError(
                    f"project_dir {folder} is not a Lake project (it needs lakefile.lean or "
                    "lakefile.toml, and lean-toolchain).\n"
                    f"Fix: point project_dir at the folder holding the lakefile, or create the "
                    f"project with `lake new NAME` (or `lake new NAME math` for Mathlib)."
                )
            return folder, "project_dir"
        if self.lean_version is not None:
            return None, "lean_version given, so no Lake project was searched for"
        start = self._start_dir()
        folder = find_lake_project(start)
        if folder is None:
            return None, f"no Lake project at or above {start}"
        return folder, f"found by walking up from {start}"

    def _project_version(self, project: Path) -> str:
        version, raw = _toolchain_version(project)
        if version is None:
            raise ReplSetupError(
                f"The Lean toolchain {raw!r} in {project / 'lean-toolchain'} is not a Lean release "
                "lean_kernel can build a REPL for.\n"
                f"Fix: pin a release there (e.g. leanprover/lean4:{DEFAULT_LEAN_VERSION}), or set "
                f"local_repl_path to a REPL built for it, {OR_SET_REPL}."
            )
        if self.lean_version is not None and self.lean_version != version:
            raise ReplSetupError(
                f"lean_version={self.lean_version} but the project {project} uses Lean {version} "
                "(its lean-toolchain); a REPL can only load a project built by its own version.\n"
                f"Fix: drop lean_version, or set it to {version}."
            )
        return version

    def _check_dependencies(self, project: Path) -> None:
        """Fail early when the project's packages are not there: `lake env` would fetch them."""
        manifest_path = project / "lake-manifest.json"
        packages_dir = ".lake/packages"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None
        if isinstance(manifest, dict):
            needed = bool(manifest.get("packages"))
            packages_dir = str(manifest.get("packagesDir") or packages_dir)
        else:
            lakefiles = [project / "lakefile.lean", project / "lakefile.toml"]
            needed = any(
                f.is_file() and "require" in f.read_text(errors="replace") for f in lakefiles
            )
        if needed and not (project / packages_dir).is_dir():
            raise ReplSetupError(
                f"The Lake project {project} has dependencies that are not downloaded yet "
                f"(no {project / packages_dir}).\n"
                f"Fix: in {project} run `lake exe cache get` (Mathlib projects: fetches prebuilt "
                "Mathlib), then `lake build`."
            )

    def _launch_project(self, project: Path, why: str, steps: _Steps, install: bool) -> ReplLaunch:
        version = self._project_version(project)
        self._check_dependencies(project)
        steps.say(f"Lake project {project} ({why}) uses Lean {version}")
        built = self._ensure_repl(version, steps, install)
        lake, env = self._lake_for_cached_repl()
        source = built.source
        description = (
            f"Lake project {project} ({why}), Lean {version} from its lean-toolchain; REPL "
            f"({source.flavor}, tag {source.tag}) built in {built.directory}, run with `lake env` "
            "in the project so its dependencies resolve"
        )
        steps.say(f"Ready: {description}")
        return ReplLaunch(
            argv=[lake, "env", str(built.binary)],
            cwd=str(project),
            env=env,
            description=description,
            flavor=built.source.flavor,
            lean_version=version,
        )

    def _launch_local_repl(
        self, project: Path | None, why: str, steps: _Steps, install: bool
    ) -> ReplLaunch:
        assert self.local_repl_path is not None
        repl_dir = self.local_repl_path.resolve()
        if not repl_dir.is_dir():
            raise ReplSetupError(
                f"local_repl_path {repl_dir} does not exist.\n"
                f"Fix: point local_repl_path at a REPL checkout (git clone {FORK_REPL_GIT}), or "
                "remove it to let lean_kernel install the REPL."
            )
        version, _ = _toolchain_version(repl_dir)
        if version and self.lean_version and version != self.lean_version:
            raise ReplSetupError(
                f"lean_version={self.lean_version} but the REPL in local_repl_path {repl_dir} is "
                f"for Lean {version} (its lean-toolchain).\n"
                f"Fix: drop lean_version, or check out the REPL tag for {self.lean_version} there."
            )
        version = version or self.lean_version
        if project is not None:
            project_version = self._project_version(project)
            self._check_dependencies(project)
            if version is not None and version != project_version:
                raise ReplSetupError(
                    f"The REPL in local_repl_path {repl_dir} is for Lean {version}, but the Lake "
                    f"project {project} ({why}) uses Lean {project_version}.\n"
                    f"Fix: check out the REPL tag for {project_version} in {repl_dir}, or remove "
                    "local_repl_path to let lean_kernel build a matching REPL."
                )
            version = project_version
        lake = _find_tool(self.lake_path)
        if lake is None:
            raise ReplSetupError(
                f"`{self.lake_path}` (lake_path) was not found on PATH or in {_elan_bin()}.\n"
                f"Fix: {ELAN_INSTALL}, or pass lake_path='/path/to/lake', {OR_SET_REPL}."
            )
        if self.build_repl and install:
            (repl_dir / ".lake").mkdir(exist_ok=True)
            with _holding(repl_dir / ".lake" / "lean_kernel-build.lock", steps):
                steps.say(f"Building the REPL: `lake build` in {repl_dir}")
                fix = f"make `lake build` succeed in {repl_dir}, {OR_SET_REPL}"
                self._lake_build(lake, repl_dir, steps, fix)
        binary = _repl_binary(repl_dir)
        if not _is_executable(binary):
            raise ReplSetupError(
                f"No REPL executable at {binary}.\n"
                f"Fix: run `lake build` in {repl_dir}, or pass build_repl=True."
            )
        cwd = project if project is not None else repl_dir
        where = f"in the Lake project {project} ({why})" if project else "in its own folder"
        description = (
            f"local REPL checkout {repl_dir} (local_repl_path), run with `lake env` {where}"
        )
        steps.say(f"Ready: {description}")
        return ReplLaunch(
            argv=[lake, "env", str(binary)],
            cwd=str(cwd),
            env=_extra_env(lake),
            description=description,
            flavor=self._local_flavor(repl_dir),
            lean_version=version,
        )

    def _local_flavor(self, repl_dir: Path) -> Flavor:
        """Only the fork's request type has an ``incrementality`` field."""
        if self.repl_flavor != "auto":
            return self.repl_flavor
        try:
            source = (repl_dir / "REPL" / "JSON.lean").read_text(encoding="utf-8")
        except OSError:
            return "unknown"
        return "fork" if "incrementality" in source else "upstream"

    # -- the cached REPL build ------------------------------------------------------------------

    def _sources(self, version: str) -> list[_Source]:
        sources = []
        if self.repl_flavor in ("auto", "fork"):
            sources.append(
                _Source("fork", self.repl_git, f"{self.repl_rev}_lean-toolchain-{version}")
            )
        if self.repl_flavor in ("auto", "upstream"):
            sources.append(_Source("upstream", UPSTREAM_REPL_GIT, version))
        return sources

    def _lake_for_cached_repl(self) -> tuple[str, dict[str, str] | None]:
        lake = _find_tool(self.lake_path)
        if lake is None:
            raise ReplSetupError(
                f"`{self.lake_path}` (lake_path) was not found on PATH or in {_elan_bin()}, so the "
                "cached REPL cannot be started.\n"
                f"Fix: {ELAN_INSTALL}, or pass lake_path='/path/to/lake', {OR_SET_REPL}."
            )
        return lake, _extra_env(lake)

    def _ensure_repl(self, version: str, steps: _Steps, install: bool) -> _BuiltRepl:
        """A finished build for ``version``: from its marker, else installed under the lock."""
        root = self.cache_root / "repl"
        sources = self._sources(version)
        built = _finished_build(root, version, sources)
        if built is not None:
            return built
        if not install:
            raise ReplSetupError(
                f"The REPL for Lean {version} is not built yet (looked in {root}).\n"
                f"Fix: run `{SETUP_COMMAND}` (needs network once), {OR_SET_REPL}."
            )
        elan = _find_tool("elan")
        if elan is None:
            raise ReplSetupError(
                f"Lean is not installed: `elan` (the Lean toolchain manager) was not found on PATH "
                f"or in {_elan_bin()}.\nFix: {ELAN_INSTALL}, {OR_SET_REPL} "
                f"(e.g. {REPL_ENV_VAR}='lake env /path/to/repl/.lake/build/bin/repl')."
            )
        git = _find_tool("git")
        if git is None:
            raise ReplSetupError(
                "`git` was not found on PATH; it is needed once to download the REPL sources.\n"
                "Fix: install git (e.g. `apt-get install git`), or set local_repl_path to a REPL "
                f"checkout, {OR_SET_REPL}."
            )
        lake, _ = self._lake_for_cached_repl()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReplSetupError(
                f"Cannot create the cache folder {root}: {exc}.\n"
                f"Fix: set {CACHE_ENV_VAR} (or cache_dir) to a writable folder."
            ) from None
        with _holding(root / f"{version}.lock", steps):
            built = _finished_build(root, version, sources)
            if built is not None:
                steps.say(f"Another process finished the REPL for Lean {version}")
                return built
            self._install_toolchain(elan, version, root, steps)
            repl_dir, source = self._clone(git, version, root, sources, steps)
            toolchain = f"leanprover/lean4:{version}\n"
            (repl_dir / "lean-toolchain").write_text(toolchain, encoding="utf-8")
            steps.say(f"Building the REPL: `lake build` in {repl_dir}")
            fix = f"delete {repl_dir} and run `{SETUP_COMMAND}` again, {OR_SET_REPL}"
            self._lake_build(lake, repl_dir, steps, fix)
            built = _BuiltRepl(repl_dir, _repl_binary(repl_dir), source)
            if not _is_executable(built.binary):
                raise ReplSetupError(
                    f"`lake build` in {repl_dir} succeeded but left no {built.binary}.\nFix: {fix}."
                )
            _write_marker(built, version)
            steps.say(f"REPL for Lean {version} built in {built.directory}")
            return built

    def _install_toolchain(self, elan: str, version: str, cwd: Path, steps: _Steps) -> None:
        name = f"leanprover/lean4:{version}"
        listing = [elan, "toolchain", "list"]
        code, out, err = steps.run(listing, cwd, QUERY_TIMEOUT, _extra_env(elan), ELAN_INSTALL)
        if code != 0:
            raise ReplSetupError(
                f"`{shlex.join(listing)}` failed (exit {code}):\n{_tail(out, err)}\n"
                f"Fix: repair elan (`elan self update`, or {ELAN_INSTALL}), {OR_SET_REPL}."
            )
        installed = {line.split()[0] for line in out.splitlines() if line.strip()}
        folder_name = name.replace("/", "--").replace(":", "---")  # how older elan lists them
        if name in installed or folder_name in installed:
            steps.say(f"Lean toolchain {name} is installed")
            return
        steps.say(f"Installing the Lean toolchain: `elan toolchain install {name}`")
        argv = [elan, "toolchain", "install", name]
        fix = f"retry with network access, {OR_SET_REPL}"
        code, out, err = steps.run(argv, cwd, TOOLCHAIN_INSTALL_TIMEOUT, _extra_env(elan), fix)
        if code != 0:
            raise ReplSetupError(
                f"`{shlex.join(argv)}` failed (exit {code}):\n{_tail(out, err)}\n"
                "Installing a toolchain downloads it, so it needs network access once.\n"
                f"Fix: check that Lean {version} exists "
                "(https://github.com/leanprover/lean4/releases) and retry with network access, "
                f"{OR_SET_REPL}."
            )

    def _clone(
        self, git: str, version: str, root: Path, sources: list[_Source], steps: _Steps
    ) -> tuple[Path, _Source]:
        """Clone the first source that has a tag for ``version``; its folder and source."""
        missing: list[_Source] = []
        offline_fix = (
            "this needs network access once (the build is cached afterwards); retry online, or "
            f"set local_repl_path to a local REPL checkout, {OR_SET_REPL}"
        )
        for source in sources:
            target = _build_dir(root, source, version)
            shutil.rmtree(target, ignore_errors=True)
            argv = [git, "clone", "--depth", "1", "--branch", source.tag, source.git, str(target)]
            steps.say(
                f"Downloading the REPL: `git clone --depth 1 --branch {source.tag} {source.git}`"
            )
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
                f"{_tail(out, err)}\nFix: {offline_fix}."
            )
        tried = " and ".join(f"tag {s.tag} is not in {s.git}" for s in missing)
        raise ReplSetupError(
            f"No REPL release matches Lean {version}: {tried}.\n"
            f"Fix: choose another lean_version (e.g. {DEFAULT_LEAN_VERSION}), or set "
            f"local_repl_path to a REPL built for Lean {version}, {OR_SET_REPL}."
        )

    def _lake_build(self, lake: str, repl_dir: Path, steps: _Steps, fix: str) -> None:
        argv = [lake, "build"]
        code, out, err = steps.run(argv, repl_dir, BUILD_TIMEOUT, _extra_env(lake), fix)
        if code != 0:
            raise ReplSetupError(
                f"`{shlex.join(argv)}` failed (exit {code}) in {repl_dir}:\n{_tail(out, err)}\n"
                f"Fix: {fix}."
            )


@contextmanager
def _holding(path: Path, steps: _Steps) -> Iterator[None]:
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


def _project_directory(project: Any) -> str | os.PathLike[str]:
    """A LeanInteract project object's folder, or the path itself."""
    if isinstance(project, (str, os.PathLike)):
        return project
    directory = getattr(project, "directory", None)
    if directory is None:
        raise ValueError(f"project {project!r} has no directory; pass project_dir=PATH instead")
    return directory


def _parse_requested_version(version: str) -> str:
    if version.strip().lower() in ("latest", "stable"):
        return DEFAULT_LEAN_VERSION
    normalized = normalize_lean_version(version)
    if normalized is None:
        raise ValueError(
            f"lean_version {version!r} is not a Lean release such as {DEFAULT_LEAN_VERSION!r} "
            "or 'latest'"
        )
    return normalized


def _build_dir(root: Path, source: _Source, version: str) -> Path:
    return root / f"{source.flavor}-{version}"


def _finished_build(root: Path, version: str, sources: list[_Source]) -> _BuiltRepl | None:
    """The first source whose marker says it was built from the same tag and still exists."""
    for source in sources:
        directory = _build_dir(root, source, version)
        try:
            marker = json.loads((directory / BUILD_MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        binary = _repl_binary(directory)
        expected = {"lean_version": version, "git": source.git, "tag": source.tag}
        if all(marker.get(k) == v for k, v in expected.items()) and _is_executable(binary):
            return _BuiltRepl(directory, binary, source)
    return None


def _write_marker(built: _BuiltRepl, version: str) -> None:
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

"""Which REPL a config means, and how to start it; the ``doctor`` report of that choice.

Resolution order, first match wins:

a. an explicit command: ``repl_command``, else the ``LEAN_KERNEL_REPL`` environment variable;
b. a local REPL checkout (``local_repl_path``), built with ``lake build`` first;
c. a Lake project (``project_dir``, or found by walking up from ``working_dir``): the REPL
   built inside it if there is one (offline use), else a REPL built for the project's Lean
   version; run with ``lake env`` inside the project so its dependencies (Mathlib ...) resolve;
d. a REPL built for ``lean_version`` (default ``DEFAULT_LEAN_VERSION``) in the cache directory.

Building the cached REPL is ``install.py``'s job. The config module imports this one, so this
one names the config only by the fields it reads (``ToolchainSettings``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from lean_kernel.engine.install import (
    ELAN_INSTALL,
    OR_SET_REPL,
    REPL_BINARY,
    BuiltRepl,
    elan_bin,
    ensure_repl,
    extra_env,
    find_tool,
    holding,
    is_executable,
    lake_build,
    lake_for_cached_repl,
    repl_binary,
    repl_sources,
)
from lean_kernel.engine.launch import (
    DEFAULT_LEAN_VERSION,
    FLAVOR_ENV_VAR,
    FORK_REPL_GIT,
    REPL_ENV_VAR,
    UPSTREAM_REPL_GIT,
    Flavor,
    FlavorChoice,
    ReplLaunch,
    normalize_lean_version,
)
from lean_kernel.engine.steps import SetupSteps
from lean_kernel.errors import ReplSetupError


class ToolchainSettings(Protocol):
    """The fields of a ``LeanREPLConfig`` that decide where its REPL comes from."""

    lean_version: str | None
    project_dir: Path | None
    repl_rev: str
    repl_git: str
    local_repl_path: Path | None
    build_repl: bool
    lake_path: str
    repl_command: str | Sequence[str] | None
    repl_flavor: FlavorChoice
    working_dir: Path | None

    @property
    def cache_root(self) -> Path: ...


class DescribedSettings(ToolchainSettings, Protocol):
    """What the ``doctor`` report shows besides the launch: limits and feature switches."""

    memory_hard_limit_mb: int | None
    timeout: float | None
    enable_incremental_optimization: bool
    enable_parallel_elaboration: bool

    def use_incrementality(self, launch: ReplLaunch) -> bool: ...

    def use_parallel_elaboration(self, launch: ReplLaunch) -> bool: ...


def resolve(
    config: ToolchainSettings,
    progress: Callable[[str], None] | None,
    verbose: bool,
    install: bool,
) -> ReplLaunch:
    """How to start the REPL ``config`` means, installing and building it if ``install``."""
    steps = SetupSteps(progress, verbose)
    explicit = explicit_command(config.repl_command)
    if explicit is not None:
        return _launch_command(config, *explicit, steps)
    project, why = _project(config)
    if config.local_repl_path is not None:
        return _launch_local_repl(config, project, why, steps, install)
    if project is not None:
        return _launch_project(config, project, why, steps, install)
    version = config.lean_version or DEFAULT_LEAN_VERSION
    built = _ensure_repl(config, version, steps, install)
    origin = "lean_version" if config.lean_version else "lean_kernel's default"
    lake, env = lake_for_cached_repl(config.lake_path)
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


def describe(config: DescribedSettings, launch: ReplLaunch | ReplSetupError) -> str:
    """Multi-line ``doctor`` report: which REPL runs and why (or why none can), tools, limits."""
    lines: list[str] = []
    if isinstance(launch, ReplSetupError):
        lines.append("REPL: not ready")
        lines.extend("  " + line for line in str(launch).splitlines())
    else:
        incremental = "on" if config.use_incrementality(launch) else "off"
        parallel = "on" if config.use_parallel_elaboration(launch) else "off"
        lines += [
            f"REPL: {launch.description}",
            f"command: {shlex.join(launch.argv)}",
            f"working directory: {launch.cwd}",
            f"extra environment: {launch.env or 'none'}",
            f"Lean version: {launch.lean_version or 'unknown'}",
            f"flavor: {launch.flavor}",
            f"incrementality: {incremental} (enabled={config.enable_incremental_optimization})",
            f"parallel elaboration: {parallel} (enabled={config.enable_parallel_elaboration}; "
            "needs the fork and Lean >= v4.19.0)",
        ]
    memory = f"{config.memory_hard_limit_mb} MB" if config.memory_hard_limit_mb else "none"
    timeout = f"{config.timeout:g} s" if config.timeout else "none"
    tools = ", ".join(
        f"{name}={find_tool(path) or 'not found'}"
        for name, path in (("elan", "elan"), ("lake", config.lake_path), ("git", "git"))
    )
    lines += [
        f"limits: memory per REPL {memory}, timeout per command {timeout}",
        f"cache: {config.cache_root}",
        f"REPL sources: fork {config.repl_git} at {config.repl_rev}, upstream {UPSTREAM_REPL_GIT}",
        f"tools: {tools}",
    ]
    return "\n".join(lines)


def find_lake_project(start: str | os.PathLike[str]) -> Path | None:
    """The nearest folder at or above ``start`` with a lakefile and a ``lean-toolchain``."""
    folder = Path(start).resolve()
    for candidate in (folder, *folder.parents):
        if _is_lake_project(candidate):
            return candidate
    return None


# -- a. an explicit command ---------------------------------------------------------------------


def explicit_command(repl_command: str | Sequence[str] | None) -> tuple[list[str], str] | None:
    """(argv, the setting it came from: ``repl_command`` or ``LEAN_KERNEL_REPL``), or None when
    no command was given (then lean_kernel finds or builds the REPL, and setup has work)."""
    if repl_command is not None:
        source, text = "repl_command", repl_command
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


def _launch_command(
    config: ToolchainSettings, argv: list[str], source: str, steps: SetupSteps
) -> ReplLaunch:
    cwd = _start_dir(config.working_dir)
    if argv[0].startswith("~"):
        argv = [os.path.expanduser(argv[0]), *argv[1:]]
    program = argv[0]
    has_dir = os.sep in program or bool(os.altsep and os.altsep in program)
    found = is_executable(cwd / program) if has_dir else shutil.which(program)
    if not found:
        raise ReplSetupError(
            f"{source} names `{program}`, which is not an executable file"
            f"{'' if has_dir else ' on PATH'} (command: {shlex.join(argv)}).\n"
            f"Fix: set {source} to a working REPL command (shell-quoted, e.g. "
            f"{REPL_ENV_VAR}='lake env /path/to/repl/.lake/build/bin/repl'), or unset it to "
            "let lean_kernel find or install the REPL."
        )
    flavor = _declared_flavor(config.repl_flavor)
    description = f"{source}: `{shlex.join(argv)}`, used as is (an explicit command wins)"
    steps.say(f"Ready: {description}")
    return ReplLaunch(
        argv=argv,
        cwd=str(cwd),
        env=None,
        description=description,
        flavor=flavor,
        lean_version=config.lean_version,
    )


def _declared_flavor(choice: FlavorChoice) -> Flavor:
    if choice != "auto":
        return choice
    value = os.environ.get(FLAVOR_ENV_VAR, "").strip()
    if not value:
        return "unknown"
    if value not in ("fork", "upstream", "unknown"):
        raise ReplSetupError(
            f"{FLAVOR_ENV_VAR}={value!r} is not a REPL flavour.\n"
            f"Fix: set {FLAVOR_ENV_VAR} to fork, upstream or unknown, or unset it."
        )
    return value  # type: ignore[return-value]


def _start_dir(working_dir: Path | None) -> Path:
    folder = (working_dir if working_dir is not None else Path.cwd()).resolve()
    if not folder.is_dir():
        raise ReplSetupError(
            f"working_dir {folder} is not a folder.\nFix: pass an existing working_dir."
        )
    return folder


# -- b. a local REPL checkout -------------------------------------------------------------------


def _launch_local_repl(
    config: ToolchainSettings, project: Path | None, why: str, steps: SetupSteps, install: bool
) -> ReplLaunch:
    assert config.local_repl_path is not None
    repl_dir = config.local_repl_path.resolve()
    if not repl_dir.is_dir():
        raise ReplSetupError(
            f"local_repl_path {repl_dir} does not exist.\n"
            f"Fix: point local_repl_path at a REPL checkout (git clone {FORK_REPL_GIT}), or "
            "remove it to let lean_kernel install the REPL."
        )
    version, _ = _toolchain_version(repl_dir)
    wanted = config.lean_version
    if version and wanted and version != wanted:
        raise ReplSetupError(
            f"lean_version={wanted} but the REPL in local_repl_path {repl_dir} is "
            f"for Lean {version} (its lean-toolchain).\n"
            f"Fix: drop lean_version, or check out the REPL tag for {wanted} there."
        )
    version = version or wanted
    if project is not None:
        project_version = _project_version(project, wanted)
        _check_dependencies(project)
        if version is not None and version != project_version:
            raise ReplSetupError(
                f"The REPL in local_repl_path {repl_dir} is for Lean {version}, but the Lake "
                f"project {project} ({why}) uses Lean {project_version}.\n"
                f"Fix: check out the REPL tag for {project_version} in {repl_dir}, or remove "
                "local_repl_path to let lean_kernel build a matching REPL."
            )
        version = project_version
    lake = find_tool(config.lake_path)
    if lake is None:
        raise ReplSetupError(
            f"`{config.lake_path}` (lake_path) was not found on PATH or in {elan_bin()}.\n"
            f"Fix: {ELAN_INSTALL}, or pass lake_path='/path/to/lake', {OR_SET_REPL}."
        )
    if config.build_repl and install:
        (repl_dir / ".lake").mkdir(exist_ok=True)
        with holding(repl_dir / ".lake" / "lean_kernel-build.lock", steps):
            steps.say(f"Building the REPL: `lake build` in {repl_dir}")
            fix = f"make `lake build` succeed in {repl_dir}, {OR_SET_REPL}"
            lake_build(lake, repl_dir, steps, fix)
    binary = repl_binary(repl_dir)
    if not is_executable(binary):
        raise ReplSetupError(
            f"No REPL executable at {binary}.\n"
            f"Fix: run `lake build` in {repl_dir}, or pass build_repl=True."
        )
    cwd = project if project is not None else repl_dir
    where = f"in the Lake project {project} ({why})" if project else "in its own folder"
    description = f"local REPL checkout {repl_dir} (local_repl_path), run with `lake env` {where}"
    steps.say(f"Ready: {description}")
    return ReplLaunch(
        argv=[lake, "env", str(binary)],
        cwd=str(cwd),
        env=extra_env(lake),
        description=description,
        flavor=_local_flavor(repl_dir, config.repl_flavor),
        lean_version=version,
    )


def _local_flavor(repl_dir: Path, choice: FlavorChoice) -> Flavor:
    """Only the fork's request type has an ``incrementality`` field."""
    if choice != "auto":
        return choice
    try:
        source = (repl_dir / "REPL" / "JSON.lean").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    return "fork" if "incrementality" in source else "upstream"


# -- c. a Lake project --------------------------------------------------------------------------


def _project(config: ToolchainSettings) -> tuple[Path | None, str]:
    """(the Lake project to run in, how it was chosen)."""
    if config.project_dir is not None:
        folder = config.project_dir.resolve()
        if not _is_lake_project(folder):
            raise ReplSetupError(
                f"project_dir {folder} is not a Lake project (it needs lakefile.lean or "
                "lakefile.toml, and lean-toolchain).\n"
                f"Fix: point project_dir at the folder holding the lakefile, or create the "
                f"project with `lake new NAME` (or `lake new NAME math` for Mathlib)."
            )
        return folder, "project_dir"
    if config.lean_version is not None:
        return None, "lean_version given, so no Lake project was searched for"
    start = _start_dir(config.working_dir)
    folder = find_lake_project(start)
    if folder is None:
        return None, f"no Lake project at or above {start}"
    return folder, f"found by walking up from {start}"


def _launch_project(
    config: ToolchainSettings, project: Path, why: str, steps: SetupSteps, install: bool
) -> ReplLaunch:
    version = _project_version(project, config.lean_version)
    _check_dependencies(project)
    steps.say(f"Lake project {project} ({why}) uses Lean {version}")
    own = _project_repl(project)
    if own is not None:
        binary, flavor = own / REPL_BINARY, _local_flavor(own, config.repl_flavor)
        origin = f"the REPL built in the project ({binary})"
    else:
        built = _ensure_repl(config, version, steps, install)
        binary, flavor = built.binary, built.source.flavor
        source = built.source
        origin = f"REPL ({source.flavor}, tag {source.tag}) built in {built.directory}"
    lake, env = lake_for_cached_repl(config.lake_path)
    description = (
        f"Lake project {project} ({why}), Lean {version} from its lean-toolchain; {origin}, "
        "run with `lake env` in the project so its dependencies resolve"
    )
    steps.say(f"Ready: {description}")
    return ReplLaunch(
        argv=[lake, "env", str(binary)],
        cwd=str(project),
        env=env,
        description=description,
        flavor=flavor,
        lean_version=version,
    )


def _project_repl(project: Path) -> Path | None:
    """The folder of a REPL built inside the project: the project itself (``lean_exe repl``)
    or its package ``.lake/packages/REPL`` (the REPL required in its lakefile). Built with the
    project's own toolchain, it needs no download: the way to work offline."""
    packages = project / ".lake" / "packages"
    candidates = [project]
    if packages.is_dir():
        candidates += sorted(p for p in packages.iterdir() if p.name.lower() == "repl")
    for folder in candidates:
        if is_executable(folder / REPL_BINARY):
            return folder
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


def _project_version(project: Path, lean_version: str | None) -> str:
    """The project's Lean version, checked against the one the config asks for."""
    version, raw = _toolchain_version(project)
    if version is None:
        raise ReplSetupError(
            f"The Lean toolchain {raw!r} in {project / 'lean-toolchain'} is not a Lean release "
            "lean_kernel can build a REPL for.\n"
            f"Fix: pin a release there (e.g. leanprover/lean4:{DEFAULT_LEAN_VERSION}), or set "
            f"local_repl_path to a REPL built for it, {OR_SET_REPL}."
        )
    if lean_version is not None and lean_version != version:
        raise ReplSetupError(
            f"lean_version={lean_version} but the project {project} uses Lean {version} "
            "(its lean-toolchain); a REPL can only load a project built by its own version.\n"
            f"Fix: drop lean_version, or set it to {version}."
        )
    return version


def _check_dependencies(project: Path) -> None:
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
        needed = any(f.is_file() and "require" in f.read_text(errors="replace") for f in lakefiles)
    if needed and not (project / packages_dir).is_dir():
        raise ReplSetupError(
            f"The Lake project {project} has dependencies that are not downloaded yet "
            f"(no {project / packages_dir}).\n"
            f"Fix: in {project} run `lake exe cache get` (Mathlib projects: fetches prebuilt "
            "Mathlib), then `lake build`."
        )


# -- d. the cached REPL -------------------------------------------------------------------------


def _ensure_repl(
    config: ToolchainSettings, version: str, steps: SetupSteps, install: bool
) -> BuiltRepl:
    sources = repl_sources(version, config.repl_flavor, config.repl_git, config.repl_rev)
    root = config.cache_root / "repl"
    return ensure_repl(root, version, sources, config.lake_path, steps, install)

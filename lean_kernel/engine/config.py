"""The config value: where the Lean REPL comes from, and the limits every REPL process gets.

``LeanREPLConfig`` is a picklable value (it travels to worker processes); ``resolve()`` turns it
into a ``ReplLaunch``: the exact argv, working directory and environment of one REPL process.
Finding, installing and building the REPL is ``toolchain.py``'s and ``install.py``'s job; this
module only checks the arguments, keeps the resolved launch, and says which REPL features to use.

Installing (elan toolchain, git clone, lake build) happens once, under a file lock, and leaves a
marker; afterwards ``resolve()`` only reads that marker. Every failure is a ``ReplSetupError``
whose message names the command or setting that fixes it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lean_kernel.engine import launch as launches
from lean_kernel.engine import toolchain
from lean_kernel.engine.heartbeats import (
    DEFAULT_HEARTBEAT_RATE,
    HeartbeatLimits,
    HeartbeatSetting,
    parse_heartbeats,
)
from lean_kernel.engine.launch import *  # noqa: F403  (names this module held before the split)
from lean_kernel.engine.launch import FlavorChoice, ReplLaunch
from lean_kernel.engine.toolchain import find_lake_project
from lean_kernel.errors import ReplSetupError

__all__ = ["LeanREPLConfig", "find_lake_project", *launches.__all__]


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
        repl_rev: str = launches.DEFAULT_REPL_REV,
        repl_git: str = launches.FORK_REPL_GIT,
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
        heartbeats: HeartbeatSetting | str = "auto",
        heartbeat_rate: float | None = None,
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
            heartbeats: Lean's ``maxHeartbeats`` for a command on an env (a runaway one then
                fails as a Lean error and the REPL keeps its states, instead of being killed):
                ``"auto"`` (from its time limit), ``"off"``, or a number; a request's own
                ``heartbeats=`` wins. Used where the REPL's flavour is known.
            heartbeat_rate: heartbeats per second ``"auto"`` assumes (default
                ``DEFAULT_HEARTBEAT_RATE``, deliberately low so Lean's limit fires first).
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
        heartbeats = parse_heartbeats(heartbeats)
        if heartbeat_rate is not None and not (0 < heartbeat_rate < float("inf")):
            raise ValueError(f"heartbeat_rate must be a positive number, not {heartbeat_rate!r}")
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
        self.heartbeats: HeartbeatSetting = heartbeats
        self.heartbeat_rate = float(heartbeat_rate or DEFAULT_HEARTBEAT_RATE)
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
        env_dir = os.environ.get(launches.CACHE_ENV_VAR)
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
            launch = toolchain.resolve(self, progress, self.verbose, install)
            if install:
                self._launch = launch
            return launch

    def use_incrementality(self, launch: ReplLaunch) -> bool:
        """Whether requests to this REPL should carry ``incrementality: true``."""
        return self.enable_incremental_optimization and launches.supports_incrementality(
            launch.flavor, launch.lean_version
        )

    def use_parallel_elaboration(self, launch: ReplLaunch) -> bool:
        """Whether requests to this REPL should set ``Elab.async``."""
        return self.enable_parallel_elaboration and launches.supports_parallel_elaboration(
            launch.flavor, launch.lean_version
        )

    def command_options(self, launch: ReplLaunch) -> dict[str, Any]:
        """Fields added to every command, when enabled here and the REPL supports them."""
        options: dict[str, Any] = {}
        if self.use_incrementality(launch):
            options["incrementality"] = True
        if self.use_parallel_elaboration(launch):
            options["setOptions"] = [[["Elab", "async"], True]]
        return options

    def use_heartbeat_limits(self, launch: ReplLaunch) -> bool:
        """Whether commands to this REPL may run under a ``maxHeartbeats`` limit (``heartbeats``
        is the default setting; off when the REPL's flavour is unknown)."""
        return launches.supports_heartbeat_limits(launch.flavor, launch.lean_version)

    def heartbeat_limits(self, launch: ReplLaunch) -> HeartbeatLimits:
        """The heartbeat limits a server of this config running ``launch`` gives its commands."""
        enabled = self.use_heartbeat_limits(launch)
        return HeartbeatLimits(enabled, self.heartbeats, self.heartbeat_rate, self.timeout)

    def describe(self) -> str:
        """Multi-line report for ``doctor``: which REPL runs and why, tools, flavour, limits.

        Installs and builds nothing; a missing piece is reported with its fix.
        """
        try:
            launch: ReplLaunch | ReplSetupError = self._launch or self.resolve(install=False)
        except ReplSetupError as exc:
            launch = exc
        return toolchain.describe(self, launch)


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
        return launches.DEFAULT_LEAN_VERSION
    normalized = launches.normalize_lean_version(version)
    if normalized is None:
        raise ValueError(
            f"lean_version {version!r} is not a Lean release such as "
            f"{launches.DEFAULT_LEAN_VERSION!r} or 'latest'"
        )
    return normalized

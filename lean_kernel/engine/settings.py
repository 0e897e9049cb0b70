"""The knobs of a Lean session, and the one place they become a ``LeanREPLConfig``.

A Jupyter kernel has no command line its user sees, so its knobs are environment variables (a
kernelspec's ``env`` block sets them): ``LEAN_KERNEL_REPL`` (read by ``LeanREPLConfig`` itself),
``LEAN_KERNEL_MEMORY_LIMIT_MB``, ``LEAN_KERNEL_TIMEOUT``, ``LEAN_KERNEL_INCREMENTAL``,
``LEAN_KERNEL_PROJECT`` and ``LEAN_KERNEL_IDLE_TIMEOUT`` (how long an idle batch-pool REPL keeps
its memory before it is ended; default ten minutes). The IPython extension starts from the same
variables and changes them with ``%lean_config``; ``python -m lean_kernel`` reads them too. A
bad variable must not stop a kernel from starting: it is ignored and reported (``problems``), so
the user sees what to fix in the first cell's output instead of a kernel that dies silently.

Durations are read by one parser everywhere (``%timeout``, ``%lean_config --timeout`` /
``--idle``, ``%%lean_batch -t``, ``LEAN_KERNEL_TIMEOUT``, ``LEAN_KERNEL_IDLE_TIMEOUT``): a
positive number of seconds (``30``, ``2.5``, ``90s``), or one of ``NO_LIMIT_WORDS`` (``none``,
``off``, ``inf``, ``0``) for no limit.

``LEAN_KERNEL_HEARTBEATS`` (``auto``, ``off`` or a number) is Lean's ``maxHeartbeats`` per cell
and batch command, which stops a runaway command before its timeout kills the REPL, and
``LEAN_KERNEL_HEARTBEAT_RATE`` the heartbeats per second ``auto`` assumes (see
``engine.heartbeats``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.heartbeats import (
    AUTO,
    DEFAULT_HEARTBEAT_RATE,
    HeartbeatSetting,
    describe_heartbeats,
    parse_heartbeats,
)
from lean_kernel.engine.launch import PROJECT_ENV_VAR

__all__ = [
    "CLUSTER_ENV_VAR",
    "HEARTBEATS_ENV_VAR",
    "HEARTBEAT_RATE_ENV_VAR",
    "DEFAULT_IDLE_TIMEOUT",
    "IDLE_TIMEOUT_ENV_VAR",
    "INCREMENTAL_ENV_VAR",
    "MEMORY_ENV_VAR",
    "NO_LIMIT_WORDS",
    "PROJECT_ENV_VAR",
    "TIMEOUT_ENV_VAR",
    "Settings",
    "describe_megabytes",
    "describe_seconds",
    "parse_megabytes",
    "parse_on_off",
    "parse_positive",
    "parse_seconds",
]

MEMORY_ENV_VAR = "LEAN_KERNEL_MEMORY_LIMIT_MB"
TIMEOUT_ENV_VAR = "LEAN_KERNEL_TIMEOUT"
INCREMENTAL_ENV_VAR = "LEAN_KERNEL_INCREMENTAL"
IDLE_TIMEOUT_ENV_VAR = "LEAN_KERNEL_IDLE_TIMEOUT"
#: Where batches run (``%%lean_batch --cluster`` for one batch): a Dask address, ``ray``...
CLUSTER_ENV_VAR = "LEAN_KERNEL_CLUSTER"

#: Seconds a batch-pool REPL may sit idle before it is ended (and restarted when next needed).
DEFAULT_IDLE_TIMEOUT = 600.0

#: Words that mean "no limit" wherever a duration or a size is read.
NO_LIMIT_WORDS = ("none", "off", "inf", "0")
_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")
HEARTBEATS_ENV_VAR = "LEAN_KERNEL_HEARTBEATS"
HEARTBEAT_RATE_ENV_VAR = "LEAN_KERNEL_HEARTBEAT_RATE"


def parse_seconds(text: str) -> float | None:
    """Seconds from ``30``, ``2.5`` or ``90s``; None (no limit) from a ``NO_LIMIT_WORDS`` word.

    Raises ``ValueError`` saying what is accepted.
    """
    word = text.strip().lower()
    return parse_positive(word.removesuffix("s") if word[:1].isdigit() else word, "seconds")


def parse_megabytes(text: str) -> float | None:
    """Megabytes from ``8000``; None (no limit) from a ``NO_LIMIT_WORDS`` word."""
    return parse_positive(text, "MB")


def parse_positive(text: str, unit: str) -> float | None:
    """A positive number, or None (no limit) for a ``NO_LIMIT_WORDS`` word; else ``ValueError``."""
    word = text.strip().lower()
    if word in NO_LIMIT_WORDS:
        return None
    try:
        value = float(word)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise ValueError(
            f"{text.strip()!r} is not a number of {unit}: give a positive number, or "
            f"{', '.join(NO_LIMIT_WORDS)} for no limit"
        )
    return value


def parse_on_off(text: str) -> bool:
    """``on`` / ``off`` (also true/false, yes/no, 1/0); else ``ValueError``."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{text.strip()!r} is not on or off")


@dataclass(frozen=True)
class Settings:
    """What the user asked of a Lean session (None: the default); ``problems`` lists settings
    that were ignored, in words."""

    repl: str | None = None
    project: Path | None = None
    memory_mb: float | None = None
    timeout: float | None = None
    workers: int | None = None
    incremental: bool = True
    progress: str = "auto"
    #: seconds before an idle batch-pool REPL is ended; None: never (not "the default")
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    #: Lean's maxHeartbeats per cell and batch command: ``auto``, ``off`` or a number
    heartbeats: HeartbeatSetting = AUTO
    #: heartbeats per second ``auto`` assumes (None: ``DEFAULT_HEARTBEAT_RATE``)
    heartbeat_rate: float | None = None
    #: where batches run: a Dask scheduler address, ``ray`` or a Ray address; None: here
    cluster: str | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the ``LEAN_KERNEL_*`` variables; never raises on a bad value."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def read(name: str, parse, expected: str):
            raw = env.get(name, "").strip()
            if not raw:
                return None
            try:
                return parse(raw)
            except ValueError:
                problems.append(f"{name}={raw!r} ignored: expected {expected}.")
                return None

        memory = read(MEMORY_ENV_VAR, parse_megabytes, "a number of MB, e.g. 8000")
        timeout = read(TIMEOUT_ENV_VAR, parse_seconds, "seconds, e.g. 60 (or `none`)")
        incremental = read(INCREMENTAL_ENV_VAR, parse_on_off, "on or off")
        heartbeats = read(HEARTBEATS_ENV_VAR, parse_heartbeats, "auto, off or e.g. 400000")
        rate = read(HEARTBEAT_RATE_ENV_VAR, _parse_rate, "heartbeats per second, e.g. 5000")
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
        raw = env.get(IDLE_TIMEOUT_ENV_VAR, "").strip()
        if raw:  # `none` here means never, not the default
            try:
                idle_timeout = parse_seconds(raw)
            except ValueError:
                problems.append(
                    f"{IDLE_TIMEOUT_ENV_VAR}={raw!r} ignored: expected seconds, e.g. 600 (or "
                    "`none` to keep idle REPLs)."
                )
        project = None
        raw = env.get(PROJECT_ENV_VAR, "").strip()
        if raw:
            folder = Path(raw).expanduser()
            if folder.is_dir():
                project = folder
            else:
                problems.append(f"{PROJECT_ENV_VAR}={raw!r} ignored: no such folder.")
        return cls(
            project=project,
            memory_mb=memory,
            timeout=timeout,
            incremental=incremental is not False,
            heartbeats=AUTO if heartbeats is None else heartbeats,
            heartbeat_rate=rate,
            idle_timeout=idle_timeout,
            cluster=env.get(CLUSTER_ENV_VAR, "").strip() or None,
            problems=tuple(problems),
        )

    def config(
        self,
        working_dir: str | os.PathLike[str] | None = None,
        *,
        lean_version: str | None = None,
    ) -> LeanREPLConfig:
        """The REPL config these settings describe.

        Without ``repl`` the command is left for the config to read from ``LEAN_KERNEL_REPL``
        itself (so it says where it came from). The memory limit is enforced by the servers'
        watchdog (``max_process_memory``), which reports it as such, and the per-command timeout
        by the session (``%timeout`` changes it), so the config carries neither.
        """
        return LeanREPLConfig(
            lean_version,
            repl_command=self.repl,
            project_dir=self.project,
            enable_incremental_optimization=self.incremental,
            working_dir=working_dir,
            heartbeats=self.heartbeats,
            heartbeat_rate=self.heartbeat_rate,
        )

    def describe_limits(self) -> str:
        """``timeout per cell: 60 s; memory limit per REPL: none; heartbeats per cell: auto ...``
        (for status lines)."""
        rate = self.heartbeat_rate or DEFAULT_HEARTBEAT_RATE
        return (
            f"timeout per cell: {describe_seconds(self.timeout)}; "
            f"memory limit per REPL: {describe_megabytes(self.memory_mb)}; "
            f"heartbeats per cell: {describe_heartbeats(self.heartbeats, self.timeout, rate)}"
        )


def _parse_rate(text: str) -> float:
    """A positive number of heartbeats per second; else ``ValueError``."""
    value = parse_positive(text, "heartbeats per second")
    if value is None:
        raise ValueError(f"{text!r} is not a rate")
    return value


def describe_megabytes(value: float | None) -> str:
    """``none`` or ``8000 MB``."""
    return "none" if value is None else f"{value:g} MB"


def describe_seconds(value: float | None) -> str:
    """``no limit`` or ``2.5 s``."""
    return "no limit" if value is None or math.isinf(value) else f"{value:g} s"

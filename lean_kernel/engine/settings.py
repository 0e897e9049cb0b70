"""Kernel settings read from the environment (a kernelspec's ``env`` block sets them).

A Jupyter kernel has no command line its user sees, so its knobs are environment variables:
``LEAN_KERNEL_REPL`` (read by ``LeanREPLConfig`` itself), ``LEAN_KERNEL_MEMORY_LIMIT_MB``,
``LEAN_KERNEL_TIMEOUT``, ``LEAN_KERNEL_INCREMENTAL`` and ``LEAN_KERNEL_PROJECT``. A bad value
must not stop the kernel from starting: it is ignored and reported (``problems``), so the user
sees what to fix in the first cell's output instead of a kernel that dies silently.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lean_kernel.engine.config import LeanREPLConfig

MEMORY_ENV_VAR = "LEAN_KERNEL_MEMORY_LIMIT_MB"
TIMEOUT_ENV_VAR = "LEAN_KERNEL_TIMEOUT"
INCREMENTAL_ENV_VAR = "LEAN_KERNEL_INCREMENTAL"
PROJECT_ENV_VAR = "LEAN_KERNEL_PROJECT"

_TRUE = frozenset({"1", "on", "true", "yes"})
_FALSE = frozenset({"0", "off", "false", "no"})


@dataclass(frozen=True)
class KernelSettings:
    """What the environment asks of the kernel; ``problems`` lists values that were ignored."""

    memory_limit_mb: float | None = None
    timeout: float | None = None
    incremental: bool = True
    project: Path | None = None
    problems: tuple[str, ...] = field(default=())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KernelSettings:
        """Read the ``LEAN_KERNEL_*`` variables; never raises on a bad value."""
        env = os.environ if environ is None else environ
        problems: list[str] = []
        memory = _positive(env, MEMORY_ENV_VAR, problems, "a number of MB, e.g. 8000")
        timeout = _positive(env, TIMEOUT_ENV_VAR, problems, "seconds, e.g. 60 (or `none`)")
        incremental = True
        raw = env.get(INCREMENTAL_ENV_VAR, "").strip().lower()
        if raw in _FALSE:
            incremental = False
        elif raw and raw not in _TRUE:
            problems.append(f"{INCREMENTAL_ENV_VAR}={raw!r} ignored: use on or off.")
        project = None
        raw = env.get(PROJECT_ENV_VAR, "").strip()
        if raw:
            folder = Path(raw).expanduser()
            if folder.is_dir():
                project = folder
            else:
                problems.append(f"{PROJECT_ENV_VAR}={raw!r} ignored: no such folder.")
        return cls(memory, timeout, incremental, project, tuple(problems))

    def config(self, working_dir: str | os.PathLike[str] | None = None) -> LeanREPLConfig:
        """The REPL config these settings describe.

        The REPL command is left for the config to read from ``LEAN_KERNEL_REPL`` itself (so it
        says where it came from). The per-cell timeout is the notebook's business (``%timeout``
        changes it), so the config has none.
        """
        return LeanREPLConfig(
            project_dir=self.project,
            enable_incremental_optimization=self.incremental,
            working_dir=working_dir,
        )


def _positive(
    env: Mapping[str, str], name: str, problems: list[str], expected: str
) -> float | None:
    raw = env.get(name, "").strip()
    if not raw or raw.lower() in ("none", "off", "0"):
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        problems.append(f"{name}={raw!r} ignored: expected {expected}.")
        return None
    return value

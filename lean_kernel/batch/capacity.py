"""How many REPL workers a machine can hold: never more than memory allows.

A REPL importing Mathlib takes gigabytes; starting one per CPU on a laptop would swap or get
killed. So the pool asks how much memory is usable now (``max_total_memory`` of the machine,
minus what is already used) and fits workers at the per-process limit into it, and says so
when that means fewer workers than asked for.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import psutil

__all__ = ["WorkerPlan", "default_num_workers", "plan_workers"]


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers to start and, in words, why."""

    num_workers: int
    requested: int
    note: str

    @property
    def capped(self) -> bool:
        return self.num_workers < self.requested


def default_num_workers() -> int:
    """One per CPU this process may use, minus one for the notebook itself."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 2
    return max(1, cpus - 1)


def plan_workers(
    requested: int | None,
    per_process_mb: float | None,
    max_total_memory: float = 0.8,
) -> WorkerPlan:
    """Workers that fit in memory: each may grow to ``per_process_mb``, and together they may use
    what is available now up to ``max_total_memory`` of the machine."""
    wanted = requested if requested is not None else default_num_workers()
    if wanted < 1:
        raise ValueError(f"num_workers must be at least 1, not {wanted}")
    if not per_process_mb:
        return WorkerPlan(
            wanted,
            wanted,
            f"{wanted} workers; not capped by memory (no per-process limit set: "
            "max_process_memory or LeanREPLConfig(memory_hard_limit_mb=...))",
        )
    memory = psutil.virtual_memory()
    mb = 1024 * 1024
    budget_mb = memory.available / mb - memory.total / mb * (1 - max_total_memory)
    fits = max(0, math.floor(budget_mb / per_process_mb))
    if fits >= wanted:
        return WorkerPlan(
            wanted,
            wanted,
            f"{wanted} workers; memory allows {fits} at {per_process_mb:.0f} MB each "
            f"({budget_mb:.0f} MB usable)",
        )
    granted = max(1, fits)
    return WorkerPlan(
        granted,
        wanted,
        f"{granted} worker{'s' if granted > 1 else ''} instead of {wanted}: at {per_process_mb:.0f}"
        f" MB per REPL, only {budget_mb:.0f} MB of memory is usable "
        f"({memory.available / mb:.0f} MB available, max_total_memory={max_total_memory:.0%})"
        + ("; even one worker may not fit" if fits == 0 else "")
        + ". Lower the per-process limit or free memory to get more.",
    )

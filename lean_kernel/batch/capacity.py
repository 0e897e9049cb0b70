"""How many REPL workers a machine can hold: never more than memory allows.

A REPL importing Mathlib takes gigabytes; starting one per CPU on a laptop would swap or get
killed. So the pool asks how much memory is usable now (``max_total_memory`` of the machine,
minus what is already used) and fits workers into it at an estimate of what one REPL takes, and
says so when that means fewer workers than asked for.

The estimate is honest about sharing: REPLs importing the same Mathlib map the same ``.olean``
files read-only and share those pages, which RSS would count again for every REPL. When REPLs
like the ones to start were measured running, what one takes is their PSS (shared pages split
among the processes mapping them); otherwise it is the per-process limit, what each REPL may grow
to (``max_process_memory`` is enforced on PSS too, by the memory watchdog).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from lean_kernel.engine.memory import ReplMemory

__all__ = ["WorkerPlan", "default_num_workers", "plan_slots", "plan_workers"]

#: How each basis of ``ReplMemory.own_mb`` counts pages that REPLs share (the .olean files).
_SHARED_PAGES = {
    "pss": "pages they share split among them",
    "uss": "pages they share left out",
    "rss": "pages they share counted in each",
}


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
    *,
    running: Iterable[ReplMemory] = (),
) -> WorkerPlan:
    """Workers that fit in memory: together they may use what is available now up to
    ``max_total_memory`` of the machine, each counted at an estimate of what one REPL takes.

    ``running``: the memory of REPLs like the ones to start (same project and imports), measured
    while they ran (``measure_repl_memory``): the estimate is then the largest PSS among them,
    never above ``per_process_mb``. Without any (gone ones measure nothing), it is
    ``per_process_mb``, what each REPL may grow to; without that either, the number of workers
    is not capped by memory.
    """
    wanted = requested if requested is not None else default_num_workers()
    if wanted < 1:
        raise ValueError(f"num_workers must be at least 1, not {wanted}")
    running = [memory for memory in running if memory.own_mb > 0]  # gone ones measure 0
    if running:
        largest = max(running, key=lambda m: m.own_mb)
        measured = (
            f"the largest {largest.basis.upper()} of {len(running)} running "
            f"REPL{'s' if len(running) > 1 else ''}, {_SHARED_PAGES[largest.basis]}"
        )
        if per_process_mb and per_process_mb < largest.own_mb:
            per_repl_mb = per_process_mb
            per_repl = (
                f"{per_repl_mb:.0f} MB per REPL (the per-process limit, below "
                f"{largest.own_mb:.0f} MB, {measured})"
            )
        else:
            per_repl_mb = largest.own_mb
            per_repl = f"{per_repl_mb:.0f} MB per REPL ({measured})"
        advice = "Free memory (close other REPLs or programs) to get more."
    elif per_process_mb:
        per_repl_mb = per_process_mb
        per_repl = f"{per_process_mb:.0f} MB per REPL"
        advice = "Lower the per-process limit or free memory to get more."
    else:
        return WorkerPlan(
            wanted,
            wanted,
            f"{wanted} workers; not capped by memory (no per-process limit set: "
            "max_process_memory or LeanREPLConfig(memory_hard_limit_mb=...))",
        )
    memory = psutil.virtual_memory()
    mb = 1024 * 1024
    budget_mb = memory.available / mb - memory.total / mb * (1 - max_total_memory)
    fits = max(0, math.floor(budget_mb / per_repl_mb))
    if fits >= wanted:
        return WorkerPlan(
            wanted,
            wanted,
            f"{wanted} workers; memory allows {fits} at {per_repl} ({budget_mb:.0f} MB usable)",
        )
    granted = max(1, fits)
    return WorkerPlan(
        granted,
        wanted,
        f"{granted} worker{'s' if granted > 1 else ''} instead of {wanted}: at {per_repl}, only "
        f"{budget_mb:.0f} MB of memory is usable "
        f"({memory.available / mb:.0f} MB available, max_total_memory={max_total_memory:.0%})"
        + ("; even one worker may not fit" if fits == 0 else "")
        + f". {advice}",
    )


def plan_slots(
    requested: int | None,
    default: int,
    where: str,
    fits: int | None = None,
    per_repl_mb: float | None = None,
    memory: str = "",
) -> WorkerPlan:
    """REPL slots on a cluster (``where``, in words): ``requested`` (None: ``default``), at most
    the ``fits`` REPLs of ``per_repl_mb`` its memory holds (``memory``: whose, in words; None:
    not capped, nothing known)."""
    wanted = requested if requested is not None else default
    if wanted < 1:
        raise ValueError(f"num_workers must be at least 1, not {wanted}")
    if fits is None or not per_repl_mb:
        return WorkerPlan(wanted, wanted, f"{wanted} REPL slots on {where}")
    granted = max(1, min(wanted, fits))
    note = f"{granted} REPL slots on {where}"
    if granted < wanted:
        note += f" instead of {wanted}: at {per_repl_mb:.0f} MB per REPL {memory} hold {fits}"
    return WorkerPlan(granted, wanted, note)

"""What the batch magics keep between cells: a warm ``LeanServerPool`` and the last batches.

Shared by the IPython extension (``%%lean_batch`` in Python notebooks) and the Lean kernel
(``%%lean_batch`` and ``%batch`` in Lean notebooks): ``BatchKeeper`` makes the pool on the first
batch, keeps it warm for the next ones (each worker keeps the headers it elaborated, until its
REPL sits idle past the idle limit and is ended), makes it again for another number of workers
or idle limit, and remembers the last batches by name for status tables.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lean_kernel.batch.handle import BatchHandle
from lean_kernel.batch.pool import LeanServerPool
from lean_kernel.batch.workers import idle_limit
from lean_kernel.display.progress import ProgressDriver
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.outcome import FAILED, describe_counts
from lean_kernel.engine.settings import DEFAULT_IDLE_TIMEOUT, describe_seconds

__all__ = ["KEPT_BATCHES", "BatchKeeper", "BatchRun"]

#: Batches kept for status tables and ``%batch`` (the running ones and the last finished ones).
KEPT_BATCHES = 20


@dataclass
class BatchRun:
    """One batch magic: the name its results are kept under, its handle and progress view."""

    name: str
    handle: BatchHandle
    progress: ProgressDriver | None = None
    workers: int = 0

    @property
    def state(self) -> str:
        if self.handle.cancelled:
            return "cancelled"
        return "done" if self.handle.done() else "running"

    def row(self) -> dict[str, Any]:
        """One line of a status table (``%batch``, ``%lean_status``): ``ok`` counts only what
        Lean accepted without ``sorry``, ``sorry`` the rest it accepted, ``failed`` everything
        else that finished, and ``failures`` says which kinds (``1 error, 1 out of memory``)."""
        counts = self.handle.results.outcome_counts()
        failures = {outcome: n for outcome, n in counts.items() if outcome in FAILED}
        return {
            "results": self.name,
            "done": f"{self.handle.done_count}/{self.handle.total}",
            "ok": counts.get("ok", 0),
            "sorry": counts.get("sorry", 0),
            "failed": sum(failures.values()),
            "failures": describe_counts(failures) or "none",
            "state": self.state,
            "elapsed (s)": round(self.handle.elapsed, 1),
        }


class BatchKeeper:
    """The pool batches run on (made on first use, warm across batches) and the last batches."""

    def __init__(self, kept: int = KEPT_BATCHES) -> None:
        self.kept = kept
        self.batches: list[BatchRun] = []
        self.pool: LeanServerPool | None = None
        self._requested: int | None = None
        #: where the current pool runs (``cluster=``; None: here)
        self._cluster: str | None = None
        self._lock = threading.RLock()

    def pool_for(
        self,
        make_config: Callable[[], LeanREPLConfig],
        workers: int | None,
        *,
        max_process_memory: float | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        note: Callable[[str], None] = print,
        cluster: str | None = None,
    ) -> LeanServerPool:
        """The pool for a batch asking for ``workers`` (None: whatever runs, else the default).

        A pool of another size is made anew, unless a batch still runs on the current one (the
        new batch then joins it, and ``note`` says so); so is a pool with another idle limit
        (``idle_timeout`` seconds, None: never) when no batch runs on it. ``make_config`` is
        only called for a new pool. A pool capped by memory warns (``RuntimeWarning``) when it
        is made. ``cluster`` (an address, ``ray``; None: here) is where the pool runs: a pool
        elsewhere is made anew once no batch runs on it, as for another idle limit.
        """
        with self._lock:
            pool = self.pool
            if pool is not None and pool.closed:
                pool = self.pool = None
            new_idle = pool is not None and pool.idle_timeout != idle_limit(idle_timeout)
            moved = pool is not None and self._cluster != cluster
            if (new_idle or moved) and not self.running():
                self.close_pool()
                pool = None
            if pool is not None and workers is not None and workers != self._requested:
                if self.running():
                    note(
                        f"A batch is running on the {pool.num_workers}-worker pool; this one "
                        "joins it (cancel the running batch to change the number of workers)."
                    )
                else:
                    self.close_pool()
                    pool = None
            if pool is None:
                pool = LeanServerPool(
                    make_config(),
                    num_workers=workers,
                    max_process_memory=max_process_memory,
                    idle_timeout=idle_timeout,
                    cluster=cluster,
                )
                self.pool = pool
                self._cluster = cluster
                self._requested = workers if workers is not None else pool.num_workers
            return pool

    def running(self) -> list[BatchRun]:
        """The kept batches that have not finished."""
        return [run for run in self.batches if not run.handle.done()]

    def add(self, run: BatchRun) -> None:
        """Keep ``run`` (replacing an earlier batch of the same name), dropping the oldest."""
        with self._lock:
            others = [kept for kept in self.batches if kept.name != run.name]
            self.batches = [*others[-(self.kept - 1) :], run] if self.kept > 1 else [run]

    def find(self, name: str) -> BatchRun | None:
        """The kept batch called ``name``."""
        return next((run for run in reversed(self.batches) if run.name == name), None)

    def close_pool(self) -> None:
        """Close the pool (cancelling what runs on it); the next batch makes a new one."""
        with self._lock:
            pool, self.pool = self.pool, None
            self._requested = None
        if pool is not None:
            pool.close()

    def close(self) -> None:
        """Cancel running batches and close the pool: no REPL of the pool is left."""
        for run in self.running():
            run.handle.cancel()
        self.close_pool()

    # -- status tables -------------------------------------------------------------------------

    def pool_rows(self) -> list[dict[str, Any]] | None:
        """One row per worker of the pool; None when no pool runs. ``REPL`` says whether its
        REPL runs or was ended for being idle (``reaped (idle)``: the next batch starts one)."""
        pool = self.pool
        if pool is None or pool.closed:
            return None
        return [
            {
                "worker": w["worker"],
                "pid": w["pid"],
                "REPL": _repl_word(w),
                "busy": w["busy"],
                "idle (s)": w["idle_s"],
                "memory (MB)": w["memory_mb"],
                "headers held": w["headers"],
                "restarts": w["restarts"],
            }
            for w in pool.status()["workers"]
        ]

    def pool_title(self) -> str:
        """The pool's title line: its size and why, and its idle limit."""
        pool = self.pool
        if pool is None:
            return "Batch pool"
        if pool.idle_timeout is None:
            idle = "idle REPLs are kept (no idle limit)"
        else:
            idle = f"idle limit {describe_seconds(pool.idle_timeout)} (then the REPL is ended)"
        return f"Batch pool: {pool.capacity_note}; {idle}"

    def batch_rows(self) -> list[dict[str, Any]]:
        """One row per kept batch, oldest first."""
        return [run.row() for run in self.batches]


def _repl_word(worker: dict[str, Any]) -> str:
    """What a status row says of a worker's REPL."""
    if worker["repl"] == "running":
        return "running" if worker["alive"] else "exited"
    return "reaped (idle)" if worker["repl"] == "reaped" else worker["repl"]

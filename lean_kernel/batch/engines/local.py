"""Engines in the pool's own process: its threads (the default), or an executor you pass in."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from lean_kernel.batch.capacity import WorkerPlan, default_num_workers, plan_workers
from lean_kernel.batch.engines import Report
from lean_kernel.batch.jobs import BatchJob, JobOutcome, run_job
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.resultstore import namespace_of

__all__ = ["ExecutorEngine", "ThreadEngine"]


class ThreadEngine:
    """Jobs on a thread pool over this process's REPLs: live items, a cancel that kills."""

    name = "threads"
    remote = False
    pins_slots = False

    def __init__(self) -> None:
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def plan(
        self, requested: int | None, per_repl_mb: float | None, max_total_memory: float
    ) -> WorkerPlan:
        return plan_workers(requested, per_repl_mb, max_total_memory)

    def start(self, pool_id: str, num_slots: int, report: Report) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            num_slots, thread_name_prefix="lean-pool"
        )

    def submit(self, job: BatchJob) -> concurrent.futures.Future[JobOutcome]:
        assert self._executor is not None, "start() first"
        return self._executor.submit(run_job, job)

    def cancel(self, batch_id: str, futures: list[concurrent.futures.Future]) -> None:
        for future in futures:
            future.cancel()  # not started yet; running ones see the batch's cancel event

    def namespace(self, config: LeanREPLConfig) -> str:
        return namespace_of(config)

    def status(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


class ExecutorEngine:
    """Jobs on any ``concurrent.futures.Executor`` (a process pool...): each of its processes
    keeps its own REPLs, ended when that process ends. Items arrive when a job ends; a cancel
    drops jobs not started (a running one in another process finishes its items)."""

    remote = True
    pins_slots = False

    def __init__(self, executor: concurrent.futures.Executor) -> None:
        self.executor = executor
        self.name = type(executor).__name__

    def plan(
        self, requested: int | None, per_repl_mb: float | None, max_total_memory: float
    ) -> WorkerPlan:
        wanted = requested or default_num_workers()
        return WorkerPlan(
            wanted,
            wanted,
            f"{wanted} jobs at once on {self.name} (its workers' memory is theirs to manage)",
        )

    def start(self, pool_id: str, num_slots: int, report: Report) -> None:
        pass

    def submit(self, job: BatchJob) -> concurrent.futures.Future[JobOutcome]:
        return self.executor.submit(run_job, job)

    def cancel(self, batch_id: str, futures: list[concurrent.futures.Future]) -> None:
        for future in futures:
            future.cancel()

    def namespace(self, config: LeanREPLConfig) -> str:
        return self.executor.submit(namespace_of, config).result()

    def status(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass  # the executor is yours: shut it down to end its processes

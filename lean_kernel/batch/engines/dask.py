"""The Dask engine: a pool's slots on the workers of a ``distributed`` cluster.

Each slot lives on one Dask worker (slots are dealt round the workers): its jobs are submitted
there (a loose restriction, so a job whose worker died runs elsewhere, and the slot moves with
it), and its REPL and the headers it holds stay in that worker process between jobs. Items go
back one by one as they end, as structured events (``Worker.log_event`` of plain records, see
``lean_kernel.batch.records``) the pool's client subscribes to; the job's result follows. A
cancel runs on every worker (``Client.run``) before it returns; closing the pool ends the pool's
REPLs on every worker. The client never starts or resolves a REPL: workers do.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
import uuid
from typing import Any

from lean_kernel.batch.capacity import WorkerPlan, plan_slots
from lean_kernel.batch.engines import Report
from lean_kernel.batch.jobs import BatchJob, JobOutcome
from lean_kernel.batch.records import item_from_record, item_to_record
from lean_kernel.batch.remote import cancel_batch, close_pool, pool_status, run_remote_job
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.resultstore import namespace_of

__all__ = ["DaskEngine"]

_MB = 1024 * 1024


class DaskEngine:
    """Jobs on a Dask cluster: a ``distributed.Client`` you pass (left open at close), or a
    scheduler address (a client made with ``security``, closed with the pool)."""

    name = "dask"
    remote = True
    pins_slots = True

    def __init__(self, cluster: Any, security: Any = None) -> None:
        try:
            import distributed
        except ImportError as error:
            raise ImportError(
                "cluster= with a Dask address or client needs Dask: pip install "
                "'lean-kernel[dask]' (distributed)"
            ) from error
        if isinstance(cluster, distributed.Client):
            self.client = cluster
            self._own_client = False
        else:
            kwargs = {"security": security} if security is not None else {}
            self.client = distributed.Client(cluster, set_as_default=False, **kwargs)
            self._own_client = True
        self._pool_id = ""
        self._topic = ""
        self._report: Report | None = None
        self._lock = threading.Lock()
        self._places: list[str] = []
        # Dask releases a task whose future is dropped: keep each until it is done.
        self._pending: dict[str, Any] = {}

    # -- planning ------------------------------------------------------------------------------

    def _workers(self) -> dict[str, dict[str, Any]]:
        return dict(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def plan(
        self, requested: int | None, per_repl_mb: float | None, max_total_memory: float
    ) -> WorkerPlan:
        workers = self._workers()
        if not workers:
            raise RuntimeError(
                f"the Dask cluster at {self.client.scheduler.address} has no workers: start "
                "some (dask worker ADDRESS) before making the pool"
            )
        threads = sum(int(w.get("nthreads", 1)) for w in workers.values())
        fits = None
        if per_repl_mb:
            fits = sum(
                math.floor(limit / _MB * max_total_memory / per_repl_mb)
                if (limit := info.get("memory_limit") or 0)
                else (requested or threads)
                for info in workers.values()
            )
        where = f"{len(workers)} Dask workers, {threads} threads"
        return plan_slots(
            requested, threads, where, fits, per_repl_mb, "the workers' memory limits"
        )

    # -- running -------------------------------------------------------------------------------

    def start(self, pool_id: str, num_slots: int, report: Report) -> None:
        self._pool_id = pool_id
        self._topic = f"lean-kernel-items-{pool_id}"
        self._report = report
        addresses = sorted(self._workers())
        self._places = [addresses[slot % len(addresses)] for slot in range(num_slots)]
        self.client.subscribe_topic(self._topic, self._on_event)

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        _, message = event
        report = self._report
        if report is not None:
            report(message["batch"], item_from_record(message["item"]))

    def submit(self, job: BatchJob) -> concurrent.futures.Future[JobOutcome]:
        slot = job.worker_hint or 0
        with self._lock:
            place = self._places[slot]
        key = f"lean-job-{uuid.uuid4().hex}"
        remote = self.client.submit(
            _run_on_worker,
            job,
            self._topic,
            key=key,
            workers=[place],
            allow_other_workers=True,
            pure=False,
        )
        result: concurrent.futures.Future[JobOutcome] = concurrent.futures.Future()
        result.set_running_or_notify_cancel()
        with self._lock:
            self._pending[key] = remote

        def done(finished: Any) -> None:
            with self._lock:
                self._pending.pop(key, None)
            try:
                outcome = finished.result()
            except BaseException as error:  # noqa: BLE001 - the job's items fail with it
                result.set_exception(error)
                return
            if outcome.where:
                with self._lock:
                    self._places[slot] = outcome.where  # the slot moved with its job
            result.set_result(outcome)

        remote.add_done_callback(done)
        return result

    def cancel(self, batch_id: str, futures: list[concurrent.futures.Future]) -> None:
        # Jobs are not cancelled in Dask: one that starts later finds the batch cancelled and
        # reports its items so; a running one stops its item (REPL killed) and reports it.
        self.client.run(cancel_batch, self._pool_id, batch_id, on_error="return")

    def namespace(self, config: LeanREPLConfig) -> str:
        return self.client.submit(namespace_of, config, pure=False).result()

    def status(self) -> dict[str, Any]:
        workers = self._workers()
        found = self.client.run(pool_status, self._pool_id, on_error="return")
        rows = []
        for address in sorted(workers):
            info = workers[address]
            state = found.get(address)
            repls = state["repls"] if isinstance(state, dict) else []
            rows.append(
                {
                    "worker": address,
                    "threads": info.get("nthreads"),
                    "memory_limit_mb": round((info.get("memory_limit") or 0) / _MB),
                    "repls": repls,
                    "repl_memory_mb": round(sum(r["memory_mb"] for r in repls), 1),
                    "error": None if isinstance(state, dict) else repr(state),
                }
            )
        return {"cluster": self.client.scheduler.address, "remote_workers": rows}

    def close(self) -> None:
        self._report = None
        try:
            # With the client closed first (yours, or at exit) nobody can be told: REPLs left on
            # a cluster that still runs end when idle for idle_timeout, or with their worker.
            if self.client.status == "running":
                if self._topic:
                    self.client.unsubscribe_topic(self._topic)
                self.client.run(close_pool, self._pool_id, on_error="return")
        finally:
            with self._lock:
                self._pending.clear()
            if self._own_client:
                self.client.close()


def _run_on_worker(job: BatchJob, topic: str) -> JobOutcome:
    """The task: run ``job`` on this Dask worker, streaming each item to the pool's client."""
    from distributed import get_worker

    worker = get_worker()

    def listener(item: Any) -> None:
        worker.log_event(topic, {"batch": job.batch_id, "item": item_to_record(item)})

    limit = getattr(worker.memory_manager, "memory_limit", None)
    return run_remote_job(job, worker.address, listener, limit / _MB if limit else None)

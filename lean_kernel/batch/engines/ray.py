"""The Ray engine: each of a pool's slots is a Ray actor holding that slot's REPL.

An actor per slot (spread over the cluster's nodes, a share of a CPU each, so more REPL slots
than CPUs can be asked for) keeps its REPL and the headers it holds between jobs. A job is a
streaming call: each item comes back as it ends, then the job's outcome. Actors run two calls
at once, so a cancel reaches an actor while it works; closing the pool ends every actor's REPLs
and the actors. An actor that dies (its process killed) is restarted by Ray, and the items its
job had not reported are sent again, so each item comes back once.

``cluster="ray"`` uses the current Ray session, or starts a local one that listens on the
loopback interface only (Ray's own default is every interface); ``"ray://host:10001"`` connects
to a cluster as Ray's client, with whatever authentication that cluster has set up.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import queue
import sys
import threading
import time
from typing import Any

from lean_kernel.batch.capacity import WorkerPlan, plan_slots
from lean_kernel.batch.engines import Report
from lean_kernel.batch.jobs import BatchJob, JobOutcome
from lean_kernel.batch.remote import (
    cancel_batch,
    close_pool,
    pool_status,
    run_remote_job,
    worker_identity,
)
from lean_kernel.batch.results import ItemResult
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.resultstore import namespace_of

__all__ = ["RayEngine", "SlotHost", "start_local_ray"]

_MB = 1024 * 1024
#: How long a job waits for its actor to come back after it died (Ray restarts it), in seconds.
_ACTOR_RETURN_S = 120.0
#: Ray's switch that makes a local session bind 127.0.0.1 (read when ray is imported).
_LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def start_local_ray(**options: Any) -> None:
    """Start a local Ray session listening on loopback only, unless Ray runs already.

    Ray decides where its servers listen from one switch, read when it is imported (a session
    it starts for a single machine then uses 127.0.0.1, and its servers bind that address); if
    Ray was imported already, the value read is set the same way before the session starts.
    """
    if "ray" not in sys.modules:
        os.environ.setdefault(_LOOPBACK_SWITCH, "0")
    import ray

    if ray.is_initialized():
        return
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
        constants.ENABLE_RAY_CLUSTER = False  # what the switch above sets, read at import
    ray.init(**{"include_dashboard": False, "log_to_driver": False, **options})


class SlotHost:
    """The actor of one slot (made a Ray actor class by the engine): runs the slot's jobs in
    this process, where the slot's REPL lives."""

    def __init__(self, pool_id: str) -> None:
        self.pool_id = pool_id
        self.where = worker_identity()

    def run(self, job: BatchJob):  # noqa: ANN201 - a generator Ray streams
        """Yield each ``ItemResult`` as it ends, then the ``JobOutcome``."""
        items: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def work() -> None:
            try:
                items.put(run_remote_job(job, self.where, items.put))
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                items.put(error)

        threading.Thread(target=work, name="lean-slot-job", daemon=True).start()
        while True:
            value = items.get()
            if isinstance(value, BaseException):
                raise value
            yield value
            if isinstance(value, JobOutcome):
                return

    def cancel(self, batch_id: str) -> None:
        cancel_batch(self.pool_id, batch_id)

    def status(self) -> dict[str, Any]:
        return pool_status(self.pool_id)

    def namespace(self, config: LeanREPLConfig) -> str:
        return namespace_of(config)

    def close(self) -> int:
        return close_pool(self.pool_id)


class RayEngine:
    """Jobs on Ray actors, one per slot."""

    name = "ray"
    remote = True
    pins_slots = True

    def __init__(self, address: str) -> None:
        try:
            start = start_local_ray if address == "ray" else None
            if start is not None:
                start()
            else:
                import ray

                if not ray.is_initialized():
                    ray.init(address=address, log_to_driver=False)
        except ImportError as error:
            raise ImportError("cluster='ray' needs Ray: pip install 'lean-kernel[ray]'") from error
        import ray

        self._ray = ray
        self._address = address
        self._actors: list[Any] = []
        self._pool_id = ""
        self._report: Report | None = None
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None

    def plan(
        self, requested: int | None, per_repl_mb: float | None, max_total_memory: float
    ) -> WorkerPlan:
        resources = self._ray.cluster_resources()
        cpus = int(resources.get("CPU", 1))
        nodes = len([n for n in self._ray.nodes() if n.get("Alive")])
        where = f"Ray, {nodes} node{'s' if nodes != 1 else ''}, {cpus} CPUs"
        memory_mb = resources.get("memory", 0) / _MB
        fits = (
            int(memory_mb * max_total_memory // per_repl_mb) if per_repl_mb and memory_mb else None
        )
        memory = f"the cluster's {memory_mb:.0f} MB"
        return plan_slots(requested, max(1, cpus), where, fits, per_repl_mb, memory)

    def start(self, pool_id: str, num_slots: int, report: Report) -> None:
        ray = self._ray
        self._pool_id = pool_id
        self._report = report
        cpus = float(ray.cluster_resources().get("CPU", 1))
        share = min(1.0, cpus / num_slots)
        actor = ray.remote(SlotHost).options(
            num_cpus=share,
            max_concurrency=2,  # a job and a cancel (or status, close) at once
            max_restarts=-1,
            scheduling_strategy="SPREAD",
        )
        self._actors = [actor.remote(pool_id) for _ in range(num_slots)]
        self._threads = concurrent.futures.ThreadPoolExecutor(
            num_slots, thread_name_prefix="lean-ray-job"
        )

    def submit(self, job: BatchJob) -> concurrent.futures.Future[JobOutcome]:
        assert self._threads is not None, "start() first"
        return self._threads.submit(self._drive, job)

    def _drive(self, job: BatchJob) -> JobOutcome:
        """Stream ``job``'s items from its slot's actor; send the rest again if it dies."""
        ray = self._ray
        actor = self._actors[job.worker_hint or 0]
        reported: dict[int, ItemResult] = {}
        give_up = None
        pause = 0.25
        while True:
            try:
                for ref in actor.run.remote(job):
                    value = ray.get(ref)
                    if isinstance(value, JobOutcome):
                        return value
                    reported[value.index] = value
                    report = self._report
                    if report is not None:
                        report(job.batch_id, value)
                raise RuntimeError("the Ray actor ended a job without its outcome")
            except ray.exceptions.RayActorError:
                # Its process died (killed, out of memory): Ray starts it again; the items it
                # had not reported go to it again, once it is back.
                now = time.monotonic()
                give_up = give_up if give_up is not None else now + _ACTOR_RETURN_S
                if now >= give_up or not self._actors:
                    raise
                left = tuple(item for item in job.items if item.index not in reported)
                job = dataclasses.replace(job, items=left)
                time.sleep(pause)
                pause = min(2 * pause, 4.0)

    def cancel(self, batch_id: str, futures: list[concurrent.futures.Future]) -> None:
        ray = self._ray
        calls = [actor.cancel.remote(batch_id) for actor in self._actors]
        ray.wait(calls, num_returns=len(calls), timeout=30)

    def namespace(self, config: LeanREPLConfig) -> str:
        return self._ray.get(self._actors[0].namespace.remote(config))

    def status(self) -> dict[str, Any]:
        ray = self._ray
        rows = []
        for slot, actor in enumerate(self._actors):
            try:
                state = ray.get(actor.status.remote(), timeout=10)
            except Exception as error:  # noqa: BLE001 - a dead actor is a row saying so
                rows.append({"worker": f"actor {slot}", "repls": [], "error": repr(error)})
                continue
            repls = [r for r in state["repls"] if r["slot"] == slot]
            rows.append(
                {
                    "worker": state["host"],
                    "repls": repls,
                    "repl_memory_mb": round(sum(r["memory_mb"] for r in repls), 1),
                    "error": None,
                }
            )
        return {"cluster": self._address, "remote_workers": rows}

    def close(self) -> None:
        ray = self._ray
        self._report = None
        actors, self._actors = self._actors, []
        if actors and ray.is_initialized():
            ends = [actor.close.remote() for actor in actors]
            ray.wait(ends, num_returns=len(ends), timeout=30)
            for actor in actors:
                ray.kill(actor)
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)

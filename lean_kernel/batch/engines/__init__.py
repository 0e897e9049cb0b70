"""Where a pool's jobs run: its own threads, any ``concurrent.futures.Executor``, a Dask cluster
or a Ray cluster. The dispatcher (``lean_kernel.batch.dispatch``) sees only ``Engine``.

``engine_for`` picks one from the pool's ``executor=`` / ``cluster=`` arguments. Cluster engines
(``dask.py``, ``ray.py``) keep each of the pool's slots in one remote process (a slot's REPL
and the headers it holds stay there, so the scheduler's header affinity is real), stream each
item back as it ends, cancel truly (every worker learns of it before ``cancel`` returns) and end
every REPL they started when the pool closes. Dask and Ray are optional: imported only here, when
asked for.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any, Protocol

from lean_kernel.batch.capacity import WorkerPlan
from lean_kernel.batch.jobs import BatchJob, JobOutcome
from lean_kernel.batch.results import ItemResult
from lean_kernel.engine.config import LeanREPLConfig

__all__ = ["ClusterSpec", "Engine", "Report", "engine_for"]

#: What a cluster engine calls with each item as it ends: (batch id, item).
Report = Callable[[str, ItemResult], None]
#: What ``cluster=`` accepts: a ``distributed.Client``, a Dask scheduler address
#: (``tcp://host:8786``), ``"ray"`` (the current Ray session, or a new local one) or a Ray
#: address (``ray://host:10001``).
ClusterSpec = Any


class Engine(Protocol):
    """What the dispatcher asks of whatever runs its jobs."""

    #: a short name for status tables: ``threads``, the executor's class, ``dask``, ``ray``
    name: str
    #: whether the REPLs live in other processes (the pool's own worker set stays empty)
    remote: bool
    #: whether each slot is a worker of its own where it runs (``BatchJob.pinned``)
    pins_slots: bool

    def plan(
        self, requested: int | None, per_repl_mb: float | None, max_total_memory: float
    ) -> WorkerPlan:
        """How many slots (jobs at once, each with its REPL) to run, and why."""

    def start(self, pool_id: str, num_slots: int, report: Report) -> None:
        """Get ready to run ``num_slots`` jobs at once; items stream to ``report``."""

    def submit(self, job: BatchJob) -> concurrent.futures.Future[JobOutcome]:
        """Run ``job`` (on the place of its slot, ``job.worker_hint``)."""

    def cancel(self, batch_id: str, futures: list[concurrent.futures.Future]) -> None:
        """Stop the batch's running jobs (``futures`` are those handed out for it): when this
        returns, no item body of the batch starts anywhere."""

    def namespace(self, config: LeanREPLConfig) -> str:
        """Which Lean answers jobs of ``config`` (``engine.resultstore.namespace_of``), as the
        place the jobs run resolves it."""

    def status(self) -> dict[str, Any]:
        """What runs where: for a cluster, its workers and the pool's REPLs on each."""

    def close(self) -> None:
        """End every REPL the engine started for the pool, wherever it is."""


def engine_for(
    executor: concurrent.futures.Executor | None,
    cluster: ClusterSpec | None,
    security: Any = None,
) -> Engine:
    """The engine the pool's ``executor=`` / ``cluster=`` arguments ask for.

    ``security`` (a ``distributed.Security``) is passed to a Dask client made from an address.
    """
    from lean_kernel.batch.engines.local import ExecutorEngine, ThreadEngine

    if executor is not None and cluster is not None:
        raise ValueError("give executor= or cluster=, not both")
    if executor is not None:
        return ExecutorEngine(executor)
    if cluster is None:
        return ThreadEngine()
    if isinstance(cluster, str) and (cluster == "ray" or cluster.startswith("ray://")):
        from lean_kernel.batch.engines.ray import RayEngine

        return RayEngine(cluster)
    if isinstance(cluster, str) and "://" not in cluster:
        raise ValueError(
            f"cluster={cluster!r} is not a cluster address: give a Dask scheduler address "
            "(tcp://host:8786), a distributed.Client, 'ray' or a Ray address (ray://host:10001)"
        )
    from lean_kernel.batch.engines.dask import DaskEngine

    return DaskEngine(cluster, security=security)

"""What a cluster worker process does for a pool: run its jobs, cancel, report, close.

These plain functions run inside a Dask worker or a Ray actor (``lean_kernel.batch.engines``
sends them there); they keep no state of their own beyond this process's registry of worker sets
(``lean_kernel.batch.workers``) and one cancel event per batch. A batch cancelled here stays
cancelled (its event is kept until the pool closes), so a job that arrives after the cancel
runs no item: ``cancel_batch`` returning on every worker means no item body starts anywhere.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from lean_kernel.batch.jobs import BatchJob, JobOutcome, run_job
from lean_kernel.batch.registry import (
    all_worker_sets,
    local_worker_set,
    pool_worker_set,
    register_worker_set,
)
from lean_kernel.batch.results import ItemResult
from lean_kernel.batch.workers import Worker, WorkerSet
from lean_kernel.engine.memory import measure_repl_memory

__all__ = [
    "cancel_batch",
    "close_pool",
    "make_room",
    "pool_status",
    "run_remote_job",
    "worker_identity",
]

_ROOM_POLL_S = 0.2
_lock = threading.Lock()
# Deciding that a REPL fits and starting it are one step (make_room).
_room_lock = threading.Lock()
#: the largest REPL measured in this process (MB): what a new one is expected to need
_largest_seen_mb = 0.0
# (pool id, batch id) -> the batch's cancel event in this process
_cancel_events: dict[tuple[str, str], threading.Event] = {}


def _cancel_event(pool_id: str, batch_id: str) -> threading.Event:
    with _lock:
        return _cancel_events.setdefault((pool_id, batch_id), threading.Event())


def run_remote_job(
    job: BatchJob,
    where: str,
    listener: Callable[[ItemResult], None] | None = None,
    memory_limit_mb: float | None = None,
) -> JobOutcome:
    """Run ``job`` on this process's worker for its slot; ``listener`` is told each item as it
    ends (the engine streams it to the pool). ``where`` names this process for the pool;
    ``memory_limit_mb`` is what this process may hold (its REPLs counted in, see
    ``make_room``)."""
    workers = local_worker_set(job.pool_id, job.config, job.server_options)
    if job.session_entries:
        workers.session_cache.adopt(job.session_entries)
    cancel = _cancel_event(job.pool_id, job.batch_id)
    prepare = None
    if memory_limit_mb:

        def prepare(worker: Worker) -> None:
            make_room(worker, memory_limit_mb, cancel)

    outcome = run_job(job, cancel, listener, prepare)
    return JobOutcome(outcome.results, outcome.held_headers, where)


def make_room(worker: Worker, limit_mb: float, cancel: threading.Event) -> None:
    """Keep this process under ``limit_mb`` before ``worker`` (checked out for a job) runs.

    The REPLs of every pool in this process are measured as memory of their own (PSS: pages
    they share, such as Lean's ``.olean`` files, split among them). Over the limit, the largest
    idle REPL is ended (it starts again when its slot is next used). A REPL is started only if
    one more fits, each counted at the size of the largest seen here (a REPL just started has
    not grown yet: it will, as it imports); else idle ones are ended for it, and with none idle,
    it waits until one is (or the batch is cancelled). A process with no REPL running always
    starts one. The check and the start are one step, under a lock, so two jobs arriving
    together cannot both see room for one.
    """
    while not cancel.is_set():
        with _room_lock:
            measured = _measured()
            used = sum(mb for mb, _, _ in measured)
            if worker.started:
                if used <= limit_mb or not _end_largest_idle(measured):
                    return
                continue
            planned = sum(max(mb, _largest_seen_mb) for mb, _, _ in measured)
            if not measured or planned + _largest_seen_mb <= limit_mb:
                worker.server  # noqa: B018 - start it now, while the room is there
                return
            ended = _end_largest_idle(measured)
        if not ended:
            cancel.wait(_ROOM_POLL_S)


def _measured() -> list[tuple[float, Worker, WorkerSet]]:
    """Every running REPL of this process, with its own memory (PSS, MB)."""
    global _largest_seen_mb
    measured = [
        (measure_repl_memory(server.pid).own_mb, worker, owner)
        for owner in all_worker_sets()
        for worker in owner.workers
        if (server := worker.running_server) is not None
    ]
    _largest_seen_mb = max([_largest_seen_mb, *(mb for mb, _, _ in measured)])
    return measured


def _end_largest_idle(measured: list[tuple[float, Worker, WorkerSet]]) -> bool:
    """End the largest idle REPL measured; whether there was one."""
    idle = [(mb, worker, owner) for mb, worker, owner in measured if not worker.busy]
    idle.sort(key=lambda entry: entry[0], reverse=True)
    return any(owner.end_repl(worker) for _, worker, owner in idle)


def cancel_batch(pool_id: str, batch_id: str) -> None:
    """Stop the batch here: no item of it starts from now on, a running one is killed."""
    _cancel_event(pool_id, batch_id).set()


def close_pool(pool_id: str) -> int:
    """End every REPL the pool started in this process; returns how many were running."""
    with _lock:
        for key in [k for k in _cancel_events if k[0] == pool_id]:
            _cancel_events[key].set()
            del _cancel_events[key]
    workers = pool_worker_set(pool_id)
    if workers is None:
        return 0
    running = sum(1 for worker in workers.workers if worker.started)
    register_worker_set(pool_id, None)
    workers.close()
    return running


def pool_status(pool_id: str) -> dict[str, Any]:
    """The pool's REPLs in this process: slot, pid, busy, idle seconds, headers, memory."""
    workers = pool_worker_set(pool_id)
    repls = workers.describe() if workers is not None else []
    return {"host": worker_identity(), "pid": os.getpid(), "repls": repls}


def worker_identity() -> str:
    """``host:pid`` of this process, for status tables."""
    return f"{socket.gethostname()}:{os.getpid()}"

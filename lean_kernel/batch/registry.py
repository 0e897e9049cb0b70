"""The worker sets of this Python process, by pool id: how a job finds its pool's REPLs.

A batch job is a plain, picklable value, so it may run in the pool's own process (the pool
registers its ``WorkerSet`` here) or in another one (a process pool, a Dask worker, a Ray actor),
which makes a set on first use and keeps it for the jobs that follow, so a remote worker stays
warm across jobs too. Sets are closed at interpreter exit (``atexit``, and ``multiprocessing``'s
exit hook, which is what runs in a process-pool worker).
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing.util
import os
import threading
from typing import Any

from lean_kernel.batch.workers import IDLE_TIMEOUT_OPTION, WorkerSet
from lean_kernel.engine.config import LeanREPLConfig

__all__ = [
    "all_worker_sets",
    "close_all_worker_sets",
    "local_worker_set",
    "pool_worker_set",
    "register_worker_set",
]

_registry_lock = threading.Lock()
_registry: dict[str, WorkerSet] = {}
_registry_pid: int | None = None


def register_worker_set(pool_id: str, workers: WorkerSet | None) -> None:
    """Make ``workers`` the set jobs of ``pool_id`` use in this process (None: forget it)."""
    with _registry_lock:
        _this_process()
        if workers is None:
            _registry.pop(pool_id, None)
        else:
            _registry[pool_id] = workers


def pool_worker_set(pool_id: str) -> WorkerSet | None:
    """The worker set of ``pool_id`` in this process, if it has one (never makes one)."""
    with _registry_lock:
        _this_process()
        return _registry.get(pool_id)


def local_worker_set(
    pool_id: str, config: LeanREPLConfig, server_options: dict[str, Any]
) -> WorkerSet:
    """The worker set of ``pool_id`` in this process, made on first use.

    ``server_options`` are the pool's ``AutoLeanServer`` options, plus its idle limit under
    ``IDLE_TIMEOUT_OPTION`` (so a remote process ends its idle REPLs too).
    """
    with _registry_lock:
        _this_process()
        workers = _registry.get(pool_id)
        if workers is None:
            options = dict(server_options)
            idle = options.pop(IDLE_TIMEOUT_OPTION, None)
            workers = _registry[pool_id] = WorkerSet(config, options, idle_timeout=idle)
        return workers


def _this_process() -> None:
    """Start the registry afresh in a forked child, and hook the cleanup into this process's exit.

    A forked child inherits the registry but not the servers' threads. A process-pool worker
    leaves through ``os._exit``, which skips ``atexit`` but runs ``multiprocessing``'s finalizers;
    those only fire in the process that made them, hence one per process.
    """
    global _registry_pid
    if _registry_pid == os.getpid():
        return
    _registry.clear()
    _registry_pid = os.getpid()
    multiprocessing.util.Finalize(None, close_all_worker_sets, exitpriority=100)


def close_all_worker_sets() -> None:
    """Kill every REPL this process started for batch jobs."""
    with _registry_lock:
        _this_process()
        sets = list(_registry.values())
        _registry.clear()
    for workers in sets:
        with contextlib.suppress(Exception):
            workers.close()


atexit.register(close_all_worker_sets)


def all_worker_sets() -> list[WorkerSet]:
    """Every worker set of this process (the REPLs of all pools here)."""
    with _registry_lock:
        _this_process()
        return list(_registry.values())

"""The pool's engine room: hands chunks of a batch to an executor as workers free up.

A dispatcher thread asks the ``Scheduler`` what each free worker should take, wraps it in a
``BatchJob`` and submits it to the engine (threads here, an executor, a Dask or Ray cluster:
``lean_kernel.batch.engines``); finished jobs free their worker, report their items to the
batch's handle, and tell the scheduler which headers the worker now holds. A cluster engine
also reports items one by one as they end.
Single requests (``LeanServerPool.run``) borrow a worker here too, ahead of batch work.
Workers whose REPL was ended for being idle (``WorkerSet.idle_timeout``) hold no header any more:
the scheduler is told so before it next chooses for them.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from lean_kernel.batch.engines import Engine
from lean_kernel.batch.handle import BatchHandle
from lean_kernel.batch.jobs import (
    BatchItem,
    BatchJob,
    JobOutcome,
    cancelled_result,
    failed_result,
    register_batch,
    unregister_batch,
)
from lean_kernel.batch.registry import register_worker_set
from lean_kernel.batch.results import ItemResult
from lean_kernel.batch.scheduler import Assignment, Scheduler
from lean_kernel.batch.workers import IDLE_TIMEOUT_OPTION, Worker, WorkerSet
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.memory import measure_repl_memory
from lean_kernel.engine.protocol import BaseREPLQuery
from lean_kernel.engine.sessioncache import ReplaySessionCache, SessionEntry
from lean_kernel.errors import ReplCancelledError

if TYPE_CHECKING:
    from lean_kernel.engine.autoserver import AutoLeanServer

__all__ = ["Dispatcher"]

_WAIT_SLICE_S = 0.25


class Dispatcher:
    """Everything a pool runs on, without a reference back to the pool object (so the pool can
    be garbage-collected, and its finalizer close this)."""

    def __init__(
        self,
        config: LeanREPLConfig,
        num_workers: int,
        server_options: dict[str, Any],
        session_cache: ReplaySessionCache,
        engine: Engine,
        max_chunk: int,
        idle_timeout: float | None = None,
    ) -> None:
        self.pool_id = uuid.uuid4().hex
        self.config = config
        self.server_options = server_options
        self.workers = WorkerSet(
            config,
            server_options,
            size=num_workers,
            session_cache=session_cache,
            idle_timeout=idle_timeout,
        )
        # What jobs carry: a remote process makes its worker set with the same idle limit.
        self.job_options = {**server_options, IDLE_TIMEOUT_OPTION: self.workers.idle_timeout}
        self.engine = engine
        #: whether jobs run on this process's workers (keep_states, single runs here)
        self.runs_here = not engine.remote
        self.scheduler = Scheduler(num_workers, max_chunk)
        self.cond = threading.Condition()
        self.batches: dict[str, BatchHandle] = {}
        self.timeouts: dict[str, dict[str, float | None]] = {}
        self.running: dict[concurrent.futures.Future, Assignment] = {}
        self.run_waiters = 0
        self.closed = False
        self.thread = threading.Thread(
            target=self._dispatch_loop, name="lean-pool-dispatch", daemon=True
        )

    def start(self) -> None:
        register_worker_set(self.pool_id, self.workers)
        try:
            self.engine.start(self.pool_id, self.scheduler.num_slots, self._item_done)
            if self.runs_here:
                self.workers.start_all()
        except BaseException:
            self.close()
            raise
        self.thread.start()

    # -- batches -----------------------------------------------------------------------------

    def add_batch(
        self,
        handle: BatchHandle,
        groups: dict[str | None, list[BatchItem]],
        timeouts: dict[str, float | None],
    ) -> None:
        with self.cond:
            if self.closed:
                raise RuntimeError("this LeanServerPool is closed")
            self.batches[handle.batch_id] = handle
            self.timeouts[handle.batch_id] = timeouts
            register_batch(handle.batch_id, handle.cancel_event, lambda item: handle.record([item]))
            self.scheduler.add(handle.batch_id, groups)
            self.cond.notify_all()

    def batch_finished(self, handle: BatchHandle) -> None:
        unregister_batch(handle.batch_id)
        with self.cond:
            self.batches.pop(handle.batch_id, None)
            self.timeouts.pop(handle.batch_id, None)
            self.cond.notify_all()

    def cancel_batch(self, handle: BatchHandle) -> None:
        with self.cond:
            handle.cancel_event.set()
            dropped = self.scheduler.drop(handle.batch_id)
            handed_out = [f for f, a in self.running.items() if a.batch_id == handle.batch_id]
        # Jobs not started are dropped; running ones see the cancel (here: the batch's event).
        self.engine.cancel(handle.batch_id, handed_out)
        handle.record(cancelled_result(item) for item in dropped)

    def _item_done(self, batch_id: str, item: ItemResult) -> None:
        """An item a cluster engine streamed back as it ended."""
        with self.cond:
            handle = self.batches.get(batch_id)
        if handle is not None:
            handle.record([item])

    # -- dispatching ---------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            with self.cond:
                if self.closed:
                    return
                failed = self._dispatch()
                if not failed:
                    self.cond.wait(_WAIT_SLICE_S)
            for handle, results in failed:
                handle.record(results)

    def _dispatch(self) -> list[tuple[BatchHandle, list[ItemResult]]]:
        """Hand chunks to free workers (runs waiting for a worker go first)."""
        failed = []
        if self.run_waiters:
            return failed
        self._forget_reaped_headers()
        for slot in self.scheduler.free_slots():
            assignment = self.scheduler.next_for(slot)
            if assignment is None:
                break
            handle = self.batches[assignment.batch_id]
            job = BatchJob(
                pool_id=self.pool_id,
                batch_id=assignment.batch_id,
                config=self.config,
                items=assignment.items,
                header=assignment.header,
                worker_hint=slot,
                server_options=self.job_options,
                pinned=self.engine.pins_slots,
                session_entries=self._entries_for(assignment.items),
                **self.timeouts[assignment.batch_id],
            )
            try:
                future = self.engine.submit(job)
            except Exception as error:  # noqa: BLE001 - e.g. the executor was shut down
                self.scheduler.release(slot)
                failed.append((handle, [failed_result(item, error) for item in assignment.items]))
                continue
            self.running[future] = assignment
            future.add_done_callback(self._job_done)
        return failed

    def _entries_for(self, items: tuple[BatchItem, ...]) -> tuple[SessionEntry, ...]:
        """The kept states a remote process needs to replay for ``items`` (direct ones may use
        them); in this process the workers share the session cache already."""
        if self.runs_here or not any(item.direct for item in items):
            return ()
        return tuple(self.workers.session_cache.entries())

    def _job_done(self, future: concurrent.futures.Future) -> None:
        with self.cond:
            assignment = self.running.pop(future, None)
            if assignment is None:
                return
            held: tuple[str, ...] | None = None
            if future.cancelled():
                results = [cancelled_result(item) for item in assignment.items]
            elif (error := future.exception()) is not None:
                results = [failed_result(item, error) for item in assignment.items]
            else:
                outcome: JobOutcome = future.result()
                results = list(outcome.results)
                held = outcome.held_headers
            self.scheduler.release(assignment.slot, held)
            handle = self.batches.get(assignment.batch_id)
            self.cond.notify_all()
        if handle is not None:
            handle.record(results)

    # -- single runs ---------------------------------------------------------------------------

    def acquire_slot(self, request: BaseREPLQuery, cancel: threading.Event | None) -> int:
        """A worker for one request, preferring one whose process holds the state it uses;
        checked out of the worker set, so it is not reaped while the request runs."""
        slot = self._reserve_slot(request, cancel)
        try:
            self.workers.claim(slot, cancel)
        except BaseException:
            with self.cond:
                self.scheduler.release(slot)
                self.cond.notify_all()
            raise
        return slot

    def _reserve_slot(self, request: BaseREPLQuery, cancel: threading.Event | None) -> int:
        with self.cond:
            self.run_waiters += 1
            try:
                while True:
                    if self.closed:
                        raise RuntimeError("this LeanServerPool is closed")
                    free = self.scheduler.free_slots()
                    if free:
                        slot = max(free, key=lambda s: self._holds_state(s, request))
                        self.scheduler.reserve(slot)
                        return slot
                    if cancel is not None and cancel.is_set():
                        raise ReplCancelledError(
                            "cancelled while waiting for a free worker", started=False
                        )
                    self.cond.wait(_WAIT_SLICE_S)
            finally:
                self.run_waiters -= 1
                self.cond.notify_all()

    def release_slot(self, slot: int) -> None:
        self.workers.checkin(self.workers.workers[slot])
        with self.cond:
            self.scheduler.release(slot)
            self.cond.notify_all()

    def _holds_state(self, slot: int, request: BaseREPLQuery) -> bool:
        server = self.workers.workers[slot].running_server  # never start one to look
        return server is not None and server.holds_kept_state(request)

    def _forget_reaped_headers(self) -> None:
        """A free worker whose REPL was reaped holds no header (called under ``cond``)."""
        for slot in self.scheduler.free_slots():
            if self.workers.workers[slot].reaped and self.scheduler.held(slot):
                self.scheduler.release(slot, ())

    # -- status and closing --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self.cond:
            self._forget_reaped_headers()
            busy = set(range(self.scheduler.num_slots)) - set(self.scheduler.free_slots())
            batches = [
                {
                    "label": h.results.label,
                    "done": h.done_count,
                    "total": h.total,
                    "elapsed": round(h.elapsed, 1),
                    "cancelled": h.cancelled,
                }
                for h in self.batches.values()
            ]
            pending = self.scheduler.pending()
            held = [self.scheduler.held(slot) for slot in range(self.scheduler.num_slots)]
        if self.engine.pins_slots:
            remote = self.engine.status()
            workers = _slot_rows(remote, busy, held)
        else:
            remote, workers = {}, self._local_rows(busy, held)
        return {
            "num_workers": self.scheduler.num_slots,
            "executor": self.engine.name,
            "idle_timeout": self.workers.idle_timeout,
            "workers": workers,
            "batches": batches,
            "pending": pending,
            **remote,
        }

    def _local_rows(self, busy: set[int], held: list[set[str]]) -> list[dict[str, Any]]:
        now = time.monotonic()
        workers = []
        for worker in self.workers.workers:
            server = worker.running_server  # read once: the reaper may end it meanwhile
            state = _repl_state(worker, server)
            headers = len(held[worker.index]) if worker.index < len(held) else 0
            resting = not worker.busy and state != "not started"
            workers.append(
                {
                    "worker": worker.index,
                    "pid": server.pid if server is not None else None,
                    "alive": server.is_alive() if server is not None else False,
                    "repl": state,
                    "memory_mb": round(
                        measure_repl_memory(server.pid if server is not None else None).own_mb, 1
                    ),
                    "busy": worker.index in busy,
                    "idle_s": round(worker.idle_seconds(now), 1) if resting else None,
                    "headers": 0 if state == "reaped" else headers,
                    "restarts": worker.restarts,
                    "reaps": worker.reaps,
                }
            )
        return workers

    def close(self) -> None:
        with self.cond:
            if self.closed:
                return
            handles = list(self.batches.values())
        for handle in handles:
            self.cancel_batch(handle)
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)
        try:
            self.engine.close()
        finally:
            self.workers.close()
        register_worker_set(self.pool_id, None)


def _slot_rows(
    remote: dict[str, Any], busy: set[int], held: list[set[str]]
) -> list[dict[str, Any]]:
    """One row per slot of a cluster engine, from what its workers reported."""
    found = {
        repl["slot"]: (place["worker"], repl)
        for place in remote.get("remote_workers", [])
        for repl in place["repls"]
    }
    rows = []
    for slot, headers in enumerate(held):
        where, repl = found.get(slot, ("", None))
        rows.append(
            {
                "worker": slot,
                "where": where,
                "pid": repl["pid"] if repl else None,
                "alive": repl["alive"] if repl else False,
                "repl": "running" if repl else "not started",
                "memory_mb": repl["memory_mb"] if repl else 0.0,
                "busy": slot in busy,
                "idle_s": repl["idle_s"] if repl else None,
                "headers": len(repl["headers"]) if repl else len(headers),
                "restarts": repl["restarts"] if repl else 0,
                "reaps": repl["reaps"] if repl else 0,
            }
        )
    return rows


def _repl_state(worker: Worker, server: AutoLeanServer | None) -> str:
    """``running``, ``reaped`` (ended for being idle; the next job starts one) or ``not started``
    (a pool on another executor runs its REPLs in that executor's processes), judged from the
    ``server`` the caller read once so that the row's pid and state agree."""
    if server is not None:
        return "running"
    return "reaped" if worker.reaps > 0 else "not started"

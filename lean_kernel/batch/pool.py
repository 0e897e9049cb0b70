"""``LeanServerPool``: many REPL processes checking many commands, for batches of thousands.

Work is cut into jobs (a few commands sharing a header, see ``lean_kernel.batch.jobs``) that a
dispatcher thread (``lean_kernel.batch.dispatch``) hands to a ``concurrent.futures.Executor`` as
workers free up, choosing for each worker the commands whose header it already holds
(``lean_kernel.batch.scheduler``). Each header is thus elaborated about once per worker, with any
REPL flavour. The default executor is a thread pool over this process's REPLs; any other executor
takes the same jobs unchanged, e.g.::

    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    executor = ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn"))
    pool = LeanServerPool(config, num_workers=8, executor=executor)

    # Dask: a Client's executor is a concurrent.futures.Executor
    executor = distributed.Client("scheduler:8786").get_executor()

    # Ray: ObjectRef.future() is a concurrent.futures.Future, so a small adapter does
    class RayExecutor(concurrent.futures.Executor):
        def submit(self, fn, /, *args, **kwargs):
            return ray.remote(fn).remote(*args, **kwargs).future()

``num_workers`` is then how many jobs run at once; each remote process starts its own REPLs on
its first job and keeps them warm for the next (until they sit idle for ``idle_timeout``; the
rest end with the process: shut the executor down when done). Jobs, configs and results are
picklable; a remote worker needs lean_kernel installed and resolves the config on its own
machine. Two things only work in the pool's own process: states kept across workers
(``keep_states``, ``run``) and stopping a *running* job on cancel; remote jobs are cancelled
between jobs.

The pool never starts more workers than memory allows at the per-process limit
(``max_process_memory`` or ``config.memory_hard_limit_mb``), and says so (``capacity_note`` and a
warning). A REPL idle for ``idle_timeout`` seconds (default ten minutes) is ended to give its
memory back, and started again (its header elaborated again) by the next work that needs that
worker; ``status()`` says which workers were reaped so. Pools are closed when garbage-collected
and at interpreter exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import os
import threading
import uuid
import warnings
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from lean_kernel.batch.caching import BatchCache
from lean_kernel.batch.capacity import WorkerPlan, plan_workers
from lean_kernel.batch.dispatch import Dispatcher
from lean_kernel.batch.engines import ClusterSpec, engine_for
from lean_kernel.batch.handle import BatchHandle
from lean_kernel.batch.items import batch_item, command_texts, required_verdict, statements_for
from lean_kernel.batch.jobs import BatchItem
from lean_kernel.batch.results import BatchResults, ItemResult, ResponseList
from lean_kernel.batch.scheduler import DIRECT
from lean_kernel.batch.single import run_request
from lean_kernel.batch.workers import idle_limit
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.heartbeats import (
    DEFAULT_HEARTBEAT_RATE,
    HeartbeatSetting,
    heartbeat_limit,
    parse_heartbeats,
)
from lean_kernel.engine.protocol import (
    BaseREPLQuery,
    Response,
)
from lean_kernel.engine.resultstore import ResultStore, open_store
from lean_kernel.engine.sessioncache import ReplaySessionCache
from lean_kernel.engine.settings import DEFAULT_IDLE_TIMEOUT
from lean_kernel.engine.verdict import allowed_axioms

__all__ = ["BatchHandle", "LeanServerPool", "WorkerPlan", "plan_workers"]

CommandLike = str | BaseREPLQuery


class LeanServerPool:
    """A pool of ``AutoLeanServer`` workers sharing one session cache, for single requests
    (``run``) and batches (``run_batch``, ``submit_batch``, ``async_run_batch``).

    Args mirror LeanInteract's ``LeanServerPool``: ``num_workers`` (default: CPUs - 1, capped by
    memory; on a cluster, its threads or CPUs, capped by its workers' memory), and
    ``max_total_memory`` / ``max_process_memory`` (MB) / ``max_restart_attempts`` passed to
    every ``AutoLeanServer``. Where jobs run: this process's threads (default), ``executor`` (any
    ``concurrent.futures.Executor``) or ``cluster`` (a ``distributed.Client``, a Dask scheduler
    address, ``"ray"`` or a Ray address: see ``lean_kernel.batch.engines``; ``security``, a
    ``distributed.Security``, is given to a Dask client made from an address). ``max_chunk``
    bounds the commands per job (default 16 here, 64 on a cluster, where each job costs a
    round trip through the scheduler and items stream back one by one anyway).
    ``idle_timeout`` (seconds; None or 0: never) ends a worker's REPL once it has been idle that
    long, here and on remote workers, since an idle Lean holds its memory; the next work for
    that worker starts a fresh REPL. ``cache``: where Lean's answers are remembered across runs
    (True: the default result store, ``$LEAN_KERNEL_RESULT_CACHE``; False: nowhere; a path or a
    ``ResultStore``). State ids not kept in the session cache (``add_to_session_cache=False``)
    do not outlive it.
    """

    def __init__(
        self,
        config: LeanREPLConfig | None = None,
        num_workers: int | None = None,
        *,
        max_total_memory: float = 0.8,
        max_process_memory: float | None = None,
        max_restart_attempts: int = 5,
        executor: concurrent.futures.Executor | None = None,
        max_chunk: int | None = None,
        session_cache: ReplaySessionCache | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        cluster: ClusterSpec | None = None,
        security: Any = None,
        cache: bool | str | os.PathLike[str] | ResultStore | None = True,
    ) -> None:
        #: seconds a worker's REPL may sit idle before it is ended; None: never
        self.idle_timeout = idle_limit(idle_timeout)
        self.config = config if config is not None else LeanREPLConfig()
        engine = engine_for(executor, cluster, security)
        limits = [v for v in (max_process_memory, self.config.memory_hard_limit_mb) if v]
        try:
            plan = engine.plan(num_workers, min(limits) if limits else None, max_total_memory)
            if not engine.remote:
                # Once here, not in every worker (a setup error surfaces now). Remote workers
                # resolve the config themselves: the REPL may exist only where they run.
                self.config.resolve()
        except BaseException:
            engine.close()
            raise
        if plan.capped:
            warnings.warn(f"LeanServerPool: {plan.note}", RuntimeWarning, stacklevel=2)
        self.num_workers = plan.num_workers
        self.capacity_note = plan.note
        #: where Lean's answers are remembered across runs (None: nowhere)
        self.result_store = open_store(cache)
        self._namespace: str | None = None
        self.session_cache = session_cache if session_cache is not None else ReplaySessionCache()
        server_options = {
            "max_total_memory": max_total_memory,
            "max_process_memory": max_process_memory,
            "max_restart_attempts": max_restart_attempts,
        }
        self._dispatcher = Dispatcher(
            self.config,
            self.num_workers,
            server_options,
            self.session_cache,
            engine,
            max_chunk if max_chunk is not None else (64 if engine.pins_slots else 16),
            self.idle_timeout,
        )
        self._finalizer = weakref.finalize(self, self._dispatcher.close)
        _close_before_thread_joins(self._finalizer)
        self._dispatcher.start()

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Cancel running batches and kill every REPL of the pool (not those of an executor you
        passed in: shut that executor down to end its processes)."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> LeanServerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> LeanServerPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # -- single requests -----------------------------------------------------------------------

    def run(
        self,
        request: BaseREPLQuery,
        *,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
        add_to_session_cache: bool = True,
        heartbeats: HeartbeatSetting | None = None,
    ) -> Response:
        """Run one request on a free worker (preferring one that holds the state it refers to).

        States are kept in the shared session cache by default, so the env / proof-state ids
        returned work on any worker, as with LeanInteract. ``heartbeats``: as for
        ``LeanServer.run``. On a cluster the request runs on a slot there (the client starts no
        REPL); ids it does not keep are hidden (None), as they name states of one remote
        process.
        """
        return run_request(
            self._dispatcher,
            request,
            timeout=timeout,
            cancel=cancel,
            add_to_session_cache=add_to_session_cache,
            heartbeats=heartbeats,
        )

    async def async_run(
        self,
        request: BaseREPLQuery,
        *,
        timeout: float | None = None,
        add_to_session_cache: bool = True,
    ) -> Response:
        """``run`` without blocking the event loop; cancelling the task kills the command."""
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(
                self.run,
                request,
                timeout=timeout,
                cancel=cancel,
                add_to_session_cache=add_to_session_cache,
            )
        except asyncio.CancelledError:
            cancel.set()
            raise

    # -- batches -----------------------------------------------------------------------------

    def submit_batch(
        self,
        commands: Iterable[CommandLike],
        *,
        header: str | None = None,
        timeout_per_cmd: float | None = None,
        header_timeout: float | None = None,
        keep_states: bool = False,
        label: str = "batch",
        heartbeats: HeartbeatSetting | str | None = None,
        cache: bool = True,
        require: str | None = None,
        allow: Iterable[str] = (),
        statements: Sequence[str | None] | None = None,
    ) -> BatchHandle:
        """Start checking ``commands`` and return at once; results fill ``handle.results``.

        Each command is a string or a request. A string (or a ``Command`` without ``env``) is
        split into its header (leading imports and ``open`` / ``set_option`` / ``variable`` /
        ``universe`` lines; or the explicit ``header`` for all) and its body; each header is
        elaborated once per worker and bodies run on its env, positions reported as in the
        command written. ``timeout_per_cmd`` bounds each command (default ``config.timeout``),
        ``header_timeout`` each header elaboration (default ``config.timeout`` too: give imports
        room). ``heartbeats`` is Lean's ``maxHeartbeats`` per command (default
        ``config.heartbeats``; ``"auto"`` derives it from the timeout): a command over it is a
        Lean error (status ``error``) and the worker keeps its header, while one over the
        timeout is killed (status ``timeout``). Envs and proof states of the results are
        None unless ``keep_states`` (then every command runs whole and is kept in the session
        cache, usable with ``run``; slower, and only on this process's workers). ``cache``: use
        the pool's result cache for this batch (commands it has answered before are answered
        from it, new deterministic answers are kept); False runs and keeps nothing there.

        Every item gets a verdict (``item.verdict``: ``proved``, ``sorry``, ``axioms``,
        ``escape``, ``statement changed``, ``unknown`` or its failure; see
        ``lean_kernel.engine.verdict``), asked of its REPL right after it runs. ``allow``
        (e.g. ``("native_decide",)``) permits axioms beyond the standard three; ``require``
        (``"proved"``) makes every item with another verdict an error (``UnprovedError``, Lean's
        response kept); ``statements`` gives each command a reference statement (a parallel
        list; ``theorem NAME BINDERS : TYPE``, or None) its proof must prove exactly.
        """
        if self.closed:
            raise RuntimeError("this LeanServerPool is closed")
        heartbeats = None if heartbeats is None else parse_heartbeats(heartbeats)
        local = self._dispatcher.runs_here
        # Requests on kept states can go where the pool's kept states are shipped: its own
        # workers, or a cluster's slots (they replay them).
        direct_ok = local or self._dispatcher.engine.pins_slots
        if keep_states and not local:
            raise ValueError(
                "keep_states needs the pool's own workers (the states it keeps are ids in "
                "this process's REPLs); make the pool without executor=/cluster= to keep "
                "states, or send the requests that build them with pool.run"
            )
        commands = list(commands)
        texts = command_texts(commands)
        references = statements_for(statements, len(commands))
        allowed = allowed_axioms(allow)
        results = BatchResults(texts, label=label, require=required_verdict(require))
        batch_id = uuid.uuid4().hex
        handle = BatchHandle(self._dispatcher, batch_id, results, owner=self)
        handle.results.on_cancel(handle.cancel)
        groups: dict[str | None, list[BatchItem]] = {}
        refused: list[ItemResult] = []
        for index, command in enumerate(commands):
            try:
                key, item = batch_item(
                    index, command, texts[index], header, keep_states, references[index]
                )
                if item.direct and not direct_ok:
                    raise ValueError(
                        f"batch item {index} refers to a kept state (or is not a command); "
                        "such requests only run on the pool's own workers: use pool.run, or a "
                        "pool without executor="
                    )
            except (TypeError, ValueError) as error:
                refused.append(
                    ItemResult(index=index, command=texts[index], status="exception", error=error)
                )
                continue
            groups.setdefault(key, []).append(item)
        timeouts = {
            "timeout": timeout_per_cmd if timeout_per_cmd is not None else self.config.timeout,
            "header_timeout": header_timeout,
            "heartbeats": heartbeats,
            "allowed": allowed,
        }
        answered = self._answer_from_cache(handle, groups, timeouts) if cache else []
        self._dispatcher.add_batch(handle, groups, timeouts)
        handle.record(refused)
        handle.record(answered)
        if not commands:
            handle.finish()
        return handle

    def _answer_from_cache(
        self,
        handle: BatchHandle,
        groups: dict[str | None, list[BatchItem]],
        timeouts: dict[str, Any],
    ) -> list[ItemResult]:
        """Take the items the result store answers out of ``groups`` (returned, to record) and
        have the batch's new answers kept there."""
        batch_cache = self._batch_cache(
            timeouts["heartbeats"], timeouts["timeout"], timeouts["allowed"]
        )
        if batch_cache is None:
            return []
        answered: list[ItemResult] = []
        where: dict[int, tuple[str | None, BatchItem]] = {}
        for key, items in groups.items():
            hits = batch_cache.lookup(key, items) if key is not DIRECT else {}
            answered.extend(hits.values())
            items[:] = [item for item in items if item.index not in hits]
            where.update((item.index, (key, item)) for item in items)

        def remember(result: ItemResult) -> None:
            if result.index in where:
                batch_cache.remember(*where[result.index], result)

        handle.add_item_hook(remember)
        handle.future.add_done_callback(lambda _: batch_cache.flush())
        return answered

    def _batch_cache(
        self, heartbeats: HeartbeatSetting | None, timeout: float | None, allowed: frozenset[str]
    ) -> BatchCache | None:
        """The result store as a batch with these limits uses it; None when it is off or the
        namespace (which Lean answers) cannot be known."""
        if self.result_store is None:
            return None
        if self._namespace is None:
            try:
                self._namespace = self._dispatcher.engine.namespace(self.config)
            except Exception as error:  # noqa: BLE001 - no cache then; the items say why
                warnings.warn(
                    f"LeanServerPool: the result cache is not used ({error})",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return None
        setting = heartbeats if heartbeats is not None else self.config.heartbeats
        rate = self.config.heartbeat_rate or DEFAULT_HEARTBEAT_RATE
        limit = heartbeat_limit(setting, timeout, rate)
        return BatchCache(self.result_store, self._namespace, limit, allowed)

    def run_batch(
        self,
        commands: Iterable[CommandLike],
        *,
        timeout_per_cmd: float | None = None,
        show_progress: bool = False,
        header: str | None = None,
        header_timeout: float | None = None,
        keep_states: bool = False,
        heartbeats: HeartbeatSetting | str | None = None,
        require: str | None = None,
        allow: Iterable[str] = (),
        statements: Sequence[str | None] | None = None,
    ) -> ResponseList:
        """Check ``commands`` and return their responses in input order, with the exception
        raised by an item in its place (``.results`` has per-item status and time).

        ``show_progress`` shows a progress bar (a widget in Jupyter, a line on stderr
        elsewhere). See ``submit_batch`` for the other arguments.
        """
        handle = self._submit_with_progress(
            commands,
            show_progress=show_progress,
            timeout_per_cmd=timeout_per_cmd,
            header=header,
            header_timeout=header_timeout,
            keep_states=keep_states,
            heartbeats=heartbeats,
            require=require,
            allow=allow,
            statements=statements,
        )
        return handle.result().responses()

    async def async_run_batch(
        self, commands: Iterable[CommandLike], **options: Any
    ) -> ResponseList:
        """``run_batch`` without blocking the event loop (same arguments); cancelling the task
        cancels the batch."""
        handle = self._submit_with_progress(commands, **options)
        try:
            results = await asyncio.wrap_future(handle.future)
        except asyncio.CancelledError:
            handle.cancel()
            raise
        return results.responses()

    def _submit_with_progress(
        self, commands: Iterable[CommandLike], *, show_progress: bool = False, **options: Any
    ) -> BatchHandle:
        handle = self.submit_batch(commands, **options)
        if show_progress:
            from lean_kernel.display.progress import attach_progress

            attach_progress(handle)
        return handle

    # -- looking inside ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Workers (pid, running or reaped, memory, busy, idle seconds, headers held,
        restarts), the idle limit, batches in flight, the plan."""
        return self._dispatcher.status() | {"capacity_note": self.capacity_note}

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.num_workers} workers"
        return f"<LeanServerPool {state}>"


# help() and IDEs show async_run_batch with run_batch's arguments, which it takes.
LeanServerPool.async_run_batch.__signature__ = inspect.signature(LeanServerPool.run_batch)  # type: ignore[attr-defined]


def _close_before_thread_joins(close: weakref.finalize) -> None:
    """Close the pool when the interpreter ends, before it waits for the pool's threads.

    A script that ends while a batch runs would otherwise hang: Python joins the executor's
    threads (blocked in REPL reads) before any ``atexit`` hook could close the pool. Hooks
    registered here run before those joins (``concurrent.futures`` uses the same mechanism, and
    later registrations run first). ``close`` is idempotent and holds no reference to the pool.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down
            register(close)

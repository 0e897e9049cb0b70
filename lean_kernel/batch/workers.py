"""The REPL servers of one Python process that batch jobs run on, and what they already hold.

A batch job is a plain, picklable value, so it may run in this process (the pool's threads) or in
another one (a process pool, Dask, Ray). Either way it finds its servers here, by the pool's id:
the pool registers its own ``WorkerSet`` in its process; any other process makes one on first use
and keeps it for the jobs that follow, so a remote worker stays warm across jobs too.

Each ``Worker`` remembers the env of every header it elaborated (imports, and settings on top of
them; least recently used first out) and the process generation it belongs to, so a restarted
REPL re-elaborates instead of using a dead env id. Worker sets are closed at interpreter exit
(``atexit``, and ``multiprocessing``'s exit hook, which is what runs in a process-pool worker).
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing.util
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lean_kernel.batch.headers import shift_response
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.protocol import Command, CommandResponse, LeanError
from lean_kernel.engine.server import AutoLeanServer
from lean_kernel.engine.sessioncache import ReplaySessionCache
from lean_kernel.errors import ReplCancelledError

__all__ = ["HeaderEnv", "Worker", "WorkerSet", "local_worker_set", "register_worker_set"]

#: Header envs a worker keeps; the REPL never frees an env, so this only bounds our bookkeeping.
MAX_HEADERS_PER_WORKER = 64
_CHECKOUT_POLL_S = 0.05


@dataclass(frozen=True)
class HeaderEnv:
    """A header elaborated on one REPL process: its env (None if Lean refused it) and messages."""

    generation: int
    response: CommandResponse | LeanError
    seconds: float

    @property
    def env(self) -> int | None:
        return self.response.env if isinstance(self.response, CommandResponse) else None


class Worker:
    """One REPL server (started on first use) and the header envs it holds."""

    def __init__(self, index: int, make_server) -> None:
        self.index = index
        self._make_server = make_server
        self._server: AutoLeanServer | None = None
        # (imports, settings) -> env; settings "" is the imports' own env.
        self._headers: OrderedDict[tuple[str, str], HeaderEnv] = OrderedDict()
        self.busy = False

    @property
    def server(self) -> AutoLeanServer:
        """The worker's server, started now if it was not yet."""
        if self._server is None:
            self._server = self._make_server()
        return self._server

    @property
    def running_server(self) -> AutoLeanServer | None:
        """The server if it was started, without starting it."""
        return self._server

    @property
    def started(self) -> bool:
        return self._server is not None

    def label(self) -> str:
        pid = self._server.pid if self._server is not None else None
        return f"w{self.index}" + (f" pid {pid}" if pid else "")

    def holds(self, imports: str) -> bool:
        """Whether the current REPL process has these imports elaborated."""
        return self._current((imports, ""), touch=False) is not None

    def held_headers(self) -> list[str]:
        """Imports whose env lives in the current REPL process, oldest use first."""
        return [
            imports for imports, settings in self._headers if not settings and self.holds(imports)
        ]

    def _current(self, key: tuple[str, str], touch: bool = True) -> HeaderEnv | None:
        """The env held for ``key`` in the current process (``touch``: mark it recently used)."""
        held = self._headers.get(key)
        if held is None or self._server is None or held.generation != self._server.generation:
            return None
        if touch:
            self._headers.move_to_end(key)
        return held

    def header_env(
        self, imports: str, timeout: float | None, cancel: threading.Event | None
    ) -> tuple[HeaderEnv, float]:
        """The env of ``imports`` (sent without env, where ``import`` is legal) in the current
        process, elaborated if needed; and the seconds paid for it now (0 if it was there)."""
        held = self._current((imports, ""))
        if held is not None:
            return held, 0.0
        return self._elaborate((imports, ""), Command(cmd=imports), timeout, cancel, [], 0)

    def settings_env(
        self,
        base: HeaderEnv,
        imports: str,
        settings: str,
        line_offset: int,
        timeout: float | None,
        cancel: threading.Event | None,
    ) -> tuple[HeaderEnv, float]:
        """The env of ``settings`` (``open``, ``set_option``...) on the env of ``imports``; its
        messages are those of the whole header, positioned as in it (settings start at line
        ``line_offset + 1``). Raises ``StaleStateError`` if ``base`` died meanwhile."""
        held = self._current((imports, settings))
        if held is not None:
            return held, 0.0
        request = Command(cmd=settings, env=base.env)
        return self._elaborate(
            (imports, settings), request, timeout, cancel, list(base.response.messages), line_offset
        )

    def _elaborate(
        self,
        key: tuple[str, str],
        request: Command,
        timeout: float | None,
        cancel: threading.Event | None,
        earlier_messages: list,
        line_offset: int,
    ) -> tuple[HeaderEnv, float]:
        server = self.server
        start = time.perf_counter()
        response = server.run(request, timeout=timeout, cancel=cancel)
        seconds = time.perf_counter() - start
        assert isinstance(response, (CommandResponse, LeanError))
        response = shift_response(response, line_offset, earlier_messages)
        # A restart just before the run (the server's health check) makes the answer belong to
        # the new process: the generation is read after the run.
        held = HeaderEnv(generation=server.generation, response=response, seconds=seconds)
        self._headers[key] = held
        while len(self._headers) > MAX_HEADERS_PER_WORKER:
            self._headers.popitem(last=False)
        return held, seconds

    def close(self) -> None:
        server, self._server = self._server, None
        self._headers.clear()
        if server is not None:
            server.close()


class WorkerSet:
    """The workers of one pool in this process; a job checks one out for its whole run.

    With ``size`` the set has exactly that many workers (the pool's own process); without, it
    grows by one worker whenever a job finds none free (a remote process running jobs on threads).
    """

    def __init__(
        self,
        config: LeanREPLConfig,
        server_options: dict[str, Any] | None = None,
        *,
        size: int | None = None,
        session_cache: ReplaySessionCache | None = None,
    ) -> None:
        self.config = config
        self.server_options = dict(server_options or {})
        self.session_cache = session_cache if session_cache is not None else ReplaySessionCache()
        self._fixed = size is not None
        self._cond = threading.Condition()
        self._closed = False
        self.workers: list[Worker] = []
        for _ in range(size or 0):
            self._add_worker()

    def _add_worker(self) -> Worker:
        worker = Worker(len(self.workers), self._make_server)
        self.workers.append(worker)
        return worker

    def _make_server(self) -> AutoLeanServer:
        return AutoLeanServer(self.config, session_cache=self.session_cache, **self.server_options)

    def start_all(self) -> None:
        """Start every worker's REPL now, in parallel (so the first batch does not wait)."""
        if not self.workers:
            return
        with ThreadPoolExecutor(len(self.workers), thread_name_prefix="lean-start") as starter:
            list(starter.map(lambda worker: worker.server, self.workers))

    def checkout(
        self,
        hint: int | None = None,
        header: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Worker:
        """A free worker: ``hint`` if it is free, else one holding ``header``, else any.

        Waits while every worker of a fixed-size set is busy, until one is free or ``cancel``.
        """
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("the pool's workers were closed")
                free = [w for w in self.workers if not w.busy]
                chosen = None
                if (
                    hint is not None
                    and 0 <= hint < len(self.workers)
                    and not self.workers[hint].busy
                ):
                    chosen = self.workers[hint]
                if chosen is None and header is not None:
                    chosen = next((w for w in free if w.holds(header)), None)
                if chosen is None and free:
                    chosen = free[0]
                if chosen is None and not self._fixed:
                    chosen = self._add_worker()
                if chosen is not None:
                    chosen.busy = True
                    return chosen
                if cancel is not None and cancel.is_set():
                    raise ReplCancelledError("cancelled while waiting for a free worker")
                self._cond.wait(_CHECKOUT_POLL_S)

    def checkin(self, worker: Worker) -> None:
        with self._cond:
            worker.busy = False
            self._cond.notify_all()

    def close(self) -> None:
        """Kill every worker's REPL (in parallel: each kill waits for the process to go)."""
        with self._cond:
            self._closed = True
            workers = list(self.workers)
            self._cond.notify_all()
        threads = [threading.Thread(target=w.close, daemon=True) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)


# -- the registry of this process ---------------------------------------------------------------

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


def local_worker_set(
    pool_id: str, config: LeanREPLConfig, server_options: dict[str, Any]
) -> WorkerSet:
    """The worker set of ``pool_id`` in this process, made on first use."""
    with _registry_lock:
        _this_process()
        workers = _registry.get(pool_id)
        if workers is None:
            workers = _registry[pool_id] = WorkerSet(config, server_options)
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

"""The REPL servers of one pool in one Python process, and what they already hold.

Jobs find the set of their pool by its id (``lean_kernel.batch.registry``), in the pool's own
process or in any other (a process pool, Dask, Ray). Each ``Worker`` remembers the env of every
header it elaborated (imports, and settings on top of them; least recently used first out) and
the process generation it belongs to, so a restarted REPL re-elaborates instead of using a dead
env id.

An idle REPL holds its memory (gigabytes with Mathlib) for as long as it lives, so a set with an
``idle_timeout`` ends the REPLs of workers idle longer than that (a reaper thread, in whatever
process the set lives). Such a worker is *reaped*: the next job that takes it starts a fresh REPL
and elaborates its header again. A checked-out worker is never reaped: checking out and reaping
both happen under the set's lock, and the idle clock starts at check-in.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lean_kernel.batch.headers import shift_response
from lean_kernel.engine.autoserver import AutoLeanServer
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.imports import check_imports
from lean_kernel.engine.memory import measure_repl_memory
from lean_kernel.engine.protocol import Command, CommandResponse, LeanError
from lean_kernel.engine.sessioncache import ReplaySessionCache
from lean_kernel.errors import ReplCancelledError

__all__ = [
    "IDLE_TIMEOUT_OPTION",
    "HeaderEnv",
    "Worker",
    "WorkerSet",
    "idle_limit",
]

#: Header envs a worker keeps; the REPL never frees an env, so this only bounds our bookkeeping.
MAX_HEADERS_PER_WORKER = 64
#: The key of a job's ``server_options`` that carries the idle limit to remote worker sets.
IDLE_TIMEOUT_OPTION = "idle_timeout"
_CHECKOUT_POLL_S = 0.05
_MIN_REAP_WAIT_S = 0.05


def idle_limit(seconds: float | None) -> float | None:
    """The idle limit ``seconds`` means: None (never reap) for None or 0, else the seconds.

    Raises ``ValueError`` for a negative or non-number value, saying what is accepted.
    """
    if seconds is None or seconds == 0:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(
            f"idle_timeout={seconds!r}: give a positive number of seconds, or None / 0 to "
            "never end idle REPLs"
        )
    return None if math.isinf(seconds) else float(seconds)


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
    """One REPL server (started on first use, and again after being reaped) and the header envs
    it holds."""

    def __init__(self, index: int, make_server: Callable[[], AutoLeanServer]) -> None:
        self.index = index
        self._make_server = make_server
        self._server: AutoLeanServer | None = None
        # (imports, settings) -> env; settings "" is the imports' own env.
        self._headers: OrderedDict[tuple[str, str], HeaderEnv] = OrderedDict()
        self.busy = False
        #: when the worker last finished work, or its REPL started (``time.monotonic``)
        self.idle_since = time.monotonic()
        #: how many times its REPL was ended for being idle
        self.reaps = 0
        self._earlier_restarts = 0

    @property
    def server(self) -> AutoLeanServer:
        """The worker's server, started now if it was not yet (or was reaped)."""
        if self._server is None:
            server = self._make_server()
            self.idle_since = time.monotonic()
            self._server = server
        return self._server

    @property
    def running_server(self) -> AutoLeanServer | None:
        """The server if it was started, without starting it."""
        return self._server

    @property
    def started(self) -> bool:
        return self._server is not None

    @property
    def reaped(self) -> bool:
        """Whether its REPL was ended for being idle (the next job that takes it starts one)."""
        return self._server is None and self.reaps > 0

    @property
    def restarts(self) -> int:
        """Restarts (crash, timeout, memory) of every REPL this worker ran, reaped ones too."""
        server = self._server
        return self._earlier_restarts + (server.restart_count if server is not None else 0)

    def idle_seconds(self, now: float | None = None) -> float:
        """Seconds since the worker last finished work (or its REPL started)."""
        return (time.monotonic() if now is None else now) - self.idle_since

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

    def _checked_imports(
        self,
        server: AutoLeanServer,
        imports: str,
        response: CommandResponse | LeanError,
        timeout: float | None,
        cancel: threading.Event | None,
    ) -> CommandResponse | LeanError:
        """The imports' answer, refused (no env: every command sharing them fails with it) when
        they left an empty environment (``engine.imports``: the REPL does not say so)."""
        checked = check_imports(
            imports,
            response,
            lambda probe: server.run(probe, timeout=timeout, cancel=cancel),
            Path(server.launch.cwd),
        )
        if checked is response:
            return response
        return LeanError(message=checked.messages[0].data)

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
        assert isinstance(response, (CommandResponse, LeanError))
        if request.env is None:  # the imports
            response = self._checked_imports(server, request.cmd, response, timeout, cancel)
        seconds = time.perf_counter() - start
        response = shift_response(response, line_offset, earlier_messages)
        # A restart just before the run (the server's health check) makes the answer belong to
        # the new process: the generation is read after the run.
        held = HeaderEnv(generation=server.generation, response=response, seconds=seconds)
        self._headers[key] = held
        while len(self._headers) > MAX_HEADERS_PER_WORKER:
            self._headers.popitem(last=False)
        return held, seconds

    def detach(self) -> AutoLeanServer | None:
        """Take the REPL server away (its header envs go with it); the caller closes it."""
        server, self._server = self._server, None
        self._headers.clear()
        if server is not None:
            self._earlier_restarts += server.restart_count
        return server

    def close(self) -> None:
        server = self.detach()
        if server is not None:
            server.close()


class WorkerSet:
    """The workers of one pool in this process; a job checks one out for its whole run.

    With ``size`` the set has exactly that many workers (the pool's own process); without, it
    grows by one worker whenever a job finds none free (a remote process running jobs on threads).
    With ``idle_timeout`` (seconds; None or 0: never) the REPLs of workers idle that long are
    ended, and started again by the next job that takes the worker.
    """

    def __init__(
        self,
        config: LeanREPLConfig,
        server_options: dict[str, Any] | None = None,
        *,
        size: int | None = None,
        session_cache: ReplaySessionCache | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.config = config
        self.server_options = dict(server_options or {})
        self.session_cache = session_cache if session_cache is not None else ReplaySessionCache()
        self.idle_timeout = idle_limit(idle_timeout)
        self._fixed = size is not None
        self._cond = threading.Condition()
        self._closed = False
        self.workers: list[Worker] = []
        for _ in range(size or 0):
            self._add_worker()
        self._reaper_wake = threading.Event()
        self._reaper: threading.Thread | None = None
        if self.idle_timeout is not None:
            weakref.finalize(self, self._reaper_wake.set)
            self._reaper = threading.Thread(
                target=_reap_idle_workers,
                args=(weakref.ref(self), self._reaper_wake),
                name="lean-idle-reaper",
                daemon=True,
            )
            self._reaper.start()

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
        *,
        pinned: bool = False,
    ) -> Worker:
        """A free worker: ``hint`` if it is free, else one holding ``header``, else any.

        ``pinned``: worker ``hint`` itself (the set grows to have it), waiting while it is busy:
        a cluster engine's slot, whose headers the pool's scheduler counts on. Waits while every
        worker of a fixed-size set is busy, until one is free or ``cancel``.
        """
        if pinned and hint is not None:
            self.slot(hint)
            return self.claim(hint, cancel)

        def choose() -> Worker | None:
            free = [w for w in self.workers if not w.busy]
            if hint is not None and 0 <= hint < len(self.workers) and not self.workers[hint].busy:
                return self.workers[hint]
            if header is not None and (holder := next((w for w in free if w.holds(header)), None)):
                return holder
            if free:
                return free[0]
            return None if self._fixed else self._add_worker()

        return self._take(choose, cancel)

    def slot(self, index: int) -> Worker:
        """Worker ``index``, the set growing to have it (a cluster slot's worker)."""
        with self._cond:
            while len(self.workers) <= index:
                self._add_worker()
            return self.workers[index]

    def claim(self, index: int, cancel: threading.Event | None = None) -> Worker:
        """Check out worker ``index`` itself (a single request the pool placed there), waiting
        until it is free or ``cancel``."""
        worker = self.workers[index]
        return self._take(lambda: None if worker.busy else worker, cancel)

    def _take(self, choose: Callable[[], Worker | None], cancel: threading.Event | None) -> Worker:
        """Mark the worker ``choose`` picks busy (under the lock the reaper takes too)."""
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("the pool's workers were closed")
                chosen = choose()
                if chosen is not None:
                    chosen.busy = True
                    return chosen
                if cancel is not None and cancel.is_set():
                    raise ReplCancelledError(
                        "cancelled while waiting for a free worker", started=False
                    )
                self._cond.wait(_CHECKOUT_POLL_S)

    def checkin(self, worker: Worker) -> None:
        """The worker is free again; its idle clock starts now."""
        with self._cond:
            worker.busy = False
            worker.idle_since = time.monotonic()
            self._cond.notify_all()

    def reap_idle(self) -> float | None:
        """End the REPLs of free workers idle longer than ``idle_timeout``; returns the seconds
        until another may be due (None: never, the set is closed or has no limit)."""
        limit = self.idle_timeout
        ended: list[AutoLeanServer] = []
        with self._cond:
            if self._closed or limit is None:
                return None
            now = time.monotonic()
            wait = limit
            for worker in self.workers:
                if worker.busy or not worker.started:
                    continue
                left = limit - worker.idle_seconds(now)
                if left > 0:
                    wait = min(wait, left)
                    continue
                server = worker.detach()
                worker.reaps += 1
                if server is not None:
                    ended.append(server)
        for server in ended:  # outside the lock: a kill waits for the process tree to go
            with contextlib.suppress(Exception):
                server.close()
        return max(wait, _MIN_REAP_WAIT_S)

    def end_repl(self, worker: Worker) -> bool:
        """End ``worker``'s REPL if it is idle, to free its memory (it starts again when next
        needed, as after an idle reap); whether it did."""
        with self._cond:
            if worker.busy or not worker.started:
                return False
            server = worker.detach()
            worker.reaps += 1
        if server is not None:
            with contextlib.suppress(Exception):
                server.close()
        return True

    def describe(self) -> list[dict[str, Any]]:
        """The workers whose REPL runs: slot, pid, busy, idle seconds, headers held, memory."""
        now = time.monotonic()
        rows = []
        with self._cond:
            workers = [w for w in self.workers if w.started]
            states = [(w, w.busy, w.held_headers(), w.running_server) for w in workers]
        for worker, busy, headers, server in states:
            if server is None:
                continue
            rows.append(
                {
                    "slot": worker.index,
                    "pid": server.pid,
                    "alive": server.is_alive(),
                    "busy": busy,
                    "idle_s": None if busy else round(worker.idle_seconds(now), 1),
                    "headers": headers,
                    "memory_mb": round(measure_repl_memory(server.pid).own_mb, 1),  # PSS
                    "restarts": worker.restarts,
                    "reaps": worker.reaps,
                }
            )
        return rows

    def close(self) -> None:
        """Kill every worker's REPL (in parallel: each kill waits for the process to go)."""
        with self._cond:
            self._closed = True
            workers = list(self.workers)
            self._cond.notify_all()
        self._reaper_wake.set()
        reaper = self._reaper
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join(timeout=10)  # a REPL it is ending is gone when close returns
        threads = [threading.Thread(target=w.close, daemon=True) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)


def _reap_idle_workers(ref: weakref.ref[WorkerSet], wake: threading.Event) -> None:
    """The reaper thread: reap, sleep until the next worker may be due (or a wake-up), again.

    It holds its set weakly between rounds, so a forgotten set is not kept alive by it.
    """
    while True:
        workers = ref()
        if workers is None:
            return
        wait = workers.reap_idle()
        del workers
        if wait is None:
            return
        wake.wait(wait)

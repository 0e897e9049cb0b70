"""``AutoLeanServer``: a ``LeanServer`` that survives its REPL.

After a crash, a timeout, a cancel that had to kill the command, or a memory limit, the process
is replaced at once (so the next request pays nothing) and the states callers kept
(``add_to_session_cache=True``) are replayed into it under the same negative ids. A process that
died between requests is noticed when the next request is written to it (nothing reached it),
replaced, and sent that request. A watchdog thread samples memory during long commands (and
at rest: a REPL found over a limit between commands is replaced before the next request).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.framing import stderr_note
from lean_kernel.engine.heartbeats import HeartbeatSetting
from lean_kernel.engine.ids import KeptIds
from lean_kernel.engine.memory import MemoryLimits, MemoryWatchdog
from lean_kernel.engine.process import ReplProcess
from lean_kernel.engine.protocol import BaseREPLQuery, LeanError, Response
from lean_kernel.engine.restarts import Restart, RestartKind
from lean_kernel.engine.server import LeanServer, UnsentRequest, check_dict, not_a_request
from lean_kernel.engine.sessioncache import ReplaySessionCache, SessionEntry, StateKind
from lean_kernel.errors import (
    LeanKernelError,
    ReplCancelledError,
    ReplCrashedError,
    ReplMemoryError,
    ReplProtocolError,
    ReplSetupError,
    ReplTimeoutError,
    StaleStateError,
)

_T = TypeVar("_T")

#: The errors after which the REPL process is gone (it died, or was killed to stop a command).
_PROCESS_KILLERS = (
    ReplCrashedError,
    ReplTimeoutError,
    ReplCancelledError,
    ReplMemoryError,
    ReplProtocolError,
)


class _Forwarded:
    """A public attribute (LeanInteract's name) that lives on one of the server's parts."""

    def __init__(self, part: str, doc: str, name: str | None = None) -> None:
        self.part, self.__doc__, self.name = part, doc, name

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = self.name or name

    def __get__(self, server: object, owner: type | None = None) -> Any:
        return self if server is None else getattr(getattr(server, self.part), self.name)

    def __set__(self, server: object, value: Any) -> None:
        setattr(getattr(server, self.part), self.name, value)


class AutoLeanServer(LeanServer):
    """A ``LeanServer`` that survives its REPL: restarts after a crash, timeout or memory blow-up.

    The failing request is reported (its exception is re-raised), not retried; the REPL is
    restarted at once, so the next request pays nothing, and the session cache is replayed.
    States kept with ``add_to_session_cache=True`` get stable negative ids valid across restarts
    (automatic ones and ``restart()`` alike). A watchdog thread samples the REPL's memory during
    long commands and kills it over the limit, and at rest, where one over the limit is replaced
    before the next request. A REPL that died between requests is replaced and sent the request
    (nothing had reached it). ``last_restart`` says why the running process
    replaced the one before (a typed `Restart`), ``restart_count`` how many restarts there were.
    """

    def __init__(
        self,
        config: LeanREPLConfig | None = None,
        *,
        max_total_memory: float = 0.8,
        max_process_memory: float | None = None,
        max_restart_attempts: int = 5,
        session_cache: ReplaySessionCache | None = None,
        memory_check_interval: float = 0.1,
    ) -> None:
        self._memory_limits = MemoryLimits(max_total_memory, max_process_memory)
        self.max_restart_attempts = max_restart_attempts
        self.session_cache = session_cache if session_cache is not None else ReplaySessionCache()
        self.restart_count = 0
        self.last_restart: Restart | None = None
        self._kept = KeptIds(self.session_cache)
        super().__init__(config)
        self._watchdog = MemoryWatchdog(self._memory_limits, memory_check_interval)

    max_total_memory = _Forwarded(
        "_memory_limits", "Fraction of the machine's memory in use above which the REPL is killed."
    )
    max_process_memory = _Forwarded(
        "_memory_limits", "MB the REPL process tree may use before it is killed; None for no limit."
    )
    memory_check_interval = _Forwarded(
        "_watchdog",
        "Seconds between memory samples during a command (shorter commands are not sampled).",
        "interval",
    )

    def close(self) -> None:
        """Kill the REPL process and stop the memory watchdog."""
        self._watchdog.stop()
        super().close()

    def restart(self) -> None:
        """Replace the REPL process with a fresh one, as after a crash: kept states are replayed
        and keep their negative ids; every other id of the old process is refused from now on."""
        with self._lock:
            self._recover("requested")

    def run(
        self,
        request: BaseREPLQuery,
        *,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
        add_to_session_cache: bool = False,
        heartbeats: HeartbeatSetting | None = None,
    ) -> Response:
        """Like ``LeanServer.run``; with ``add_to_session_cache`` the state survives restarts.

        Negative ids (from ``add_to_session_cache``) may be used wherever an env or proof-state
        id goes; they are translated to the current process's ids.
        """
        if not isinstance(request, BaseREPLQuery):
            raise not_a_request(request)
        with self._lock:
            try:
                response = self._watched_request(request, timeout, cancel, heartbeats)
            except UnsentRequest as unsent:
                response = self._resend(
                    unsent, self._watched_request, request, timeout, cancel, heartbeats
                )
            if add_to_session_cache and not isinstance(response, LeanError):
                response = self._kept.keep(request, response)
            return response

    def run_dict(
        self,
        data: dict[str, Any],
        *,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Like ``LeanServer.run_dict``, watched and restarted after a failure as ``run`` is."""
        check_dict(data)
        with self._lock:
            try:
                return self._watched_dict(data, timeout, cancel)
            except UnsentRequest as unsent:
                return self._resend(unsent, self._watched_dict, data, timeout, cancel)

    def _watched_request(
        self,
        request: BaseREPLQuery,
        timeout: float | None,
        cancel: threading.Event | None,
        heartbeats: HeartbeatSetting | None,
    ) -> Response:
        """One request on the running process, kept ids translated, memory watched; the process
        is replaced at once after a failure that ended it."""
        watchdog = self._watchdog
        if self._proc is None or watchdog.over_limit is not None:
            self._ensure_healthy()
        request_here = self._kept.resolve(request, self._replay_entry)
        try:
            watchdog.watch(self._proc)
            try:
                return self._request(request_here, timeout, cancel, heartbeats)
            finally:
                watchdog.unwatch()
        except _PROCESS_KILLERS as err:
            if _touched(err):
                self._recover("request", err)
            raise

    def _watched_dict(
        self, data: dict[str, Any], timeout: float | None, cancel: threading.Event | None
    ) -> dict[str, Any]:
        """``run_dict``'s request, watched and recovered from as ``_watched_request`` is."""
        self._ensure_healthy()
        try:
            with self._watchdog.watching(self._proc):
                return self._roundtrip(data, timeout, cancel)
        except _PROCESS_KILLERS as err:
            if _touched(err):
                self._recover("request", err)
            raise

    def _resend(self, unsent: UnsentRequest, send: Callable[..., _T], *args: Any) -> _T:
        """``send(*args)`` again after ``unsent``: the REPL was found dead when the request was
        written (it died between requests, so nothing reached it). It is replaced first,
        ``last_restart`` saying ``exited``."""
        self._recover("exited", unsent.error)
        try:
            return send(*args)
        except UnsentRequest as unsent:
            raise unsent.error from None

    def holds_kept_state(self, request: BaseREPLQuery) -> bool:
        """Whether the running process already holds the kept (negative-id) env or proof state
        ``request`` uses, so it can run here without replaying (a pool prefers such a worker)."""
        env = getattr(request, "env", None)
        proof_state = getattr(request, "proof_state", None)
        return (isinstance(env, int) and ("env", env) in self._kept) or (
            isinstance(proof_state, int) and ("proof_state", proof_state) in self._kept
        )

    def remove_from_session_cache(self, state_id: int, kind: StateKind = "env") -> None:
        """Forget a kept state: it is no longer replayed and its id is refused."""
        with self._lock:
            self.session_cache.remove(kind, state_id)
            self._kept.forget(kind, state_id)

    def clear_session_cache(self) -> None:
        """Forget every kept state."""
        with self._lock:
            self.session_cache.clear()
            self._kept.clear()

    def _died(self, proc: ReplProcess) -> LeanKernelError:
        """Over a limit (the watchdog's kill), out of memory (the system's), or a crash."""
        return self._watchdog.explain(proc, super()._died(proc), stderr_note(proc))

    # -- restarts ------------------------------------------------------------------------------

    def _ensure_healthy(self) -> None:
        """Start a process if there is none; replace one the watchdog found over a memory limit
        at rest. (A process that died is noticed when the request is written: ``_resend``.)"""
        proc = self._proc
        if proc is None:
            self._recover("stopped")
            return
        over = self._watchdog.take_over_limit(proc)
        if over:
            self._recover("memory", memory_reason=over)

    def _recover(
        self, kind: RestartKind, error: LeanKernelError | None = None, memory_reason: str = ""
    ) -> None:
        """Start a fresh process (with backoff), record why (``last_restart``), and replay the
        session cache into it."""
        last_error: Exception | None = None
        for attempt in range(max(self.max_restart_attempts, 1)):
            if attempt:
                time.sleep(min(0.1 * 2 ** (attempt - 1), 2.0))
            try:
                LeanServer.restart(self)
                self.restart_count += 1
                self.last_restart = Restart.of(kind, self.generation, error, memory_reason)
                self._restart_note = self.last_restart.note()
                self._replay()
                return
            except ReplSetupError:
                raise
            except (LeanKernelError, OSError) as err:
                last_error = err
        self.kill()
        raise ReplCrashedError(
            f"The REPL could not be restarted after {self.max_restart_attempts} attempts: "
            f"{last_error}",
            exit_code=getattr(last_error, "exit_code", None),
        ) from last_error

    def _replay(self) -> None:
        self._kept.clear()
        for entry in self.session_cache.entries():
            self._replay_entry(entry)

    def _replay_entry(self, entry: SessionEntry) -> None:
        """Rebuild one kept state; one that cannot be rebuilt stays unmapped and is refused."""
        try:
            request = self._kept.resolve(entry.request, replay=None)
        except StaleStateError:
            return
        # Watched, but a failure is not recovered here: _recover retries, or the next request
        # finds the process gone.
        with self._watchdog.watching(self._proc):
            response = LeanServer.run(self, request)
        if not isinstance(response, LeanError):
            self._kept.remember(entry, response)


def _touched(error: LeanKernelError) -> bool:
    """Whether a failed request did something to the REPL (a cancel before sending did not)."""
    return not (isinstance(error, ReplCancelledError) and not error.started)

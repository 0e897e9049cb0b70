"""Talking to Lean REPL processes: ``LeanServer`` (one) and ``AutoLeanServer`` (self-healing).

A request is one JSON object followed by a blank line; the answer is one JSON object ended by a
blank line. The REPL cannot cancel a command, so timeouts, interrupts and memory limits end a
command by killing the process (as a tree), and ``AutoLeanServer`` then starts a fresh one and
replays what callers asked to keep.

Env and proof-state ids handed out by a server are unique across restarts: the ids of a new
process are shifted past every id handed out before, so an id from a dead process is refused
with ``StaleStateError`` instead of silently naming a different state in the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from typing import Any

from lean_kernel.engine.config import LeanREPLConfig, ReplLaunch
from lean_kernel.engine.framing import decode_response, encode_request, read_response, stderr_note
from lean_kernel.engine.heartbeats import HeartbeatSetting
from lean_kernel.engine.ids import KeptIds, ProcessIds
from lean_kernel.engine.memory import MemoryLimits, MemoryWatchdog, measure_repl_memory
from lean_kernel.engine.process import ReplProcess, kill_tree, monotonic_deadline
from lean_kernel.engine.protocol import (
    BaseREPLQuery,
    Command,
    FileCommand,
    LeanError,
    Response,
    parse_request,
    parse_response,
)
from lean_kernel.engine.restarts import Restart, RestartKind
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

#: The errors after which the REPL process is gone (it died, or was killed to stop a command).
_PROCESS_KILLERS = (
    ReplCrashedError,
    ReplTimeoutError,
    ReplCancelledError,
    ReplMemoryError,
    ReplProtocolError,
)


class LeanServer:
    """One Lean REPL process, started in its own session; one request at a time, thread-safe.

    ``run`` sends a typed request and returns the typed response (or ``LeanError`` when the REPL
    answers with an error object). Failures of the process itself raise: ``ReplTimeoutError``
    (a ``TimeoutError``), ``ReplCrashedError``, ``ReplProtocolError``, ``ReplMemoryError``,
    ``ReplCancelledError``; their messages carry the tail of the REPL's stderr.
    """

    def __init__(self, config: LeanREPLConfig | None = None) -> None:
        self.config = config if config is not None else LeanREPLConfig()
        self.launch: ReplLaunch = self.config.resolve()
        self._lock = threading.RLock()
        self._proc: ReplProcess | None = None
        self._finalizer: weakref.finalize | None = None
        self._ids = ProcessIds()
        self._restart_note = ""
        self._command_options = self.config.command_options(self.launch)
        self._heartbeat_limits = self.config.heartbeat_limits(self.launch)
        self.start()

    # -- process lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start a REPL process (a no-op when one is running)."""
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                return
            try:
                proc = ReplProcess(
                    self.launch.argv,
                    cwd=self.launch.cwd,
                    env=self.launch.env,
                    memory_hard_limit_mb=self.config.memory_hard_limit_mb,
                )
            except OSError as err:
                raise ReplSetupError(
                    f"Could not start the Lean REPL ({' '.join(self.launch.argv)}): {err}. "
                    "Check the REPL command (the LEAN_KERNEL_REPL environment variable or "
                    "LeanREPLConfig(repl_command=...)), or run `python -m lean_kernel doctor`."
                ) from err
            self._proc = proc
            self._finalizer = weakref.finalize(self, kill_tree, proc.popen)
            self._ids.new_process()

    def kill(self) -> None:
        """Kill the REPL process tree now; ids it handed out become stale."""
        with self._lock:
            proc, self._proc = self._proc, None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            if proc is not None:
                proc.kill()

    def restart(self) -> None:
        """Replace the REPL process with a fresh one."""
        with self._lock:
            self.kill()
            self.start()

    def close(self) -> None:
        """Kill the REPL process; the server cannot be used afterwards."""
        self.kill()

    def __enter__(self) -> LeanServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def generation(self) -> int:
        """How many REPL processes this server has started: it changes on every restart."""
        return self._ids.generation

    def is_alive(self) -> bool:
        """Whether the REPL process is running."""
        proc = self._proc
        return proc is not None and proc.is_alive()

    @property
    def pid(self) -> int | None:
        """The REPL process id (the root of its process tree), or None when not running."""
        proc = self._proc
        return proc.pid if proc is not None else None

    def memory_mb(self) -> float:
        """The REPL process tree's own memory (PSS, MB; see ``ReplMemory``), 0 when not
        running."""
        proc = self._proc
        return measure_repl_memory(proc.pid).own_mb if proc is not None else 0.0

    def stderr_tail(self, limit: int = 4000) -> str:
        """The last characters the REPL wrote to stderr."""
        proc = self._proc
        return proc.stderr_tail(limit) if proc is not None else ""

    # -- requests ------------------------------------------------------------------------------

    def run(
        self,
        request: BaseREPLQuery,
        *,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
        heartbeats: HeartbeatSetting | None = None,
    ) -> Response:
        """Send one request and return the REPL's typed answer.

        ``timeout`` (seconds; default ``config.timeout``) and a set ``cancel`` event both kill
        the REPL process, since Lean cannot abandon a command half way. So a command on an env
        first runs under Lean's ``maxHeartbeats`` (``heartbeats``, default ``config.heartbeats``;
        see ``engine.heartbeats``): over it, it fails as a Lean error and the REPL lives on.
        """
        if not isinstance(request, BaseREPLQuery):
            raise TypeError(
                f"run() takes a request model such as Command(cmd=...), not "
                f"{type(request).__name__}; use run_dict() for raw JSON objects"
            )
        payload = request.to_wire()
        with self._lock:
            if not isinstance(request, (Command, FileCommand)):
                return parse_response(request, self._roundtrip(payload, timeout, cancel))
            payload = {**self._command_options, **payload}
            limits, generation = self._heartbeat_limits, self._ids.generation
            payload, timeout = limits.apply(
                payload, timeout, heartbeats, generation, cancel, self._roundtrip
            )
            answer = self._roundtrip(payload, timeout, cancel)
            limits.observe(payload, answer, generation)
        return parse_response(request, answer)

    def run_dict(
        self,
        data: dict[str, Any],
        *,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Send a raw JSON request and return the raw JSON answer (ids translated as in run).

        The dict is checked first: the REPL exits on a request it cannot read, so a mistyped
        request raises ``ValueError`` here and the REPL (and its states) live on.
        """
        if not isinstance(data, dict):
            raise TypeError(f"run_dict() takes a dict, not {type(data).__name__}")
        try:
            parse_request(data)
        except ValueError as err:
            raise ValueError(
                f"{err}. A request needs `cmd` (command), `path` (file), `tactic` + `proofState`"
                ", `pickleTo`, `unpickleEnvFrom` or `unpickleProofStateFrom`."
            ) from None
        with self._lock:
            return self._roundtrip(data, timeout, cancel)

    async def async_run(
        self, request: BaseREPLQuery, *, timeout: float | None = None, **kwargs: Any
    ) -> Response:
        """``run`` without blocking the event loop; cancelling the task kills the command."""
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(
                self.run, request, timeout=timeout, cancel=cancel, **kwargs
            )
        except asyncio.CancelledError:
            cancel.set()
            raise

    def _roundtrip(
        self, payload: dict[str, Any], timeout: float | None, cancel: threading.Event | None
    ) -> dict[str, Any]:
        """Send one request and read its answer, ids translated (the caller holds the lock)."""
        proc = self._proc
        if proc is None:
            raise ReplCrashedError(
                "The REPL process is not running (it was killed or closed); call restart(), "
                "or use AutoLeanServer, which restarts by itself."
            )
        if cancel is not None and cancel.is_set():  # nothing sent: the REPL is untouched
            raise ReplCancelledError("The command was cancelled before it was sent.", started=False)
        message = encode_request(self._ids.to_process(payload, self._restart_note))
        if timeout is None:
            timeout = self.config.timeout
        deadline = monotonic_deadline(timeout)

        def check() -> None:
            if cancel is not None and cancel.is_set():
                proc.kill()
                raise ReplCancelledError(
                    "The command was cancelled; the REPL process was killed.", started=True
                )
            if deadline is not None and time.monotonic() >= deadline:
                proc.kill()
                raise ReplTimeoutError(
                    f"The REPL did not answer within {timeout:g} s; its process was killed. "
                    "Raise the timeout (run(..., timeout=...) or LeanREPLConfig(timeout=...))"
                    " if the command needs longer.",
                    timeout=timeout,
                )

        # A REPL that died is not polled for first (a system call per request): writing to
        # it or reading from it meets its end (EOF), and _died says what became of it.
        try:
            proc.write(message, check)
            text = read_response(proc, deadline, cancel, check)
        except EOFError:
            raise self._died(proc) from None
        return self._ids.from_process(decode_response(proc, text))

    def _died(self, proc: ReplProcess) -> LeanKernelError:
        """The error for a REPL that stopped answering."""
        with contextlib.suppress(Exception):
            proc.popen.wait(timeout=2)
        code = proc.returncode
        proc.kill()
        return ReplCrashedError(
            f"The REPL process exited (code {code}) before answering." + stderr_note(proc),
            exit_code=code,
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
    long commands and kills it over the limit. ``last_restart`` says why the running process
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
        self._last_memory_check = 0.0
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
        with self._lock:
            self._ensure_healthy()
            request_here = self._kept.resolve(request, replay=self._replay_entry)
            watchdog = self._watchdog
            try:
                watchdog.watch(self._proc)
                try:
                    response = super().run(
                        request_here, timeout=timeout, cancel=cancel, heartbeats=heartbeats
                    )
                finally:
                    watchdog.unwatch()
            except _PROCESS_KILLERS as err:
                if _touched(err):
                    self._recover("request", err)
                raise
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
        with self._lock:
            try:
                with self._watchdog.watching(self._proc):
                    return super().run_dict(data, timeout=timeout, cancel=cancel)
            except _PROCESS_KILLERS as err:
                if _touched(err):
                    self._recover("request", err)
                raise

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
        proc = self._proc
        if proc is None:
            self._recover("stopped")
            return
        if proc.hung_up():
            self._recover("exited", self._died(proc))
            return
        now = time.monotonic()
        if now - self._last_memory_check >= 1.0:
            self._last_memory_check = now
            over = self._memory_limits.exceeded(proc, self._watchdog.sample(proc))
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

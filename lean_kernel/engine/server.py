"""Talking to a Lean REPL process: ``LeanServer`` (``engine.autoserver`` adds self-healing).

A request is one JSON object followed by a blank line; the answer is one JSON object ended by a
blank line. The REPL cannot cancel a command, so timeouts, interrupts and memory limits end a
command by killing the process (as a tree), and ``AutoLeanServer`` then starts a fresh one and
replays what callers asked to keep. A request with nothing to add or translate goes from its
model to JSON in one step (``framing.encode_query``): the common case, kept cheap.

Env and proof-state ids handed out by a server are unique across restarts: the ids of a new
process are shifted past every id handed out before, so an id from a dead process is refused
with ``StaleStateError`` instead of silently naming a different state in the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import weakref
from typing import Any

from lean_kernel.engine.config import LeanREPLConfig, ReplLaunch
from lean_kernel.engine.framing import (
    decode_response,
    encode_query,
    encode_request,
    read_response,
    stderr_note,
)
from lean_kernel.engine.heartbeats import HeartbeatSetting
from lean_kernel.engine.ids import ProcessIds
from lean_kernel.engine.memory import measure_repl_memory
from lean_kernel.engine.process import InputClosed, ReplProcess, kill_tree, monotonic_deadline
from lean_kernel.engine.protocol import (
    BaseREPLQuery,
    Command,
    FileCommand,
    Response,
    parse_request,
    parse_response,
)
from lean_kernel.errors import (
    LeanKernelError,
    ReplCancelledError,
    ReplCrashedError,
    ReplSetupError,
    ReplTimeoutError,
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
            raise not_a_request(request)
        with self._lock:
            try:
                return self._request(request, timeout, cancel, heartbeats)
            except UnsentRequest as unsent:
                raise unsent.error from None

    def _request(
        self,
        request: BaseREPLQuery,
        timeout: float | None,
        cancel: threading.Event | None,
        heartbeats: HeartbeatSetting | None,
    ) -> Response:
        """``run``'s work, the lock held: a command on an env goes under its heartbeat limit."""
        command = isinstance(request, (Command, FileCommand))
        limits = self._heartbeat_limits
        if not (command and (self._command_options or limits.enabled)) and (
            self._ids.same_in_process(request)
        ):  # nothing to add or translate: the model goes to JSON in one step
            return parse_response(request, self._send(encode_query(request), timeout, cancel))
        payload = request.to_wire()
        if command and self._command_options:
            payload = {**self._command_options, **payload}
        if not (command and limits.enabled):
            return parse_response(request, self._roundtrip(payload, timeout, cancel))
        generation = self._ids.generation
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
        check_dict(data)
        with self._lock:
            try:
                return self._roundtrip(data, timeout, cancel)
            except UnsentRequest as unsent:
                raise unsent.error from None

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
        return self._send(
            encode_request(self._ids.to_process(payload, self._restart_note)), timeout, cancel
        )

    def _send(
        self, message: bytes, timeout: float | None, cancel: threading.Event | None
    ) -> dict[str, Any]:
        """Write one encoded request and read its answer, ids translated (lock held)."""
        proc = self._proc
        if proc is None:
            raise ReplCrashedError(
                "The REPL process is not running (it was killed or closed); call restart(), "
                "or use AutoLeanServer, which restarts by itself."
            )
        if cancel is not None and cancel.is_set():  # nothing sent: the REPL is untouched
            raise ReplCancelledError("The command was cancelled before it was sent.", started=False)
        if timeout is None:
            timeout = self.config.timeout
        deadline = None if timeout is None else monotonic_deadline(timeout)
        check = (
            _no_limit
            if deadline is None and cancel is None
            else functools.partial(_give_up, proc, cancel, deadline, timeout)
        )
        # A REPL that died is not polled for first (a system call per request): writing to
        # it or reading from it meets its end, and _died says what became of it.
        try:
            proc.write(message, check)
        except InputClosed as closed:
            raise (self._died(proc) if closed.sent else UnsentRequest(self._died(proc))) from None
        try:
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


def _give_up(
    proc: ReplProcess, cancel: threading.Event | None, deadline: float | None, timeout: float | None
) -> None:
    """A request's check while it waits: kill the REPL and raise if it was cancelled or its
    ``deadline`` (``timeout`` seconds after it was sent) passed."""
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


def _no_limit() -> None:
    """The check of a request with neither deadline nor cancel: it may wait for ever."""


def not_a_request(request: object) -> TypeError:
    """The error for a ``run`` given something else than a request model."""
    return TypeError(
        f"run() takes a request model such as Command(cmd=...), not "
        f"{type(request).__name__}; use run_dict() for raw JSON objects"
    )


def check_dict(data: object) -> None:
    """Refuse a raw request the REPL could not read (it would exit, losing every state)."""
    if not isinstance(data, dict):
        raise TypeError(f"run_dict() takes a dict, not {type(data).__name__}")
    try:
        parse_request(data)
    except ValueError as err:
        raise ValueError(
            f"{err}. A request needs `cmd` (command), `path` (file), `tactic` + `proofState`"
            ", `pickleTo`, `unpickleEnvFrom` or `unpickleProofStateFrom`."
        ) from None


class UnsentRequest(Exception):
    """Raised inside the servers (never to their callers): the REPL was found dead when a
    request was written to it, so nothing reached it; ``error`` says what became of it.
    ``LeanServer`` raises ``error``; ``AutoLeanServer`` replaces the process and resends."""

    def __init__(self, error: LeanKernelError) -> None:
        super().__init__(str(error))
        self.error = error

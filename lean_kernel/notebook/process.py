"""The REPL a notebook runs in: which process is running now, and what a dead one was told.

Env and proof-state ids are numbered per REPL process, so every id the notebook keeps is paired
with the `ProcessKey` of the process that made it; when the key changes, those ids are dead and
the cells are replayed. This module is the notebook's only door to the server, and it words
what happened to the REPL (`describe_failure`, `describe_restart`) from the engine's typed
values.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lean_kernel.engine.autoserver import AutoLeanServer
from lean_kernel.engine.heartbeats import HeartbeatSetting
from lean_kernel.engine.imports import check_imports
from lean_kernel.engine.memory import describe_memory
from lean_kernel.engine.protocol import (
    Command,
    CommandResponse,
    LeanError,
    ProofStep,
    ProofStepResponse,
)
from lean_kernel.engine.restarts import Restart
from lean_kernel.errors import (
    LeanKernelError,
    ReplCancelledError,
    ReplCrashedError,
    ReplMemoryError,
    ReplProtocolError,
    ReplTimeoutError,
    exit_signal_name,
)

__all__ = [
    "NO_LIMIT",
    "CellResult",
    "NotebookRepl",
    "ProcessKey",
    "ReplUnavailableError",
    "StepResult",
    "describe_failure",
    "describe_restart",
    "interrupted_before_start",
    "unavailable",
]

#: What the REPL answers to a cell's command.
CellResult = CommandResponse | LeanError
#: What the REPL answers to one tactic.
StepResult = ProofStepResponse | LeanError

#: ``run(timeout=NO_LIMIT)`` runs a cell without a time limit whatever the default is.
NO_LIMIT = math.inf
# How long an empty command may take in a healthy REPL (it loads Lean's prelude).
_PROBE_TIMEOUT_S = 60.0


class ReplUnavailableError(ReplCrashedError):
    """No REPL can be started now; the document waits, unharmed, until one can."""


@dataclass(frozen=True)
class ProcessKey:
    """Names one REPL process of a notebook: ids built in any other process are dead.

    ``server`` counts the servers the notebook switched to (another config); ``generation``
    counts the processes that server started (each restart).
    """

    server: int
    generation: int


class NotebookRepl:
    """The server the cells run in, and the key of its running process.

    Timeouts here are the notebook's: None means no limit (the server would read None as its
    config's default, which the notebook's own default replaces).
    """

    def __init__(
        self, make_server: Callable[[], AutoLeanServer], server: AutoLeanServer | None = None
    ) -> None:
        self._make_server = make_server
        self._server = server
        self._servers = 0
        #: Lean's heartbeat limit for the cells (None: the server config's; `engine.heartbeats`)
        self.heartbeats: HeartbeatSetting | None = None

    @property
    def server(self) -> AutoLeanServer:
        """The server, started now (``make_server``) if it was not yet."""
        if self._server is None:
            self._server = self._make_server()
        return self._server

    def start(self) -> None:
        """Start the server now if it was not yet (a first start is no restart: no id dies)."""
        _ = self.server

    def restart(self) -> None:
        """A fresh REPL process: the first one if none was started, else a restart."""
        if self._server is None:
            self.start()
        else:
            self._server.restart()

    @property
    def started(self) -> AutoLeanServer | None:
        """The server if it was started (None: nothing has needed a REPL yet)."""
        return self._server

    @property
    def process(self) -> ProcessKey:
        """The running process (it changes when the server restarts or is replaced); before
        the server is started, a key no cell is current in (servers count processes from 1)."""
        server = self._server
        return ProcessKey(self._servers, 0 if server is None else server.generation)

    def last_restart(self) -> Restart | None:
        """Why the running process replaced the one before it, as the server recorded it; None
        when it is the server's first process (or the record is of an earlier restart)."""
        server = self._server
        restart = getattr(server, "last_restart", None)
        if isinstance(restart, Restart) and server is not None:
            return restart if restart.generation == server.generation else None
        return None

    def replace(self, make_server: Callable[[], AutoLeanServer], *, start: bool) -> None:
        """Run in servers from ``make_server`` from now on (every id of the old one is dead),
        starting one now if ``start`` (if that fails, nothing changes); close the old."""
        new = make_server() if start else None
        old, self._server = self._server, new
        self._make_server = make_server
        self._servers += 1
        if old is not None:
            old.close()

    def close(self) -> None:
        """Stop the server, if one was started (the next use starts one again)."""
        if self._server is not None:
            self._server.close()

    def command(
        self,
        text: str,
        env: int | None,
        timeout: float | None,
        cancel: threading.Event | None,
        heartbeats: HeartbeatSetting | None = None,
    ) -> CellResult:
        """Elaborate ``text`` on ``env`` (None: a fresh environment); ``heartbeats``: the cell's
        own limit (None: ``self.heartbeats``). Imports that left an empty environment are an
        error naming them (``engine.imports``: the REPL itself does not say so)."""
        request = Command(cmd=text, env=env)
        limit = self.heartbeats if heartbeats is None else heartbeats
        server = self.server
        response = server.run(
            request, timeout=_server_timeout(timeout), cancel=cancel, heartbeats=limit
        )
        if env is not None:
            return response
        return check_imports(
            text,
            response,
            lambda probe: server.run(probe, timeout=_server_timeout(timeout), cancel=cancel),
            Path(server.launch.cwd),
        )

    def step(
        self, tactic: str, state: int, timeout: float | None, cancel: threading.Event | None
    ) -> StepResult:
        """Run one tactic on the REPL proof state ``state``."""
        request = ProofStep(tactic=tactic, proof_state=state)
        return self.server.run(request, timeout=_server_timeout(timeout), cancel=cancel)

    def failure_to_run(self) -> str:
        """Why the REPL cannot run even an empty command ("" when it can).

        When the REPL dies on a cell that ran before, this tells a REPL that no longer starts
        (a toolchain removed, a broken build) from a cell that really kills it (a timeout, too
        much memory).
        """
        try:
            self.server.run(Command(cmd=""), timeout=_PROBE_TIMEOUT_S)
        except LeanKernelError as err:
            return str(err).splitlines()[0] if str(err) else type(err).__name__
        return ""


def _server_timeout(timeout: float | None) -> float:
    return math.inf if timeout is None else timeout


def interrupted_before_start() -> ReplCancelledError:
    """The error of a cell an interrupt stopped before its command was sent (nothing lost)."""
    return ReplCancelledError(
        "Interrupted before the cell ran; the document was not changed.", started=False
    )


def unavailable(why: str) -> ReplUnavailableError:
    """The error of a cell that waits because the REPL cannot be started (``why``)."""
    return ReplUnavailableError(
        f"The REPL could not be started again: {why}. Fix it (see `python -m lean_kernel "
        "doctor`), then run the cell again: the document is replayed first."
    )


def describe_failure(err: BaseException) -> str:
    """What a command did to the REPL, to follow a cell label: "[3] timed out after 5 s"."""
    if isinstance(err, ReplCancelledError):
        return "was interrupted"
    if isinstance(err, ReplTimeoutError):
        return "timed out" if err.timeout is None else f"timed out after {err.timeout:g} s"
    if isinstance(err, ReplMemoryError):
        if err.by_system:
            return f"ran out of memory{_last_seen(err.last_seen_mb)}"
        return "went over the memory limit"
    if isinstance(err, ReplProtocolError):
        return "made the REPL write garbage"
    if isinstance(err, ReplCrashedError):
        if err.exit_code is None:
            return "crashed the REPL"
        return f"crashed the REPL ({_exit_words(err.exit_code)})"
    return "failed: " + (str(err).splitlines()[0] if str(err) else type(err).__name__)


def describe_restart(restart: Restart | None) -> str:
    """Why the REPL was replaced, to head a replay's summary, when no cell of the document is
    to blame (those name themselves): "REPL restarted: it died between cells (signal 9, ...)".
    """
    if restart is None or restart.kind == "requested":
        return "REPL restarted"
    if restart.kind == "exited":
        err = restart.error
        if isinstance(err, ReplMemoryError) and err.by_system:
            return (
                f"REPL restarted: it ran out of memory between cells{_last_seen(err.last_seen_mb)}"
            )
        code = restart.exit_code
        return "REPL restarted: it died between cells" + (
            f" ({_exit_words(code)})" if code is not None else ""
        )
    if restart.kind == "memory":
        return (
            f"REPL restarted: it was over its memory limit between cells ({restart.memory_reason})"
        )
    if restart.kind == "stopped":
        return "REPL restarted: its process had been stopped"
    what = describe_failure(restart.error) if restart.error is not None else "failed"
    return f"REPL restarted because a command outside the document {what}"


def _exit_words(exit_code: int) -> str:
    """``exit code 3``, or ``signal 9, SIGKILL`` for a process a signal ended."""
    if exit_code >= 0:
        return f"exit code {exit_code}"
    name = exit_signal_name(exit_code) or ""
    return f"signal {-exit_code}" + (f", {name}" if name.startswith("SIG") else "")


def _last_seen(last_seen_mb: float | None) -> str:
    return "" if last_seen_mb is None else f" (last seen {describe_memory(last_seen_mb)})"

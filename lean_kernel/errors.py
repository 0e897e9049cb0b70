"""Exceptions a user of the engine can act on.

Each one subclasses the builtin that existing code already catches (a REPL timeout is a
``TimeoutError``, a dead REPL a ``ConnectionError`` ...), and its message says what happened and
what to do about it. What a layer above needs to decide or to word its own report is a typed
field (the limit that fired, the exit code, whether the command had started), never something to
read back out of the message. Every error pickles with its fields (batch results travel back
from worker processes).
"""

from __future__ import annotations

import copy
import signal
from typing import ClassVar, TypeVar

__all__ = [
    "LeanKernelError",
    "ReplCancelledError",
    "ReplCrashedError",
    "ReplMemoryError",
    "ReplProtocolError",
    "ReplSetupError",
    "ReplTimeoutError",
    "StaleStateError",
]

_E = TypeVar("_E", bound="LeanKernelError")


class LeanKernelError(Exception):
    """Base class of every error raised by lean_kernel."""

    #: The status a command that raised this counts as (``lean_kernel.engine.outcome``).
    outcome: ClassVar[str] = "exception"

    def reworded(self: _E, message: str) -> _E:
        """The same error (type and fields) with another message, e.g. with context in front."""
        twin = copy.copy(self)
        twin.args = (message,)
        return twin


class ReplTimeoutError(LeanKernelError, TimeoutError):
    """A request took longer than its timeout; the REPL process was killed.

    ``timeout`` is the limit that fired, in seconds.
    """

    outcome = "timeout"

    def __init__(self, message: str = "", *, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class ReplCrashedError(LeanKernelError, ConnectionError):
    """The REPL process exited or closed its output while a request was pending.

    ``exit_code`` is the process's exit status when known (negative: killed by that signal).
    """

    outcome = "crashed"

    def __init__(self, message: str = "", *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    @property
    def signal_name(self) -> str | None:
        """``SIGKILL`` ... when a signal ended the process, else None."""
        return exit_signal_name(self.exit_code)


class ReplProtocolError(LeanKernelError, ValueError):
    """The REPL wrote something that is not a framed JSON response."""

    outcome = "crashed"


class ReplMemoryError(LeanKernelError, MemoryError):
    """The REPL used too much memory and was killed: by lean_kernel over one of its limits, or
    by the system (the out-of-memory killer's SIGKILL) when memory ran out.

    ``reason`` says which limit, in words (``the REPL used 9100 MB > max_process_memory=8000``).
    ``last_seen_mb`` is the REPL's memory at the last sample before it died, when sampled.
    ``exit_code`` is set (``-9``) when the system killed it, None when lean_kernel did; see
    ``by_system``.
    """

    outcome = "crashed"

    def __init__(
        self,
        message: str = "",
        *,
        reason: str = "",
        last_seen_mb: float | None = None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.last_seen_mb = last_seen_mb
        self.exit_code = exit_code

    @property
    def by_system(self) -> bool:
        """Whether the system ran out of memory and killed the REPL (not one of our limits):
        the fix is more memory for the machine or container, not a higher limit."""
        return self.exit_code is not None

    @property
    def signal_name(self) -> str | None:
        """``SIGKILL`` when the system killed the REPL, else None."""
        return exit_signal_name(self.exit_code)


class ReplCancelledError(LeanKernelError, InterruptedError):
    """The request was cancelled (interrupt, or a cancel flag).

    ``started``: whether the command had reached the REPL (then the REPL process was killed);
    False when it was stopped before, so nothing was lost.
    """

    outcome = "cancelled"

    def __init__(self, message: str = "", *, started: bool = True) -> None:
        super().__init__(message)
        self.started = started


class StaleStateError(LeanKernelError, LookupError):
    """An env or proof-state id belongs to a REPL process that no longer exists."""


class ReplSetupError(LeanKernelError, RuntimeError):
    """No usable Lean toolchain or REPL could be found or built."""


def exit_signal_name(exit_code: int | None) -> str | None:
    """The name of the signal a negative exit code stands for (``SIGKILL`` for -9), else None."""
    if exit_code is None or exit_code >= 0:
        return None
    try:
        return signal.Signals(-exit_code).name
    except ValueError:
        return f"signal {-exit_code}"

"""Exceptions a user of the engine can act on.

Each one subclasses the builtin that existing code already catches (a REPL timeout is a
``TimeoutError``, a dead REPL a ``ConnectionError`` ...), and its message says what happened and
what to do about it.
"""

from __future__ import annotations


class LeanKernelError(Exception):
    """Base class of every error raised by lean_kernel."""


class ReplTimeoutError(LeanKernelError, TimeoutError):
    """A request took longer than its timeout; the REPL process was killed."""


class ReplCrashedError(LeanKernelError, ConnectionError):
    """The REPL process exited or closed its output while a request was pending."""


class ReplProtocolError(LeanKernelError, ValueError):
    """The REPL wrote something that is not a framed JSON response."""


class ReplMemoryError(LeanKernelError, MemoryError):
    """The REPL went over its memory limit and was killed."""


class ReplCancelledError(LeanKernelError, InterruptedError):
    """The request was cancelled (interrupt, or a cancel flag); the REPL process was killed."""


class StaleStateError(LeanKernelError, LookupError):
    """An env or proof-state id belongs to a REPL process that no longer exists."""


class ReplSetupError(LeanKernelError, RuntimeError):
    """No usable Lean toolchain or REPL could be found or built."""

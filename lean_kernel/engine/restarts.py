"""Why a server last replaced its REPL process, as a value the layers above can read.

A restart kills every env and proof-state id of the old process, so whoever shows the user a
replay (the notebook's "REPL restarted ..." line, a stale id's error) must say why it happened.
That is known only where the restart is decided, so the server records it here, typed, with the
generation of the process it started; a reader checks the generation against the process it
sees, and never reuses a reason that belongs to an earlier restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from lean_kernel.errors import LeanKernelError, ReplMemoryError, exit_signal_name

__all__ = ["Restart", "RestartKind"]

#: What made the server replace its process:
#: ``request``: a request killed it (timeout, crash, memory, interrupt, garbage output);
#: ``exited``: it died between requests (an outside kill, the out-of-memory killer ...);
#: ``memory``: it was over a memory limit when the next request came;
#: ``stopped``: it had been stopped (``kill()``) and the next request started a new one;
#: ``requested``: ``restart()`` was called.
RestartKind = Literal["request", "exited", "memory", "stopped", "requested"]


@dataclass(frozen=True)
class Restart:
    """One replacement of the REPL process: why, and which process it started.

    ``generation`` is the server's generation once the new process started (compare it with
    ``server.generation``: equal means the running process is the one this restart started).
    ``error`` is what the old process died of, when it died (``request`` and ``exited``);
    ``exit_code`` its exit status when known (negative: killed by that signal); ``memory_reason``
    the limit it was over; ``last_seen_mb`` its memory at the last sample.
    """

    kind: RestartKind
    generation: int
    error: LeanKernelError | None = None
    exit_code: int | None = None
    memory_reason: str = ""
    last_seen_mb: float | None = None
    #: when the new process started (``time.time()``)
    at: float = field(default_factory=time.time)

    @classmethod
    def of(
        cls,
        kind: RestartKind,
        generation: int,
        error: LeanKernelError | None = None,
        memory_reason: str = "",
    ) -> Restart:
        """The record of a restart, with the typed fields of the error that caused it."""
        last_seen = None
        if isinstance(error, ReplMemoryError):
            memory_reason = memory_reason or error.reason
            last_seen = error.last_seen_mb
        return cls(
            kind,
            generation,
            error=error,
            exit_code=getattr(error, "exit_code", None),
            memory_reason=memory_reason,
            last_seen_mb=last_seen,
        )

    @property
    def signal_name(self) -> str | None:
        """``SIGKILL`` ... when a signal ended the old process, else None."""
        return exit_signal_name(self.exit_code)

    def note(self) -> str:
        """For a stale id's error: `` (restart at 12:00:00 after ReplTimeoutError)``."""
        at = time.strftime("%H:%M:%S", time.localtime(self.at))
        if self.kind == "request" and self.error is not None:
            why = f" after {type(self.error).__name__}"
        elif self.kind == "exited":
            why = f" (the process had exited{_exit_words(self.exit_code)})"
        elif self.kind == "memory":
            why = f" because {self.memory_reason}"
        elif self.kind == "stopped":
            why = " (the process had been stopped)"
        else:
            why = " by restart()"
        return f" (restart at {at}{why})"


def _exit_words(exit_code: int | None) -> str:
    if exit_code is None:
        return ""
    name = exit_signal_name(exit_code)
    return f", {name}" if name else f", code {exit_code}"

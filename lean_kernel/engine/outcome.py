"""The one vocabulary of outcomes: did a response fail, did it use ``sorry``, what status is it.

Every layer that counts, colours or reports results (batch tables, progress bars, the cell
model, the kernel's error replies) asks here, so "failed" means the same thing everywhere and a
failure can never be counted as a success somewhere else. A ``sorry`` is not a failure of the
command, but it is never ``ok`` either: it has its own status.
"""

from __future__ import annotations

from typing import Literal

from lean_kernel.engine.protocol import (
    SORRY_WARNINGS,
    CommandResponse,
    LeanError,
    Message,
    Pos,
    ProofStepResponse,
    Response,
    Sorry,
)
from lean_kernel.errors import LeanKernelError

__all__ = [
    "ACCEPTED",
    "ResponseReading",
    "FAILED",
    "STATUSES",
    "Status",
    "error_message",
    "failed",
    "messages_of",
    "sorries_of",
    "status_of",
    "status_of_exception",
    "uses_sorry",
]


Status = Literal["pending", "ok", "sorry", "error", "timeout", "crashed", "cancelled", "exception"]
"""``ok``: Lean accepted the command; ``sorry``: accepted but with ``sorry``; ``error``: Lean
reported an error (or refused the request); ``timeout``: over its time limit; ``crashed``: the
REPL died, misbehaved or ran out of memory; ``cancelled``: not run (or stopped) by a cancel;
``exception``: any other Python exception."""

#: Every finished status, in the order summaries list them.
STATUSES: tuple[Status, ...] = (
    "ok",
    "sorry",
    "error",
    "timeout",
    "crashed",
    "cancelled",
    "exception",
)
#: Statuses of a command Lean elaborated without error (a ``sorry`` is accepted, not proved).
ACCEPTED: frozenset[str] = frozenset({"ok", "sorry"})
#: Statuses of a command that did not go through: counted and shown as failures everywhere.
FAILED: frozenset[str] = frozenset({"error", "timeout", "crashed", "cancelled", "exception"})


def failed(response: Response) -> bool:
    """Whether Lean rejected the command: an error message, a failed proof step (the kernel
    rejected the proof) or a request the REPL refused. Warnings, ``sorry`` and infos are not."""
    if isinstance(response, LeanError):
        return True
    if isinstance(response, ProofStepResponse) and response.proof_status.startswith("Error"):
        return True
    return response.has_errors()


def uses_sorry(response: Response) -> bool:
    """Whether an accepted command relies on ``sorry`` (a sorry in it, or Lean's warning)."""
    if isinstance(response, LeanError):
        return False
    return bool(response.sorries) or any(m.data in SORRY_WARNINGS for m in response.messages)


def status_of(response: Response) -> Status:
    """The status of a command the REPL answered."""
    if failed(response):
        return "error"
    return "sorry" if uses_sorry(response) else "ok"


def status_of_exception(error: BaseException) -> Status:
    """The status of a command whose run raised ``error`` (each error type says its own)."""
    return error.outcome if isinstance(error, LeanKernelError) else "exception"  # type: ignore[return-value]


def messages_of(response: Response) -> list[Message]:
    """Lean's messages; a request the REPL refused reads as one error message."""
    if isinstance(response, LeanError):
        return [error_message(response.message)]
    return list(response.messages)


def sorries_of(response: Response) -> list[Sorry]:
    """A command's sorries (none for a refused request or a proof step's goals)."""
    return list(response.sorries) if isinstance(response, CommandResponse) else []


def error_message(text: str) -> Message:
    """An error message with no position, for a failure that is not one of Lean's diagnostics."""
    return Message(pos=Pos(line=0, column=0), severity="error", data=text)


class ResponseReading:
    """Lean's messages, errors and sorries of ``self.response``, for the result objects users
    keep (a batch item, a ``%lean`` cell); ``response`` is None when Lean gave no answer."""

    response: Response | None

    @property
    def messages(self) -> list[Message]:
        """Lean's messages; a request the REPL refused shows as one error message."""
        return messages_of(self.response) if self.response is not None else []

    @property
    def errors(self) -> list[Message]:
        """The messages of severity ``error``."""
        return [m for m in self.messages if m.severity == "error"]

    @property
    def sorries(self) -> list[Sorry]:
        """The command's sorries."""
        return sorries_of(self.response) if self.response is not None else []

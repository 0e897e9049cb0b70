"""The one vocabulary of outcomes: did a response fail, did it use ``sorry``, what status is it.

Every layer that counts, colours or reports results (batch tables, progress bars, the cell
model, the kernel's error replies) asks here, so "failed" means the same thing everywhere and a
failure can never be counted as a success somewhere else. A ``sorry`` is not a failure of the
command, but it is never ``ok`` either: it has its own status.

Two words, one level apart:

* the **status** (`Status`, `STATUSES`): what kind of end a command had, the value code
  filters on (``item.status``, ``results.statuses``); stable, and LeanInteract-like.
* the **outcome** (`Outcome`, `OUTCOMES`): the word a user reads in tables, summaries and
  ``to_pandas()``. It is the status, except for three finer kinds:

  - ``out of heartbeats``: Lean stopped the command at its heartbeat limit
    (``maxHeartbeats``). Its status stays ``error`` (Lean reported it as an error, and the REPL
    kept every state), but the fix is a higher limit (or a faster proof), not a corrected one.
  - ``out of memory``: the REPL was killed for memory, by lean_kernel over one of its limits
    or by the system (``ReplMemoryError``). Its status stays ``crashed`` (the REPL died and was
    replaced), but the fix is memory (a higher limit, fewer workers), not a bug report.
  - ``stopped``: a cancel or interrupt came while the command ran, and its REPL was killed.
    Its status stays ``cancelled``; ``cancelled`` as an outcome means it never started.

Each finished command has exactly one outcome, so counts by outcome add up to the total, and
every outcome but ``ok`` and ``sorry`` is in `FAILED`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, get_args

from lean_kernel.engine.heartbeats import stopped_at
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
from lean_kernel.errors import LeanKernelError, ReplCancelledError, ReplMemoryError

__all__ = [
    "ACCEPTED",
    "ResponseReading",
    "FAILED",
    "OUTCOMES",
    "Outcome",
    "STATUSES",
    "Status",
    "describe_counts",
    "error_message",
    "failed",
    "messages_of",
    "outcome_of",
    "sorries_of",
    "status_of",
    "status_of_exception",
    "uses_sorry",
]


Status = Literal["pending", "ok", "sorry", "error", "timeout", "crashed", "cancelled", "exception"]
"""``ok``: Lean accepted the command; ``sorry``: accepted but with ``sorry``; ``error``: Lean
reported an error (or refused the request; outcome ``out of heartbeats`` when the error is
only its heartbeat limit); ``timeout``: over its wall-clock limit (the REPL was killed);
``crashed``: the REPL died or misbehaved (outcome ``out of memory`` when it was killed for
memory); ``cancelled``: not run (outcome ``cancelled``), or killed while running (outcome
``stopped``), by a cancel or interrupt; ``exception``: any other Python exception."""

#: Every finished status, in the order summaries list them.
STATUSES: tuple[Status, ...] = get_args(Status)[1:]

Outcome = Literal[
    "pending",
    "ok",
    "sorry",
    "error",
    "out of heartbeats",
    "timeout",
    "crashed",
    "out of memory",
    "stopped",
    "cancelled",
    "exception",
]
"""The word shown for a command: its `Status`, or ``out of heartbeats`` (an ``error`` that is
Lean stopping the command at its heartbeat limit), ``out of memory`` (a ``crashed`` whose REPL
was killed for memory) or ``stopped`` (a ``cancelled`` command that was running: its REPL was
killed)."""

#: Every finished outcome, in the order summaries and tables list them.
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)[1:]
#: Statuses (and outcomes) of a command Lean elaborated without error (a ``sorry`` is accepted,
#: not proved; it is never counted as ``ok``).
ACCEPTED: frozenset[str] = frozenset({"ok", "sorry"})
#: Statuses and outcomes of a command that did not go through: counted and shown as failures
#: everywhere.
FAILED: frozenset[str] = frozenset(OUTCOMES) - ACCEPTED


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


def outcome_of(
    status: str, response: Response | None = None, error: BaseException | None = None
) -> Outcome:
    """The word shown for a command of ``status`` that answered ``response`` or raised ``error``:
    ``out of memory`` for a crash that was a memory kill, ``out of heartbeats`` for an error
    that is only Lean's heartbeat limit (another error beside it keeps it an ``error``),
    ``stopped`` for a cancel that killed the running command, else the status."""
    if status == "crashed" and isinstance(error, ReplMemoryError):
        return "out of memory"
    if status == "cancelled" and isinstance(error, ReplCancelledError) and error.started:
        return "stopped"
    if status == "error" and response is not None and not isinstance(response, LeanError):
        errors = [m for m in response.messages if m.severity == "error"]
        if errors and all(stopped_at(m) is not None for m in errors):
            return "out of heartbeats"
    return status  # type: ignore[return-value]  # every status is an outcome


def describe_counts(counts: Mapping[str, int], words: Iterable[str] = OUTCOMES) -> str:
    """``2 ok, 1 sorry, 1 out of memory``: the non-zero ``counts`` in the order of ``words``."""
    return ", ".join(f"{counts[word]} {word}" for word in words if counts.get(word))


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

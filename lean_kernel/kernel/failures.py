"""How a cell that did not succeed reads: the ``ename`` and words of its error reply.

One place decides this for every way a cell can fail without a Lean error: wrong magic usage
(``UsageError``), a misplaced import or unknown proof state, a REPL that cannot be set up, a
command the REPL died on (timeout, memory, crash, interrupt: the REPL was restarted and the
document replayed), and a bug of lean_kernel itself. The enames are those Jupyter users know
(``KeyboardInterrupt``, ``TimeoutError``, ``MemoryError``) where one fits.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from lean_kernel.engine.memory import describe_memory
from lean_kernel.errors import (
    LeanKernelError,
    ReplCancelledError,
    ReplMemoryError,
    ReplSetupError,
    ReplTimeoutError,
)
from lean_kernel.kernel.host import MagicError
from lean_kernel.notebook import ImportPlacementError, ProofStateError, ReplUnavailableError

__all__ = ["Failure", "failure_of", "headline", "is_expected"]

_RED = "\x1b[1;31m"
_RESET = "\x1b[0m"
# The builtin names Jupyter users know, where one fits; other errors go by their own name.
_FAILURE_NAMES: dict[type, str] = {
    ReplCancelledError: "KeyboardInterrupt",
    ReplTimeoutError: "TimeoutError",
    ReplMemoryError: "MemoryError",
}
_AFTER = "the REPL was restarted and the document replayed"


@dataclass(frozen=True)
class Failure:
    """An error reply's fields: ``traceback`` is what a frontend prints for it."""

    ename: str
    evalue: str
    traceback: list[str]


def headline(ename: str, evalue: str) -> str:
    """The one traceback line of an error without more to say (red name, like IPython's)."""
    return f"{_RED}{ename}{_RESET}: {evalue}"


def is_expected(error: Exception) -> bool:
    """Whether ``error`` is one a user can act on (else it is a lean_kernel bug, to log)."""
    return isinstance(error, (MagicError, LeanKernelError))


def failure_of(error: Exception, label: str) -> Failure:
    """How the cell ``label`` failed with ``error`` reads."""
    if isinstance(error, MagicError):
        return _plain("UsageError", str(error))
    if isinstance(error, (ImportPlacementError, ProofStateError)):
        return _plain(type(error).__name__, str(error))
    if isinstance(error, ReplSetupError):
        return Failure("ReplSetupError", str(error), str(error).splitlines())
    if isinstance(error, LeanKernelError):
        return _repl_failure(error, label)
    lines = traceback.format_exception(error)
    return Failure(
        "InternalError",
        f"{type(error).__name__}: {error} (a lean_kernel bug; the kernel is still usable)",
        [line.rstrip("\n") for line in lines],
    )


def _plain(ename: str, evalue: str) -> Failure:
    return Failure(ename, evalue, [headline(ename, evalue)])


def _repl_failure(error: LeanKernelError, label: str) -> Failure:
    """A command the REPL died on (timeout, crash, memory, interrupt), or no REPL at all."""
    ename = _FAILURE_NAMES.get(type(error), type(error).__name__)
    if isinstance(error, ReplCancelledError):
        if error.started:
            evalue = f"Interrupted: {_AFTER}."
        else:
            evalue = "Interrupted before the cell ran; the document was not changed."
    elif isinstance(error, ReplTimeoutError):
        evalue = (
            f"{label} took longer than its time limit; {_AFTER}. For more time put "
            "`%timeout SECONDS` on the cell's first line (or run it alone for every cell)."
        )
    elif isinstance(error, ReplMemoryError) and error.by_system:
        seen = (
            ""
            if error.last_seen_mb is None
            else f" (last seen {describe_memory(error.last_seen_mb)})"
        )
        evalue = (
            f"{label}: the REPL ran out of memory{seen} and the system killed it; {_AFTER}. "
            "Give Lean more memory (close other programs, or use a machine or container with "
            "more), or split the work."
        )
    elif isinstance(error, ReplMemoryError):
        evalue = (
            f"{label} went over the REPL's memory limit; {_AFTER}. Raise "
            f"LEAN_KERNEL_MEMORY_LIMIT_MB, or split the work. ({error})"
        )
    elif isinstance(error, ReplUnavailableError):
        evalue = str(error)
    else:
        evalue = f"The REPL failed on {label}; {_AFTER}."
    details = [line for line in str(error).splitlines() if line.strip()]
    return Failure(ename, evalue, [headline(ename, evalue), *details])

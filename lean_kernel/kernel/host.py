"""What the kernel's magics see of the kernel: a narrow host interface, not ``LeanKernel``.

Magics (``lean_kernel.kernel.magics``) change a ``CellPlan``, raise ``MagicError`` on wrong
usage, and act through a ``Host``: its ``Output`` (display, stream, note) and the few operations
on the document and its REPL that magics exist for. ``LeanShell`` is the host; the Jupyter
kernel is only its protocol adapter. Keeping this interface below both the shell and the magics
is what lets the magics be read (and tested) without the kernel, and keeps imports acyclic.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from lean_kernel.batch.args import BatchArgs
from lean_kernel.batch.keeper import BatchKeeper
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.heartbeats import HeartbeatSetting
from lean_kernel.engine.resultstore import ResultStore
from lean_kernel.engine.settings import Settings
from lean_kernel.kernel.exercises import Exercise, Exercises
from lean_kernel.notebook import Notebook
from lean_kernel.notebook.process import CellResult

__all__ = ["CellPlan", "Host", "MagicError", "Output", "Reply"]

#: An execute reply's content (``{"status": "ok"}`` or the ``error`` fields), as Jupyter wants it.
Reply = dict[str, Any]


class MagicError(ValueError):
    """A magic was used wrongly (unknown name, bad argument); the message says how to fix it."""


@dataclass
class CellPlan:
    """What is left to do for a cell once magics have had their say.

    ``source`` is the cell as shown (diagnostics are drawn on it); ``body`` the Lean code left to
    run, starting after ``body_offset`` lines of ``source``.
    """

    source: str
    body: str
    body_offset: int
    timeout: float | None = None
    #: Lean's maxHeartbeats for this cell (``%heartbeats`` above the code); None: the session's
    heartbeats: HeartbeatSetting | None = None
    #: a magic took the body (tactics, a batch ...): there is no Lean code left to run
    done: bool = False


class Output(Protocol):
    """Where a cell's output goes: the user sees it under the cell being run."""

    def display(self, data: dict[str, Any]) -> None:
        """A rich display: a mimebundle (``text/plain``, ``text/html`` ...)."""

    def stream(self, text: str, name: str = "stdout") -> None:
        """Program output (``stdout``) or warnings (``stderr``)."""

    def note(self, text: str) -> None:
        """A kernel notice (replays, settings), kept apart from the program's output."""

    def error(self, ename: str, evalue: str, traceback: list[str] | None = None) -> Reply:
        """Show an error; returns the matching error reply."""

    def progress(self, title: str) -> AbstractContextManager[Callable[[str], None]]:
        """A display updated in place with each step said to it (setup can take minutes)."""

    def send(self, msg_type: str, content: dict[str, Any]) -> None:
        """``display_data`` / ``update_display_data`` content, for a batch's progress view."""


class Host(Protocol):
    """What magics may use: the output, the settings, the document and the batch keeper."""

    output: Output
    #: what the user asked for; ``settings.timeout`` is the limit per cell (``%timeout``)
    settings: Settings
    #: the warm batch pool and the batches kept for ``%batch``
    keeper: BatchKeeper
    #: the exercises of the session (``%exercise``)
    exercises: Exercises

    @property
    def notebook(self) -> Notebook:
        """The document (its first use sets the REPL up)."""
        ...

    def set_timeout(self, seconds: float | None) -> None:
        """The limit for every cell from now on (None: no limit)."""

    def describe_repl(self) -> str:
        """What the kernel runs and why, with its limits."""
        ...

    def set_heartbeats(self, value: HeartbeatSetting) -> None:
        """Lean's heartbeat limit for every cell and batch from now on."""

    def describe_heartbeats(self) -> str:
        """The heartbeat limit per cell, and whether the REPL takes it."""
        ...

    def switch_config(self, config: LeanREPLConfig) -> None:
        """Run the REPL from ``config`` and replay the document into it."""

    def restart_repl(self) -> None:
        """A fresh REPL with the document replayed into it."""

    def run_proof(self, plan: CellPlan, proof_state: int | None) -> Reply:
        """Run ``plan.body`` as tactics on ``proof_state`` and show the goals left."""
        ...

    async def run_batch(self, args: BatchArgs, commands: list[str]) -> Reply:
        """Check ``commands`` on the batch pool until done; show the results table."""
        ...

    def ask(self, text: str) -> CellResult | None:
        """Lean's answer to ``text`` on the end of the document, which stays as it was (None:
        the REPL failed on it, or was interrupted)."""
        ...

    def exercise(self, exercise: Exercise) -> Reply | None:
        """Declare ``exercise``; when its name is in the document already, check it now (an
        error reply when it is not proved as stated)."""
        ...

    def result_store(self) -> ResultStore | None:
        """The kernel's result cache (opened at first use); None when it is turned off."""
        ...

"""Proof states named by stable handles: what ``%proof`` works on, across REPL restarts.

The REPL numbers proof states per process, and a new process knows none of them. The notebook
therefore shows *handles*: small numbers it owns, each remembering how its state was made (a
``sorry`` of a document cell, or tactics run on another handle), so that after a restart it can
be rebuilt on demand in the new process: the cell's sorry comes back with the replayed document,
and tactics are run again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from lean_kernel.engine.protocol import ProofStepResponse
from lean_kernel.errors import LeanKernelError
from lean_kernel.notebook.process import ProcessKey, StepResult

__all__ = ["ProofStateError", "ProofStates"]


class ProofStateError(LeanKernelError, LookupError):
    """A proof-state handle that does not exist or cannot be rebuilt."""


@dataclass
class _Handle:
    """How to rebuild one proof state, and its REPL id in the process that built it last.

    ``cell``: sorry number ``index`` of the document cell ``cell_id`` (while it has
    ``cell_text``); ``steps``: ``steps`` run one by one on handle ``parent``; ``step-sorry``:
    sorry number ``index`` of what the steps of handle ``parent`` left.
    """

    kind: Literal["cell", "steps", "step-sorry"]
    cell_id: str = ""
    cell_text: str = ""
    index: int = 0
    parent: int = -1
    steps: tuple[str, ...] = ()
    process: ProcessKey | None = None
    repl_id: int | None = None
    sorry_ids: list[int] = field(default_factory=list)


class ProofStates:
    """The handles a notebook handed out. Numbers are never reused, even after a reset."""

    def __init__(self) -> None:
        self._handles: dict[int, _Handle] = {}
        self._next = 0

    def __contains__(self, handle: object) -> bool:
        return handle in self._handles

    def clear(self) -> None:
        """Forget every handle."""
        self._handles.clear()

    def _new(self, record: _Handle) -> int:
        handle = self._next
        self._next += 1
        self._handles[handle] = record
        return handle

    def for_cell(self, cell_id: str, text: str, count: int, existing: list[int]) -> list[int]:
        """Handles for the ``count`` sorries of a cell: the ones it had (same text), plus new."""
        handles = existing[:count]
        for index in range(len(handles), count):
            handles.append(self._new(_Handle("cell", cell_id, text, index)))
        return handles

    def after_steps(
        self,
        parent: int,
        steps: tuple[str, ...],
        process: ProcessKey,
        repl_id: int,
        sorries: list[int],
    ) -> int:
        """A handle for the state that ``steps`` run on ``parent`` led to (REPL id known)."""
        record = _Handle("steps", parent=parent, steps=steps, process=process, repl_id=repl_id)
        record.sorry_ids = list(sorries)
        return self._new(record)

    def step_sorries(self, parent: int, count: int) -> list[int]:
        """Handles for the sorries left by the steps of handle ``parent``."""
        return [self._new(_Handle("step-sorry", parent=parent, index=i)) for i in range(count)]

    def resolve(
        self,
        handle: int,
        process: ProcessKey,
        *,
        cell_sorry: Callable[[int, str, str, int], int],
        step: Callable[[str, int], StepResult],
    ) -> int:
        """The REPL id of ``handle`` in ``process``, rebuilding it there if needed.

        ``cell_sorry(handle, cell_id, text, index)`` gives a document cell's sorry state (or
        raises `ProofStateError`); ``step(tactic, state)`` runs one tactic in the REPL.
        """
        record = self._handles.get(handle)
        if record is None:
            raise ProofStateError(f"There is no proof state {handle}.")
        if record.kind == "cell":
            return cell_sorry(handle, record.cell_id, record.cell_text, record.index)
        if record.process == process and record.repl_id is not None:
            return record.repl_id
        rebuild = {"cell_sorry": cell_sorry, "step": step}
        if record.kind == "step-sorry":
            self.resolve(record.parent, process, **rebuild)
            parent = self._handles[record.parent]
            if record.index >= len(parent.sorry_ids):
                raise ProofStateError(f"Proof state {handle} could not be rebuilt.")
            return parent.sorry_ids[record.index]
        state = self.resolve(record.parent, process, **rebuild)
        response: StepResult | None = None
        for tactic in record.steps:
            response = step(tactic, state)
            if not isinstance(response, ProofStepResponse):
                raise ProofStateError(
                    f"Proof state {handle} could not be rebuilt after a restart: `{tactic}` "
                    f"now fails ({response.message.strip()})."
                )
            state = response.proof_state
        record.process, record.repl_id = process, state
        if isinstance(response, ProofStepResponse):
            record.sorry_ids = [s.proof_state for s in response.sorries]
        return state

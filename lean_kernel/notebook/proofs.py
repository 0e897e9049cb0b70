"""Proof mode: cells of tactics run on a ``sorry``'s proof state, one top-level tactic per step.

A proof cell is not part of the document's env chain. It starts on a proof state named by a
handle (see `proofstates`), and the state it leaves gets a new handle, so the next proof cell
can continue from it. Results returned from here show handles, never raw REPL proof-state ids.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from lean_kernel.engine.outcome import failed
from lean_kernel.engine.protocol import ProofStepResponse, Sorry
from lean_kernel.errors import LeanKernelError
from lean_kernel.notebook.document import Document
from lean_kernel.notebook.process import (
    NotebookRepl,
    StepResult,
    describe_failure,
    interrupted_before_start,
    unavailable,
)
from lean_kernel.notebook.proofstates import ProofStateError, ProofStates
from lean_kernel.notebook.replay import Replayer, RunOutcome
from lean_kernel.text.syntax import mask

__all__ = ["AfterProof", "AtHandle", "ProofCell", "ProofMode", "ProofRun", "split_tactics"]


def split_tactics(text: str) -> list[tuple[int, str]]:
    """Split a tactic block into top-level tactics: ``(0-based line in text, tactic text)``.

    A line at the block's smallest indentation starts a tactic; more indented lines continue it
    (``induction n with`` and its cases are one tactic). Blank and comment-only lines are skipped.
    Each tactic is one proof step, so the goals can be shown after the last one and an error is
    placed on its own line.
    """
    lines = text.split("\n")
    masked = mask(text).text.split("\n")
    code = [i for i, line in enumerate(masked) if line.strip()]
    if not code:
        return []
    margin = min(len(masked[i]) - len(masked[i].lstrip()) for i in code)
    steps: list[tuple[int, list[str]]] = []
    for i in code:
        indent = len(masked[i]) - len(masked[i].lstrip())
        if indent <= margin or not steps:
            steps.append((i, [lines[i][margin:]]))
        else:
            first = steps[-1][0]
            steps[-1] = (first, [lines[j][margin:] for j in range(first, i + 1)])
    return [(first, "\n".join(part).rstrip()) for first, part in steps]


@dataclass(frozen=True)
class AtHandle:
    """A proof cell starts on the proof state with this handle."""

    handle: int


@dataclass(frozen=True)
class AfterProof:
    """A proof cell starts where the proof cell ``cell_id`` leaves off (whatever it holds now)."""

    cell_id: str


@dataclass(eq=False)
class ProofCell:
    """A cell of tactics run on a proof state; it is not part of the document's env chain."""

    id: str
    label: str
    tactics: str
    start: AtHandle | AfterProof
    #: the handle of the state its tactics left (None: not run, or they failed)
    handle: int | None = None
    #: the REPL's proof status (``Completed``, ``Incomplete: ...``), ``error``, or how it failed
    status: str = ""
    elapsed: float = 0.0
    #: when it last ran, among proof cells
    order: int = 0


@dataclass
class ProofRun(RunOutcome):
    """What running tactics did.

    ``response`` is the last step's answer with its proof state (and sorries) as handles;
    ``line`` is the 0-based line (in the tactic text) of the step it answers.
    """

    cell: ProofCell | None
    start: int | None = None
    handle: int | None = None
    line: int = 0
    steps: int = 0

    @property
    def complete(self) -> bool:
        """Whether no goals are left."""
        return isinstance(self.response, ProofStepResponse) and (
            self.response.proof_status == "Completed"
        )


class ProofMode:
    """The proof cells of a notebook and the running of their tactics.

    The caller serialises calls (the notebook's lock).
    """

    def __init__(
        self, document: Document, repl: NotebookRepl, replayer: Replayer, states: ProofStates
    ) -> None:
        self.document = document
        self.repl = repl
        self.replayer = replayer
        self.states = states
        self._proofs: dict[str, ProofCell] = {}
        self._order = 0

    @property
    def cells(self) -> list[ProofCell]:
        """The proof cells, in the order they last ran."""
        return sorted(self._proofs.values(), key=lambda p: p.order)

    def forget(self, cell_id: str) -> None:
        """Drop the proof cell with this id (its cell now holds something else), if any."""
        self._proofs.pop(cell_id, None)

    def clear(self) -> None:
        """Drop every proof cell."""
        self._proofs.clear()

    def prove(
        self,
        tactics: str,
        *,
        cell_id: str,
        label: str | None,
        proof_state: int | None,
        timeout: float | None,
        cancel: threading.Event,
    ) -> ProofRun:
        """Run ``tactics`` as the proof cell ``cell_id`` (see `Notebook.prove`).

        ``timeout`` bounds each step (None: no limit). Raises `ProofStateError` (nothing
        changed) when there is nothing to start from.
        """
        previous = self._proofs.get(cell_id)
        start = self._start(proof_state, previous, cell_id)
        self.document.remove(cell_id)
        self._order += 1
        proof = ProofCell(
            cell_id, label or f"proof {self._order}", tactics, start, order=self._order
        )
        run = ProofRun(proof)
        before = self.replayer.bring_up_to_date(len(self.document.cells), cancel)
        if before.cells or before.failed or before.interrupted or before.broken:
            run.rechecks.append(before)
        if before.broken:
            run.error = unavailable(before.broken)
            return run
        if before.interrupted:
            run.error = interrupted_before_start()
            return run
        self._proofs[cell_id] = proof
        started = time.monotonic()
        try:
            self._run_steps(run, tactics, timeout, cancel)
        except ProofStateError:
            if previous is not None:
                self._proofs[cell_id] = previous
            else:
                self._proofs.pop(cell_id, None)
            raise
        except LeanKernelError as err:
            run.error = err
            proof.status = describe_failure(err)
            run.replay = self.replayer.recover(err, cancel, proof.label)
        run.elapsed = proof.elapsed = time.monotonic() - started
        return run

    def _start(
        self, proof_state: int | None, previous: ProofCell | None, cell_id: str
    ) -> AtHandle | AfterProof:
        """Where a proof cell starts: the handle given; else where it started last time; else
        where the last unfinished proof cell left off; else the document's last sorry."""
        if proof_state is not None:
            if proof_state not in self.states:
                raise ProofStateError(
                    f"There is no proof state {proof_state}. Proof states are the numbers "
                    "shown with goals (`goal (proof state N)`); run the cell with the `sorry` "
                    "to see them."
                )
            return AtHandle(proof_state)
        if previous is not None:
            return previous.start
        last = max(
            (p for p in self._proofs.values() if p.id != cell_id),
            key=lambda p: p.order,
            default=None,
        )
        if last is not None and last.handle is not None and last.status.startswith("Incomplete"):
            return AfterProof(last.id)
        handle = self.document.last_sorry()
        if handle is not None:
            return AtHandle(handle)
        raise ProofStateError(
            "There is no `sorry` in the document to work on. Write the statement with "
            "`:= by sorry` in a cell and run it, then run `%proof` with tactics."
        )

    def _start_handle(self, proof: ProofCell) -> int:
        if isinstance(proof.start, AtHandle):
            return proof.start.handle
        source = self._proofs.get(proof.start.cell_id)
        if source is None or source.handle is None:
            raise ProofStateError(
                f"This proof continues {source.label if source else 'a proof cell'}, which has "
                "no proof state now (it failed, or its cell was changed). Run it again, or give "
                "a proof state: `%proof N`."
            )
        return source.handle

    def _run_steps(
        self, run: ProofRun, tactics: str, timeout: float | None, cancel: threading.Event
    ) -> None:
        proof = run.cell
        assert proof is not None
        start = run.start = self._start_handle(proof)
        state = self._resolve(start, timeout, cancel)
        steps = split_tactics(tactics)
        if not steps:
            raise ProofStateError("%proof needs tactics on the lines below it, e.g. `intro x`.")
        done: list[str] = []
        response: StepResult | None = None
        for line, tactic in steps:
            response = self.repl.step(tactic, state, timeout, cancel)
            run.line, run.steps = line, run.steps + 1
            if failed(response):
                break
            done.append(tactic)
            state = response.proof_state
        assert response is not None
        handle = start
        if done:
            complete = isinstance(response, ProofStepResponse) and len(done) == run.steps
            sorry_ids = [s.proof_state for s in response.sorries] if complete else []
            handle = self.states.after_steps(
                start, tuple(done), self.repl.process, state, sorry_ids
            )
        public = self._public_step(response, handle, len(done) == run.steps)
        run.response = public
        run.handle = proof.handle = handle if not run.has_errors else None
        if isinstance(public, ProofStepResponse) and not run.has_errors:
            proof.status = public.proof_status
        else:
            proof.status = "error"

    def _public_step(self, response: StepResult, handle: int, last_ok: bool) -> StepResult:
        """The step's answer with its proof state (and its sorries') as handles."""
        if not isinstance(response, ProofStepResponse):
            return response
        update: dict[str, object] = {"proof_state": handle}
        if last_ok and response.sorries:
            handles = self.states.step_sorries(handle, len(response.sorries))
            update["sorries"] = [
                sorry.model_copy(update={"proof_state": sub})
                for sorry, sub in zip(response.sorries, handles, strict=True)
            ]
        return response.model_copy(update=update)

    def _resolve(self, handle: int, timeout: float | None, cancel: threading.Event) -> int:
        """The REPL proof-state id of a handle in the running process, rebuilt if needed."""

        def step(tactic: str, state: int) -> StepResult:
            return self.repl.step(tactic, state, timeout, cancel)

        return self.states.resolve(
            handle, self.repl.process, cell_sorry=self._cell_sorry, step=step
        )

    def _cell_sorry(self, handle: int, cell_id: str, text: str, index: int) -> int:
        """The REPL proof-state id of sorry ``index`` of a document cell that still has ``text``."""
        cell = self.document.find(cell_id)
        if cell is None or cell.text != text or cell.failure is not None:
            raise ProofStateError(
                f"Proof state {handle} belonged to a cell that has changed or is gone; run the "
                "cell with the `sorry` again and use the proof state it shows."
            )
        sorries: list[Sorry] = getattr(cell.result, "sorries", [])
        if index >= len(sorries) or sorries[index].proof_state is None:
            raise ProofStateError(
                f"Proof state {handle} is gone: {cell.label} no longer has that `sorry`."
            )
        return int(sorries[index].proof_state)

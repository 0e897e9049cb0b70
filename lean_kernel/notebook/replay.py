"""Bringing the document up to date: elaborating cells, re-checking stale ones, replaying.

Before anything runs, the cells above it are brought up to date in order, so a later cell never
sees an outdated env. When the REPL process is replaced (crash, timeout, memory, interrupt,
restart) every env id dies with it, so the cells are replayed into the new process, again just by
bringing the document up to date. A cell whose command killed the REPL stays in the document as
*failed*: it contributes nothing, and it is not replayed (that would kill the REPL again) until
it is run again. Cells answered from the persistent result store (`stored`) have no env: they
are elaborated for real, in order, the first time a live env below them is needed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from lean_kernel.engine.heartbeats import HeartbeatSetting, heartbeat_stop
from lean_kernel.engine.outcome import failed
from lean_kernel.engine.protocol import CommandResponse, LeanError, ProofStepResponse
from lean_kernel.errors import LeanKernelError, ReplCancelledError, StaleStateError
from lean_kernel.notebook.cache import CachedResult, ResultCache
from lean_kernel.notebook.document import Cell, Document
from lean_kernel.notebook.process import (
    NotebookRepl,
    ProcessKey,
    describe_failure,
    describe_restart,
)
from lean_kernel.notebook.proofstates import ProofStates
from lean_kernel.notebook.stored import CellStore, StoredAnswer

__all__ = ["MAX_RESTARTS", "Recheck", "Replayer"]

#: How often bringing the document up to date may start over because the REPL was replaced
#: underneath it (each start over follows a restart the server did on its own).
MAX_RESTARTS = 5
_SUMMARY_LABELS = 8
# How each kind of recheck reads: (verb, one cell, several cells).
_WORDS = {
    "stale": ("Re-checked", "stale cell", "stale cells"),
    "replay": ("Replayed", "cell", "cells"),
    "cached": (
        "Elaborated",
        "cell answered from the result cache",
        "cells answered from the result cache",
    ),
}


@dataclass
class Recheck:
    """Cells brought up to date before or after a run: stale ones, a replay after a restart, or
    cells answered from the result cache that a live env is needed below (``cached``)."""

    kind: Literal["stale", "replay", "cached"]
    why: str
    cells: list[Cell] = field(default_factory=list)
    elapsed: float = 0.0
    new_errors: list[Cell] = field(default_factory=list)
    fixed: list[Cell] = field(default_factory=list)
    failed: list[Cell] = field(default_factory=list)
    #: interrupted before the end; the cells left will be brought up to date before the next run
    interrupted: bool = False
    left: int = 0
    #: why the REPL could not be started again (the cells left wait for it, unharmed)
    broken: str = ""

    def summary(self) -> str:
        """One line: what was re-checked or replayed, how long it took, and what went wrong."""
        count = len(self.cells)
        what, one, several = _WORDS[self.kind]
        head = f"{what} {count} {one if count == 1 else several}"
        if count:
            head += f" {_labels(self.cells)}"
        head += f" in {_seconds(self.elapsed)}"
        if self.why:
            head = f"{self.why}; {head[0].lower()}{head[1:]}"
        parts = [head]
        for cell in self.failed:
            parts.append(f"{cell.label} {cell.failure}: it adds nothing now (run it to retry)")
        if self.new_errors:
            parts.append(
                "new errors in "
                + ", ".join(f"{c.label} ({c.first_error()})" for c in self.new_errors)
            )
        if self.fixed:
            parts.append(f"errors gone from {_labels(self.fixed)}")
        if self.broken:
            parts.append(
                f"stopped: the REPL could not be started again ({self.broken}); {self.left} "
                f"cell{'s' if self.left != 1 else ''} will be replayed once it can"
            )
        elif self.interrupted:
            parts.append(
                f"interrupted with {self.left} cell{'s' if self.left != 1 else ''} left, "
                "brought up to date before the next cell runs"
            )
        elif not (self.failed or self.new_errors):
            parts.append("no new errors")
        return "; ".join(parts) + "."


class Replayer:
    """Elaborates the document's cells in the REPL, from the result cache when it can; keeps
    Lean's answers in the persistent store (``stored``) and says when a cell may be served
    from it (`from_store`).

    ``timeout`` is the default limit per cell (None: no limit); ``restart_reason`` says why the
    REPL was last replaced, for the next replay's summary. The caller serialises calls.
    """

    #: why the running process replaced the one before, told by the notebook, and that process
    _reason: tuple[ProcessKey, str] | None = None

    def __init__(
        self,
        document: Document,
        repl: NotebookRepl,
        cache: ResultCache,
        states: ProofStates,
        timeout: float | None,
        stored: CellStore,
    ) -> None:
        self.document = document
        self.repl = repl
        self.cache = cache
        self.states = states
        self.timeout = timeout
        self.stored = stored

    @property
    def restart_reason(self) -> str:
        """Why the running REPL process replaced the one before, to head a replay's summary.

        A reason the notebook gave (a cell it ran killed the REPL, ``%restart`` ...) holds for
        the process started then only; for any later one the server's typed record says why
        (the REPL died between cells, went over memory ...), so a reason is never reused.
        """
        told = self._reason
        if told is not None and told[0] == self.repl.process:
            return told[1]
        return describe_restart(self.repl.last_restart())

    @restart_reason.setter
    def restart_reason(self, why: str) -> None:
        """Say why the REPL was just replaced (the reason holds for the running process)."""
        self._reason = (self.repl.process, why)

    def elaborate(self, cell: Cell, parent: int | None, cancel: threading.Event) -> bool:
        """Elaborate the cell on ``parent`` (or take the cached result); returns whether cached.

        A result Lean gave is also kept in the persistent store (`stored`), under the cell's
        chain key. Raises what the server raises, and `StaleStateError` when the server
        restarted on its own before sending (its health check); the cell is only changed on
        success.
        """
        self.repl.start()  # before reading the process: a first start replaces nothing
        process = self.repl.process
        timeout = cell.timeout if cell.timeout is not None else self.timeout
        parent_chain = self.document.parent_chain(self.document.cells.index(cell))
        setting = cell.heartbeats if cell.heartbeats is not None else self.repl.heartbeats
        chain = self.stored.key(parent_chain, cell.text, setting, timeout)
        hit = self.cache.get(process, parent, cell.text)
        cached = hit is not None
        if hit is None:
            started = time.monotonic()
            result = self.repl.command(cell.text, parent, timeout, cancel, cell.heartbeats)
            hit = CachedResult(result, time.monotonic() - started)
            if self.repl.process != process:
                # The answer is from a new process the other cells are not in yet.
                raise StaleStateError("the REPL process was replaced before the command ran")
            if heartbeat_stop(result) is None:  # a limit can change: run it again then
                self.cache.put(process, parent, cell.text, hit)
            self.stored.remember(chain, result, hit.elapsed)
        cell.set_result(hit.result, parent, hit.elapsed, process)
        cell.chain, cell.parent_chain = chain, parent_chain
        sorries = hit.result.sorries if isinstance(hit.result, CommandResponse) else []
        cell.sorry_handles = self.states.for_cell(
            cell.id, cell.text, len(sorries), cell.sorry_handles
        )
        return cached

    def from_store(
        self,
        index: int,
        text: str,
        timeout: float | None,
        heartbeats: HeartbeatSetting | None,
    ) -> StoredAnswer | None:
        """The stored answer to serve a cell at ``index`` with ``text`` from, sending nothing
        to Lean; None when it must run (or is answered by the in-memory cache).

        Only when every cell above is current, virtual or failed (else they must be brought up
        to date, and the cell runs after them), and the same text on the same live env was not
        run in this process (the in-memory cache answers that and keeps the env live). An answer
        Lean took longer than ``timeout`` to give is not served: the cell would time out now.
        ``timeout`` and ``heartbeats`` are the cell's own (None: the notebook's).
        """
        document, process = self.document, self.repl.process
        if not self.stored.enabled or not document.settled_above(index, process):
            return None
        live = self.repl.started is not None and not document.has_virtual(index)
        if live and self.cache.get(process, document.parent_env(index), text) is not None:
            return None
        timeout = timeout if timeout is not None else self.timeout
        setting = heartbeats if heartbeats is not None else self.repl.heartbeats
        return self.stored.answer(document.parent_chain(index), text, setting, timeout)

    def bring_up_to_date(self, upto: int, cancel: threading.Event) -> Recheck:
        """Bring the cells above ``upto`` up to date, in order; report what that took.

        A cell on which the REPL dies is marked failed and the walk starts over in the new
        process; an interrupt stops the walk (what is left is done before the next run).
        """
        document = self.document
        start = document.known_current(self.repl.process)
        process = self.repl.process
        dead = any(c.process not in (None, process) for c in document.cells[start:upto])
        recheck = Recheck("replay" if dead else "stale", self.restart_reason if dead else "")
        started = time.monotonic()
        had_errors: dict[int, bool] = {}
        virtual = {id(c) for c in document.cells[:upto] if c.from_store}
        index = self._walk(recheck, start, upto, cancel, had_errors)
        recheck.elapsed = time.monotonic() - started
        document.mark_current(index, self.repl.process)
        if recheck.interrupted or recheck.broken:
            statuses = document.statuses(self.repl.process)[:upto]
            recheck.left = sum(
                status == "stale" or cell.from_store
                for status, cell in zip(statuses, document.cells, strict=False)
            )
        if (
            recheck.kind == "stale"
            and recheck.cells
            and all(id(c) in virtual for c in recheck.cells)
        ):
            recheck.kind = "cached"  # only cells the result cache had answered
        _compare_errors(recheck, had_errors)
        return recheck

    def recover(self, err: LeanKernelError, cancel: threading.Event, label: str) -> Recheck:
        """After the REPL died on a command: replay the whole document into the new process.

        The interrupt that caused it is spent; a second one stops the replay. An interrupt that
        came before the cell ran killed the REPL in the cell that was being brought up to date,
        which the reason already names.
        """
        told = self._reason
        named = told is not None and told[0] == self.repl.process
        if isinstance(err, ReplCancelledError):
            cancel.clear()
        if not (isinstance(err, ReplCancelledError) and not err.started and named):
            self.restart_reason = f"REPL restarted because {label} {describe_failure(err)}"
        recheck = self.bring_up_to_date(len(self.document.cells), cancel)
        recheck.kind = "replay"
        recheck.why = self.restart_reason
        return recheck

    def _walk(
        self,
        recheck: Recheck,
        index: int,
        upto: int,
        cancel: threading.Event,
        had_errors: dict[int, bool],
    ) -> int:
        """Elaborate the cells from ``index`` on that are not current; returns where it stopped.

        ``had_errors`` records, by ``id(cell)``, whether each cell had errors before.
        """
        cells = self.document.cells
        restarts = 0
        parent = self.document.parent_env(index)  # the env of the last cell so far that built one
        while index < min(upto, len(cells)):
            cell = cells[index]
            if cell.failure is not None or cell.is_current(parent, self.repl.process):
                parent = parent if cell.env is None else cell.env
                index += 1
                continue
            if cancel.is_set():
                recheck.interrupted = True
                break
            if cell.process not in (None, self.repl.process):
                recheck.kind = "replay"
                recheck.why = recheck.why or self.restart_reason
            had_errors.setdefault(id(cell), cell.has_errors)
            try:
                self.elaborate(cell, parent, cancel)
            except StaleStateError:
                pass  # the server replaced its process on its own: its record says why
            except ReplCancelledError:
                self.restart_reason = f"REPL restarted because {cell.label} was interrupted"
                recheck.interrupted = True
                break
            except LeanKernelError as err:
                broken = self.repl.failure_to_run()
                if broken:
                    # The REPL itself no longer works: not this cell's fault; keep it for later.
                    recheck.broken = broken
                    break
                cell.set_failure(describe_failure(err))
                recheck.failed.append(cell)
                self.restart_reason = f"REPL restarted because {cell.label} {cell.failure}"
            else:
                if cell not in recheck.cells:
                    recheck.cells.append(cell)
                parent = parent if cell.env is None else cell.env
                index += 1
                continue
            restarts += 1
            if restarts > MAX_RESTARTS + len(cells):
                break
            recheck.kind = "replay"
            recheck.why = self.restart_reason
            index, parent = 0, None
        return index


def _compare_errors(recheck: Recheck, had_errors: dict[int, bool]) -> None:
    """Sort the re-checked cells into new errors and fixed ones; drop those that failed."""
    for cell in recheck.cells:
        if cell.failure is not None:
            continue
        if cell.has_errors and not had_errors.get(id(cell), False):
            recheck.new_errors.append(cell)
        elif not cell.has_errors and had_errors.get(id(cell), False):
            recheck.fixed.append(cell)
    recheck.cells = [c for c in recheck.cells if c.failure is None]


def _labels(cells: list[Cell]) -> str:
    labels = [c.label for c in cells]
    if len(labels) > _SUMMARY_LABELS:
        return f"{' '.join(labels[:3])} … {' '.join(labels[-2:])}"
    return " ".join(labels)


def _seconds(elapsed: float) -> str:
    return f"{elapsed * 1000:.0f} ms" if elapsed < 1 else f"{elapsed:.1f} s"


@dataclass(kw_only=True)
class RunOutcome:
    """What running a cell or tactics left, besides its own details: Lean's answer, or the
    error the REPL died with, and what was brought up to date before and replayed after."""

    #: Lean's answer, with proof states as notebook handles; None when it did not run to the end
    response: CommandResponse | ProofStepResponse | LeanError | None = None
    elapsed: float = 0.0
    #: why there is no answer (a timeout, a crash, an interrupt ...)
    error: LeanKernelError | None = None
    #: cells brought up to date before it ran
    rechecks: list[Recheck] = field(default_factory=list)
    #: the replay after the REPL died on it
    replay: Recheck | None = None

    @property
    def has_errors(self) -> bool:
        """Whether it failed: a Lean error, a refused request, or a dead REPL."""
        if self.error is not None:
            return True
        return self.response is not None and failed(self.response)

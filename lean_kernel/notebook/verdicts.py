"""The verdicts of a cell's declarations, asked of Lean on the cell's env, the document untouched.

A cell's declarations are judged by ``engine.verdict.verdicts_for``: ``#print axioms`` (and, for
an exercise, ``example : STATEMENT := @NAME``) sent as a command on the env the cell built. Its
answer makes a new env no cell is built on, so the document never sees it; one command per cell
with declarations, none for a cell without.

The check commands go through the caches the cells use: the in-memory one (an identical re-run
sends nothing) and the persistent store, under the key of the text on the cell's env (its
chain). So a cell answered from the store (virtual: it has no env) is judged from the store too;
when the store does not have the check, the cell is elaborated for real first (the document is
brought up to date down to it), never judged "proved" without one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lean_kernel.engine.heartbeats import OFF, HeartbeatSetting
from lean_kernel.engine.outcome import outcome_of, status_of
from lean_kernel.engine.protocol import Command, LeanError, Response
from lean_kernel.engine.verdict import DeclVerdict, verdicts_for
from lean_kernel.errors import LeanKernelError
from lean_kernel.notebook.cache import CachedResult, ResultCache
from lean_kernel.notebook.document import Cell, Document
from lean_kernel.notebook.process import NotebookRepl, describe_failure
from lean_kernel.notebook.replay import Recheck, Replayer
from lean_kernel.notebook.stored import CellStore

__all__ = ["CellVerdicts", "VerdictChecker"]


@dataclass
class CellVerdicts:
    """The verdicts of one cell's declarations, in the order it declares them.

    ``recheck``: the cells elaborated first (the cell had no live env: it was stale, or answered
    from the result store without its check); ``asked``: whether Lean was asked now (False: the
    caches answered, or the cell declares nothing).
    """

    verdicts: list[DeclVerdict]
    recheck: Recheck | None = None
    asked: bool = False


class VerdictChecker:
    """Judges cells of a document (see the module docstring); the caller serialises calls."""

    def __init__(
        self,
        document: Document,
        repl: NotebookRepl,
        replayer: Replayer,
        cache: ResultCache,
        stored: CellStore,
    ) -> None:
        self.document = document
        self.repl = repl
        self.replayer = replayer
        self.cache = cache
        self.stored = stored

    def check(
        self,
        cell: Cell,
        statements: Mapping[str, str] | None,
        allowed: frozenset[str],
        cancel: threading.Event,
    ) -> CellVerdicts:
        """The verdicts of ``cell``'s declarations (``statements``: reference statements by
        name, for exercises; ``allowed``: the axioms a proof may use)."""
        names = cell.declares
        if not names:
            return CellVerdicts([])
        if cell not in self.document.cells:
            why = f"{cell.label} is no longer in the document"
            return CellVerdicts([DeclVerdict(name, "unknown", reason=why) for name in names])
        if cell.failure is not None:
            why = f"{cell.label} {cell.failure}"
            return CellVerdicts([DeclVerdict(name, "error", reason=why) for name in names])
        if cell.from_store:
            ask = _StoreOnly(self.stored, cell, self.timeout_of(cell), self.heartbeats_of(cell))
            verdicts = self._judge(cell, -1, ask, statements, allowed)
            if not ask.missed:
                return CellVerdicts(verdicts)
        recheck = None
        index = self.document.cells.index(cell)
        if cell.from_store or self.document.statuses(self.repl.process)[index] == "stale":
            self.repl.start()
            recheck = self.replayer.bring_up_to_date(index + 1, cancel)
            if cell.failure is not None or cell.from_store or cell.result is None:
                why = recheck.broken or f"{cell.label} could not be elaborated to check it"
                unknown = [DeclVerdict(name, "unknown", reason=why) for name in names]
                return CellVerdicts(unknown, recheck, asked=True)
        if cell.env is None:  # the REPL refused the command: its verdicts are `error`
            return CellVerdicts(self._judge(cell, 0, _no_env, statements, allowed), recheck)
        live = _Live(self, cell, cancel)
        verdicts = self._judge(cell, cell.env, live, statements, allowed)
        return CellVerdicts(verdicts, recheck, asked=live.asked or recheck is not None)

    def _judge(
        self,
        cell: Cell,
        env: int,
        run: Callable[[Command], Response],
        statements: Mapping[str, str] | None,
        allowed: frozenset[str],
    ) -> list[DeclVerdict]:
        assert cell.result is not None
        outcome = outcome_of(status_of(cell.result), cell.result)
        return verdicts_for(run, env, cell.text, outcome, allowed, statements)

    def timeout_of(self, cell: Cell) -> float | None:
        """The time limit of the cell's checks: the cell's own (None: the notebook's)."""
        return cell.timeout if cell.timeout is not None else self.replayer.timeout

    def heartbeats_of(self, cell: Cell) -> HeartbeatSetting | None:
        """The limit the checks run under: the cell's own, so they run on its env as it is
        (the env carries that limit); none for a document's first cell, which ran without."""
        if cell.parent_env is None and cell.parent_chain in (None, ""):
            return OFF
        return cell.heartbeats if cell.heartbeats is not None else self.repl.heartbeats


def _no_env(command: Command) -> Response:
    """The answer for a cell without an env (a refused command): nothing to ask Lean on."""
    return LeanError(message="the cell built no env to ask about")


class _StoreOnly:
    """Answers a virtual cell's checks from the persistent store; a miss is recorded (and
    answered with a refusal, so the verdict of that pass is never used)."""

    def __init__(
        self,
        stored: CellStore,
        cell: Cell,
        timeout: float | None,
        heartbeats: HeartbeatSetting | None,
    ) -> None:
        self.stored, self.cell = stored, cell
        self.timeout, self.heartbeats = timeout, heartbeats
        self.missed = False

    def __call__(self, command: Command) -> Response:
        answer = self.stored.answer(self.cell.chain, command.cmd, self.heartbeats, self.timeout)
        if answer is None:
            self.missed = True
            return LeanError(message="not in the result store")
        return answer.response


class _Live:
    """Sends a live cell's checks to the REPL, through the in-memory cache and the store."""

    def __init__(self, checker: VerdictChecker, cell: Cell, cancel: threading.Event) -> None:
        self.checker, self.cell, self.cancel = checker, cell, cancel
        self.asked = False

    def __call__(self, command: Command) -> Response:
        checker, cell = self.checker, self.cell
        repl, text, env = checker.repl, command.cmd, command.env
        process = repl.process
        hit = checker.cache.get(process, env, text)
        if hit is not None:
            return hit.result
        timeout, heartbeats = checker.timeout_of(cell), checker.heartbeats_of(cell)
        stored = checker.stored.answer(cell.chain, text, heartbeats, timeout)
        if stored is not None:
            return stored.response
        self.asked = True
        started = time.monotonic()
        try:
            result = repl.command(text, env, timeout, self.cancel, heartbeats)
        except LeanKernelError as err:
            # The REPL was replaced: the document is replayed before the next cell runs.
            what = describe_failure(err)
            checker.replayer.restart_reason = f"REPL restarted because checking {cell.label} {what}"
            return LeanError(message=f"the check {what}")
        if repl.process != process:
            return LeanError(message="the REPL was replaced while checking")
        elapsed = time.monotonic() - started
        checker.cache.put(process, env, text, CachedResult(result, elapsed))
        key = checker.stored.key(cell.chain, text, heartbeats, timeout)
        checker.stored.remember(key, result, elapsed)
        return result

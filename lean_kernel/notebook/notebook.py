"""The kernel's model of a notebook: cells in document order over one self-healing REPL.

A Jupyter notebook is not a Lean file: cells are run in any order, edited and run again, and the
REPL can die half way. ``Notebook`` keeps the promise of DESIGN.md anyway: the env at the end of
the document always equals the document read top to bottom, like a Lean file in an editor.

* A cell run for the first time is appended; running it again replaces it in place: it
  elaborates on the env of the cell before it, so editing ``def f`` and running it again never
  hits "already declared". Cells after it go stale and are re-checked before anything after them
  runs (`document`, `replay`).
* Results are cached by (REPL process, parent env, text): an identical re-run sends nothing
  (`cache`). With a persistent result store, answers also outlive the process: a cell whose
  text, and the text of every cell its env was built from, were run before is answered from
  the store without a REPL (`stored`); it has no env until a live one is needed below it.
* When the REPL process is replaced (crash, timeout, memory, interrupt, restart) the document is
  replayed into the new one; a cell that killed the REPL stays in the document as *failed*.
* ``import`` is only legal in a command sent without env, so imports live in the first cell: an
  import cell run while the document has none is moved to the top; a second import cell is
  refused with `ImportPlacementError`.
* Proof mode (``prove``) runs tactics on a ``sorry``'s proof state, named by handles that stay
  valid across REPL restarts (`proofs`, `proofstates`).

This class composes those parts and serialises the calls. Nothing here knows Jupyter: the kernel
and the ``%%lean`` IPython magic both drive it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from lean_kernel.engine.autoserver import AutoLeanServer
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.heartbeats import HeartbeatSetting, parse_heartbeats
from lean_kernel.engine.launch import ReplLaunch
from lean_kernel.engine.protocol import CommandResponse
from lean_kernel.engine.resultstore import ResultStore
from lean_kernel.engine.verdict import STANDARD_AXIOMS
from lean_kernel.errors import LeanKernelError, ReplCrashedError, StaleStateError
from lean_kernel.notebook.cache import ResultCache
from lean_kernel.notebook.document import Cell, CellStatus, Document
from lean_kernel.notebook.process import (
    CellResult,
    NotebookRepl,
    describe_failure,
    interrupted_before_start,
    unavailable,
)
from lean_kernel.notebook.proofs import ProofCell, ProofMode, ProofRun
from lean_kernel.notebook.proofstates import ProofStates
from lean_kernel.notebook.replay import MAX_RESTARTS, Recheck, Replayer, RunOutcome
from lean_kernel.notebook.report import table_rows
from lean_kernel.notebook.stored import CellStore
from lean_kernel.notebook.verdicts import CellVerdicts, VerdictChecker

__all__ = ["CellRun", "Notebook"]


@dataclass
class CellRun(RunOutcome):
    """What running one cell did.

    ``response`` is the cell's result with sorries' proof states replaced by notebook handles;
    None when the cell did not run to the end (``error`` says why). ``cached``: nothing was sent
    to Lean; ``from_store``: the answer came from the persistent result store (``cached`` too).
    """

    cell: Cell | None
    cached: bool = False
    from_store: bool = False


class Notebook:
    """An ordered document of Lean cells over one self-healing REPL (see the module docstring).

    Args:
        config: how to start the REPL (default: ``LeanREPLConfig()``).
        timeout: default seconds per cell (None: no limit).
        heartbeats: Lean's ``maxHeartbeats`` per cell, enforced before the timeout kills the REPL
            (a cell over it fails as a Lean error; nothing is replayed): ``"auto"`` (from the
            cell's timeout), ``"off"`` or a number; None: the config's (``"auto"``). See
            ``lean_kernel.engine.heartbeats``.
        max_process_memory: MB one REPL may use before it is killed and the document replayed.
        cache_size: how many (parent env, text) results to keep for identical re-runs.
        server: an already started server to use instead of making one from ``config``.
        store: the persistent result store (`engine.resultstore`; None: none): answers are kept
            there, and a cell run again with the same text on the same document above it is
            answered from it, in any later process, without asking Lean. With a store, the REPL
            is only started when a cell needs it.

    Not thread-safe by design of the REPL (one command at a time); calls are serialised.
    """

    def __init__(
        self,
        config: LeanREPLConfig | None = None,
        *,
        timeout: float | None = None,
        heartbeats: HeartbeatSetting | str | None = None,
        max_process_memory: float | None = None,
        cache_size: int = 4096,
        server: AutoLeanServer | None = None,
        store: ResultStore | None = None,
    ) -> None:
        heartbeats = None if heartbeats is None else parse_heartbeats(heartbeats)
        self.config = config if config is not None else LeanREPLConfig()
        self.max_process_memory = max_process_memory
        self._lock = threading.RLock()
        self._stored = CellStore(store, server.config if server is not None else self.config)
        self._repl = NotebookRepl(self._server_maker(self.config), server)
        if not self._stored.enabled:
            self._repl.start()  # without a store, every cell needs the REPL: start it now
        self._repl.heartbeats = heartbeats
        self._document = Document()
        self._states = ProofStates()
        self._cache = ResultCache(cache_size)
        self._replayer = Replayer(
            self._document, self._repl, self._cache, self._states, timeout, self._stored
        )
        self._proofs = ProofMode(self._document, self._repl, self._replayer, self._states)
        self._checker = VerdictChecker(
            self._document, self._repl, self._replayer, self._cache, self._stored
        )
        self._anonymous = 0

    @property
    def timeout(self) -> float | None:
        """Default seconds per cell and per proof step (None: no limit)."""
        return self._replayer.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._replayer.timeout = value

    @property
    def heartbeats(self) -> HeartbeatSetting | None:
        """Lean's heartbeat limit per cell (``"auto"``, ``"off"``, a number; None: the config's)."""
        return self._repl.heartbeats

    @heartbeats.setter
    def heartbeats(self, value: HeartbeatSetting | str | None) -> None:
        self._repl.heartbeats = None if value is None else parse_heartbeats(value)

    @property
    def cache_size(self) -> int:
        """How many (parent env, text) results are kept for identical re-runs."""
        return self._cache.size

    @cache_size.setter
    def cache_size(self, value: int) -> None:
        self._cache.size = value

    # -- the REPL -------------------------------------------------------------------------------

    @property
    def server(self) -> AutoLeanServer:
        """The REPL server the cells run in (started now if it was not yet)."""
        return self._repl.server

    @property
    def running_server(self) -> AutoLeanServer | None:
        """The REPL server if it was started (None: every cell so far came from the store)."""
        return self._repl.started

    @property
    def launch(self) -> ReplLaunch:
        """How the REPL is (or would be) started; starts nothing."""
        server = self._repl.started
        return server.launch if server is not None else self._stored.config.resolve()

    def _server_maker(self, config: LeanREPLConfig) -> Callable[[], AutoLeanServer]:
        """What starts a server of ``config`` (with the memory limit set now), when needed.
        A partial, not a closure over the notebook: a dropped notebook frees its server."""
        return partial(AutoLeanServer, config, max_process_memory=self.max_process_memory)

    def restart(self, cancel: threading.Event | None = None) -> Recheck:
        """Start a fresh REPL process and replay the document into it."""
        with self._lock:
            self._repl.restart()
            self._replayer.restart_reason = "REPL restarted"
            return self._replayer.bring_up_to_date(len(self._document.cells), _event(cancel))

    def use_config(
        self,
        config: LeanREPLConfig,
        *,
        progress: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Recheck:
        """Switch to another REPL (e.g. a Lake project's) and replay the document into it.

        Resolving the config may install a toolchain (``progress`` gets one line per step); when
        it fails (``ReplSetupError``) nothing changes and the old REPL keeps running.
        """
        with self._lock:
            config.resolve(progress=progress)
            namespace = self._stored.namespace_for(config)
            # The cells must be elaborated again in it: start it now, unless there are none.
            start = namespace is None or bool(self._document.cells)
            self._repl.replace(self._server_maker(config), start=start)
            self._stored.use_config(config, namespace)
            self._document.drop_virtual()
            self.config = config
            self._replayer.restart_reason = "Switched REPL"
            replay = self._replayer.bring_up_to_date(len(self._document.cells), _event(cancel))
            # Every cell is another Lean's answer now (those from the store too): a replay.
            replay.kind, replay.why = "replay", self._replayer.restart_reason
            return replay

    def reset(self) -> None:
        """Forget every cell and proof state, in a fresh REPL process (its memory is freed)."""
        with self._lock:
            self._document.clear()
            self._proofs.clear()
            self._states.clear()
            self._cache.clear()
            if self._repl.started is not None:
                self._repl.started.restart()

    def close(self) -> None:
        """Stop the REPL process; the notebook cannot run cells afterwards."""
        self._repl.close()

    def __enter__(self) -> Notebook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the document -----------------------------------------------------------------------

    @property
    def cells(self) -> list[Cell]:
        """The document's cells, top to bottom (a copy of the list; the cells are live)."""
        with self._lock:
            return list(self._document.cells)

    @property
    def proof_cells(self) -> list[ProofCell]:
        """Cells of tactics (``prove``), in the order they last ran."""
        with self._lock:
            return self._proofs.cells

    def cell(self, cell_id: str) -> Cell | None:
        """The document cell with this id, if any."""
        with self._lock:
            return self._document.find(cell_id)

    def status(self, cell: Cell) -> CellStatus:
        """``failed`` (the REPL died on it), ``stale`` (it, or a cell above it, was built on an
        outdated env or in a dead process), ``error`` (Lean errors) or ``ok``."""
        with self._lock:
            statuses = self._document.statuses(self._repl.process)
            return statuses[self._document.cells.index(cell)]

    def declared_names(self) -> list[str]:
        """Names the document declares (for completion), in document order."""
        with self._lock:
            return self._document.declared_names()

    def declaring(self, name: str) -> Cell | None:
        """The last cell of the document that declares ``name`` (its full name), if any."""
        with self._lock:
            return next((c for c in reversed(self._document.cells) if name in c.declares), None)

    def verdicts(
        self,
        cell: Cell,
        *,
        statements: Mapping[str, str] | None = None,
        allowed: frozenset[str] = STANDARD_AXIOMS,
        cancel: threading.Event | None = None,
    ) -> CellVerdicts:
        """The verdict of each declaration ``cell`` adds (``engine.verdict``): proved, sorry,
        axioms, escape, statement changed (against ``statements[name]``), error ...

        Asked of Lean on the cell's env (one command; none for a cell without declarations, or
        when a cache has the answer); the document is not changed. A cell without a live env
        (stale, or answered from the result store without its check) is elaborated first.
        """
        with self._lock:
            return self._checker.check(cell, statements, allowed, _event(cancel))

    def run_verdicts(
        self,
        run: CellRun,
        *,
        statements: Mapping[str, str] | None = None,
        cancel: threading.Event | None = None,
    ) -> CellVerdicts:
        """``verdicts`` of what ``run``'s cell adds; none when the REPL gave no answer (it died
        on the cell, or there is no cell). A cell elaborated for real to be judged (it had no live
        env) is added to ``run.rechecks``."""
        cell = run.cell
        if run.error is not None or run.response is None or cell is None:
            return CellVerdicts([])
        judged = self.verdicts(cell, statements=statements, cancel=cancel)
        if judged.recheck is not None:
            run.rechecks.append(judged.recheck)
        return judged

    def forget(self, cell_id: str) -> bool:
        """Take a cell out of the document (its content is gone); later cells become stale.

        Returns whether the cell was there.
        """
        with self._lock:
            self._proofs.forget(cell_id)
            return self._document.remove(cell_id)

    def tip_env(self) -> int | None:
        """The env at the end of the document in the running REPL (None: a fresh environment).

        Stale cells are not re-checked for this: it serves quick questions (inspection).
        """
        with self._lock:
            return self._document.tip_env(self._repl.process)

    def table(self) -> list[dict[str, object]]:
        """One row per cell for ``%cells``: the document top to bottom, then the proof cells."""
        with self._lock:
            statuses = self._document.statuses(self._repl.process)
            return table_rows(self._document.cells, statuses, self._proofs.cells)

    def query(
        self, text: str, *, timeout: float | None = 30.0, cancel: threading.Event | None = None
    ) -> CellResult | None:
        """Elaborate ``text`` on the end of the document without changing the document.

        For inspection (``#check``, docstrings). Cells answered from the result cache are
        elaborated first (their env is needed). None when the REPL failed on it (the document
        is then replayed before the next cell runs) or that elaboration did not end.
        """
        with self._lock:
            if self._document.has_virtual(len(self._document.cells)):
                recheck = self._replayer.bring_up_to_date(len(self._document.cells), _event(cancel))
                if recheck.interrupted or recheck.broken:
                    return None
            try:
                return self._repl.command(text, self.tip_env(), timeout, cancel)
            except LeanKernelError as err:
                self._replayer.restart_reason = (
                    f"REPL restarted because an inspection {describe_failure(err)}"
                )
                return None

    # -- running cells ----------------------------------------------------------------------------

    def run(
        self,
        text: str,
        *,
        cell_id: str | None = None,
        label: str | None = None,
        line_offset: int = 0,
        timeout: float | None = None,
        heartbeats: HeartbeatSetting | str | None = None,
        cancel: threading.Event | None = None,
    ) -> CellRun:
        """Run a cell: append it, or replace the cell with the same id in place.

        Cells above it are brought up to date first. ``timeout`` (seconds, default
        ``self.timeout``, `NO_LIMIT` for none) bounds this cell's command; ``heartbeats``
        (default ``self.heartbeats``) is Lean's limit on it, which stops it first as a Lean
        error, the REPL keeping its states; ``cancel`` stops it
        (the REPL is killed, restarted, and the document replayed before this returns).
        ``line_offset`` is how many lines of the on-screen cell precede ``text`` (magics), for
        messages. Raises `ImportPlacementError` (nothing changed) for a misplaced import cell.
        """
        cancel = _event(cancel)
        heartbeats = None if heartbeats is None else parse_heartbeats(heartbeats)
        with self._lock:
            cell_id = self._cell_id(cell_id)
            self._proofs.forget(cell_id)
            index = self._document.target_index(cell_id, text)
            label = label or f"#{index + 1}"
            stored = self._replayer.from_store(index, text, timeout, heartbeats)
            if stored is not None:
                cell = self._document.place(cell_id, text, label, line_offset, timeout, index)
                cell.heartbeats = heartbeats
                cell.set_stored(stored.response, stored.seconds, stored.key, stored.parent_chain)
                return CellRun(
                    cell,
                    response=stored.response,
                    cached=True,
                    from_store=True,
                    elapsed=stored.seconds,
                )
            self._repl.start()
            rechecks: list[Recheck] = []
            for _ in range(MAX_RESTARTS):
                process = self._repl.process
                before = self._replayer.bring_up_to_date(index, cancel)
                if before.cells or before.failed or before.broken:
                    rechecks.append(before)
                if before.broken:
                    return CellRun(None, error=unavailable(before.broken), rechecks=rechecks)
                if before.interrupted or cancel.is_set():
                    # Replay only if the interrupt killed the REPL (else nothing was lost).
                    error = interrupted_before_start()
                    killed = self._repl.process != process
                    replay = self._replayer.recover(error, cancel, label) if killed else None
                    return CellRun(None, error=error, rechecks=rechecks, replay=replay)
                cell = self._document.place(cell_id, text, label, line_offset, timeout, index)
                cell.heartbeats = heartbeats
                try:
                    cached = self._replayer.elaborate(
                        cell, self._document.parent_env(index), cancel
                    )
                except StaleStateError:
                    continue  # the REPL was replaced just before the command: replay, retry
                except LeanKernelError as err:
                    cell.set_failure(describe_failure(err))
                    replay = self._replayer.recover(err, cancel, label)
                    return CellRun(
                        cell, elapsed=cell.elapsed, error=err, rechecks=rechecks, replay=replay
                    )
                self._document.mark_current(index + 1, self._repl.process)
                return CellRun(
                    cell,
                    response=_with_handles(cell),
                    cached=cached,
                    elapsed=cell.elapsed,
                    rechecks=rechecks,
                )
            raise ReplCrashedError(
                "The REPL kept being replaced while this cell waited to run; see its stderr."
            )

    def prove(
        self,
        tactics: str,
        *,
        proof_state: int | None = None,
        cell_id: str | None = None,
        label: str | None = None,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> ProofRun:
        """Run tactics on a proof state, one top-level tactic per proof step.

        Where it starts: ``proof_state`` (a handle shown with a goal) if given; else, for a cell
        run before, where it started then; else where the last proof cell left off if that
        proof is not finished; else the last ``sorry`` of the document. The resulting state gets
        a new handle, and the next proof cell continues from it. The document is not changed
        (a document cell with this id is taken out of it: it now holds tactics).
        ``timeout`` (default ``self.timeout``) bounds each step.
        Raises `ProofStateError` when there is nothing to start from.
        """
        cancel = _event(cancel)
        with self._lock:
            return self._proofs.prove(
                tactics,
                cell_id=self._cell_id(cell_id),
                label=label,
                proof_state=proof_state,
                timeout=timeout if timeout is not None else self.timeout,
                cancel=cancel,
            )

    def _cell_id(self, cell_id: str | None) -> str:
        """The id given, or a new one (an execution without an id is a new cell)."""
        if cell_id is not None:
            return cell_id
        self._anonymous += 1
        return f"anonymous-{self._anonymous}"


def _event(cancel: threading.Event | None) -> threading.Event:
    return cancel if cancel is not None else threading.Event()


def _with_handles(cell: Cell) -> CellResult | None:
    """The cell's result with sorries' proof states replaced by handles."""
    result = cell.result
    if not isinstance(result, CommandResponse) or not result.sorries:
        return result
    sorries = [
        sorry.model_copy(update={"proof_state": handle})
        for sorry, handle in zip(result.sorries, cell.sorry_handles, strict=False)
    ]
    return result.model_copy(update={"sorries": sorries})

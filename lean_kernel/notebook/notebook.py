"""The kernel's model of a notebook: cells in document order, the env each one built, staleness.

A Jupyter notebook is not a Lean file: cells are run in any order, edited and run again, and the
REPL can die half way. ``Notebook`` keeps the promise of DESIGN.md anyway: the env at the end of
the document always equals the document read top to bottom, like a Lean file in an editor.

* A cell is known by its id (Jupyter's ``cellId``); a cell run for the first time is appended.
* Running a cell that is already in the document replaces it in place: it elaborates on the env
  of the cell before it, so editing ``def f`` and running it again never hits "already declared".
* Cells after it were built on the old version: they are *stale*. Staleness is not a flag but a
  fact computed from the ids: a cell is current when the env it was elaborated on is the env the
  cell before it has now, in the REPL process that runs now. Before anything runs, the cells above
  it are brought up to date in order (re-checked), so a later cell never sees an outdated env.
* Results are cached by (REPL process, parent env, text): an identical re-run sends nothing.
* When the REPL process is replaced (crash, timeout, memory, interrupt, restart) every env id dies
  with it (the server refuses them with ``StaleStateError``), so the cells are replayed into the
  new process, again just by bringing the document up to date.
* A cell whose command killed the REPL (timeout, crash, memory, interrupt) stays in the document
  as *failed*: it contributes nothing, and it is not replayed (that would kill the REPL again)
  until it is run again.
* ``import`` is only legal in a command sent without env, so imports live in the first cell: an
  import cell run while the document has none is moved to the top and everything else is
  re-checked on top of it; a second import cell is refused with `ImportPlacementError`.

Proof mode (``prove``) runs tactics on a ``sorry``'s proof state. Proof states are named by
*handles*, small numbers owned by the notebook that stay valid across REPL restarts (each one is
rebuilt on demand from how it was made: a sorry of a cell, or tactics run on another handle).
Results returned by this module show handles, never raw REPL proof-state ids.

Nothing here knows Jupyter: the kernel and the ``%%lean`` IPython magic both drive this class.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.outcome import failed
from lean_kernel.engine.protocol import (
    Command,
    CommandResponse,
    LeanError,
    ProofStep,
    ProofStepResponse,
    Sorry,
)
from lean_kernel.engine.server import AutoLeanServer
from lean_kernel.errors import (
    LeanKernelError,
    ReplCancelledError,
    ReplCrashedError,
    ReplMemoryError,
    ReplProtocolError,
    ReplTimeoutError,
    StaleStateError,
)
from lean_kernel.notebook.proofstates import (
    ProofCell,
    ProofStateError,
    ProofStates,
    split_tactics,
)
from lean_kernel.text.syntax import declared_names, mask

__all__ = [
    "Cell",
    "CellRun",
    "NO_LIMIT",
    "ImportPlacementError",
    "Notebook",
    "ProofCell",
    "ProofRun",
    "ProofStateError",
    "Recheck",
    "ReplUnavailableError",
    "is_import_cell",
    "split_tactics",
]

CellResult = CommandResponse | LeanError
StepResult = ProofStepResponse | LeanError

#: ``run(timeout=NO_LIMIT)`` runs a cell without a time limit whatever the default is.
NO_LIMIT = math.inf
# The server reads ``timeout=None`` as "the config's default", so "no limit" is a far deadline.
_FOREVER_S = 1e9
# How often bringing the document up to date may start over because the REPL was replaced
# underneath it (each start over follows a restart the server did on its own).
_MAX_SYNC_RESTARTS = 5
# How long an empty command may take in a healthy REPL (it loads Lean's prelude).
_PROBE_TIMEOUT_S = 60.0
_HEADER_RE = re.compile(r"\s*(?:import|prelude|module)\b")
_HEADER_WORD_RE = re.compile(r"\b(?:import|prelude|module)\b")
_SUMMARY_LABELS = 8


class ReplUnavailableError(ReplCrashedError):
    """No REPL can be started now; the document waits, unharmed, until one can."""


class ImportPlacementError(LeanKernelError, ValueError):
    """An ``import`` cell was run while another cell already holds the document's imports."""


def is_import_cell(text: str) -> bool:
    """Whether ``text`` starts with a module header (``import``), ignoring comments.

    Such a command is only legal in a fresh environment, so it must be the document's first cell.
    """
    if not _HEADER_WORD_RE.search(text):
        return False  # most cells: no need to mask comments
    return _HEADER_RE.match(mask(text).text) is not None


# ---------------------------------------------------------------------------------------------
# Cells and results


CellStatus = Literal["ok", "error", "stale", "failed"]


@dataclass(eq=False)
class Cell:
    """One cell of the document, as last run (or re-checked).

    ``env`` is the REPL env the cell built (None: it contributes nothing, e.g. it failed);
    ``parent_env`` the env it was elaborated on. ``failure`` says why the REPL died on it.
    """

    id: str
    text: str
    label: str
    line_offset: int = 0
    timeout: float | None = None
    result: CellResult | None = None
    env: int | None = None
    parent_env: int | None = None
    elapsed: float = 0.0
    failure: str | None = None
    #: handles of the sorries in ``result``, in the REPL's order
    sorry_handles: list[int] = field(default_factory=list)
    _process: tuple[int, int] | None = None
    _names: list[str] | None = None

    @property
    def names(self) -> list[str]:
        """The names the cell declares (for completion); read from its text when first asked."""
        if self.failure is not None:
            return []
        if self._names is None:
            self._names = declared_names(self.text)
        return self._names

    @property
    def has_errors(self) -> bool:
        """Lean reported an error, the REPL refused the cell, or the REPL died on it."""
        if self.failure is not None:
            return True
        return self.result is not None and failed(self.result)

    def first_error(self) -> str:
        """The first error in one line (``line:col: text``), for summaries."""
        if self.failure is not None:
            return self.failure
        if isinstance(self.result, LeanError):
            return self.result.message.splitlines()[0] if self.result.message else "error"
        for msg in self.result.get_errors() if self.result is not None else []:
            head = f"{msg.start_pos.line + self.line_offset}:{msg.start_pos.column}: "
            return head + (msg.data.splitlines() or [""])[0]
        return ""


@dataclass
class Recheck:
    """Cells brought up to date before or after a run: stale ones, or a replay after a restart."""

    kind: Literal["stale", "replay"]
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
        what = "Re-checked" if self.kind == "stale" else "Replayed"
        noun = "stale cell" if self.kind == "stale" else "cell"
        head = f"{what} {count} {noun}{'s' if count != 1 else ''}"
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


@dataclass
class CellRun:
    """What running one cell did.

    ``response`` is the cell's result with sorries' proof states replaced by notebook handles;
    None when the cell did not run to the end (``error`` says why).
    """

    cell: Cell | None
    response: CellResult | None = None
    cached: bool = False
    elapsed: float = 0.0
    error: LeanKernelError | None = None
    #: cells brought up to date before this one ran
    rechecks: list[Recheck] = field(default_factory=list)
    #: the replay after the REPL died on this cell
    replay: Recheck | None = None

    @property
    def has_errors(self) -> bool:
        """Whether the cell failed: a Lean error, a refused request, or a dead REPL."""
        if self.error is not None:
            return True
        return self.response is not None and failed(self.response)


@dataclass
class ProofRun:
    """What running tactics did.

    ``response`` is the last step's answer with its proof state (and sorries) as handles;
    ``line`` is the 0-based line (in the tactic text) of the step it answers.
    """

    cell: ProofCell | None
    start: int | None = None
    handle: int | None = None
    response: StepResult | None = None
    line: int = 0
    steps: int = 0
    elapsed: float = 0.0
    error: LeanKernelError | None = None
    rechecks: list[Recheck] = field(default_factory=list)
    replay: Recheck | None = None

    @property
    def has_errors(self) -> bool:
        """Whether a tactic failed, the proof state was unusable, or the REPL died."""
        if self.error is not None:
            return True
        return self.response is not None and failed(self.response)

    @property
    def complete(self) -> bool:
        """Whether no goals are left."""
        return isinstance(self.response, ProofStepResponse) and (
            self.response.proof_status == "Completed"
        )


# ---------------------------------------------------------------------------------------------
# The notebook


class Notebook:
    """An ordered document of Lean cells over one self-healing REPL (see the module docstring).

    Args:
        config: how to start the REPL (default: ``LeanREPLConfig()``).
        timeout: default seconds per cell (None: no limit).
        max_process_memory: MB one REPL may use before it is killed and the document replayed.
        cache_size: how many (parent env, text) results to keep for identical re-runs.
        server: an already started server to use instead of making one from ``config``.

    Not thread-safe by design of the REPL (one command at a time); calls are serialised.
    """

    def __init__(
        self,
        config: LeanREPLConfig | None = None,
        *,
        timeout: float | None = None,
        max_process_memory: float | None = None,
        cache_size: int = 4096,
        server: AutoLeanServer | None = None,
    ) -> None:
        self.config = config if config is not None else LeanREPLConfig()
        self.timeout = timeout
        self.max_process_memory = max_process_memory
        self.cache_size = cache_size
        self._lock = threading.RLock()
        self._server = server if server is not None else self._make_server(self.config)
        self._epoch = 0
        self._cells: list[Cell] = []
        self._proofs: dict[str, ProofCell] = {}
        self._states = ProofStates()
        self._cache: OrderedDict[tuple, tuple[CellResult, float]] = OrderedDict()
        self._cache_process: tuple[int, int] | None = None
        self._anonymous = 0
        self._order = 0
        # Cells [0, _current_upto) are known to be current in process _current_process, so a run
        # only checks the cells after them (a long document costs nothing per cell).
        self._current_upto = 0
        self._current_process: tuple[int, int] | None = None
        self._last_loss = ""

    # -- the REPL -------------------------------------------------------------------------------

    @property
    def server(self) -> AutoLeanServer:
        """The REPL server the cells run in."""
        return self._server

    def _make_server(self, config: LeanREPLConfig) -> AutoLeanServer:
        return AutoLeanServer(config, max_process_memory=self.max_process_memory)

    def _process(self) -> tuple[int, int]:
        """Names the running REPL process: ids built in another one are dead."""
        return (self._epoch, self._server.generation)

    def restart(self, cancel: threading.Event | None = None) -> Recheck:
        """Start a fresh REPL process and replay the document into it."""
        with self._lock:
            self._server.restart()
            self._last_loss = "REPL restarted"
            return self._sync(len(self._cells), _event(cancel))

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
            server = self._make_server(config)
            old, self._server, self.config = self._server, server, config
            self._epoch += 1
            old.close()
            self._last_loss = "Switched REPL"
            return self._sync(len(self._cells), _event(cancel))

    def reset(self) -> None:
        """Forget every cell and proof state, in a fresh REPL process (its memory is freed)."""
        with self._lock:
            self._cells.clear()
            self._changed_at(0)
            self._proofs.clear()
            self._states.clear()
            self._cache.clear()
            self._server.restart()

    def close(self) -> None:
        """Stop the REPL process; the notebook cannot run cells afterwards."""
        self._server.close()

    def __enter__(self) -> Notebook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the document -----------------------------------------------------------------------

    @property
    def cells(self) -> list[Cell]:
        """The document's cells, top to bottom (a copy of the list; the cells are live)."""
        with self._lock:
            return list(self._cells)

    @property
    def proof_cells(self) -> list[ProofCell]:
        """Cells of tactics (``prove``), in the order they last ran."""
        with self._lock:
            return sorted(self._proofs.values(), key=lambda p: p.order)

    def cell(self, cell_id: str) -> Cell | None:
        """The document cell with this id, if any."""
        with self._lock:
            return next((c for c in self._cells if c.id == cell_id), None)

    def status(self, cell: Cell) -> CellStatus:
        """``failed`` (the REPL died on it), ``stale`` (it, or a cell above it, was built on an
        outdated env or in a dead process), ``error`` (Lean errors) or ``ok``."""
        with self._lock:
            return self._statuses()[self._cells.index(cell)]

    def _statuses(self) -> list[CellStatus]:
        statuses: list[CellStatus] = []
        outdated = False
        parent: int | None = None
        for cell in self._cells:
            if cell.failure is not None:
                statuses.append("failed")
                continue
            outdated = outdated or not self._is_current(cell, parent)
            parent = parent if cell.env is None else cell.env
            if outdated:
                statuses.append("stale")
            else:
                statuses.append("error" if cell.has_errors else "ok")
        return statuses

    def declared_names(self) -> list[str]:
        """Names the document declares (for completion), in document order."""
        with self._lock:
            return list(dict.fromkeys(name for cell in self._cells for name in cell.names))

    def forget(self, cell_id: str) -> bool:
        """Take a cell out of the document (its content is gone); later cells become stale.

        Returns whether the cell was there.
        """
        with self._lock:
            removed = self._remove(cell_id)
            self._proofs.pop(cell_id, None)
            return removed

    def tip_env(self) -> int | None:
        """The env at the end of the document in the running REPL (None: a fresh environment).

        Stale cells are not re-checked for this: it serves quick questions (inspection).
        """
        with self._lock:
            process = self._process()
            for cell in reversed(self._cells):
                if cell.env is not None and cell._process == process:
                    return cell.env
            return None

    def query(
        self, text: str, *, timeout: float | None = 30.0, cancel: threading.Event | None = None
    ) -> CellResult | None:
        """Elaborate ``text`` on the end of the document without changing the document.

        For inspection (``#check``, docstrings). None when the REPL failed on it; the document
        is then replayed before the next cell runs.
        """
        with self._lock:
            request = Command(cmd=text, env=self.tip_env())
            try:
                return self._server.run(request, timeout=_server_timeout(timeout), cancel=cancel)
            except LeanKernelError as err:
                self._last_loss = f"REPL restarted because an inspection {_describe_failure(err)}"
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
        cancel: threading.Event | None = None,
    ) -> CellRun:
        """Run a cell: append it, or replace the cell with the same id in place.

        Cells above it are brought up to date first. ``timeout`` (seconds, default
        ``self.timeout``, `NO_LIMIT` for none) bounds this cell's command; ``cancel`` stops it
        (the REPL is killed, restarted, and the document replayed before this returns).
        ``line_offset`` is how many lines of the on-screen cell precede ``text`` (magics), for
        messages. Raises `ImportPlacementError` (nothing changed) for a misplaced import cell.
        """
        cancel = _event(cancel)
        with self._lock:
            if cell_id is None:
                self._anonymous += 1
                cell_id = f"anonymous-{self._anonymous}"
            self._proofs.pop(cell_id, None)
            index = self._target_index(cell_id, text)
            label = label or f"#{index + 1}"
            rechecks: list[Recheck] = []
            for _ in range(_MAX_SYNC_RESTARTS):
                process = self._process()
                before = self._sync(index, cancel)
                if before.cells or before.failed or before.broken:
                    rechecks.append(before)
                if before.broken:
                    error = ReplUnavailableError(
                        f"The REPL could not be started again: {before.broken}. Fix it (see "
                        "`python -m lean_kernel doctor`), then run the cell again: the document "
                        "is replayed first."
                    )
                    return CellRun(None, error=error, rechecks=rechecks)
                if before.interrupted or cancel.is_set():
                    # Replay only if the interrupt killed the REPL (else nothing was lost).
                    killed = self._process() != process
                    replay = self._recover(_cancelled(), cancel, label) if killed else None
                    return CellRun(None, error=_cancelled(), rechecks=rechecks, replay=replay)
                cell = self._place(cell_id, text, label, line_offset, timeout, index)
                try:
                    cached = self._elaborate(cell, self._expected_parent(index), cancel)
                except StaleStateError:
                    continue  # the REPL was replaced just before the command: replay, retry
                except LeanKernelError as err:
                    cell.failure = _describe_failure(err)
                    cell.result, cell.env = None, None
                    replay = self._recover(err, cancel, label)
                    return CellRun(
                        cell, elapsed=cell.elapsed, error=err, rechecks=rechecks, replay=replay
                    )
                self._mark_current(index + 1)
                return CellRun(
                    cell,
                    response=self._public_result(cell),
                    cached=cached,
                    elapsed=cell.elapsed,
                    rechecks=rechecks,
                )
            raise ReplCrashedError(
                "The REPL kept being replaced while this cell waited to run; see its stderr."
            )

    def _target_index(self, cell_id: str, text: str) -> int:
        """Where the cell goes: its place, the end, or the top for an import cell."""
        index = next((i for i, c in enumerate(self._cells) if c.id == cell_id), None)
        if is_import_cell(text):
            first = self._cells[0] if self._cells else None
            if first is not None and first.id != cell_id and is_import_cell(first.text):
                raise ImportPlacementError(
                    f"Imports go in the first cell of the document, and {first.label} already "
                    "has them. Add this import there and run that cell again (the cells below "
                    "are then re-checked), or run `%reset` to start a new document."
                )
            return 0
        return len(self._cells) if index is None else index

    def _known_current(self) -> int:
        if self._current_process != self._process():
            return 0
        return min(self._current_upto, len(self._cells))

    def _mark_current(self, upto: int) -> None:
        self._current_upto, self._current_process = upto, self._process()

    def _changed_at(self, index: int) -> None:
        """The document changed at ``index``: cells from there on must be checked again."""
        self._current_upto = min(self._current_upto, index)

    def _place(
        self,
        cell_id: str,
        text: str,
        label: str,
        line_offset: int,
        timeout: float | None,
        index: int,
    ) -> Cell:
        """Put the cell at ``index`` (moving it there if it was elsewhere) with its new text."""
        old = next((c for c in self._cells if c.id == cell_id), None)
        if old is not None:
            self._changed_at(self._cells.index(old))
            self._cells.remove(old)
        self._changed_at(index)
        cell = Cell(cell_id, text, label, line_offset, timeout)
        if old is not None and old.text == text:
            cell.sorry_handles = old.sorry_handles  # same text: same sorries, same handles
            cell.result, cell.env, cell.parent_env = old.result, old.env, old.parent_env
            cell._process, cell.elapsed = old._process, old.elapsed
        self._cells.insert(index, cell)
        return cell

    def _remove(self, cell_id: str) -> bool:
        for i, cell in enumerate(self._cells):
            if cell.id == cell_id:
                del self._cells[i]
                self._changed_at(i)
                return True
        return False

    # -- elaboration, staleness, replay -------------------------------------------------------

    def _expected_parent(self, index: int) -> int | None:
        """The env a cell at ``index`` must be elaborated on: that of the last cell above it
        that built one (None: a fresh environment)."""
        for cell in reversed(self._cells[:index]):
            if cell.env is not None:
                return cell.env
        return None

    def _is_current(self, cell: Cell, parent: int | None) -> bool:
        return (
            cell.failure is None
            and cell.result is not None
            and cell._process == self._process()
            and cell.parent_env == parent
        )

    def _elaborate(self, cell: Cell, parent: int | None, cancel: threading.Event) -> bool:
        """Elaborate the cell on ``parent`` (or take the cached result); returns whether cached.

        Raises what the server raises; the cell is only changed on success.
        """
        process = self._process()
        if self._cache_process != process:
            self._cache.clear()
            self._cache_process = process
        key = (parent, cell.text)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            result, elapsed = hit
            cached = True
        else:
            timeout = cell.timeout if cell.timeout is not None else self.timeout
            started = time.monotonic()
            result = self._server.run(
                Command(cmd=cell.text, env=parent),
                timeout=_server_timeout(timeout),
                cancel=cancel,
            )
            elapsed = time.monotonic() - started
            if self._process() != process:
                # The server restarted on its own before sending (its health check): the
                # answer is from a new process the other cells are not in yet.
                raise StaleStateError("the REPL process was replaced before the command ran")
            self._cache[key] = (result, elapsed)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            cached = False
        self._set_result(cell, result, parent, elapsed, process)
        return cached

    def _set_result(
        self,
        cell: Cell,
        result: CellResult,
        parent: int | None,
        elapsed: float,
        process: tuple[int, int],
    ) -> None:
        cell.result, cell.parent_env, cell.elapsed, cell._process = result, parent, elapsed, process
        cell.failure = None
        cell.env = result.env if isinstance(result, CommandResponse) else None
        count = len(result.sorries) if isinstance(result, CommandResponse) else 0
        cell.sorry_handles = self._states.for_cell(cell.id, cell.text, count, cell.sorry_handles)

    def _sync(self, upto: int, cancel: threading.Event) -> Recheck:
        """Bring the cells above ``upto`` up to date, in order; report what that took.

        A cell on which the REPL dies is marked failed and the walk starts over in the new
        process; an interrupt stops the walk (what is left is done before the next run).
        """
        start = self._known_current()
        process = self._process()
        dead = any(c._process not in (None, process) for c in self._cells[start:upto])
        recheck = Recheck("replay" if dead else "stale", self._last_loss if dead else "")
        started = time.monotonic()
        had_errors: dict[int, bool] = {}
        restarts = 0
        index = start
        parent = self._expected_parent(index)  # the env of the last cell so far that built one
        while index < min(upto, len(self._cells)):
            cell = self._cells[index]
            if cell.failure is not None or self._is_current(cell, parent):
                parent = parent if cell.env is None else cell.env
                index += 1
                continue
            if cancel.is_set():
                recheck.interrupted = True
                break
            if cell._process not in (None, self._process()):
                recheck.kind = "replay"
                recheck.why = recheck.why or self._last_loss
            had_errors.setdefault(id(cell), cell.has_errors)
            try:
                self._elaborate(cell, parent, cancel)
            except StaleStateError:
                self._last_loss = "REPL restarted (its process had exited or used too much memory)"
            except ReplCancelledError:
                self._last_loss = "REPL restarted after an interrupt"
                recheck.interrupted = True
                break
            except LeanKernelError as err:
                broken = self._broken_repl()
                if broken:
                    # The REPL itself no longer works: not this cell's fault; keep it for later.
                    recheck.broken = broken
                    break
                cell.failure = _describe_failure(err)
                cell.result, cell.env = None, None
                recheck.failed.append(cell)
                self._last_loss = f"REPL restarted because {cell.label} {cell.failure}"
            else:
                if cell not in recheck.cells:
                    recheck.cells.append(cell)
                parent = parent if cell.env is None else cell.env
                index += 1
                continue
            restarts += 1
            if restarts > _MAX_SYNC_RESTARTS + len(self._cells):
                break
            recheck.kind = "replay"
            recheck.why = self._last_loss
            index, parent = 0, None
        recheck.elapsed = time.monotonic() - started
        self._mark_current(index)
        if recheck.interrupted or recheck.broken:
            recheck.left = self._statuses()[:upto].count("stale")
        for cell in recheck.cells:
            if cell.failure is not None:
                continue
            if cell.has_errors and not had_errors.get(id(cell), False):
                recheck.new_errors.append(cell)
            elif not cell.has_errors and had_errors.get(id(cell), False):
                recheck.fixed.append(cell)
        recheck.cells = [c for c in recheck.cells if c.failure is None]
        return recheck

    def _broken_repl(self) -> str:
        """Why the REPL cannot run even an empty command ("" when it can).

        Cells being brought up to date all ran before; when the REPL dies on one of them, this
        tells a REPL that no longer starts (a toolchain removed, a broken build) from a cell
        that really kills it (a timeout, too much memory).
        """
        try:
            self._server.run(Command(cmd=""), timeout=_PROBE_TIMEOUT_S)
        except LeanKernelError as err:
            return str(err).splitlines()[0] if str(err) else type(err).__name__
        return ""

    def _recover(self, err: LeanKernelError, cancel: threading.Event, label: str) -> Recheck:
        """After the REPL died on a command: replay the whole document into the new process.

        The interrupt that caused it is spent; a second one stops the replay.
        """
        if isinstance(err, ReplCancelledError):
            cancel.clear()
        self._last_loss = f"REPL restarted because {label} {_describe_failure(err)}"
        recheck = self._sync(len(self._cells), cancel)
        recheck.kind = "replay"
        recheck.why = self._last_loss
        return recheck

    def _public_result(self, cell: Cell) -> CellResult | None:
        """The cell's result with sorries' proof states replaced by handles."""
        result = cell.result
        if not isinstance(result, CommandResponse) or not result.sorries:
            return result
        sorries = [
            sorry.model_copy(update={"proof_state": handle})
            for sorry, handle in zip(result.sorries, cell.sorry_handles, strict=False)
        ]
        return result.model_copy(update={"sorries": sorries})

    # -- proof mode -------------------------------------------------------------------------------

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
        Raises `ProofStateError` when there is nothing to start from.
        """
        cancel = _event(cancel)
        with self._lock:
            if cell_id is None:
                self._anonymous += 1
                cell_id = f"anonymous-{self._anonymous}"
            previous = self._proofs.get(cell_id)
            start = self._proof_start(proof_state, previous, cell_id)
            self._remove(cell_id)
            self._order += 1
            proof = ProofCell(
                cell_id,
                label or f"proof {self._order}",
                tactics,
                start,
                order=self._order,
            )
            run = ProofRun(proof)
            sync = self._sync(len(self._cells), cancel)
            if sync.cells or sync.failed or sync.interrupted:
                run.rechecks.append(sync)
            if sync.interrupted:
                run.error = _cancelled()
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
                proof.status = _describe_failure(err)
                run.replay = self._recover(err, cancel, proof.label)
            run.elapsed = proof.elapsed = time.monotonic() - started
            return run

    def _proof_start(
        self, proof_state: int | None, previous: ProofCell | None, cell_id: str
    ) -> tuple[str, int | str]:
        if proof_state is not None:
            if proof_state not in self._states:
                raise ProofStateError(
                    f"There is no proof state {proof_state}. Proof states are the numbers "
                    "shown with goals (`goal (proof state N)`); run the cell with the `sorry` "
                    "to see them."
                )
            return ("handle", proof_state)
        if previous is not None:
            return previous.start
        last = max(
            (p for p in self._proofs.values() if p.id != cell_id),
            key=lambda p: p.order,
            default=None,
        )
        if last is not None and last.handle is not None and last.status.startswith("Incomplete"):
            return ("after", last.id)
        for cell in reversed(self._cells):
            if cell.sorry_handles and cell.failure is None:
                return ("handle", cell.sorry_handles[-1])
        raise ProofStateError(
            "There is no `sorry` in the document to work on. Write the statement with "
            "`:= by sorry` in a cell and run it, then run `%proof` with tactics."
        )

    def _start_handle(self, proof: ProofCell) -> int:
        kind, value = proof.start
        if kind == "handle":
            return int(value)
        source = self._proofs.get(str(value))
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
        start = self._start_handle(proof)
        proof.start_handle = run.start = start
        state = self._resolve(start, cancel)
        steps = split_tactics(tactics)
        if not steps:
            raise ProofStateError("%proof needs tactics on the lines below it, e.g. `intro x`.")
        limit = _server_timeout(timeout if timeout is not None else self.timeout)
        done: list[str] = []
        response: StepResult | None = None
        for line, tactic in steps:
            response = self._server.run(
                ProofStep(tactic=tactic, proof_state=state), timeout=limit, cancel=cancel
            )
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
            handle = self._states.after_steps(start, tuple(done), self._process(), state, sorry_ids)
        public = self._public_step(response, handle, len(done) == run.steps)
        run.response = public
        run.handle = proof.handle = handle if not run.has_errors else None
        if isinstance(public, ProofStepResponse) and not run.has_errors:
            proof.status = public.proof_status
        else:
            proof.status = "error"

    def _public_step(self, response: StepResult, handle: int, last_ok: bool) -> StepResult:
        if not isinstance(response, ProofStepResponse):
            return response
        update: dict = {"proof_state": handle}
        if last_ok and response.sorries:
            handles = self._states.step_sorries(handle, len(response.sorries))
            update["sorries"] = [
                sorry.model_copy(update={"proof_state": sub})
                for sorry, sub in zip(response.sorries, handles, strict=True)
            ]
        return response.model_copy(update=update)

    def _resolve(self, handle: int, cancel: threading.Event) -> int:
        """The REPL proof-state id of a handle in the running process, rebuilt if needed."""

        def step(tactic: str, state: int) -> StepResult:
            return self._server.run(ProofStep(tactic=tactic, proof_state=state), cancel=cancel)

        return self._states.resolve(handle, self._process(), cell_sorry=self._cell_sorry, step=step)

    def _cell_sorry(self, handle: int, cell_id: str, text: str, index: int) -> int:
        cell = next((c for c in self._cells if c.id == cell_id), None)
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

    # -- reporting ---------------------------------------------------------------------------

    def table(self) -> list[dict[str, object]]:
        """One row per cell for ``%cells``: the document top to bottom, then the proof cells."""
        with self._lock:
            rows: list[dict[str, object]] = []
            statuses = self._statuses()
            for position, cell in enumerate(self._cells, start=1):
                status = statuses[position - 1]
                text: str = status
                if status == "failed":
                    text = f"error: {cell.failure}"
                elif status == "ok" and isinstance(cell.result, CommandResponse):
                    if cell.result.get_warnings() or cell.result.sorries:
                        text = "warning" if not cell.result.sorries else "warning: sorry"
                    else:
                        text = "ok"
                rows.append(
                    {
                        "#": position,
                        "cell": cell.label,
                        "env": "" if cell.env is None else cell.env,
                        "status": text,
                        "time (s)": round(cell.elapsed, 3),
                        "first line": _first_line(cell.text),
                    }
                )
            for proof in self.proof_cells:
                state = "" if proof.handle is None else f"proof state {proof.handle}"
                rows.append(
                    {
                        "#": "",
                        "cell": proof.label,
                        "env": state,
                        "status": f"proof: {proof.status or 'not run'}",
                        "time (s)": round(proof.elapsed, 3),
                        "first line": _first_line(proof.tactics),
                    }
                )
            return rows


# ---------------------------------------------------------------------------------------------
# Helpers


def _event(cancel: threading.Event | None) -> threading.Event:
    return cancel if cancel is not None else threading.Event()


def _server_timeout(timeout: float | None) -> float | None:
    if timeout is None or math.isinf(timeout):
        return _FOREVER_S
    return timeout


def _cancelled() -> ReplCancelledError:
    return ReplCancelledError("Interrupted before the cell ran; the document was not changed.")


def _describe_failure(err: BaseException) -> str:
    """What the command did to the REPL, to follow a cell label: "[3] timed out after 5 s"."""
    if isinstance(err, ReplCancelledError):
        return "was interrupted"
    if isinstance(err, ReplTimeoutError):
        match = re.search(r"within ([\d.]+) s", str(err))
        return f"timed out after {match.group(1)} s" if match else "timed out"
    if isinstance(err, ReplMemoryError):
        return "went over the memory limit"
    if isinstance(err, ReplProtocolError):
        return "made the REPL write garbage"
    if isinstance(err, ReplCrashedError):
        match = re.search(r"code (-?\d+)", str(err))
        return f"crashed the REPL (exit code {match.group(1)})" if match else "crashed the REPL"
    return "failed: " + (str(err).splitlines()[0] if str(err) else type(err).__name__)


def _labels(cells: list[Cell]) -> str:
    labels = [c.label for c in cells]
    if len(labels) > _SUMMARY_LABELS:
        return f"{' '.join(labels[:3])} … {' '.join(labels[-2:])}"
    return " ".join(labels)


def _seconds(elapsed: float) -> str:
    return f"{elapsed * 1000:.0f} ms" if elapsed < 1 else f"{elapsed:.1f} s"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:60]
    return ""

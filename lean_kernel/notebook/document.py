"""The document: the cells in order, where a cell goes, and which cells are up to date.

A cell is known by its id (Jupyter's ``cellId``); a cell run for the first time is appended, a
cell run again keeps its place. Staleness is not a flag but a fact computed from the ids: a cell
is current when the env it was elaborated on is the env the cell before it has now, in the REPL
process that runs now. ``import`` is only legal in a command sent without env, so imports live
in the first cell.

A cell answered from the persistent result store (``stored``) is *virtual*: its answer is known
but its env exists in no process. It is current while the store key of the env it was answered
on is still the key of the env above it, and it is elaborated for real when a live env below it
is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from lean_kernel.engine.heartbeats import HeartbeatSetting
from lean_kernel.engine.outcome import failed
from lean_kernel.engine.protocol import CommandResponse, LeanError
from lean_kernel.errors import LeanKernelError
from lean_kernel.notebook.process import CellResult, ProcessKey
from lean_kernel.text.syntax import declared_names, mask

__all__ = ["Cell", "CellStatus", "Document", "ImportPlacementError", "is_import_cell"]

_HEADER_RE = re.compile(r"\s*(?:import|prelude|module)\b")
_HEADER_WORD_RE = re.compile(r"\b(?:import|prelude|module)\b")

#: ``failed``: the REPL died on it; ``stale``: it, or a cell above it, was built on an outdated
#: env or in a dead process; ``error``: Lean errors; ``ok``: the rest.
CellStatus = Literal["ok", "error", "stale", "failed"]


class ImportPlacementError(LeanKernelError, ValueError):
    """An ``import`` cell was run while another cell already holds the document's imports."""


def is_import_cell(text: str) -> bool:
    """Whether ``text`` starts with a module header (``import``), ignoring comments.

    Such a command is only legal in a fresh environment, so it must be the document's first cell.
    """
    if not _HEADER_WORD_RE.search(text):
        return False  # most cells: no need to mask comments
    return _HEADER_RE.match(mask(text).text) is not None


@dataclass(eq=False)
class Cell:
    """One cell of the document, as last run (or re-checked).

    ``env`` is the REPL env the cell built (None: it contributes nothing, e.g. it failed);
    ``parent_env`` the env it was elaborated on, ``process`` the REPL process both live in.
    ``failure`` says why the REPL died on it. ``chain`` is its key in the persistent result
    store, ``parent_chain`` that of the env it was elaborated on (None: not known);
    ``from_store`` says its answer came from the store (it has no env).
    """

    id: str
    text: str
    label: str
    line_offset: int = 0
    timeout: float | None = None
    #: Lean's heartbeat limit of its own (``%heartbeats`` above its code); None: the notebook's
    heartbeats: HeartbeatSetting | None = None
    result: CellResult | None = None
    env: int | None = None
    parent_env: int | None = None
    elapsed: float = 0.0
    failure: str | None = None
    #: handles of the sorries in ``result``, in the REPL's order
    sorry_handles: list[int] = field(default_factory=list)
    process: ProcessKey | None = None
    chain: str | None = None
    parent_chain: str | None = None
    from_store: bool = False
    _names: list[str] | None = None

    @property
    def names(self) -> list[str]:
        """The names the cell adds (for completion): none when the REPL died on it."""
        return [] if self.failure is not None else self.declares

    @property
    def declares(self) -> list[str]:
        """The names its text declares, whatever became of it; read when first asked."""
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

    @property
    def builds_env(self) -> bool:
        """Whether later cells are elaborated on what it built (a live env, or a virtual one)."""
        return self.env is not None or (
            self.from_store and self.failure is None and isinstance(self.result, CommandResponse)
        )

    def is_current(self, parent: int | None, process: ProcessKey) -> bool:
        """Whether the cell was elaborated on ``parent`` in ``process`` (and did not fail)."""
        return (
            self.failure is None
            and self.result is not None
            and self.process == process
            and self.parent_env == parent
        )

    def set_result(
        self, result: CellResult, parent: int | None, elapsed: float, process: ProcessKey
    ) -> None:
        """The cell was elaborated on ``parent`` in ``process``: this is what it built."""
        self.result, self.parent_env, self.elapsed, self.process = result, parent, elapsed, process
        self.failure, self.from_store = None, False
        self.env = result.env if isinstance(result, CommandResponse) else None

    def set_stored(
        self, result: CommandResponse, elapsed: float, chain: str, parent_chain: str
    ) -> None:
        """The cell's answer came from the persistent store under ``chain``, for the env whose
        key is ``parent_chain``: it is virtual (no env in any process) until elaborated."""
        self.result, self.elapsed = result, elapsed
        self.chain, self.parent_chain = chain, parent_chain
        self.env, self.parent_env, self.process = None, None, None
        self.failure, self.from_store, self.sorry_handles = None, True, []

    def set_failure(self, failure: str) -> None:
        """The REPL died on the cell (``failure`` says how): it contributes nothing now."""
        self.failure = failure
        self.result, self.env, self.from_store = None, None, False


class Document:
    """The cells top to bottom, and how far down they are known to be current.

    Cells ``[0, known_current)`` are current in one process, so bringing the document up to
    date only looks at the cells after them (a long document costs nothing per run).
    """

    def __init__(self) -> None:
        self.cells: list[Cell] = []
        self._current_upto = 0
        self._current_in: ProcessKey | None = None

    def find(self, cell_id: str) -> Cell | None:
        """The cell with this id, if any."""
        return next((c for c in self.cells if c.id == cell_id), None)

    def clear(self) -> None:
        """Forget every cell."""
        self.cells.clear()
        self._current_upto = 0

    # -- placement ------------------------------------------------------------------------------

    def target_index(self, cell_id: str, text: str) -> int:
        """Where the cell goes: its place, the end, or the top for an import cell.

        Raises `ImportPlacementError` when another cell already holds the imports.
        """
        index = next((i for i, c in enumerate(self.cells) if c.id == cell_id), None)
        if is_import_cell(text):
            first = self.cells[0] if self.cells else None
            if first is not None and first.id != cell_id and is_import_cell(first.text):
                raise ImportPlacementError(
                    f"Imports go in the first cell of the document, and {first.label} already "
                    "has them. Add this import there and run that cell again (the cells below "
                    "are then re-checked), or run `%reset` to start a new document."
                )
            return 0
        return len(self.cells) if index is None else index

    def place(
        self,
        cell_id: str,
        text: str,
        label: str,
        line_offset: int,
        timeout: float | None,
        index: int,
    ) -> Cell:
        """Put the cell at ``index`` (moving it there if it was elsewhere) with its new text.

        With the same text as before it keeps its result (and sorry handles) until re-checked.
        """
        old = self.find(cell_id)
        if old is not None:
            self.changed_at(self.cells.index(old))
            self.cells.remove(old)
        self.changed_at(index)
        cell = Cell(cell_id, text, label, line_offset, timeout)
        if old is not None and old.text == text:
            cell.sorry_handles = old.sorry_handles
            cell.result, cell.env, cell.parent_env = old.result, old.env, old.parent_env
            cell.process, cell.elapsed = old.process, old.elapsed
            cell.chain, cell.parent_chain = old.chain, old.parent_chain
            cell.from_store = old.from_store
        self.cells.insert(index, cell)
        return cell

    def remove(self, cell_id: str) -> bool:
        """Take the cell out; returns whether it was there."""
        for i, cell in enumerate(self.cells):
            if cell.id == cell_id:
                del self.cells[i]
                self.changed_at(i)
                return True
        return False

    # -- staleness ------------------------------------------------------------------------------

    def changed_at(self, index: int) -> None:
        """The document changed at ``index``: cells from there on must be checked again."""
        self._current_upto = min(self._current_upto, index)

    def known_current(self, process: ProcessKey) -> int:
        """How many cells from the top are known to be current in ``process``."""
        if self._current_in != process:
            return 0
        return min(self._current_upto, len(self.cells))

    def mark_current(self, upto: int, process: ProcessKey) -> None:
        """Cells ``[0, upto)`` are current in ``process``."""
        self._current_upto, self._current_in = upto, process

    def parent_chain(self, index: int) -> str | None:
        """The store key of the env a cell at ``index`` is elaborated on: that of the last cell
        above it that built one ("" for a fresh environment; None when it is not known)."""
        for cell in reversed(self.cells[:index]):
            if cell.builds_env:
                return cell.chain
        return ""

    def settled_above(self, index: int, process: ProcessKey) -> bool:
        """Whether every cell above ``index`` is current in ``process``, virtual, or failed:
        bringing them up to date would only elaborate virtual cells for real."""
        return self.statuses(process)[:index].count("stale") == 0

    def drop_virtual(self) -> None:
        """The store's answers are another Lean's now: cells answered from it go stale."""
        for cell in self.cells:
            cell.from_store = False

    def has_virtual(self, upto: int) -> bool:
        """Whether a cell above ``upto`` is virtual (answered from the store, no env)."""
        return any(cell.from_store for cell in self.cells[:upto])

    def parent_env(self, index: int) -> int | None:
        """The env a cell at ``index`` must be elaborated on: that of the last cell above it
        that built one (None: a fresh environment)."""
        for cell in reversed(self.cells[:index]):
            if cell.env is not None:
                return cell.env
        return None

    def statuses(self, process: ProcessKey) -> list[CellStatus]:
        """The status of each cell, top to bottom, with ``process`` running."""
        statuses: list[CellStatus] = []
        outdated = False
        parent: int | None = None
        chain: str | None = ""
        for cell in self.cells:
            if cell.failure is not None:
                statuses.append("failed")
                continue
            if cell.from_store:  # current while answered for the env it is on now
                outdated = outdated or cell.parent_chain != chain
            else:
                outdated = outdated or not cell.is_current(parent, process)
            parent = parent if cell.env is None else cell.env
            chain = cell.chain if cell.builds_env else chain
            if outdated:
                statuses.append("stale")
            else:
                statuses.append("error" if cell.has_errors else "ok")
        return statuses

    # -- reading --------------------------------------------------------------------------------

    def tip_env(self, process: ProcessKey) -> int | None:
        """The env of the last cell that built one in ``process`` (None: a fresh environment)."""
        for cell in reversed(self.cells):
            if cell.env is not None and cell.process == process:
                return cell.env
        return None

    def declared_names(self) -> list[str]:
        """Names the document declares (for completion), in document order."""
        return list(dict.fromkeys(name for cell in self.cells for name in cell.names))

    def last_sorry(self) -> int | None:
        """The handle of the last ``sorry`` of the document (in a cell that did not fail)."""
        for cell in reversed(self.cells):
            if cell.sorry_handles and cell.failure is None:
                return cell.sorry_handles[-1]
        return None

"""Results of cells by (parent env, text), so an identical re-run sends nothing to the REPL.

Env ids only mean something in the process that made them, so the cache holds the results of
one REPL process and empties itself when asked about another.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from lean_kernel.notebook.process import CellResult, ProcessKey

__all__ = ["CachedResult", "ResultCache"]


class CachedResult(NamedTuple):
    """A cell's result and how long the REPL took to give it."""

    result: CellResult
    elapsed: float


class ResultCache:
    """The ``size`` most recently used results of one REPL process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[int | None, str], CachedResult] = OrderedDict()
        self._process: ProcessKey | None = None

    def get(self, process: ProcessKey, parent: int | None, text: str) -> CachedResult | None:
        """The result of ``text`` elaborated on ``parent`` in ``process``, if kept."""
        self._use(process)
        hit = self._entries.get((parent, text))
        if hit is not None:
            self._entries.move_to_end((parent, text))
        return hit

    def put(self, process: ProcessKey, parent: int | None, text: str, hit: CachedResult) -> None:
        """Keep a result, dropping the least recently used ones over ``size``."""
        self._use(process)
        self._entries[(parent, text)] = hit
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every result."""
        self._entries.clear()

    def _use(self, process: ProcessKey) -> None:
        if self._process != process:
            self._entries.clear()
            self._process = process

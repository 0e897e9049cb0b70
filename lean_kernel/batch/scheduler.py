"""Which commands a free worker takes next: headers it already holds first, then headers nobody
is on yet, then the header with the most work per worker on it.

Elaborating a header (``import Mathlib``) can cost as much as hundreds of commands, so a worker
keeps to the headers whose env it holds, new headers spread over idle workers, and a worker
only pays for a header someone else holds when that header has the most work left per worker.
A header here is the imports (the expensive part); the cheap settings after them travel with
each command.
Work goes out in chunks that shrink as the batch drains (guided self-scheduling): large enough to
keep per-job overhead small on a remote executor, small enough that workers finish together and
a cancel stops quickly. Older batches are served first.

Pure bookkeeping, no threads: the pool calls it under its own lock.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass

from lean_kernel.batch.jobs import BatchItem

__all__ = ["Assignment", "Scheduler"]

DIRECT = None
"""Group key of items sent as they are (no header)."""


@dataclass(frozen=True)
class Assignment:
    """Give ``items`` (all sharing ``header``) of batch ``batch_id`` to worker ``slot``."""

    batch_id: str
    slot: int
    header: str | None
    items: tuple[BatchItem, ...]


class Scheduler:
    """Pending items per batch and header, and what each worker holds or works on."""

    def __init__(self, num_slots: int, max_chunk: int = 16) -> None:
        self.num_slots = num_slots
        self.max_chunk = max(1, max_chunk)
        self._batches: OrderedDict[str, dict[str | None, deque[BatchItem]]] = OrderedDict()
        self._held: list[set[str]] = [set() for _ in range(num_slots)]
        self._working: list[str | None] = [None] * num_slots
        self._busy: set[int] = set()

    # -- work in ------------------------------------------------------------------------------

    def add(self, batch_id: str, groups: dict[str | None, list[BatchItem]]) -> None:
        """Queue a batch: its items grouped by header (``DIRECT`` for items without one)."""
        self._batches[batch_id] = {h: deque(items) for h, items in groups.items() if items}

    def drop(self, batch_id: str) -> list[BatchItem]:
        """Forget a batch's pending items (cancel) and return them."""
        groups = self._batches.pop(batch_id, {})
        return [item for items in groups.values() for item in items]

    def pending(self, batch_id: str | None = None) -> int:
        """Items not yet handed out, of one batch or of all."""
        batches = [self._batches.get(batch_id, {})] if batch_id else self._batches.values()
        return sum(len(items) for groups in batches for items in groups.values())

    # -- workers ------------------------------------------------------------------------------

    def free_slots(self) -> list[int]:
        return [slot for slot in range(self.num_slots) if slot not in self._busy]

    def reserve(self, slot: int) -> None:
        """Mark a worker busy with something else (a single ``run``)."""
        self._busy.add(slot)

    def release(self, slot: int, held_headers: tuple[str, ...] | None = None) -> None:
        """A worker is free again; ``held_headers`` is what its REPL holds now, when known."""
        self._busy.discard(slot)
        self._working[slot] = None
        if held_headers is not None:
            self._held[slot] = set(held_headers)

    def holds(self, slot: int, header: str) -> bool:
        return header in self._held[slot]

    def held(self, slot: int) -> set[str]:
        return set(self._held[slot])

    # -- work out -----------------------------------------------------------------------------

    def next_for(self, slot: int) -> Assignment | None:
        """The next chunk for free worker ``slot``, or None when nothing is pending."""
        for batch_id, groups in self._batches.items():
            live = {header: items for header, items in groups.items() if items}
            if not live:
                continue
            header = self._choose(slot, live)
            items = live[header]
            size = min(self.max_chunk, max(1, math.ceil(len(items) / (2 * self.num_slots))))
            chunk = tuple(items.popleft() for _ in range(min(size, len(items))))
            self._busy.add(slot)
            self._working[slot] = header
            self._prune()
            return Assignment(batch_id=batch_id, slot=slot, header=header, items=chunk)
        return None

    def _choose(self, slot: int, live: dict[str | None, deque[BatchItem]]) -> str | None:
        def size(header: str | None) -> int:
            return len(live[header])

        held = [h for h in live if h is DIRECT or h in self._held[slot]]
        if held:
            return max(held, key=size)
        untouched = [h for h in live if self._workers_on(h) == 0]
        if untouched:
            return max(untouched, key=size)
        return max(live, key=lambda h: size(h) / (1 + self._workers_on(h)))

    def _workers_on(self, header: str | None) -> int:
        return sum(
            1
            for slot in range(self.num_slots)
            if self._working[slot] == header or header in self._held[slot]
        )

    def _prune(self) -> None:
        for batch_id in [b for b, groups in self._batches.items() if not any(groups.values())]:
            del self._batches[batch_id]

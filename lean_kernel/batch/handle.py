"""``BatchHandle``: a batch in flight, as its submitter sees it.

The pool's dispatcher fills the handle's ``results`` (``record``, ``finish``) and the handle calls
its listeners (progress views); the submitter waits, cancels, or reads partial results. The
handle knows the dispatcher only as a ``BatchControl`` (cancel a batch, be told it finished), so
it depends on nothing else of the pool. A running batch keeps its pool alive, a finished one
does not.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from lean_kernel.batch.results import BatchResults, ItemResult

__all__ = ["BatchControl", "BatchHandle"]

_WAIT_SLICE_S = 0.25
#: How long an interrupted ``wait`` lets the cancelled batch wind down before raising.
_CANCEL_GRACE_S = 2.0


class BatchControl(Protocol):
    """What a handle asks of whoever runs its batch (the pool's dispatcher)."""

    def cancel_batch(self, handle: BatchHandle) -> None:
        """Drop the batch's pending items and stop its running ones."""

    def batch_finished(self, handle: BatchHandle) -> None:
        """The batch's last item is in: forget it."""


class BatchHandle:
    """A batch in flight: its live ``results``, progress numbers, ``cancel()`` and ``result()``.

    Listeners added with ``add_listener`` are called (from worker threads) after each finished
    item and once at the end; keep them quick. The last call comes before the batch counts as
    done: ``wait()``, ``result()``, the ``future`` (``run_batch``, ``async_run_batch``) and
    ``results.wait()`` all return after it, so a progress view has shown the final state by then.
    """

    def __init__(
        self, control: BatchControl, batch_id: str, results: BatchResults, owner: Any = None
    ) -> None:
        self._control: BatchControl | None = control
        self._owner = owner  # the pool: kept alive while the batch runs
        self.batch_id = batch_id
        self.results = results
        self.future: concurrent.futures.Future[BatchResults] = concurrent.futures.Future()
        self.future.set_running_or_notify_cancel()
        self.cancel_event = threading.Event()
        self._listeners: list[Callable[[BatchHandle], None]] = []
        self._item_hooks: list[Callable[[ItemResult], None]] = []
        self._lock = threading.Lock()
        self._finishing = False
        # results.cancel() cancels the batch; cleared by finish(), which results.wait() awaits.
        results.on_cancel(self.cancel)

    # -- numbers -------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def done_count(self) -> int:
        return self.results.done

    @property
    def elapsed(self) -> float:
        return self.results.elapsed

    def eta(self) -> float | None:
        """Seconds left at the rate so far; None before the first item ends."""
        done = self.results.done
        if not done:
            return None
        return self.results.elapsed / done * (self.total - done)

    def done(self) -> bool:
        """Whether every item has finished (or been cancelled)."""
        return self.future.done()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    # -- control -------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the batch: pending items are dropped, running REPLs of this batch are killed."""
        control = self._control
        if control is not None:
            control.cancel_batch(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the batch ends or ``timeout`` passes; True if it ended (its listeners,
        progress views among them, have been told: they show the final state).

        Waits in short slices, so Ctrl-C gets through; Ctrl-C also cancels the batch, and gives
        it a moment to wind down so its progress ends on the cancelled counts.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self.future.done():
                left = _WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return False
                concurrent.futures.wait([self.future], timeout=min(left, _WAIT_SLICE_S))
        except KeyboardInterrupt:
            self.cancel()
            concurrent.futures.wait([self.future], timeout=_CANCEL_GRACE_S)
            raise
        return True

    def result(self, timeout: float | None = None) -> BatchResults:
        """The finished results; ``TimeoutError`` if the batch still runs after ``timeout``."""
        if not self.wait(timeout):
            raise TimeoutError(f"the batch is still running after {timeout} s")
        return self.future.result()

    def add_listener(self, listener: Callable[[BatchHandle], None]) -> None:
        """Call ``listener(handle)`` after each finished item and when the batch ends (at once,
        in this thread, if it is ending already)."""
        with self._lock:
            self._listeners.append(listener)
            ending = self._finishing
        if ending:  # the last round of calls may have missed it
            listener(self)

    # -- filled in by the pool ---------------------------------------------------------------

    def add_item_hook(self, hook: Callable[[ItemResult], None]) -> None:
        """Call ``hook(item)`` with each item as it is stored (once per item; before the
        listeners hear of it). Add hooks before the batch starts."""
        self._item_hooks.append(hook)

    def record(self, items: Iterable[ItemResult]) -> None:
        """Store finished items (the first answer for an item wins) and tell the listeners;
        the last item finishes the batch. Called by the pool, from any thread."""
        stored = [item for item in items if self.results.record(item)]
        if not stored:
            return
        for hook in self._item_hooks:
            for item in stored:
                try:
                    hook(item)
                except Exception as error:  # noqa: BLE001 - a hook must not lose results
                    warnings.warn(f"batch item hook failed: {error!r}", stacklevel=1)
        if self.results.complete:
            self.finish()
        else:
            self._notify()

    def finish(self) -> None:
        """Tell listeners (the last time: progress views show the final state now), then let
        waiters go: ``results.wait()`` (it waits for the results' cancel hook to be cleared)
        and the future. Once, whoever gets here."""
        with self._lock:
            if self._finishing:
                return
            self._finishing = True
        control, self._control = self._control, None
        self._owner = None  # a finished batch no longer keeps the pool alive
        if control is not None:
            control.batch_finished(self)
        self._notify()
        self.results.on_cancel(None)
        self.future.set_result(self.results)

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(self)
            except Exception as error:  # noqa: BLE001 - a broken progress bar must not stop work
                warnings.warn(f"batch progress listener failed: {error!r}", stacklevel=1)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "done" if self.done() else "running"
        return f"<BatchHandle {self.done_count}/{self.total} {state}>"

"""What only the kernel does with a ``%%lean_batch`` (the start is shared: ``batch.magic``).

The cell awaits the batch instead of blocking, so while it runs the event loop still handles
comm messages (a progress widget's Cancel button); an interrupt cancels the batch (pending items
are dropped, running REPLs killed) and fails the cell. At the end the results table is shown, as
the cell's output (a Lean notebook has no variable to hold the results; ``%batch`` shows them
again).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from lean_kernel.batch.handle import BatchHandle
from lean_kernel.batch.keeper import BatchRun
from lean_kernel.display.progress import ProgressMode
from lean_kernel.kernel.host import Output, Reply

__all__ = ["await_batch", "progress_mode"]

#: How often a running batch cell looks at the interrupt flag.
_BATCH_POLL_S = 0.05
#: How long a cancelled batch may take to wind down before the cell ends anyway.
_BATCH_CANCEL_GRACE_S = 10.0


async def await_batch(
    run: BatchRun,
    count: int,
    output: Output,
    cancel: threading.Event,
    log: logging.Logger,
) -> Reply:
    """Wait for the batch of ``count`` commands, then show its table. An interrupt (``cancel``)
    cancels the batch and fails the cell; the Cancel button of the progress widget cancels it
    too, but the cell then ends normally with its partial report."""
    handle = run.handle
    interrupted = await _wait(handle, cancel, log)
    if run.progress is not None:
        # Its last update goes out before the table. The driver shows the end before the
        # handle is done, so this is at once, except when an interrupted batch did not end.
        await asyncio.to_thread(run.progress.finished.wait, 5.0)
    output.display(handle.results.table_bundle(more=f"`%batch {run.name} all` shows every item"))
    if interrupted:
        left = handle.results.counts().get("cancelled", 0)
        return output.error(
            "KeyboardInterrupt",
            f"Interrupted: batch `{run.name}` cancelled ({count - left} of {count} "
            "commands had finished; the running ones were stopped).",
        )
    return {"status": "ok"}


async def _wait(handle: BatchHandle, cancel: threading.Event, log: logging.Logger) -> bool:
    """Wait for the batch, cancelling it on an interrupt; True if interrupted."""
    interrupted = False
    deadline = None
    while not handle.done():
        if cancel.is_set() and not interrupted:
            interrupted = True
            handle.cancel()
            deadline = time.monotonic() + _BATCH_CANCEL_GRACE_S
        if deadline is not None and time.monotonic() > deadline:
            log.warning("a cancelled batch did not end in %s s", _BATCH_CANCEL_GRACE_S)
            break
        await asyncio.sleep(_BATCH_POLL_S)
    return interrupted


def progress_mode(asked: str, *, named_cell: bool) -> ProgressMode:
    """``auto``: the widget for frontends that name their cells (JupyterLab, Notebook 7,
    VS Code: they render widgets), else the text line (console, nbclient: it is saved)."""
    if asked != "auto":
        return asked  # type: ignore[return-value]  # one of args.PROGRESS_MODES
    if not named_cell:
        return "text"
    try:
        import ipywidgets  # noqa: F401
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        return "text"
    return "widget"

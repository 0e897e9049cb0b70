"""What the IPython extension keeps for one shell: settings, the Lean document, the batch pool.

``LeanSession`` is also the ``BatchHost`` of the shared ``%%lean_batch``
(``lean_kernel.batch.magic``): in a Python notebook a batch says where its results go in words
about the results variable, prints rather than sending kernel notes, and shows progress through
IPython's display publisher.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

from lean_kernel.batch.keeper import BatchKeeper, BatchRun
from lean_kernel.batch.pool import LeanServerPool
from lean_kernel.display.progress import ProgressMode, Send, ipython_send
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.resultstore import ResultStore, open_store
from lean_kernel.engine.settings import Settings
from lean_kernel.notebook import Notebook

__all__ = ["LeanSession"]


@dataclass
class _Execution:
    """The IPython execution being run: its cell id and how many ``%lean`` it has used."""

    cell_id: str | None = None
    count: int = 0
    used: int = 0


class LeanSession:
    """What the extension keeps for one IPython shell: settings, the Lean cell document (with
    its REPL), and the batch pool. REPLs start on first use."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.settings = Settings.from_env()
        #: the batch pool (made by the first %%lean_batch) and the last batches
        self.keeper = BatchKeeper()
        self._lock = threading.RLock()
        self._notebook: Notebook | None = None
        #: the result cache, once opened (``_store_opened``: None then means it is off)
        self._store: ResultStore | None = None
        self._store_opened = False
        self._execution = _Execution()
        #: batches whose progress showed its end while a cell ran (nbclient saved it)
        self._ended_in_a_cell: set[str] = set()

    # -- REPLs -----------------------------------------------------------------------------------

    @property
    def notebook(self) -> Notebook:
        """The document of ``%lean`` cells, with its REPL (started now if needed; with the
        result cache on, when the first cell the cache cannot answer needs it)."""
        with self._lock:
            if self._notebook is None:
                self._notebook = Notebook(
                    self.settings.config(os.getcwd()),
                    timeout=self.settings.timeout,
                    max_process_memory=self.settings.memory_mb,
                    store=self.result_store(),
                )
            return self._notebook

    @property
    def started_notebook(self) -> Notebook | None:
        """The document if a ``%lean`` started it (status tables do not start one)."""
        return self._notebook

    def result_store(self) -> ResultStore | None:
        """The result cache (``$LEAN_KERNEL_RESULT_CACHE`` or the default file), opened at first
        use; None when that variable turns it off."""
        with self._lock:
            if not self._store_opened:
                self._store, self._store_opened = open_store(True), True
            return self._store

    @property
    def batches(self) -> list[BatchRun]:
        """The last batches, oldest first."""
        return self.keeper.batches

    @property
    def _pool(self) -> LeanServerPool | None:
        return self.keeper.pool

    def reconfigure(self, settings: Settings) -> list[str]:
        """Apply new settings; returns what was done, in words."""
        with self._lock:
            old, self.settings = self.settings, settings
            done = []
            repl_changed = (old.repl, old.project, old.memory_mb, old.incremental) != (
                settings.repl,
                settings.project,
                settings.memory_mb,
                settings.incremental,
            )
            if repl_changed and self.keeper.running():
                self.settings = old
                raise UsageError(
                    "A batch is running; cancel it (RESULTS.cancel(), or its Cancel button) or "
                    "wait for it before changing the REPL."
                )
            if repl_changed and self._pool is not None:
                self.keeper.close_pool()
                done.append("batch pool closed (the next batch starts a new one)")
            if self._notebook is not None:
                self._notebook.timeout = settings.timeout
                if repl_changed:
                    self._notebook.max_process_memory = settings.memory_mb
                    recheck = self._notebook.use_config(settings.config(os.getcwd()))
                    done.append(recheck.summary())
            resized = old.workers != settings.workers and self._pool is not None
            if resized and not self.keeper.running():
                self.keeper.close_pool()
                done.append("batch pool closed (the next batch starts one of the new size)")
            idle_changed = old.idle_timeout != settings.idle_timeout and self._pool is not None
            if idle_changed and not self.keeper.running():
                self.keeper.close_pool()
                done.append("batch pool closed (the next batch starts one with the new idle limit)")
            elif idle_changed:
                done.append("the running batch's pool keeps its idle limit; the next pool uses it")
            return done

    def close(self) -> None:
        """Stop the document's REPL and the batch pool (cancelling running batches)."""
        with self._lock:
            self.keeper.close()
            notebook, self._notebook = self._notebook, None
            if notebook is not None:
                notebook.close()
            if self._store is not None:
                self._store.close()

    # -- the shared %%lean_batch's host ------------------------------------------------------------

    def pool_config(self) -> LeanREPLConfig:
        """A new batch pool runs what the session's settings describe."""
        return self.settings.config(os.getcwd())

    def note(self, text: str) -> None:
        """A line about the batch pool, printed under the cell."""
        print(text)

    def warn(self, text: str) -> None:
        """A warning about the batch pool, as a Python warning (filters and tests see it)."""
        warnings.warn(text, RuntimeWarning, stacklevel=3)

    def announce(self, run: BatchRun, count: int) -> None:
        """The batch runs in the background; its results fill the variable ``run.name``."""
        name = run.name
        print(
            f"Checking {count} commands on {run.workers} workers in the background; "
            f"results fill `{name}` ({name}.wait() blocks until done, "
            f"{name}.cancel() stops)."
        )

    def progress_target(self, mode: str) -> tuple[ProgressMode, Send | None]:
        """Display messages go through IPython's publisher under a kernel (or when asked for
        outside a terminal). In a terminal IPython every mode but ``none`` is the terminal
        line (``display.terminal.TerminalProgress``): live while a cell runs (the user is
        waiting: ``wait()``), silent while the prompt is up, and one line above the prompt
        when the batch ends there. A terminal can show neither a widget nor a display updated
        in place: its display publisher would print each update over the prompt."""
        has_kernel = getattr(self.shell, "kernel", None) is not None
        if mode == "none":
            return "none", None
        if has_kernel or (mode in ("widget", "text") and not _in_terminal(self.shell)):
            return mode, ipython_send(self.shell)  # type: ignore[return-value]
        return "auto", None

    # -- cell ids ------------------------------------------------------------------------------

    def pre_run_cell(self, info: Any) -> None:
        """IPython's hook before each execution: note the frontend's cell id; show again the
        end of batches that ended between cells (see ``post_run_cell``)."""
        cell_id = getattr(info, "cell_id", None) or self._parent_cell_id()
        self._execution = _Execution(cell_id=cell_id, count=self.shell.execution_count)
        for run in self._ended_runs():
            if run.handle.batch_id not in self._ended_in_a_cell and run.progress is not None:
                run.progress.show_again()
        self._ended_in_a_cell = {run.handle.batch_id for run in self._ended_runs()}

    def post_run_cell(self, result: Any = None) -> None:
        """IPython's hook after each execution: note which batches' progress has shown its end
        while a cell ran. One that ends after this, between cells, is shown again from the next
        cell: nbclient (``nbconvert --execute``) saves only what arrives while a cell runs."""
        self._ended_in_a_cell = {run.handle.batch_id for run in self._ended_runs()}

    def _ended_runs(self) -> list[BatchRun]:
        return [r for r in self.keeper.batches if r.progress and r.progress.finished.is_set()]

    def _parent_cell_id(self) -> str | None:
        """``cellId`` from the execute request's metadata (JupyterLab, Notebook 7, VS Code)."""
        parent = getattr(self.shell, "parent_header", None)
        kernel = getattr(self.shell, "kernel", None)
        if not parent and kernel is not None and hasattr(kernel, "get_parent"):
            parent = kernel.get_parent()
        metadata = (parent or {}).get("metadata") or {}
        cell_id = metadata.get("cellId")
        return str(cell_id) if cell_id else None

    def next_cell(self) -> tuple[str | None, str]:
        """(Notebook cell id, label) for the next Lean run of this execution: the frontend's
        cell id and the run's position in the execution, or None (a new cell each time)."""
        execution = self._execution
        execution.used += 1
        label = f"[{execution.count}]" + (f".{execution.used}" if execution.used > 1 else "")
        if execution.cell_id is None:
            return None, label
        return f"{execution.cell_id}/{execution.used}", label


def _in_terminal(shell: Any) -> bool:
    """Whether ``shell`` reads cells at a prompt_toolkit prompt in a terminal."""
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    return isinstance(shell, TerminalInteractiveShell)

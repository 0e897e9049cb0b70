"""The IPython extension: Lean from Python notebooks.

``%load_ext lean_kernel`` (or ``%load_ext lean_interact``) adds:

* ``%lean CODE`` and ``%%lean [-o VAR] [-t TIMEOUT] [--raise]``: run Lean on a REPL the extension
  keeps, with the Lean kernel's cell model (``lean_kernel.notebook``): a cell re-run replaces
  itself in place, later cells are re-checked, a crashed REPL is replayed. Cells are told apart by
  the frontend's cell id (plus the position of each ``%lean`` in it); without one, every run is a
  new cell. The result is returned for Python (``messages``, ``sorries``, ``env``) and shows the
  diagnostics richly.
* ``%%lean_batch``: many commands on a background pool that stays warm across batches; returns
  at once, shows live progress with a Cancel button, and fills a results variable.
* ``%lean_config`` (REPL, project, memory, timeout, workers, idle limit of the pool's REPLs) and
  ``%lean_status`` (which pool REPLs run, and which were ended for being idle).
* ``%lean_cache info|clear``: the result cache batches keep Lean's answers in, across sessions.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psutil
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class

from lean_kernel.batch.args import BatchArgsError, parse_batch_args, read_commands
from lean_kernel.batch.caching import CacheUsageError, cache_command
from lean_kernel.batch.magic import start_batch
from lean_kernel.display import render_table, titled
from lean_kernel.errors import LeanKernelError
from lean_kernel.ipython.options import (
    CellOptions,
    describe_settings,
    parse_cell_options,
    parse_config,
)
from lean_kernel.ipython.result import LeanResult
from lean_kernel.ipython.session import LeanSession

__all__ = ["LeanMagics", "LeanSession", "load_ipython_extension", "unload_ipython_extension"]

T = TypeVar("T")

_INTERRUPT_GRACE_S = 30.0


@magics_class
class LeanMagics(Magics):
    """``%lean``, ``%%lean``, ``%%lean_batch``, ``%lean_config``, ``%lean_status`` and
    ``%lean_cache``."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.session = LeanSession(shell)

    # -- %lean / %%lean ----------------------------------------------------------------------

    @line_cell_magic
    def lean(self, line: str, cell: str | None = None) -> LeanResult | None:
        """Run Lean code: ``%lean CODE`` or a ``%%lean [-o VAR] [-t TIMEOUT] [--raise]`` cell.

        Returns the result (``messages``, ``sorries``, ``env``...), shown as Lean diagnostics.
        Cells follow the Lean kernel's document model: re-running a cell replaces it in place.
        """
        if cell is None:
            code, options = line, CellOptions()
        else:
            code, options = cell, parse_cell_options(line)
        if not code.strip():
            raise UsageError("%lean needs Lean code: `%lean #eval 1 + 1`, or a %%lean cell")
        session = self.session
        cell_id, label = session.next_cell()
        notebook = session.notebook

        def run_and_judge(cancel: threading.Event) -> LeanResult:
            run = notebook.run(
                code, cell_id=cell_id, label=label, timeout=options.timeout, cancel=cancel
            )
            judged = notebook.run_verdicts(run, cancel=cancel)
            return LeanResult(code, run, label, tuple(judged.verdicts))

        try:
            result = _interruptible(run_and_judge)
        except LeanKernelError as err:  # a misplaced import, no REPL...: the user's to fix
            raise UsageError(str(err)) from None
        if options.output:
            self.shell.user_ns[options.output] = result
        if options.raise_errors:
            result.raise_for_errors()
        return result

    # -- %%lean_batch ------------------------------------------------------------------------

    @line_cell_magic
    def lean_batch(self, line: str, cell: str | None = None) -> None:
        """Check many commands in the background:
        ``%%lean_batch [-w WORKERS] [-t TIMEOUT] [--header CODE] [-o VAR] [--sep LINE]
        [--progress auto|widget|text|none] [--no-cache] [--cluster ADDRESS]`` with the commands
        in the cell, separated by ``----`` lines (``--sep``); or ``%lean_batch -i VAR ...`` with
        the commands in the list ``VAR``. ``--no-cache`` runs every command even when the result
        cache has its answer.

        Returns at once; results fill ``-o VAR`` (default ``lean_results``): one item per command
        with status, messages and time, in input order (``VAR.wait()``, ``VAR.cancel()``,
        ``VAR.to_pandas()``). The pool stays warm for the next batch.
        """
        try:
            args = parse_batch_args(line)
            commands = read_commands(args, cell or "", self.shell.user_ns)
        except BatchArgsError as err:
            raise UsageError(str(err)) from None
        try:
            run = start_batch(self.session, args, commands)
        except LeanKernelError as err:  # no REPL can be set up: the user's to fix
            raise UsageError(str(err)) from None
        self.shell.user_ns[args.output] = run.handle.results

    # -- %lean_config / %lean_status ---------------------------------------------------------

    @line_magic
    def lean_config(self, line: str) -> None:
        """Show or set the session's Lean settings:
        ``%lean_config [--repl CMD] [--project DIR] [--memory MB] [--timeout S] [--workers N]
        [--incremental on|off] [--progress auto|widget|text|none] [--idle S]`` (``none`` clears a
        value). ``--idle``: seconds a batch-pool REPL may sit idle before it is ended to free its
        memory (restarted when needed; default 600, ``none`` keeps idle REPLs).
        """
        session = self.session
        settings = parse_config(line, session.settings)
        if settings != session.settings:
            for note in session.reconfigure(settings):
                print(note)
        print(describe_settings(session.settings))

    @line_magic
    def lean_status(self, line: str) -> None:
        """Show the session's REPL, the batch pool's workers (running, or reaped for being idle,
        with the pool's idle limit) and batches, and memory."""
        if line.strip():
            raise UsageError("%lean_status takes no arguments")
        from IPython.display import display

        for bundle in _status_bundles(self.session):
            display(bundle, raw=True)

    @line_magic
    def lean_cache(self, line: str) -> None:
        """The result cache batches keep Lean's answers in, across sessions:
        ``%lean_cache info`` (its file, entries, size, files set aside) or ``%lean_cache clear``
        (empty it). ``LEAN_KERNEL_RESULT_CACHE`` moves it (a path) or turns it off (``off``)."""
        try:
            print(cache_command(self.session.result_store(), line))
        except CacheUsageError as err:
            raise UsageError(str(err)) from None


# -- helpers -------------------------------------------------------------------------------------


def _status_bundles(session: LeanSession) -> list[dict[str, str]]:
    bundles = []
    notebook = session.started_notebook
    server = notebook.running_server if notebook is not None else None
    if notebook is None or server is None:
        bundles.append(
            _text("Session REPL: not started (the first %lean that needs Lean starts it)")
        )
    else:
        row = {
            "REPL": "session",
            "pid": server.pid,
            "alive": server.is_alive(),
            "memory (MB)": round(server.memory_mb(), 1),
            "restarts": server.restart_count,
            "cells": len(notebook.cells),
        }
        bundles.append(titled("Session REPL", render_table([row])))
    keeper = session.keeper
    rows = keeper.pool_rows()
    if rows is None:
        bundles.append(_text("Batch pool: not started (the first %%lean_batch starts it)"))
    else:
        bundles.append(titled(keeper.pool_title(), render_table(rows)))
    if keeper.batches:
        bundles.append(titled("Batches", render_table(keeper.batch_rows())))
    memory = psutil.virtual_memory()
    bundles.append(
        _text(
            f"Machine memory: {memory.available / 2**30:.1f} GB available of "
            f"{memory.total / 2**30:.1f} GB ({memory.percent:.0f}% used)"
        )
    )
    return bundles


def _text(line: str) -> dict[str, str]:
    return {"text/plain": line, "text/html": f"<div>{html.escape(line)}</div>"}


def _interruptible(call: Callable[[threading.Event], T]) -> T:
    """Run ``call(cancel)`` in a thread; Ctrl-C (a kernel interrupt) sets ``cancel`` so the REPL
    is killed and the document replayed cleanly, then the interrupt goes on."""
    cancel = threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call(cancel)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="lean-cell", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        cancel.set()
        thread.join(_INTERRUPT_GRACE_S)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# -- loading -------------------------------------------------------------------------------------


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics on ``ipython`` (once, whichever of lean_kernel / lean_interact)."""
    if _magics_of(ipython) is not None:
        return
    magics = LeanMagics(ipython)
    ipython.register_magics(magics)
    ipython.events.register("pre_run_cell", magics.session.pre_run_cell)
    ipython.events.register("post_run_cell", magics.session.post_run_cell)
    for problem in magics.session.settings.problems:
        print(f"lean_kernel: {problem}")


def unload_ipython_extension(ipython: Any) -> None:
    """Stop the extension's REPLs and pool, and forget the execution hook."""
    magics = _magics_of(ipython)
    if magics is None:
        return
    magics.session.close()
    ipython.events.unregister("pre_run_cell", magics.session.pre_run_cell)
    ipython.events.unregister("post_run_cell", magics.session.post_run_cell)
    ipython.magics_manager.registry.pop(type(magics).__name__, None)
    for kind in ("line", "cell"):
        table = ipython.magics_manager.magics[kind]
        for name in ("lean", "lean_batch", "lean_config", "lean_status", "lean_cache"):
            table.pop(name, None)


def _magics_of(ipython: Any) -> LeanMagics | None:
    magics = ipython.magics_manager.registry.get(LeanMagics.__name__)
    return magics if isinstance(magics, LeanMagics) else None

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
* ``%lean_config`` (REPL, project, memory, timeout, workers) and ``%lean_status``.
"""

from __future__ import annotations

import argparse
import html
import os
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import psutil
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class

from lean_kernel.batch.args import (
    PROGRESS_MODES,
    BatchArgsError,
    commands_from_value,
    parse_batch_args,
    split_commands,
)
from lean_kernel.batch.keeper import BatchKeeper, BatchRun, titled
from lean_kernel.batch.pool import LeanServerPool
from lean_kernel.display.progress import attach_progress, ipython_send
from lean_kernel.display.render import render_table
from lean_kernel.engine.settings import (
    Settings,
    parse_megabytes,
    parse_on_off,
    parse_positive,
    parse_seconds,
)
from lean_kernel.errors import LeanKernelError
from lean_kernel.ipython.result import LeanResult
from lean_kernel.notebook import Notebook

__all__ = ["LeanMagics", "LeanSession", "load_ipython_extension", "unload_ipython_extension"]

T = TypeVar("T")

_INTERRUPT_GRACE_S = 30.0


@dataclass
class _Execution:
    """The IPython execution being run: its cell id and how many ``%lean`` it has used."""

    cell_id: str | None = None
    count: int = 0
    used: int = 0
    ids: dict[str, int] = field(default_factory=dict)


class LeanSession:
    """What the extension keeps for one IPython shell: settings, the Lean cell document (with
    its REPL), and the batch pool. REPLs start on first use."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.settings = Settings.from_env()
        self.problems = self.settings.problems
        self.keeper = BatchKeeper()
        self._lock = threading.RLock()
        self._notebook: Notebook | None = None
        self._execution = _Execution()

    # -- REPLs -----------------------------------------------------------------------------------

    @property
    def notebook(self) -> Notebook:
        with self._lock:
            if self._notebook is None:
                self._notebook = Notebook(
                    self.settings.config(os.getcwd()),
                    timeout=self.settings.timeout,
                    max_process_memory=self.settings.memory_mb,
                )
            return self._notebook

    def pool(self, workers: int | None) -> LeanServerPool:
        """The batch pool, warm across batches; made again when asked for another size."""
        with self._lock:
            return self.keeper.pool_for(
                lambda: self.settings.config(os.getcwd()),
                workers or self.settings.workers,
                max_process_memory=self.settings.memory_mb,
            )

    @property
    def batches(self) -> list[BatchRun]:
        """The last batches, oldest first."""
        return self.keeper.batches

    @property
    def _pool(self) -> LeanServerPool | None:
        return self.keeper.pool

    def running_batches(self) -> list[BatchRun]:
        return self.keeper.running()

    def _close_pool(self) -> None:
        self.keeper.close_pool()

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
            if repl_changed and self.running_batches():
                self.settings = old
                raise UsageError(
                    "A batch is running; cancel it (RESULTS.cancel(), or its Cancel button) or "
                    "wait for it before changing the REPL."
                )
            if repl_changed and self._pool is not None:
                self._close_pool()
                done.append("batch pool closed (the next batch starts a new one)")
            if self._notebook is not None:
                self._notebook.timeout = settings.timeout
                if repl_changed:
                    self._notebook.max_process_memory = settings.memory_mb
                    recheck = self._notebook.use_config(settings.config(os.getcwd()))
                    done.append(recheck.summary())
            resized = old.workers != settings.workers and self._pool is not None
            if resized and not self.running_batches():
                self._close_pool()
                done.append("batch pool closed (the next batch starts one of the new size)")
            return done

    def close(self) -> None:
        with self._lock:
            self.keeper.close()
            notebook, self._notebook = self._notebook, None
            if notebook is not None:
                notebook.close()

    # -- cell ids ------------------------------------------------------------------------------

    def pre_run_cell(self, info: Any) -> None:
        """IPython's hook before each execution: note the frontend's cell id."""
        cell_id = getattr(info, "cell_id", None) or self._parent_cell_id()
        self._execution = _Execution(cell_id=cell_id, count=self.shell.execution_count)

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


@magics_class
class LeanMagics(Magics):
    """``%lean``, ``%%lean``, ``%%lean_batch``, ``%lean_config`` and ``%lean_status``."""

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
            code, options = line, _CellOptions()
        else:
            code, options = cell, _parse_cell_options(line)
        if not code.strip():
            raise UsageError("%lean needs Lean code: `%lean #eval 1 + 1`, or a %%lean cell")
        session = self.session
        cell_id, label = session.next_cell()
        notebook = session.notebook
        try:
            run = _interruptible(
                lambda cancel: notebook.run(
                    code, cell_id=cell_id, label=label, timeout=options.timeout, cancel=cancel
                )
            )
        except LeanKernelError as err:  # a misplaced import, no REPL...: the user's to fix
            raise UsageError(str(err)) from None
        result = LeanResult(code, run, label)
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
        [--progress auto|widget|text|none]`` with the commands in the cell, separated by ``----``
        lines (``--sep``); or ``%lean_batch -i VAR ...`` with the commands in the list ``VAR``.

        Returns at once; results fill ``-o VAR`` (default ``lean_results``): one item per command
        with status, messages and time, in input order (``VAR.wait()``, ``VAR.cancel()``,
        ``VAR.to_pandas()``). The pool stays warm for the next batch.
        """
        cell = cell or ""
        try:
            args = parse_batch_args(line)
            if args.input is None and not cell.strip():
                raise BatchArgsError(
                    "no commands: put them in a %%lean_batch cell, separated by ----, or name a "
                    "list of them: %lean_batch -i VAR"
                )
            if args.input is not None:
                if cell.strip():
                    raise BatchArgsError("give the commands in the cell or with -i, not both")
                if args.input not in self.shell.user_ns:
                    raise BatchArgsError(f"-i {args.input}: no such variable")
                commands = commands_from_value(self.shell.user_ns[args.input], args.input)
            else:
                commands = split_commands(cell, args.separator)
        except BatchArgsError as err:
            raise UsageError(str(err)) from None
        session = self.session
        try:
            pool = session.pool(args.workers)
        except LeanKernelError as err:
            raise UsageError(str(err)) from None
        timeout = args.timeout if args.timeout is not None else session.settings.timeout
        handle = pool.submit_batch(
            commands, header=args.header, timeout_per_cmd=timeout, label=args.output
        )
        self.shell.user_ns[args.output] = handle.results
        print(
            f"Checking {len(commands)} commands on {pool.num_workers} workers in the background; "
            f"results fill `{args.output}` ({args.output}.wait() blocks until done, "
            f"{args.output}.cancel() stops)."
        )
        mode = args.progress or session.settings.progress
        progress = attach_progress(handle, mode, send=_send_for(self.shell, mode))
        session.keeper.add(BatchRun(args.output, handle, progress, pool.num_workers))

    # -- %lean_config / %lean_status ---------------------------------------------------------

    @line_magic
    def lean_config(self, line: str) -> None:
        """Show or set the session's Lean settings:
        ``%lean_config [--repl CMD] [--project DIR] [--memory MB] [--timeout S] [--workers N]
        [--incremental on|off] [--progress auto|widget|text|none]`` (``none`` clears a value).
        """
        session = self.session
        settings = _parse_config(line, session.settings)
        if settings != session.settings:
            for note in session.reconfigure(settings):
                print(note)
        print(_describe_settings(session.settings))

    @line_magic
    def lean_status(self, line: str) -> None:
        """Show the session's REPL, the batch pool's workers and batches, and memory."""
        if line.strip():
            raise UsageError("%lean_status takes no arguments")
        from IPython.display import display

        for bundle in _status_bundles(self.session):
            display(bundle, raw=True)


# -- helpers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CellOptions:
    output: str | None = None
    timeout: float | None = None
    raise_errors: bool = False


class _UsageParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit the kernel
        raise UsageError(f"{message}\nusage: {self.format_usage().strip()}")


def _parse_cell_options(line: str) -> _CellOptions:
    parser = _UsageParser(prog="%%lean", add_help=False)
    parser.add_argument("-o", "--output")
    parser.add_argument("-t", "--timeout", type=float)
    parser.add_argument("--raise", dest="raise_errors", action="store_true")
    args = parser.parse_args(_split(line))
    if args.output is not None and not args.output.isidentifier():
        raise UsageError(f"-o needs a Python variable name, not {args.output!r}")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("-t needs a positive number of seconds")
    return _CellOptions(args.output, args.timeout, args.raise_errors)


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as err:
        raise UsageError(f"cannot read the arguments ({err}): {line!r}") from None


def _argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from one of ``engine.settings``' parsers (its message on bad input)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


def _workers(text: str) -> int | None:
    value = parse_positive(text, "workers")
    if value is not None and value != int(value):
        raise ValueError(f"{text!r} is not a whole number of workers")
    return None if value is None else int(value)


_UNSET = object()


def _parse_config(line: str, current: Settings) -> Settings:
    parser = _UsageParser(prog="%lean_config", add_help=False)
    parser.add_argument("--repl", default=_UNSET)
    parser.add_argument("--project", default=_UNSET)
    parser.add_argument("--memory", type=_argument(parse_megabytes), default=_UNSET)
    parser.add_argument("--timeout", type=_argument(parse_seconds), default=_UNSET)
    parser.add_argument("--workers", type=_argument(_workers), default=_UNSET)
    parser.add_argument("--incremental", type=_argument(parse_on_off), default=_UNSET)
    parser.add_argument("--progress", choices=PROGRESS_MODES, default=_UNSET)
    args = parser.parse_args(_split(line))
    changes: dict[str, Any] = {}
    if args.repl is not _UNSET:
        changes["repl"] = None if args.repl.lower() in ("", "none", "default") else args.repl
    if args.project is not _UNSET:
        if args.project.lower() in ("", "none"):
            changes["project"] = None
        else:
            folder = Path(args.project).expanduser().resolve()
            if not folder.is_dir():
                raise UsageError(f"--project {args.project}: no such folder")
            changes["project"] = folder
    for name, key in (("memory", "memory_mb"), ("timeout", "timeout"), ("workers", "workers")):
        value = getattr(args, name)
        if value is not _UNSET:
            changes[key] = value
    for name in ("incremental", "progress"):
        value = getattr(args, name)
        if value is not _UNSET:
            changes[name] = value
    return replace(current, **changes)


def _describe_settings(settings: Settings) -> str:
    def show(value: Any, unit: str = "", default: str = "none") -> str:
        if value is None:
            return default
        return f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"

    return "\n".join(
        [
            f"repl: {settings.repl or 'LEAN_KERNEL_REPL, else a Lake project, else the cache'}",
            f"project: {show(settings.project, default='none (walks up from the cwd)')}",
            f"memory per REPL: {show(settings.memory_mb, ' MB')}",
            f"timeout per command: {show(settings.timeout, ' s')}",
            f"batch workers: {show(settings.workers, default='CPUs - 1, capped by memory')}",
            f"incremental: {'on' if settings.incremental else 'off'}",
            f"progress: {settings.progress}",
        ]
    )


def _status_bundles(session: LeanSession) -> list[dict[str, str]]:
    bundles = []
    notebook = session._notebook
    if notebook is None:
        bundles.append(_text("Session REPL: not started (the first %lean starts it)"))
    else:
        server = notebook.server
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


def _send_for(shell: Any, mode: str):
    """Display messages go through IPython's publisher under a kernel (or when asked for);
    elsewhere (a terminal) ``auto`` progress is a line on stderr."""
    if mode in ("widget", "text") or (mode == "auto" and _has_kernel(shell)):
        return ipython_send(shell)
    return None


def _has_kernel(shell: Any) -> bool:
    return getattr(shell, "kernel", None) is not None


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
    for problem in magics.session.problems:
        print(f"lean_kernel: {problem}")


def unload_ipython_extension(ipython: Any) -> None:
    """Stop the extension's REPLs and pool, and forget the execution hook."""
    magics = _magics_of(ipython)
    if magics is None:
        return
    magics.session.close()
    ipython.events.unregister("pre_run_cell", magics.session.pre_run_cell)
    ipython.magics_manager.registry.pop(type(magics).__name__, None)
    for kind in ("line", "cell"):
        table = ipython.magics_manager.magics[kind]
        for name in ("lean", "lean_batch", "lean_config", "lean_status"):
            table.pop(name, None)


def _magics_of(ipython: Any) -> LeanMagics | None:
    magics = ipython.magics_manager.registry.get(LeanMagics.__name__)
    return magics if isinstance(magics, LeanMagics) else None

"""The Jupyter kernel for Lean 4: cells are Lean commands over one REPL, kept as a document.

``LeanKernel`` is a thin ``ipykernel.kernelbase.Kernel`` subclass: the document model lives in
``lean_kernel.notebook``, rendering in ``lean_kernel.display.render``, magics in
``lean_kernel.kernel.magics``, completion in ``lean_kernel.text.completion``. This module turns
their results into Jupyter messages.

Output of a Lean cell: ``#eval`` output as a ``stdout`` stream (it is program output); the other
diagnostics and goals as one ``display_data`` (text/plain and themed text/html); Lean errors make
the reply ``error`` (ename ``LeanError``) so Run All stops there. A frontend that names its cells
(JupyterLab, Notebook 7, VS Code send ``cellId``) renders HTML, so it gets the rich display and a
one-line error; a frontend that does not (``jupyter console``, nbclient) gets a single ``error``
whose traceback holds the whole text rendering, as Jupyter tools expect of a failed cell.

Interrupts: the kernelspec keeps ``interrupt_mode: signal`` (a SIGINT reaches the kernel even
when no thread of it is free to read messages; an ``interrupt_request`` message, as gateways
send, ends in the same SIGINT). The REPL runs in its own session, so the signal reaches only this
process; while a handler runs, SIGINT just sets ``cancel``, which the server polls every 50 ms
and answers by killing the REPL; the notebook restarts it and replays the document.

Batches (``%%lean_batch``) run on a ``LeanServerPool`` the kernel keeps warm across cells, apart
from the document. The cell awaits the batch instead of blocking, so while it runs the event
loop still handles comm messages (a progress widget's Cancel button); an interrupt cancels the
batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import inspect
import os
import signal
import sys
import threading
import time
import traceback
import uuid
import warnings
from dataclasses import replace
from typing import Any

from ipykernel.kernelbase import Kernel
from traitlets import Float

from lean_kernel._version import __version__
from lean_kernel.batch.args import BatchArgs
from lean_kernel.batch.handle import BatchHandle
from lean_kernel.batch.keeper import BatchKeeper, BatchRun
from lean_kernel.batch.pool import LeanServerPool
from lean_kernel.display.progress import attach_progress
from lean_kernel.display.render import eval_outputs, render_error_summary, render_result
from lean_kernel.engine.config import LeanREPLConfig, ReplLaunch
from lean_kernel.engine.outcome import failed as is_error
from lean_kernel.engine.protocol import CommandResponse, LeanError, ProofStepResponse
from lean_kernel.engine.settings import Settings
from lean_kernel.errors import (
    LeanKernelError,
    ReplCancelledError,
    ReplCrashedError,
    ReplMemoryError,
    ReplProtocolError,
    ReplSetupError,
    ReplTimeoutError,
)
from lean_kernel.kernel.magics import CellPlan, MagicError, lookup, parse_cell
from lean_kernel.notebook import (
    ImportPlacementError,
    Notebook,
    ProofStateError,
    Recheck,
    ReplUnavailableError,
)
from lean_kernel.text.completion import check_complete, complete, name_at
from lean_kernel.text.syntax import declared_names

Reply = dict[str, Any]

#: Asks Lean for a declaration's docstring without changing the document (its env is dropped).
DOCSTRING_QUERY = (
    "open Lean Elab Command in\n"
    "#eval show CommandElabM Unit from do\n"
    "  match ← findDocString? (← getEnv) `{name} with\n"
    "  | some d => logInfo d\n"
    "  | none => pure ()"
)
INSPECT_TIMEOUT_S = 20.0
#: How often a running batch cell looks at the interrupt flag.
_BATCH_POLL_S = 0.05
#: How long a cancelled batch may take to wind down before the cell ends anyway.
_BATCH_CANCEL_GRACE_S = 10.0
_RED = "\x1b[1;31m"
_RESET = "\x1b[0m"
_FAILURE_NAMES: dict[type, str] = {
    ReplCancelledError: "KeyboardInterrupt",
    ReplTimeoutError: "TimeoutError",
    ReplMemoryError: "MemoryError",
    ReplCrashedError: "ReplCrashedError",
    ReplProtocolError: "ReplProtocolError",
    ReplUnavailableError: "ReplUnavailableError",
}
_NOTE_STYLE = (
    "font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,13px);"
    "color:var(--jp-content-font-color2,rgba(0,0,0,.54))"
)


class LeanKernel(Kernel):
    """Lean 4 cells over the Lean REPL, with edited re-runs, replay after restarts and magics."""

    implementation = "lean_kernel"
    implementation_version = __version__
    language = "lean4"
    help_links = [
        {"text": "Lean 4 documentation", "url": "https://lean-lang.org/documentation/"},
        {"text": "Theorem Proving in Lean 4", "url": "https://lean-lang.org/theorem_proving_in_lean4/"},
        {"text": "Mathlib documentation", "url": "https://leanprover-community.github.io/mathlib4_docs/"},
    ]  # fmt: skip

    # ipykernel sleeps 0.5 ms before each execute reply so that output printed through
    # sys.stdout reaches the frontend first; this kernel sends its output itself, in order.
    _execute_sleep = Float(0.0).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = Settings.from_env()
        self.cancel = threading.Event()
        self._notebook: Notebook | None = None
        self._config: LeanREPLConfig = self.settings.config(working_dir=os.getcwd())
        self._timeout = self.settings.timeout
        self._problems_shown = False
        self._cell_id: str | None = None
        self._label = ""
        self._silent = False
        self._output_parent: dict[str, Any] = {}
        self._saved_sigint: Any = None
        #: the batch pool (made by the first %%lean_batch) and the batches kept for %batch
        self.batches = BatchKeeper()
        self._setup_comms()
        self._start_if_ready()

    # -- kernel_info --------------------------------------------------------------------------

    @property
    def language_info(self) -> dict[str, Any]:  # type: ignore[override]
        """What frontends need to highlight and save Lean (nbconvert reads it too)."""
        info = {
            "name": "lean4",
            "file_extension": ".lean",
            "mimetype": "text/x-lean4",
            "pygments_lexer": "lean4",
            "codemirror_mode": "lean4",
        }
        version = self._lean_version()
        if version:
            info["version"] = version.removeprefix("v")
        return info

    @property
    def banner(self) -> str:  # type: ignore[override]
        """Which Lean runs, as ``jupyter console`` shows it on start."""
        head = f"Lean 4 kernel (lean_kernel {__version__})"
        try:
            launch = self._launch()
        except ReplSetupError as err:
            reason = str(err).splitlines()[0]
            return f"{head}\nLean REPL not ready ({reason}); the first cell sets it up."
        if launch.lean_version:
            return f"{head}\nLean {launch.lean_version}; REPL: {launch.description}"
        return f"{head}\nREPL: {launch.description}"

    def _launch(self) -> ReplLaunch:
        """How the REPL is (or would be) started; never installs anything."""
        if self._notebook is not None:
            return self._notebook.server.launch
        return self._config.resolve(install=False)

    def _lean_version(self) -> str | None:
        with contextlib.suppress(ReplSetupError):
            return self._launch().lean_version
        return None

    # -- the notebook and its REPL -----------------------------------------------------------

    def _start_if_ready(self) -> None:
        """Start the REPL now (in the main thread, so it dies with us) when nothing needs
        installing; otherwise the first cell installs it, showing progress."""
        try:
            self._config.resolve(install=False)
            self._notebook = self._make_notebook(self._config)
        except ReplSetupError as err:
            self.log.info("Lean REPL not ready at start: %s", err)

    def _make_notebook(self, config: LeanREPLConfig) -> Notebook:
        return Notebook(config, timeout=self._timeout, max_process_memory=self.settings.memory_mb)

    @property
    def notebook(self) -> Notebook:
        """The document; the first use installs the REPL if needed, showing progress."""
        if self._notebook is None:
            with self.progress("Setting up Lean") as say:
                self._config.resolve(progress=say)
            self._notebook = self._make_notebook(self._config)
        return self._notebook

    @property
    def notebook_timeout(self) -> float | None:
        """Seconds a cell may take by default (None: no limit)."""
        return self._timeout

    @notebook_timeout.setter
    def notebook_timeout(self, value: float | None) -> None:
        self._timeout = value
        if self._notebook is not None:
            self._notebook.timeout = value

    @property
    def repl_config(self) -> LeanREPLConfig:
        """The config the REPL is started from."""
        return self._config

    def describe_repl(self) -> str:
        """What the kernel runs and why, with limits (for ``%project`` alone)."""
        limits = replace(self.settings, timeout=self._timeout).describe_limits()
        return f"{self._config.describe()}\n{limits}"

    def switch_config(self, config: LeanREPLConfig) -> Reply | None:
        """Run the REPL from another config (``%project``), replaying the document into it.

        If the new config cannot be set up, nothing changes (the error says why).
        """
        with self.progress("Setting up Lean") as say:
            config.resolve(progress=say)
        replay = None
        if self._notebook is None:
            self._notebook = self._make_notebook(config)
        else:
            replay = self._notebook.use_config(config, cancel=self.cancel)
        self._config = config
        self.batches.close_pool()  # the next batch starts a pool on the new config
        self.send_note(f"Now running: {config.resolve().description}.")
        self.show_rechecks([replay])
        return None

    def restart_repl(self) -> Reply | None:
        """``%restart``: a fresh REPL process with the document replayed into it."""
        replay = self.notebook.restart(cancel=self.cancel)
        self.show_rechecks([replay])
        return None

    # -- output helpers (also used by magics and by the batch progress widget) ------------------

    def send_display(
        self,
        data: dict[str, Any],
        *,
        metadata: dict[str, Any] | None = None,
        display_id: str | None = None,
        update: bool = False,
    ) -> None:
        """Send ``display_data`` (or ``update_display_data`` of ``display_id``).

        Safe from any thread: messages go out under the execute request being handled, so a
        progress display can be updated by worker threads while the cell runs.
        """
        if self._silent:
            return
        content: dict[str, Any] = {"data": data, "metadata": metadata or {}}
        content["transient"] = {"display_id": display_id} if display_id else {}
        kind = "update_display_data" if update else "display_data"
        self.session.send(self.iopub_socket, kind, content, parent=self._output_parent)

    def send_stream(self, text: str, name: str = "stdout") -> None:
        """Send program output (``stdout``) or warnings (``stderr``)."""
        if self._silent or not text:
            return
        content = {"name": name, "text": text}
        self.session.send(self.iopub_socket, "stream", content, parent=self._output_parent)

    def send_note(self, text: str) -> None:
        """A kernel notice (replays, settings), kept apart from the program's output."""
        html_text = f'<div class="lk-note" style="{_NOTE_STYLE}">{html.escape(text)}</div>'
        self.send_display({"text/plain": text, "text/html": html_text})

    @contextlib.contextmanager
    def progress(self, title: str):
        """A display updated in place with each step (for setup, which can take minutes)."""
        display_id = uuid.uuid4().hex
        started = time.monotonic()
        self.send_display({"text/plain": f"{title}..."}, display_id=display_id)

        def say(line: str) -> None:
            text = f"{title} ({time.monotonic() - started:.0f} s): {line}"
            self.send_display({"text/plain": text}, display_id=display_id, update=True)

        yield say

    def show_rechecks(self, rechecks: list[Recheck | None]) -> None:
        """One note line per re-check or replay that did something."""
        for recheck in rechecks:
            if recheck is not None and (
                recheck.cells or recheck.failed or recheck.interrupted or recheck.broken
            ):
                self.send_note(recheck.summary())

    def error_reply(
        self, ename: str, evalue: str, traceback_lines: list[str] | None = None
    ) -> Reply:
        """Send the ``error`` output and return the matching error reply."""
        content = {
            "ename": ename,
            "evalue": evalue,
            "traceback": traceback_lines or [f"{_RED}{ename}{_RESET}: {evalue}"],
        }
        if not self._silent:
            self.session.send(self.iopub_socket, "error", content, parent=self._output_parent)
        return {"status": "error", **content}

    def show_response(
        self,
        source: str,
        response: CommandResponse | ProofStepResponse | LeanError,
        line_offset: int,
    ) -> Reply:
        """Show a Lean result; an error reply when it has errors."""
        failed = is_error(response)
        if failed and self._cell_id is None:
            summary = render_error_summary(source, response, line_offset=line_offset)
            return self.error_reply(summary["ename"], summary["evalue"], summary["traceback"])
        messages = [] if isinstance(response, LeanError) else response.messages
        outputs = eval_outputs(source, messages, line_offset=line_offset)
        self.send_stream("".join(outputs))
        bundle = render_result(source, response, line_offset=line_offset, show_eval_output=False)
        if bundle:
            self.send_display(bundle)
        if failed:
            summary = render_error_summary(source, response, line_offset=line_offset)
            return self.error_reply("LeanError", summary["evalue"])
        return {"status": "ok"}

    def failure_reply(self, error: LeanKernelError, label: str) -> Reply:
        """The reply for a command the REPL died on (timeout, crash, memory, interrupt)."""
        ename = _FAILURE_NAMES.get(type(error), type(error).__name__)
        after = "the REPL was restarted and the document replayed"
        if isinstance(error, ReplCancelledError):
            evalue = f"Interrupted: {after}."
            if "before the cell ran" in str(error):
                evalue = "Interrupted before the cell ran; the document was not changed."
        elif isinstance(error, ReplTimeoutError):
            evalue = (
                f"{label} took longer than its time limit; {after}. For more time put "
                "`%timeout SECONDS` on the cell's first line (or run it alone for every cell)."
            )
        elif isinstance(error, ReplMemoryError):
            evalue = (
                f"{label} went over the REPL's memory limit; {after}. Raise "
                f"LEAN_KERNEL_MEMORY_LIMIT_MB, or split the work. ({error})"
            )
        elif isinstance(error, ReplUnavailableError):
            evalue = str(error)
        else:
            evalue = f"The REPL failed on {label}; {after}."
        details = [line for line in str(error).splitlines() if line.strip()]
        lines = [f"{_RED}{ename}{_RESET}: {evalue}", *details]
        return self.error_reply(ename, evalue, lines)

    # -- execute ------------------------------------------------------------------------------

    def pre_handler_hook(self) -> None:
        """While a request is handled, SIGINT only asks the running command to stop."""
        self.cancel.clear()
        self._saved_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def post_handler_hook(self) -> None:
        """Back to ipykernel's idle SIGINT handling."""
        signal.signal(signal.SIGINT, self._saved_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.cancel.set()

    async def do_execute(
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict | None = None,
        allow_stdin: bool = False,
        *,
        cell_meta: dict | None = None,
        cell_id: str | None = None,
    ) -> Reply:
        """Run a cell: magics first, then its Lean code as a cell of the document."""
        self._silent = silent
        self._cell_id = cell_id or None
        self._label = f"[{self.execution_count}]"
        self._output_parent = self.get_parent()
        try:
            self._show_problems()
            self._forget_deleted((cell_meta or {}).get("deletedCells"))
            reply = await self._execute(code)
        except MagicError as err:
            reply = self.error_reply("UsageError", str(err))
        except (ImportPlacementError, ProofStateError) as err:
            reply = self.error_reply(type(err).__name__, str(err))
        except ReplSetupError as err:
            reply = self.error_reply("ReplSetupError", str(err), str(err).splitlines())
        except LeanKernelError as err:
            reply = self.failure_reply(err, self._label)
        except Exception as err:
            self.log.exception("lean_kernel failed on a cell")
            lines = traceback.format_exception(err)
            reply = self.error_reply(
                "InternalError",
                f"{type(err).__name__}: {err} (a lean_kernel bug; the kernel is still usable)",
                [line.rstrip("\n") for line in lines],
            )
        finally:
            self.cancel.clear()
        reply["execution_count"] = self.execution_count
        if reply["status"] == "ok":
            reply.setdefault("payload", [])
            reply.setdefault("user_expressions", {})
        return reply

    def _forget_deleted(self, cell_ids: Any) -> None:
        """JupyterLab lists the cells deleted since the last execution: drop them too."""
        if not isinstance(cell_ids, list) or self._notebook is None:
            return
        gone = [
            cell.label
            for cell in self._notebook.cells
            if cell.id in cell_ids and self._notebook.forget(cell.id)
        ]
        if gone:
            self.send_note(
                f"Deleted cell{'s' if len(gone) > 1 else ''} {' '.join(gone)} taken out of the "
                "document (the cells after them are re-checked before anything after them runs)."
            )

    def _show_problems(self) -> None:
        if not self._problems_shown and self.settings.problems:
            self._problems_shown = True
            self.send_stream("\n".join(self.settings.problems) + "\n", "stderr")

    async def _execute(self, code: str) -> Reply:
        parsed = parse_cell(code)
        plan = parsed.plan
        for call in parsed.calls:
            reply = lookup(call).run(self, plan, call.args)
            if inspect.isawaitable(reply):  # a magic that waits (%%lean_batch)
                reply = await reply
            if reply is not None and reply.get("status") != "ok":
                return reply
        if plan.done:
            return {"status": "ok"}
        return self.run_lean(plan)

    def run_lean(self, plan: CellPlan) -> Reply:
        """Run the cell's Lean code as a cell of the document and show the result."""
        if not plan.body.strip():
            notebook = self._notebook
            if (
                self._cell_id is not None
                and notebook is not None
                and notebook.forget(self._cell_id)
            ):
                self.send_note(
                    f"{self._label} has no Lean code now: it was taken out of the document "
                    "(the cells after it are re-checked before anything after them runs)."
                )
            return {"status": "ok"}
        run = self.notebook.run(
            plan.body,
            cell_id=self._cell_id,
            label=self._label,
            line_offset=plan.body_offset,
            timeout=plan.timeout,
            cancel=self.cancel,
        )
        self.show_rechecks(run.rechecks)
        if run.error is not None:
            self.show_rechecks([run.replay])
            return self.failure_reply(run.error, self._label)
        assert run.response is not None
        return self.show_response(plan.source, run.response, plan.body_offset)

    def run_proof(self, plan: CellPlan, proof_state: int | None) -> Reply:
        """``%proof``: run the tactics and show the goals left."""
        run = self.notebook.prove(
            plan.body,
            proof_state=proof_state,
            cell_id=self._cell_id,
            label=self._label,
            timeout=plan.timeout,
            cancel=self.cancel,
        )
        self.show_rechecks(run.rechecks)
        if run.error is not None:
            self.show_rechecks([run.replay])
            return self.failure_reply(run.error, self._label)
        assert run.response is not None
        reply = self.show_response(plan.source, run.response, plan.body_offset + run.line)
        if run.complete:
            self.send_note(
                f"Proof complete: the tactics of this cell close proof state {run.start}."
            )
        return reply

    # -- batches ----------------------------------------------------------------------------------

    def batch_pool(self, workers: int | None) -> LeanServerPool:
        """The warm batch pool, on the kernel's current config (made now if needed)."""
        if self._notebook is None:  # the REPL was not ready at start: set it up, showing steps
            with self.progress("Setting up Lean") as say:
                self._config.resolve(progress=say)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            pool = self.batches.pool_for(
                lambda: self._config,
                workers,
                max_process_memory=self.settings.memory_mb,
                note=self.send_note,
            )
        for warning in caught:  # e.g. fewer workers than asked, for memory
            if issubclass(warning.category, RuntimeWarning):
                self.send_stream(f"{warning.message}\n", "stderr")
        return pool

    async def run_batch(self, args: BatchArgs, commands: list[str]) -> Reply:
        """``%%lean_batch``: check ``commands`` on the warm pool with live progress, until the
        batch ends; then show the results table. An interrupt cancels the batch (pending items
        are dropped, running REPLs killed) and fails the cell; the Cancel button of the progress
        widget cancels it too, but the cell then ends normally with its partial report."""
        pool = self.batch_pool(args.workers)
        timeout = args.timeout if args.timeout is not None else self._timeout
        handle = pool.submit_batch(
            commands, header=args.header, timeout_per_cmd=timeout, label=args.output
        )
        run = BatchRun(args.output, handle, workers=pool.num_workers)
        self.batches.add(run)
        count = len(commands)
        self.send_note(
            f"Checking {count} command{'s' if count != 1 else ''} on {pool.num_workers} "
            f"worker{'s' if pool.num_workers != 1 else ''}; results kept as `{args.output}` "
            f"(`%batch {args.output}` shows them again)."
        )
        run.progress = attach_progress(handle, self._progress_mode(args.progress), send=self._send)
        interrupted = await self._wait_batch(handle)
        if run.progress is not None:  # its last update goes out before the table
            await asyncio.to_thread(run.progress.finished.wait, 5.0)
        self.send_display(
            handle.results.table_bundle(more=f"`%batch {args.output} all` shows every item")
        )
        if interrupted:
            left = handle.results.counts().get("cancelled", 0)
            return self.error_reply(
                "KeyboardInterrupt",
                f"Interrupted: batch `{args.output}` cancelled ({count - left} of {count} "
                "commands had finished; the running ones were stopped).",
            )
        return {"status": "ok"}

    async def _wait_batch(self, handle: BatchHandle) -> bool:
        """Wait for the batch, cancelling it on an interrupt; True if interrupted."""
        interrupted = False
        deadline = None
        while not handle.done():
            if self.cancel.is_set() and not interrupted:
                interrupted = True
                handle.cancel()
                deadline = time.monotonic() + _BATCH_CANCEL_GRACE_S
            if deadline is not None and time.monotonic() > deadline:
                self.log.warning("a cancelled batch did not end in %s s", _BATCH_CANCEL_GRACE_S)
                break
            await asyncio.sleep(_BATCH_POLL_S)
        return interrupted

    def _progress_mode(self, asked: str | None) -> str:
        """``auto``: the widget for frontends that name their cells (JupyterLab, Notebook 7,
        VS Code: they render widgets), else the text line (console, nbclient: it is saved)."""
        if asked not in (None, "auto"):
            return asked
        if self._cell_id is None:
            return "text"
        try:
            import ipywidgets  # noqa: F401
        except ImportError:  # pragma: no cover - ipywidgets is a dependency
            return "text"
        return "widget"

    def _send(self, msg_type: str, content: dict[str, Any]) -> None:
        """``progress.Send`` over this kernel's iopub (any thread)."""
        transient = content.get("transient") or {}
        self.send_display(
            content["data"],
            metadata=content.get("metadata"),
            display_id=transient.get("display_id"),
            update=msg_type == "update_display_data",
        )

    # -- completion, inspection, is_complete ------------------------------------------------------

    async def do_complete(self, code: str, cursor_pos: int) -> Reply:
        """Unicode abbreviations, keywords, tactics and the names the notebook declared."""
        names = declared_names(code)
        if self._notebook is not None:
            names = [*names, *self._notebook.declared_names()]
        result = complete(code, cursor_pos, names)
        return {
            "status": "ok",
            "matches": result.matches,
            "cursor_start": result.cursor_start,
            "cursor_end": result.cursor_end,
            "metadata": result.metadata,
        }

    async def do_inspect(
        self, code: str, cursor_pos: int, detail_level: int = 0, omit_sections: tuple = ()
    ) -> Reply:
        """Signature and docstring of the name under the cursor, asked of Lean on the document's
        current env (the document itself is not changed)."""
        reply: Reply = {"status": "ok", "found": False, "data": {}, "metadata": {}}
        found = name_at(code, cursor_pos)
        if found is None or self._notebook is None:
            return reply
        name = found[0]
        query = f"#check {name}\n" + DOCSTRING_QUERY.format(name=name)
        if detail_level:
            query += f"\n#print {name}"
        result = self._notebook.query(query, timeout=INSPECT_TIMEOUT_S, cancel=self.cancel)
        self.cancel.clear()
        if not isinstance(result, CommandResponse):
            return reply
        signature, doc, extra = _inspection(result)
        if signature is None:
            return reply
        plain = "\n\n".join(part for part in (signature, doc, extra) if part)
        fenced = [f"```lean\n{signature}\n```", doc, f"```lean\n{extra}\n```" if extra else ""]
        markdown = "\n\n".join(part for part in fenced if part)
        reply.update(found=True, data={"text/plain": plain, "text/markdown": markdown})
        return reply

    async def do_is_complete(self, code: str) -> Reply:
        """For ``jupyter console``: run the input, or keep reading lines (with an indent)."""
        try:
            parsed = parse_cell(code)
            entries = [lookup(call) for call in parsed.calls]
        except MagicError:
            return {"status": "invalid"}
        body = parsed.plan.body
        if not body.strip():
            if any(entry.needs_body for entry in entries) or any(e.cell for e in entries):
                return {"status": "incomplete", "indent": ""}
            return {"status": "complete"}
        check = check_complete(body)
        if check.status == "incomplete":
            return {"status": "incomplete", "indent": check.indent}
        return {"status": check.status}

    # -- shutdown ---------------------------------------------------------------------------------

    async def do_shutdown(self, restart: bool) -> Reply:
        """Kill the REPLs (the document's and the batch pool's): no Lean process outlives the
        kernel."""
        self.batches.close()
        if self._notebook is not None:
            self._notebook.close()
        return {"status": "ok", "restart": restart}

    async def shutdown_request(self, stream: Any, ident: Any, parent: Any) -> None:
        """Shut down, without ipykernel 7's race that can stall the exit for 10 s.

        After this handler the control thread flushes ``sys.stdout`` through the IOPub thread,
        which the main thread may already have stopped; the flush then waits for its 10 s
        timeout and Jupyter kills the kernel. Nothing is printed after shutdown, so the flush
        goes to the real streams instead.
        """
        await super().shutdown_request(stream, ident, parent)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    # -- widgets ----------------------------------------------------------------------------------

    def _setup_comms(self) -> None:
        """Let the frontend talk back to widgets (a batch's progress bar, ipywidgets in general).

        Without a comm manager a saved notebook's widgets show "Loading widget..." forever.
        """
        import comm
        from ipykernel.comm import CommManager

        self.comm_manager = CommManager(parent=self, kernel=self)
        comm.get_comm_manager = lambda *args, **kwargs: self.comm_manager
        for msg_type in ("comm_open", "comm_msg", "comm_close"):
            self.shell_handlers[msg_type] = getattr(self.comm_manager, msg_type)
        try:
            import ipywidgets
        except ImportError:  # pragma: no cover - ipywidgets is a dependency
            return
        ipywidgets.register_comm_target()


def _inspection(result: CommandResponse) -> tuple[str | None, str, str]:
    """(signature from ``#check``, docstring, ``#print`` text) from the inspect command."""
    signature: str | None = None
    doc = extra = ""
    print_line = 2 + DOCSTRING_QUERY.count("\n") + 1
    for msg in result.messages:
        line = msg.start_pos.line
        if msg.severity == "error" and line == 1:
            return None, "", ""
        if msg.severity != "info":
            continue
        if line == 1:
            signature = msg.data.strip()
        elif line < print_line:
            doc = msg.data.strip()
        else:
            extra = msg.data.strip()
    return signature, doc, extra


def main(argv: list[str] | None = None) -> None:
    """Start the kernel (what the kernelspec runs)."""
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(argv=argv, kernel_class=LeanKernel)


__all__ = ["DOCSTRING_QUERY", "LeanKernel", "main"]

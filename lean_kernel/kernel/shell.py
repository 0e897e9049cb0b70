"""The kernel's behaviour, apart from the Jupyter protocol: ``LeanShell`` runs cells.

As in ipykernel (``ipkernel.py``'s ``do_*`` hand the work to ``self.shell``), the kernel class
only adapts messages; this object knows nothing of ZMQ. It keeps the settings, the REPL config
and the ``Notebook`` (the document of cells and its REPL), reads each cell (magics, then Lean
code), runs it, and shows the result through an ``Output``. It is the ``Host`` the magics see
and the ``BatchHost`` of the shared ``%%lean_batch``.

A cell's Lean result: ``#eval`` output as a ``stdout`` stream (it is program output); the
verdict of each declaration it adds (``kernel.grading``), the other diagnostics and goals as one
display (text/plain and themed text/html); Lean errors make the reply ``error`` (ename
``LeanError``) so Run All stops there, and so does a declaration that does not answer its
``%exercise`` (ename ``ExerciseError``). A frontend that names its cells
(JupyterLab, Notebook 7, VS Code send ``cellId``) renders HTML, so it gets the rich display and a
one-line error; a frontend that does not (``jupyter console``, nbclient) gets a single ``error``
whose traceback holds the whole text rendering, as Jupyter tools expect of a failed cell.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from lean_kernel.batch.args import BatchArgs
from lean_kernel.batch.keeper import BatchKeeper, BatchRun
from lean_kernel.batch.magic import start_batch
from lean_kernel.display import eval_outputs, render_error_summary, render_result
from lean_kernel.display.progress import ProgressMode, Send
from lean_kernel.engine.config import LeanREPLConfig, ReplLaunch
from lean_kernel.engine.heartbeats import (
    HeartbeatSetting,
    backstop,
    describe_heartbeats,
    heartbeat_limit,
    heartbeat_stop,
)
from lean_kernel.engine.outcome import failed as is_error
from lean_kernel.engine.protocol import CommandResponse, LeanError, ProofStepResponse
from lean_kernel.engine.resultstore import ResultStore, open_store
from lean_kernel.engine.settings import Settings
from lean_kernel.engine.verdict import DeclVerdict
from lean_kernel.errors import ReplSetupError
from lean_kernel.kernel import inspection
from lean_kernel.kernel.batches import await_batch, progress_mode
from lean_kernel.kernel.exercises import Exercise
from lean_kernel.kernel.failures import failure_of, is_expected
from lean_kernel.kernel.grading import Grader, show_rechecks
from lean_kernel.kernel.host import CellPlan, MagicError, Output, Reply
from lean_kernel.kernel.magics import lookup, parse_cell
from lean_kernel.notebook import Notebook, RunOutcome
from lean_kernel.notebook.process import CellResult
from lean_kernel.text.completion import check_complete, complete
from lean_kernel.text.syntax import declared_names

__all__ = ["LeanShell", "exit_request"]

# `exit` / `quit` alone, as ipykernel reads them (also `exit()`, `exit(keep_kernel=True)`).
_EXIT = re.compile(
    r"\s*(?:exit|quit)\s*(?:\(\s*\)|\(\s*(?:keep_kernel\s*=\s*)?(True|False)\s*\))?\s*"
)


def exit_request(code: str) -> bool | None:
    """For ``exit`` / ``quit`` (alone, or called): whether to keep the kernel; else None.

    Never Lean (Lean reads them as an unexpected identifier): as in ipykernel, the kernel asks
    the frontend to quit, so ``jupyter console`` exits on them as it does for Python.
    """
    match = _EXIT.fullmatch(code)
    return None if match is None else match.group(1) == "True"


class LeanShell:
    """Lean cells over one REPL, kept as a document; magics; batches on a warm pool."""

    def __init__(self, output: Output, log: logging.Logger | None = None) -> None:
        self.output = output
        self.log = log or logging.getLogger(__name__)
        #: what the user asked for; ``%timeout`` changes ``settings.timeout``
        self.settings = Settings.from_env()
        #: set (by the kernel's SIGINT handler) to stop the command running
        self.cancel = threading.Event()
        #: the batch pool (made by the first %%lean_batch) and the batches kept for %batch
        self.keeper = BatchKeeper()
        #: the exercises of the session and the verdicts of cells (``%exercise``)
        self.grader = Grader(output)
        self.exercises = self.grader.exercises
        self._notebook: Notebook | None = None
        #: the result cache, once opened (``_store_opened``: None then means it is off)
        self._store: ResultStore | None = None
        self._store_opened = False
        self._config: LeanREPLConfig = self.settings.config(working_dir=os.getcwd())
        self._problems_shown = False
        self._cell_id: str | None = None
        self._label = ""
        self._start_if_ready()

    # -- the notebook and its REPL -----------------------------------------------------------

    def _start_if_ready(self) -> None:
        """Make the notebook now when nothing needs installing (without a result cache it
        starts the REPL now, in the main thread, so it dies with us; with one, the first cell
        the cache cannot answer starts it); otherwise the first cell installs it, showing
        progress."""
        try:
            self._config.resolve(install=False)
            self._notebook = self._make_notebook(self._config)
        except ReplSetupError as err:
            self.log.info("Lean REPL not ready at start: %s", err)

    def _make_notebook(self, config: LeanREPLConfig) -> Notebook:
        return Notebook(
            config,
            timeout=self.settings.timeout,
            heartbeats=self.settings.heartbeats,
            max_process_memory=self.settings.memory_mb,
            store=self.result_store(),
        )

    def _set_up(self, config: LeanREPLConfig) -> None:
        """Install what ``config`` needs (if anything), showing each step."""
        with self.output.progress("Setting up Lean") as say:
            config.resolve(progress=say)

    @property
    def notebook(self) -> Notebook:
        """The document; the first use installs the REPL if needed, showing progress."""
        if self._notebook is None:
            self._set_up(self._config)
            self._notebook = self._make_notebook(self._config)
        return self._notebook

    def launch(self) -> ReplLaunch:
        """How the REPL is (or would be) started; never installs anything."""
        if self._notebook is not None:
            return self._notebook.launch
        return self._config.resolve(install=False)

    def lean_version(self) -> str | None:
        """The Lean version the REPL runs, when known without installing anything."""
        with contextlib.suppress(ReplSetupError):
            return self.launch().lean_version
        return None

    def set_timeout(self, seconds: float | None) -> None:
        """``%timeout SECONDS`` alone: the limit for every cell from now on."""
        self.settings = replace(self.settings, timeout=seconds)
        if self._notebook is not None:
            self._notebook.timeout = seconds

    def set_heartbeats(self, value: HeartbeatSetting) -> None:
        """``%heartbeats N|auto|off`` alone: Lean's limit for every cell and batch from now on."""
        self.settings = replace(self.settings, heartbeats=value)
        if self._notebook is not None:
            self._notebook.heartbeats = value

    def describe_heartbeats(self) -> str:
        """``%heartbeats`` alone: the limit per cell, and whether this REPL takes it."""
        settings = self.settings
        rate = self._config.heartbeat_rate
        limits = describe_heartbeats(settings.heartbeats, settings.timeout, rate)
        text = f"Heartbeats per cell: {limits}"
        with contextlib.suppress(ReplSetupError):
            if not self._config.use_heartbeat_limits(self.launch()):
                return (
                    f"{text}; but this REPL's flavour is unknown, so only the timeout applies "
                    "(set LEAN_KERNEL_REPL_FLAVOR to fork or upstream to use Lean's limit)."
                )
        limit = heartbeat_limit(settings.heartbeats, settings.timeout, rate)
        if limit is not None and settings.timeout is not None:
            wall = backstop(settings.timeout)
            text += (
                f"; a cell over it stops as a Lean error and the REPL keeps its state (the "
                f"timeout, as a backstop, kills the REPL after {wall:g} s)"
            )
        return text + "."

    def describe_repl(self) -> str:
        """What the kernel runs and why, with limits (for ``%project`` alone)."""
        return f"{self._config.describe()}\n{self.settings.describe_limits()}"

    def switch_config(self, config: LeanREPLConfig) -> None:
        """Run the REPL from another config (``%project``), replaying the document into it.

        If the new config cannot be set up, nothing changes (the error says why).
        """
        self._set_up(config)
        replay = None
        if self._notebook is None:
            self._notebook = self._make_notebook(config)
        else:
            replay = self._notebook.use_config(config, cancel=self.cancel)
        self._config = config
        self.keeper.close_pool()  # the next batch starts a pool on the new config
        self.output.note(f"Now running: {config.resolve().description}.")
        show_rechecks(self.output, [replay])

    def restart_repl(self) -> None:
        """``%restart``: a fresh REPL process with the document replayed into it."""
        replay = self.notebook.restart(cancel=self.cancel)
        show_rechecks(self.output, [replay])

    def close(self) -> None:
        """Kill the REPLs (the document's and the batch pool's)."""
        self.keeper.close()
        if self._notebook is not None:
            self._notebook.close()
        if self._store is not None:
            self._store.close()

    def result_store(self) -> ResultStore | None:
        """The result cache (``$LEAN_KERNEL_RESULT_CACHE`` or the default file), opened at first
        use; None when that variable turns it off."""
        if not self._store_opened:
            self._store, self._store_opened = open_store(True), True
        return self._store

    # -- cells ----------------------------------------------------------------------------------

    async def execute(
        self, code: str, *, cell_id: str | None, label: str, deleted: Any = None
    ) -> Reply:
        """Run a cell: magics first, then its Lean code as a cell of the document.

        ``cell_id`` is the frontend's id of the cell (None: a new cell), ``label`` how the
        output names it (``[3]``), ``deleted`` the ids of cells deleted since the last run.
        """
        self._cell_id, self._label = cell_id, label
        try:
            self._show_problems()
            self._forget_deleted(deleted)
            return await self._execute(code)
        except Exception as err:
            if not is_expected(err):
                self.log.exception("lean_kernel failed on a cell")
            return self._fail(err)
        finally:
            self.cancel.clear()

    async def _execute(self, code: str) -> Reply:
        keep_kernel = exit_request(code)
        if keep_kernel is not None:
            return self._ask_exit(keep_kernel)
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
        return self._run_lean(plan)

    def _ask_exit(self, keep_kernel: bool) -> Reply:
        """``exit`` / ``quit``: ipykernel's ``ask_exit`` payload, which ``jupyter console``
        obeys (it quits, shutting the kernel down unless ``keep_kernel=True``). Notebooks
        ignore it, so there the cell says how to stop the kernel instead."""
        if self._cell_id is not None:
            self.output.note(
                "`exit` asks the frontend to quit; notebook frontends (JupyterLab, Notebook 7) "
                "ignore that: to stop this kernel use the Kernel menu (Shut Down)."
            )
        return {"status": "ok", "payload": [{"source": "ask_exit", "keepkernel": keep_kernel}]}

    def _run_lean(self, plan: CellPlan) -> Reply:
        """Run the cell's Lean code as a cell of the document and show the result."""
        if not plan.body.strip():
            notebook = self._notebook
            if (
                self._cell_id is not None
                and notebook is not None
                and notebook.forget(self._cell_id)
            ):
                self.output.note(
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
            heartbeats=plan.heartbeats,
            cancel=self.cancel,
        )
        judged = self.grader.judge(self.notebook, run, self.cancel)
        if run.from_store and not judged.asked:
            self.output.note(
                "From the result cache: Lean checked this cell, after the same cells above it, "
                "before; nothing was sent to Lean now."
            )
        reply = self._show_run(run, plan.source, plan.body_offset, judged.verdicts)
        return reply if reply["status"] != "ok" else self.grader.failure(judged.verdicts) or reply

    def exercise(self, exercise: Exercise) -> Reply | None:
        """``%exercise``: declare it; check the cell that declares its name, if one does."""
        return self.grader.declare(self.notebook, exercise, self._cell_id, self.cancel)

    def ask(self, text: str) -> CellResult | None:
        """Lean's answer to ``text`` on the end of the document (which stays as it was)."""
        return self.notebook.query(text, cancel=self.cancel)

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
        reply = self._show_run(run, plan.source, plan.body_offset + run.line)
        if run.error is None and run.complete:
            self.output.note(
                f"Proof complete: the tactics of this cell close proof state {run.start}."
            )
        return reply

    def _show_run(
        self, run: RunOutcome, source: str, line_offset: int, verdicts: Sequence[DeclVerdict] = ()
    ) -> Reply:
        """What was re-checked, then the answer and its verdicts (or the failure, the replay)."""
        show_rechecks(self.output, run.rechecks)
        if run.error is not None:
            show_rechecks(self.output, [run.replay])
            return self._fail(run.error)
        assert run.response is not None
        limit = heartbeat_stop(run.response)
        if limit is not None:
            self.output.note(
                f"Lean stopped {self._label} at its heartbeat limit (maxHeartbeats {limit}); the "
                "REPL kept its state, nothing was replayed. To allow more: `%heartbeats N` above "
                "the code, or `set_option maxHeartbeats N in` before the declaration."
            )
        return self._show_response(source, run.response, line_offset, verdicts)

    def _fail(self, error: Exception) -> Reply:
        failure = failure_of(error, self._label)
        return self.output.error(failure.ename, failure.evalue, failure.traceback)

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
            self.output.note(
                f"Deleted cell{'s' if len(gone) > 1 else ''} {' '.join(gone)} taken out of the "
                "document (the cells after them are re-checked before anything after them runs)."
            )

    def _show_problems(self) -> None:
        """The settings that were ignored (bad ``LEAN_KERNEL_*`` values), once."""
        if not self._problems_shown and self.settings.problems:
            self._problems_shown = True
            self.output.stream("\n".join(self.settings.problems) + "\n", "stderr")

    def _show_response(
        self,
        source: str,
        response: CommandResponse | ProofStepResponse | LeanError,
        line_offset: int,
        verdicts: Sequence[DeclVerdict] = (),
    ) -> Reply:
        """Show a Lean result and its verdicts; an error reply when it has errors."""
        failed = is_error(response)
        if failed and self._cell_id is None:
            summary = render_error_summary(source, response, line_offset=line_offset)
            return self.output.error(summary["ename"], summary["evalue"], summary["traceback"])
        messages = [] if isinstance(response, LeanError) else response.messages
        outputs = eval_outputs(source, messages, line_offset=line_offset)
        self.output.stream("".join(outputs))
        bundle = render_result(
            source, response, line_offset=line_offset, show_eval_output=False, verdicts=verdicts
        )
        if bundle:
            self.output.display(bundle)
        if failed:
            summary = render_error_summary(source, response, line_offset=line_offset)
            return self.output.error("LeanError", summary["evalue"])
        return {"status": "ok"}

    # -- batches (the shared %%lean_batch, with this shell as its BatchHost) -------------------

    async def run_batch(self, args: BatchArgs, commands: list[str]) -> Reply:
        """``%%lean_batch``: check ``commands`` on the warm pool with live progress, until the
        batch ends; then show the results table (see ``kernel.batches``)."""
        run = start_batch(self, args, commands)
        return await await_batch(run, len(commands), self.output, self.cancel, self.log)

    def pool_config(self) -> LeanREPLConfig:
        """The config for a new batch pool: the document's (set up now if it was not yet)."""
        if self._notebook is None:
            self._set_up(self._config)
        return self._config

    def note(self, text: str) -> None:
        """A note about the batch pool."""
        self.output.note(text)

    def warn(self, text: str) -> None:
        """A warning about the batch pool, on the cell's stderr."""
        self.output.stream(f"{text}\n", "stderr")

    def announce(self, run: BatchRun, count: int) -> None:
        """Where the results of the batch that started go."""
        workers = run.workers
        self.output.note(
            f"Checking {count} command{'s' if count != 1 else ''} on {workers} "
            f"worker{'s' if workers != 1 else ''}; results kept as `{run.name}` "
            f"(`%batch {run.name}` shows them again)."
        )

    def progress_target(self, mode: str) -> tuple[ProgressMode, Send | None]:
        """The batch progress view for this cell's frontend, shown through the output."""
        return progress_mode(mode, named_cell=self._cell_id is not None), self.output.send

    # -- completion, inspection, is_complete ------------------------------------------------------

    def complete(self, code: str, cursor_pos: int) -> Reply:
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

    def inspect(self, code: str, cursor_pos: int, detail_level: int) -> Reply:
        """Signature and docstring of the name under the cursor (the document is unchanged)."""
        try:
            return inspection.inspect(self._notebook, code, cursor_pos, detail_level, self.cancel)
        finally:
            self.cancel.clear()

    def is_complete(self, code: str) -> Reply:
        """For ``jupyter console``: run the input, or keep reading lines (with an indent).

        A cell magic (``%%lean_batch``) reads lines until a blank one; a line magic that needs
        code (``%proof``) waits for it; Lean code waits while it can still go on (see
        ``check_complete``). An unknown magic is ``invalid``: the console runs it and shows why.
        """
        try:
            parsed = parse_cell(code)
            entries = [lookup(call) for call in parsed.calls]
        except MagicError:
            return {"status": "invalid"}
        body = parsed.plan.body
        if any(entry.cell for entry in entries):
            body = code  # check_complete's `%%` rule: up to a blank line
        elif not body.strip():
            if any(entry.needs_body for entry in entries):
                return {"status": "incomplete", "indent": ""}
            return {"status": "complete"}
        check = check_complete(body)
        if check.status == "incomplete":
            return {"status": "incomplete", "indent": check.indent}
        return {"status": check.status}

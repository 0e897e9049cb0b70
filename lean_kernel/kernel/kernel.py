"""The Jupyter kernel for Lean 4: cells are Lean commands over one REPL, kept as a document.

``LeanKernel`` is a thin ``ipykernel.kernelbase.Kernel`` subclass, shaped like ipykernel's
``ipkernel.py``: each ``do_*`` hands the work to ``self.lean_shell`` (``LeanShell``: the
document, magics, batches, completion), which knows nothing of ZMQ and writes through
``self.output`` (``KernelOutput``: iopub messages under the request being handled). What stays
here is the protocol: kernel_info, the reply fields Jupyter expects, interrupts, comms and
shutdown. (Not ``self.shell``: ``IPKernelApp`` takes a kernel's ``shell`` for an IPython
``InteractiveShell``.)

Interrupts: the kernelspec keeps ``interrupt_mode: signal`` (a SIGINT reaches the kernel even
when no thread of it is free to read messages; an ``interrupt_request`` message, as gateways
send, ends in the same SIGINT). The REPL runs in its own session, so the signal reaches only this
process; while a handler runs, SIGINT just sets ``lean_shell.cancel``, which the server polls
every 50 ms and answers by killing the REPL; the notebook restarts it and replays the document.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from ipykernel.kernelbase import Kernel
from traitlets import Float

from lean_kernel._version import __version__
from lean_kernel.errors import ReplSetupError
from lean_kernel.kernel.host import Reply
from lean_kernel.kernel.output import KernelOutput
from lean_kernel.kernel.shell import LeanShell

__all__ = ["LeanKernel", "main"]


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
        self.output = KernelOutput(self.session, self.iopub_socket)
        self.lean_shell = LeanShell(self.output, log=self.log)
        self._saved_sigint: Any = None
        self._setup_comms()

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
        version = self.lean_shell.lean_version()
        if version:
            info["version"] = version.removeprefix("v")
        return info

    @property
    def banner(self) -> str:  # type: ignore[override]
        """Which Lean runs, as ``jupyter console`` shows it on start."""
        head = f"Lean 4 kernel (lean_kernel {__version__})"
        try:
            launch = self.lean_shell.launch()
        except ReplSetupError as err:
            reason = str(err).splitlines()[0]
            return f"{head}\nLean REPL not ready ({reason}); the first cell sets it up."
        if launch.lean_version:
            return f"{head}\nLean {launch.lean_version}; REPL: {launch.description}"
        return f"{head}\nREPL: {launch.description}"

    # -- interrupts ---------------------------------------------------------------------------

    def pre_handler_hook(self) -> None:
        """While a request is handled, SIGINT only asks the running command to stop."""
        self.lean_shell.cancel.clear()
        self._saved_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def post_handler_hook(self) -> None:
        """Back to ipykernel's idle SIGINT handling."""
        signal.signal(signal.SIGINT, self._saved_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.lean_shell.cancel.set()

    # -- requests -----------------------------------------------------------------------------

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
        self.output.begin(self.get_parent(), silent=silent)
        reply = await self.lean_shell.execute(
            code,
            cell_id=cell_id or None,
            label=f"[{self.execution_count}]",
            deleted=(cell_meta or {}).get("deletedCells"),
        )
        reply["execution_count"] = self.execution_count
        if reply["status"] == "ok":
            reply.setdefault("payload", [])
            reply.setdefault("user_expressions", {})
        return reply

    async def do_complete(self, code: str, cursor_pos: int) -> Reply:
        """Unicode abbreviations, keywords, tactics and the names the notebook declared."""
        return self.lean_shell.complete(code, cursor_pos)

    async def do_inspect(
        self, code: str, cursor_pos: int, detail_level: int = 0, omit_sections: tuple = ()
    ) -> Reply:
        """Signature and docstring of the name under the cursor, asked of Lean on the document's
        current env (the document itself is not changed)."""
        return self.lean_shell.inspect(code, cursor_pos, detail_level)

    async def do_is_complete(self, code: str) -> Reply:
        """For ``jupyter console``: run the input, or keep reading lines (with an indent)."""
        return self.lean_shell.is_complete(code)

    # -- shutdown -----------------------------------------------------------------------------

    async def do_shutdown(self, restart: bool) -> Reply:
        """Kill the REPLs (the document's and the batch pool's): no Lean process outlives the
        kernel."""
        self.lean_shell.close()
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

    # -- widgets ------------------------------------------------------------------------------

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


def main(argv: list[str] | None = None) -> None:
    """Start the kernel (what the kernelspec runs)."""
    # ipykernel's debugger (debugpy) warns on every start under Python 3.11+ that frozen modules
    # may hide breakpoints; this kernel runs no Python for users, so the warning only confuses
    # (it lands in the first cell's output, and in `jupyter console`).
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(argv=argv, kernel_class=LeanKernel)

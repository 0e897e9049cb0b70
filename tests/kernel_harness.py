"""Drive the real Lean kernel process through jupyter_client, as a frontend does.

The kernelspec is installed (with ``python -m lean_kernel install``'s code) into a temporary
``JUPYTER_PATH`` with ``LEAN_KERNEL_REPL`` set to the fake REPL; each kernel gets its own fake
flags (request log, costs) through ``FAKE_REPL_ARGS``, and its own ``LEAN_KERNEL_*`` settings.
``execute`` puts a cell id in the request metadata, as JupyterLab, Notebook 7 and VS Code do.
"""

from __future__ import annotations

import os
import shlex
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

from conftest import fake_repl_command
from jupyter_client.manager import KernelManager

KERNEL_NAME = "lean4"
#: The same kernel without LEAN_KERNEL_REPL in its spec (a kernelspec's env wins over the
#: environment the kernel is started with), for tests of the REPL setup itself.
BARE_KERNEL_NAME = "lean4-bare"


def install_test_kernelspec(root: Path) -> Path:
    """Install the kernelspecs under ``root``; returns the folder to put on ``JUPYTER_PATH``."""
    from lean_kernel.cli import install

    install(prefix=str(root), env={"LEAN_KERNEL_REPL": fake_repl_command()})
    install(prefix=str(root), name=BARE_KERNEL_NAME)
    return root / "share" / "jupyter"


@contextmanager
def kernelspecs_on_jupyter_path(root: Path) -> Iterator[Path]:
    """Install the test kernelspecs under ``root`` and put them first on ``JUPYTER_PATH``
    while the block runs (restored afterwards); yields that folder."""
    path = install_test_kernelspec(root)
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old


@dataclass
class Execution:
    """One executed cell: its reply content and its iopub outputs, in order."""

    reply: dict[str, Any]
    outputs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def status(self) -> str:
        return self.reply["status"]

    @property
    def stdout(self) -> str:
        return "".join(
            c["text"] for t, c in self.outputs if t == "stream" and c["name"] == "stdout"
        )

    @property
    def displays(self) -> list[dict[str, Any]]:
        """The mimebundles of display_data outputs."""
        return [c["data"] for t, c in self.outputs if t == "display_data"]

    @property
    def plain(self) -> str:
        """Every output as text, joined (what a console shows)."""
        parts = []
        for kind, content in self.outputs:
            if kind == "stream":
                parts.append(content["text"])
            elif kind in ("display_data", "execute_result", "update_display_data"):
                parts.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                parts.append("\n".join(content["traceback"]))
        return "\n".join(parts)

    @property
    def error(self) -> dict[str, Any] | None:
        """The content of the error output, if any."""
        return next((c for t, c in self.outputs if t == "error"), None)


class KernelSession:
    """A started Lean kernel and a client connected to it."""

    def __init__(
        self,
        *,
        fake_args: list[str] | tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        kernel_name: str = KERNEL_NAME,
    ) -> None:
        full_env = {**os.environ, "FAKE_REPL_ARGS": shlex.join(fake_args), **(env or {})}
        self.km = KernelManager(kernel_name=kernel_name)
        self.km.start_kernel(env=full_env, cwd=cwd or os.getcwd())
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    @property
    def pid(self) -> int:
        return self.km.provisioner.process.pid  # type: ignore[union-attr]

    def send(self, code: str, cell_id: str | None = None, **metadata: Any) -> str:
        """Send an execute_request (with ``cellId`` metadata when given); returns its msg id."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.kc.session.msg("execute_request", content)
        msg["metadata"].update(metadata)
        if cell_id is not None:
            msg["metadata"]["cellId"] = cell_id
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def collect(self, msg_id: str, timeout: float = 30.0) -> Execution:
        """Outputs until the kernel is idle again, then the reply."""
        started = time.monotonic()
        deadline = started + timeout
        outputs: list[tuple[str, dict[str, Any]]] = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.01))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                break
            if kind not in ("status", "execute_input"):
                outputs.append((kind, msg["content"]))
        reply = self.reply(msg_id, deadline - time.monotonic())
        return Execution(reply, outputs, time.monotonic() - started)

    def reply(self, msg_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 0.01))
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]

    def execute(
        self, code: str, cell_id: str | None = None, timeout: float = 30.0, **metadata: Any
    ) -> Execution:
        return self.collect(self.send(code, cell_id, **metadata), timeout)

    def cell(self, code: str, timeout: float = 30.0) -> Execution:
        """Run a new cell with a fresh id (as a notebook frontend does)."""
        return self.execute(code, uuid.uuid4().hex, timeout)

    def complete(self, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
        return self.reply(self.kc.complete(code, len(code) if cursor_pos is None else cursor_pos))

    def inspect(self, code: str, cursor_pos: int | None = None, detail: int = 0) -> dict:
        pos = len(code) if cursor_pos is None else cursor_pos
        return self.reply(self.kc.inspect(code, pos, detail))

    def is_complete(self, code: str) -> dict[str, Any]:
        return self.reply(self.kc.is_complete(code))

    def drain(self) -> None:
        """Drop pending iopub messages."""
        while True:
            try:
                self.kc.get_iopub_msg(timeout=0.05)
            except Empty:
                return

    def close(self) -> None:
        """Shut the kernel down cleanly (shutdown_request, so ``do_shutdown`` runs).

        Not ``KernelManager.shutdown_kernel``: it interrupts the kernel first, and after an
        interrupt jupyter_client 8.10 sees the exited kernel as alive for seconds.
        """
        self.kc.stop_channels()
        if self.km.has_kernel:
            self.km.request_shutdown()
            self.km.finish_shutdown(waittime=10)
        self.km.cleanup_resources()

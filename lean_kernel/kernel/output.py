"""The kernel's output: iopub messages under the execute request being handled.

``KernelOutput`` is the one object that sends a cell's output (``display_data``, ``stream``,
``error``), so the shell and the magics stay free of ZMQ and sessions. It may be used from any
thread: a batch's progress view is updated by worker threads while the cell runs, and its
messages still go out under that cell.
"""

from __future__ import annotations

import contextlib
import html
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from lean_kernel.kernel.failures import headline
from lean_kernel.kernel.host import Reply

__all__ = ["KernelOutput"]

_NOTE_STYLE = (
    "font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,13px);"
    "color:var(--jp-content-font-color2,rgba(0,0,0,.54))"
)


class KernelOutput:
    """Sends output on the kernel's iopub socket (the ``Output`` the shell and magics use)."""

    def __init__(self, session: Any, iopub_socket: Any) -> None:
        self._session = session
        self._socket = iopub_socket
        self._parent: dict[str, Any] = {}
        self._silent = False

    def begin(self, parent: dict[str, Any], *, silent: bool) -> None:
        """Output from now on belongs to the request ``parent`` (nothing is sent if silent)."""
        self._parent = parent
        self._silent = silent

    def _send(self, msg_type: str, content: dict[str, Any]) -> None:
        if not self._silent:
            self._session.send(self._socket, msg_type, content, parent=self._parent)

    def display(
        self,
        data: dict[str, Any],
        *,
        metadata: dict[str, Any] | None = None,
        display_id: str | None = None,
        update: bool = False,
    ) -> None:
        """Send ``display_data`` (or ``update_display_data`` of ``display_id``)."""
        content: dict[str, Any] = {"data": data, "metadata": metadata or {}}
        content["transient"] = {"display_id": display_id} if display_id else {}
        self._send("update_display_data" if update else "display_data", content)

    def stream(self, text: str, name: str = "stdout") -> None:
        """Send program output (``stdout``) or warnings (``stderr``)."""
        if text:
            self._send("stream", {"name": name, "text": text})

    def note(self, text: str) -> None:
        """A kernel notice (replays, settings), kept apart from the program's output."""
        html_text = f'<div class="lk-note" style="{_NOTE_STYLE}">{html.escape(text)}</div>'
        self.display({"text/plain": text, "text/html": html_text})

    def error(self, ename: str, evalue: str, traceback: list[str] | None = None) -> Reply:
        """Send the ``error`` output and return the matching error reply."""
        content = {
            "ename": ename,
            "evalue": evalue,
            "traceback": traceback or [headline(ename, evalue)],
        }
        self._send("error", content)
        return {"status": "error", **content}

    @contextlib.contextmanager
    def progress(self, title: str) -> Iterator[Callable[[str], None]]:
        """A display updated in place with each step (for setup, which can take minutes). It
        ends saying how the work ended (done, failed, interrupted), so a step that was under
        way never stays on screen above the error it led to."""
        display_id = uuid.uuid4().hex
        started = time.monotonic()
        last = [""]

        def show(text: str, update: bool = True) -> None:
            self.display({"text/plain": text}, display_id=display_id, update=update)

        def say(line: str) -> None:
            last[0] = line
            show(f"{title} ({time.monotonic() - started:.0f} s): {line}")

        show(f"{title}...", update=False)
        try:
            yield say
        except (KeyboardInterrupt, InterruptedError):
            show(f"{title}: interrupted after {time.monotonic() - started:.0f} s.")
            raise
        except BaseException:
            show(f"{title}: failed after {time.monotonic() - started:.0f} s (the error is below).")
            raise
        seconds = time.monotonic() - started
        show(f"{title}: done in {seconds:.0f} s" + (f" ({last[0]})." if last[0] else "."))

    def send(self, msg_type: str, content: dict[str, Any]) -> None:
        """``progress.Send``: a batch progress view's display messages."""
        transient = content.get("transient") or {}
        self.display(
            content["data"],
            metadata=content.get("metadata"),
            display_id=transient.get("display_id"),
            update=msg_type == "update_display_data",
        )

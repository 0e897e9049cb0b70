"""Live progress of a batch: an ipywidgets bar with a Cancel button, or a plain-text line.

Three views show the same ``ProgressState`` (done/total, ok and failed counts, elapsed, ETA):

* ``WidgetProgress``: bar, counts and a Cancel button, for Jupyter frontends with widgets;
* ``DisplayProgress``: one text line (``display_data`` with a display id, then
  ``update_display_data``), for frontends without widgets, nbconvert and saved notebooks;
* ``StreamProgress``: a ``\\r``-rewritten line on a terminal stream, for scripts.

The first two are shown through a ``send(msg_type, content)`` callable, so the same code serves
the IPython extension (``ipython_send``, through IPython's display publisher) and the Lean kernel
(which sends its own iopub messages and has no InteractiveShell). A ``ProgressDriver`` thread
refreshes the view a few times a second at most, keeps elapsed/ETA ticking while a long command
runs, and stops when the batch ends.
"""

from __future__ import annotations

import html
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO

from lean_kernel.engine.outcome import FAILED

__all__ = [
    "DisplayProgress",
    "ProgressDriver",
    "ProgressState",
    "ProgressView",
    "Send",
    "StreamProgress",
    "WidgetProgress",
    "attach_progress",
    "ipython_send",
    "make_progress",
    "widgets_available",
]

Send = Callable[[str, dict[str, Any]], None]
"""Sends one iopub message: ``send("display_data" | "update_display_data", content)``."""

ProgressMode = Literal["auto", "widget", "text", "stream", "none"]


@dataclass(frozen=True)
class ProgressState:
    """A snapshot of a batch, in the numbers a progress line shows."""

    label: str
    total: int
    done: int
    ok: int
    sorry: int
    failed: int
    elapsed: float
    eta: float | None
    finished: bool = False
    cancelled: bool = False

    @classmethod
    def of(cls, handle: Any) -> ProgressState:
        """The state of a ``BatchHandle`` (anything with ``results``, ``eta()`` and
        ``cancelled``)."""
        results = handle.results
        counts = results.counts()
        return cls(
            label=results.label,
            total=len(results),
            done=results.done,
            ok=counts.get("ok", 0),
            sorry=counts.get("sorry", 0),
            failed=sum(counts.get(s, 0) for s in FAILED),
            elapsed=results.elapsed,
            eta=handle.eta(),
            finished=results.complete,
            cancelled=handle.cancelled,
        )

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def counts_text(self) -> str:
        parts = [f"ok {self.ok}"]
        if self.sorry:
            parts.append(f"sorry {self.sorry}")
        parts.append(f"failed {self.failed}")
        return ", ".join(parts)

    def time_text(self) -> str:
        text = f"{_duration(self.elapsed)} elapsed"
        if self.finished:
            return text
        if self.cancelled:
            return text + ", cancelling"
        return text + (f", ETA {_duration(self.eta)}" if self.eta is not None else "")

    def text(self) -> str:
        """One line, e.g. ``batch: 120/200 (60%) ok 110, failed 10; 12.3 s elapsed, ETA 8 s``."""
        state = " cancelled" if self.cancelled and self.finished else ""
        state = state or (" done" if self.finished else "")
        return (
            f"{self.label}: {self.done}/{self.total} ({self.fraction:.0%}){state} "
            f"{self.counts_text()}; {self.time_text()}"
        )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressView(Protocol):
    """Something that shows progress; ``update`` is called from one thread at a time."""

    def update(self, state: ProgressState) -> None: ...


# -- sending display messages ----------------------------------------------------------------------


def ipython_send(shell: Any = None) -> Send:
    """A ``send`` that goes through IPython's display publisher (works from any thread)."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        raise RuntimeError("no IPython shell is running; pass send= to show progress")

    def send(msg_type: str, content: dict[str, Any]) -> None:
        shell.display_pub.publish(
            data=content["data"],
            metadata=content.get("metadata") or {},
            transient=content.get("transient"),
            update=msg_type == "update_display_data",
        )

    return send


def _display_content(data: dict[str, Any], display_id: str) -> dict[str, Any]:
    return {"data": data, "metadata": {}, "transient": {"display_id": display_id}}


# -- the views ---------------------------------------------------------------------------------


class DisplayProgress:
    """A text line (and a small HTML bar) shown once and updated in place by display id."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.display_id = f"lean-progress-{uuid.uuid4().hex}"
        self._shown = False

    def update(self, state: ProgressState) -> None:
        msg_type = "update_display_data" if self._shown else "display_data"
        self._send(msg_type, _display_content(_bundle(state), self.display_id))
        self._shown = True


def _bundle(state: ProgressState) -> dict[str, str]:
    colour = "var(--jp-error-color1,#d32f2f)" if state.failed else "var(--jp-brand-color1,#1976d2)"
    bar = (
        f'<progress value="{state.done}" max="{max(state.total, 1)}" '
        f'style="width:16em;vertical-align:middle;accent-color:{colour}"></progress> '
    )
    return {
        "text/plain": state.text(),
        "text/html": f"<div>{bar}<code>{html.escape(state.text())}</code></div>",
    }


class WidgetProgress:
    """An ipywidgets bar with done/total, ok/failed counts, elapsed, ETA and a Cancel button.

    ``send`` shows it (its view bundle, under a display id, with the progress line as text); at
    the end the display is updated once more with the final line, so a frontend without widgets
    and a saved notebook still say how the batch ended. In between, only the widget moves.
    """

    def __init__(self, send: Send, on_cancel: Callable[[], None] | None = None) -> None:
        import ipywidgets as widgets

        self._send = send
        self.display_id = f"lean-progress-{uuid.uuid4().hex}"
        self.bar = widgets.IntProgress(value=0, min=0, max=1, bar_style="info")
        self.counts = widgets.HTML()
        self.times = widgets.HTML()
        self.cancel_button = widgets.Button(
            description="Cancel", icon="stop", tooltip="Stop this batch", button_style="warning"
        )
        self.cancel_button.layout.width = "auto"
        if on_cancel is not None:
            self.cancel_button.on_click(lambda _button: on_cancel())
        else:
            self.cancel_button.disabled = True
        # Side by side the HTML parts would read "failed 0 0.9 s elapsed": space them out.
        for part in (self.counts, self.times):
            part.layout.margin = "0 0 0 1em"
        self.cancel_button.layout.margin = "0 0 0 1em"
        self.widget = widgets.HBox([self.bar, self.counts, self.times, self.cancel_button])
        self._shown = False
        self._closed = False

    def update(self, state: ProgressState) -> None:
        if self._closed:
            return
        with self.widget.hold_sync():
            self.bar.max = max(state.total, 1)
            self.bar.value = state.done
            self.bar.description = f"{state.done}/{state.total}"
            self.counts.value = html.escape(state.counts_text())
            self.times.value = html.escape(state.time_text())
            if state.finished:
                self.bar.bar_style = "danger" if state.failed else "success"
                self.cancel_button.disabled = True
            elif state.cancelled:
                self.cancel_button.disabled = True
        if not self._shown:
            self._send("display_data", _display_content(self._view(state), self.display_id))
            self._shown = True
        elif state.finished:
            self._send("update_display_data", _display_content(self._view(state), self.display_id))
            self._closed = True

    def _view(self, state: ProgressState) -> dict[str, Any]:
        """The widget's view, with the progress line as its text (for frontends without
        widgets, and saved notebooks)."""
        bundle = dict(self.widget._repr_mimebundle_() or {})
        bundle["text/plain"] = state.text()
        return bundle


class StreamProgress:
    """One line on a terminal stream (stderr by default), rewritten in place."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = 0

    def update(self, state: ProgressState) -> None:
        line = state.text()
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        end = "\n" if state.finished else ""
        self._stream.write(f"\r{line}{pad}{end}")
        self._stream.flush()


# -- choosing and driving a view -----------------------------------------------------------------


def widgets_available() -> bool:
    """Whether ipywidgets can be shown: it is installed and we run under a Jupyter kernel."""
    return _widgets_installed() and _in_kernel()


def _widgets_installed() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def make_progress(
    mode: ProgressMode = "auto",
    *,
    send: Send | None = None,
    on_cancel: Callable[[], None] | None = None,
    stream: TextIO | None = None,
) -> ProgressView | None:
    """The view for ``mode``. ``auto``: under a Jupyter kernel (or with ``send``), a widget when
    ipywidgets is there, else a display-id text line; elsewhere a line on ``stream``. ``widget``
    and ``text`` without ``send`` go through IPython's display publisher."""
    if mode == "none":
        return None
    if mode == "stream":
        return StreamProgress(stream)
    if send is None and (mode in ("widget", "text") or _in_kernel()):
        send = ipython_send()
    if send is None:
        return StreamProgress(stream)
    if mode == "widget" or (mode == "auto" and widgets_available()):
        return WidgetProgress(send, on_cancel)
    return DisplayProgress(send)


class ProgressDriver:
    """Refreshes a view from a batch: at most every ``interval`` seconds, at least every
    ``tick`` (so elapsed and ETA move during a long command), and once at the end."""

    def __init__(
        self, handle: Any, view: ProgressView, interval: float = 0.2, tick: float = 1.0
    ) -> None:
        self.handle = handle
        self.view = view
        self.interval = interval
        self.tick = tick
        self._wake = threading.Event()
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="lean-progress", daemon=True)

    def start(self) -> ProgressDriver:
        self.view.update(ProgressState.of(self.handle))
        self.handle.add_listener(lambda _handle: self._wake.set())
        self.thread.start()
        return self

    def _loop(self) -> None:
        try:
            while True:
                self._wake.wait(self.tick)
                self._wake.clear()
                state = ProgressState.of(self.handle)
                self.view.update(state)
                if state.finished:
                    return
                time.sleep(self.interval)
        except Exception as error:  # noqa: BLE001 - progress must never break the batch
            self.error = error
        finally:
            self.finished.set()


def attach_progress(
    handle: Any,
    mode: ProgressMode = "auto",
    *,
    send: Send | None = None,
    stream: TextIO | None = None,
) -> ProgressDriver | None:
    """Show live progress of ``handle`` (a ``BatchHandle``); its Cancel button cancels it."""
    view = make_progress(mode, send=send, on_cancel=handle.cancel, stream=stream)
    if view is None:
        return None
    return ProgressDriver(handle, view).start()

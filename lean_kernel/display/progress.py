"""Live progress of a batch: an ipywidgets bar with a Cancel button, or a plain-text line.

Four views show the same ``ProgressState`` (done/total, counts per outcome, elapsed, ETA):

* ``WidgetProgress``: bar, counts and a Cancel button, for Jupyter frontends with widgets;
* ``DisplayProgress``: one text line (``display_data`` with a display id, then
  ``update_display_data``), for frontends without widgets, nbconvert and saved notebooks;
* ``StreamProgress``: a ``\\r``-rewritten line on a stream, for scripts, and
  ``TerminalProgress``, the same line in a terminal IPython, quiet while the prompt is up
  (both in ``display.terminal``).

The first two are shown through a ``send(msg_type, content)`` callable: IPython's display
publisher (``ipython_send``) or the Lean kernel's own iopub messages. A ``ProgressDriver``
thread refreshes the view a few times a second at most, keeps elapsed/ETA ticking during a long
command, and shows the last state (100%, the final counts) as the batch ends, before its handle
lets any waiter go: no display stays short of the end, in a widget, a saved notebook or a
terminal.
"""

from __future__ import annotations

import html
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO

from lean_kernel.display.terminal import StreamProgress, TerminalProgress, follow_prompt
from lean_kernel.engine import outcome as outcomes

__all__ = [
    "DisplayProgress",
    "ProgressDriver",
    "ProgressState",
    "ProgressView",
    "Send",
    "StreamProgress",
    "TerminalProgress",
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
    """A snapshot of a batch, in the numbers a progress line shows.

    ``counts`` is the finished items per outcome (``outcome.OUTCOMES`` order, whatever words
    that list holds); empty when the state was built by hand from ``ok``/``sorry``/``failed``.
    """

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
    counts: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, handle: Any) -> ProgressState:
        """The state of a ``BatchHandle`` (anything with ``results``, ``eta()`` and
        ``cancelled``)."""
        results = handle.results
        counts = getattr(results, "outcome_counts", results.counts)()
        words = [w for w in outcomes.OUTCOMES if w != "pending"]
        # A word the list does not know yet is still shown: a failure never goes missing.
        words += sorted(w for w in counts if w not in words and w != "pending")
        return cls(
            label=results.label,
            total=len(results),
            done=results.done,
            ok=counts.get("ok", 0),
            sorry=counts.get("sorry", 0),
            failed=sum(n for w, n in counts.items() if w not in outcomes.ACCEPTED | {"pending"}),
            elapsed=results.elapsed,
            eta=handle.eta(),
            finished=results.complete,
            cancelled=handle.cancelled,
            counts=tuple((word, counts.get(word, 0)) for word in words),
        )

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def counts_text(self) -> str:
        """``ok 12, sorry 1, error 2``: ``ok`` always, every other outcome once it happened
        (a ``sorry`` is never counted as ``ok``)."""
        if not self.counts:
            parts = [f"ok {self.ok}"]
            if self.sorry:
                parts.append(f"sorry {self.sorry}")
            parts.append(f"failed {self.failed}")
            return ", ".join(parts)
        return ", ".join(f"{word} {n}" for word, n in self.counts if n or word == "ok")

    def time_text(self) -> str:
        text = f"{_duration(self.elapsed)} elapsed"
        if self.finished:
            return text
        if self.cancelled:
            return text + ", cancelling"
        return text + (f", ETA {_duration(self.eta)}" if self.eta is not None else "")

    def text(self) -> str:
        """One line, e.g. ``batch: 120/200 (60%) ok 110, error 10; 12.3 s elapsed, ETA 8 s``;
        at the end ``batch: 200/200 (100%) done ok 180, sorry 5, error 15; 20.1 s elapsed``."""
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
        self._shown: ProgressState | None = None

    def update(self, state: ProgressState) -> None:
        msg_type = "update_display_data" if self._shown else "display_data"
        self._send(msg_type, _display_content(_bundle(state), self.display_id))
        self._shown = state

    def resend(self) -> None:
        """Send the state shown last once more (see ``ProgressDriver.show_again``)."""
        if self._shown is not None:
            self._send(
                "update_display_data", _display_content(_bundle(self._shown), self.display_id)
            )


def _bundle(state: ProgressState) -> dict[str, str]:
    colour = "error-color1,#d32f2f" if state.failed else "brand-color1,#1976d2"
    colour = "warn-color1,#f57c00" if state.sorry and not state.failed else colour
    bar = (
        f'<progress value="{state.done}" max="{max(state.total, 1)}" '
        f'style="width:16em;vertical-align:middle;accent-color:var(--jp-{colour})"></progress> '
    )
    return {
        "text/plain": state.text(),
        "text/html": f"<div>{bar}<code>{html.escape(state.text())}</code></div>",
    }


class WidgetProgress:
    """An ipywidgets bar with done/total, counts per outcome, elapsed, ETA and a Cancel button.

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
        # Side by side the HTML parts would read "error 1 0.9 s elapsed": space them out.
        for part in (self.counts, self.times, self.cancel_button):
            part.layout.margin = "0 0 0 1em"
        self.widget = widgets.HBox([self.bar, self.counts, self.times, self.cancel_button])
        self._shown: ProgressState | None = None
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
                # Green only for a clean run: a sorry is accepted, not proved.
                style = "danger" if state.failed else "warning" if state.sorry else "success"
                self.bar.bar_style = style
                self.cancel_button.disabled = True
            elif state.cancelled:
                self.cancel_button.disabled = True
        if not self._shown:
            self._send("display_data", _display_content(self._view(state), self.display_id))
        elif state.finished:
            self._send("update_display_data", _display_content(self._view(state), self.display_id))
        self._shown, self._closed = state, state.finished

    def resend(self) -> None:
        """Send the widget's whole state and the line shown last once more (see
        ``ProgressDriver.show_again``)."""
        if self._shown:
            for part in (self.bar, self.counts, self.times, self.cancel_button):
                part.send_state()
            view = self._view(self._shown)
            self._send("update_display_data", _display_content(view, self.display_id))

    def _view(self, state: ProgressState) -> dict[str, Any]:
        """The widget's view, with the progress line as its text (for frontends without
        widgets, and saved notebooks)."""
        bundle = dict(self.widget._repr_mimebundle_() or {})
        bundle["text/plain"] = state.text()
        return bundle


# -- choosing and driving a view -----------------------------------------------------------------


def widgets_available() -> bool:
    """Whether ipywidgets can be shown: it is installed and we run under a Jupyter kernel."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return _in_kernel()


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _in_kernel() -> bool:
    return getattr(_ipython(), "kernel", None) is not None


def _prompt_shell() -> Any:
    """The IPython shell reading cells at a prompt (a terminal: no kernel), or None."""
    shell = _ipython()
    return shell if hasattr(shell, "events") and not _in_kernel() else None


def make_progress(
    mode: ProgressMode = "auto",
    *,
    send: Send | None = None,
    on_cancel: Callable[[], None] | None = None,
    stream: TextIO | None = None,
) -> ProgressView | None:
    """The view for ``mode``. ``auto``: under a Jupyter kernel (or with ``send``), a widget when
    ipywidgets is there, else a display-id text line; in a terminal IPython a line that keeps off
    the prompt; elsewhere a line on ``stream``. ``widget`` and ``text`` without ``send`` go
    through IPython's display publisher."""
    if mode == "none":
        return None
    if mode in ("auto", "stream") and send is None and stream is None:
        shell = _prompt_shell()
        if shell is not None:
            return follow_prompt(TerminalProgress(), shell)
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
    ``tick`` (so elapsed and ETA move during a long command), and once at the end.

    The end is shown by the thread that ends the batch, inside the handle's last listener call,
    which comes before the handle's future resolves: when ``wait()``, ``result()``,
    ``run_batch`` or a cell awaiting the batch returns, the view already shows the final state
    (and a notebook saves it). ``finished`` is set once it has been shown (or the view failed:
    ``error``).
    """

    def __init__(
        self, handle: Any, view: ProgressView, interval: float = 0.2, tick: float = 1.0
    ) -> None:
        self.handle = handle
        self.view = view
        self.interval = interval
        self.tick = tick
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one update at a time; none after the final one
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="lean-progress", daemon=True)

    def start(self) -> ProgressDriver:
        self._show()
        self.handle.add_listener(self._changed)
        self.thread.start()
        return self

    def _changed(self, handle: Any) -> None:
        if handle.results.complete:
            self._show()  # the last state, now: the handle lets its waiters go after this call
        else:
            self._wake.set()

    def _show(self) -> None:
        with self._lock:
            if self.finished.is_set():
                return
            state = ProgressState.of(self.handle)
            try:
                self.view.update(state)
            except Exception as error:  # noqa: BLE001 - progress must never break the batch
                self.error = error
                self.finished.set()
            if state.finished:
                self.finished.set()
        if self.finished.is_set():
            self._wake.set()

    def show_again(self) -> None:
        """Show the final state once more, if the view can. A frontend may have stopped
        listening before it came: nbclient (``nbconvert --execute``) saves only the messages
        that arrive while a cell runs, so a batch ending between two cells would be saved short
        of its end; shown again from the next cell, it is saved as it ended."""
        resend = getattr(self.view, "resend", None)
        with self._lock:
            if self.finished.is_set() and self.error is None and resend is not None:
                resend()

    def _loop(self) -> None:
        while not self.finished.is_set():
            self._wake.wait(self.tick)
            self._wake.clear()
            self._show()
            self.finished.wait(self.interval)


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

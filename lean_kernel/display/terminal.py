"""Batch progress as a line on a terminal: for scripts, and for IPython at a prompt.

``StreamProgress`` rewrites one line in place (``\\r``) and ends it, on the final state, with a
newline. ``TerminalProgress`` is that line in a terminal IPython, which shares the terminal with
its prompt: it writes only while a cell runs, and when a batch ends behind the prompt it prints
one line above it. ``progress.make_progress`` chooses between them; ``follow_prompt`` tells a
view when the shell's cells start and end.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, TextIO

__all__ = ["Line", "StreamProgress", "TerminalProgress", "follow_prompt"]


class Line(Protocol):
    """What a line view reads of a ``progress.ProgressState``."""

    finished: bool

    def text(self) -> str: ...


class StreamProgress:
    """One line on a stream (stderr by default), rewritten in place; the last one, the final
    state, ends with a newline."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = 0  # of the unfinished line on screen (0: the cursor starts a line)

    def update(self, state: Line) -> None:
        line = state.text()
        if not state.finished:
            line = line[: self._columns()]
        pad = " " * max(0, self._width - len(line))
        end = "\n" if state.finished else ""
        self._width = 0 if state.finished else len(line)
        self._stream.write(f"\r{line}{pad}{end}")
        self._stream.flush()

    def _columns(self) -> int | None:
        """A live line must fit the terminal, or ``\\r`` rewrites only its last row."""
        with contextlib.suppress(AttributeError, ValueError, OSError):
            if self._stream.isatty():
                return shutil.get_terminal_size().columns - 1
        return None


class TerminalProgress(StreamProgress):
    """The progress line of a terminal that a prompt shares (IPython in a terminal).

    While a cell runs (``%%lean_batch`` itself, ``wait()``, ``run_batch``) the user watches the
    batch: the line is rewritten in place as in a script, and ends on the final state. When the
    cell ends, the line is erased so the prompt starts clean, and nothing is written while the
    prompt is up: a rewritten line would land on what the user types. If the batch ends then,
    one line says how it ended, printed above the prompt by ``above_prompt`` (prompt_toolkit
    redraws the prompt and the text typed so far under it), like a shell's job notice.
    """

    def __init__(
        self, stream: TextIO | None = None, above_prompt: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(stream)
        self._above_prompt = above_prompt or _print_above_prompt
        self._lock = threading.Lock()
        self._prompt_up = False
        self.over = False  # the final state has been shown

    def update(self, state: Line) -> None:
        with self._lock:
            if self.over:
                return
            self.over = state.finished
            if not self._prompt_up:
                super().update(state)
            elif state.finished:
                self._above_prompt(state.text())

    def prompt_shown(self) -> None:
        """The cell ended and the prompt comes next: erase the live line, then keep quiet."""
        with self._lock:
            self._prompt_up = True
            if self._width:
                self._stream.write("\r" + " " * self._width + "\r")
                self._stream.flush()
                self._width = 0

    def cell_started(self) -> None:
        """A cell runs: the prompt is gone, the live line may show again."""
        with self._lock:
            self._prompt_up = False


def _print_above_prompt(line: str) -> None:
    """Print ``line`` above a running prompt_toolkit prompt (redrawn under it), else plainly."""
    try:
        from prompt_toolkit.patch_stdout import StdoutProxy
    except ImportError:  # pragma: no cover - IPython's terminal needs prompt_toolkit
        print(line, file=sys.__stderr__, flush=True)
        return
    with StdoutProxy(raw=True) as out:
        out.write(line + "\n")


def follow_prompt(view: TerminalProgress, shell: Any) -> TerminalProgress:
    """Tell ``view`` when the shell's cells start and end (its prompt comes after each)."""

    def cell_started(*_info: Any) -> None:
        view.cell_started()
        if view.over:
            unhook()

    def cell_ended(*_result: Any) -> None:
        view.prompt_shown()
        if view.over:
            unhook()

    def unhook() -> None:
        for event, hook in (("pre_run_cell", cell_started), ("post_run_cell", cell_ended)):
            with contextlib.suppress(ValueError):
                shell.events.unregister(event, hook)

    shell.events.register("pre_run_cell", cell_started)
    shell.events.register("post_run_cell", cell_ended)
    return view

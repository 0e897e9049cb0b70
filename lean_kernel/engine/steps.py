"""Running setup commands: each step said, each command bounded, its progress passed on.

The installers (``install.py``, ``elan.py``) run every external command through ``SetupSteps``:
in its own session, with a timeout that kills the whole tree, its output kept for the error
message and, for the long ones (downloads, builds), its own progress lines reported as they come.
A failed download is explained once, by ``without_network``, the same way everywhere.
"""

from __future__ import annotations

import codecs
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from lean_kernel.engine.launch import PROJECT_ENV_VAR, REPL_ENV_VAR
from lean_kernel.engine.process import kill_tree
from lean_kernel.errors import ReplSetupError

_TAIL_LINES = 20
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_LINE_END = re.compile(r"(\r\n|\r|\n)")


class SetupSteps:
    """One resolve() call's side effects: step reports and bounded subprocesses."""

    def __init__(self, progress: Callable[[str], None] | None, verbose: bool) -> None:
        self._progress = progress
        self._verbose = verbose

    def say(self, line: str) -> None:
        """Report one step to the progress callback, and to stderr when verbose."""
        if self._progress is not None:
            self._progress(line)
        if self._verbose:
            print(f"lean_kernel: {line}", file=sys.stderr, flush=True)

    def run(
        self,
        argv: list[str],
        cwd: Path,
        timeout: float,
        env: dict[str, str] | None,
        fix: str,
        *,
        echo: bool = False,
    ) -> tuple[int, str, str]:
        """(exit code, stdout, stderr); in its own session so a timeout kills the whole tree.

        With ``echo`` the command's own lines (download sizes, modules built) are reported as
        they come, and its redrawn progress bars at most once a second: a step of minutes is
        not silent.
        """
        full_env = {**os.environ, **(env or {}), "GIT_TERMINAL_PROMPT": "0"}
        command = shlex.join(argv)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise ReplSetupError(
                f"Could not run `{command}` in {cwd}: {exc}.\nFix: {fix}"
            ) from None
        lines: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
        outputs = [_Pump(proc.stdout, lines), _Pump(proc.stderr, lines)]
        deadline = time.monotonic() + timeout
        echoed = _Echo(self.say if echo else None)
        try:
            while not _finished(proc):
                echoed.take(lines)
                if time.monotonic() > deadline:
                    kill_tree(proc, close_pipes=False)
                    out, err = (pump.text() for pump in outputs)
                    raise ReplSetupError(
                        f"`{command}` did not finish within {timeout:g} s in {cwd}; it was "
                        f"killed.\n{tail(out, err)}\nFix: {fix}"
                    ) from None
        except BaseException:  # Ctrl-C included: no installer keeps running behind us
            kill_tree(proc, close_pipes=False)
            raise
        out, err = (pump.text() for pump in outputs)
        echoed.take(lines, final=True)
        return proc.returncode, out, err


def _finished(proc: subprocess.Popen) -> bool:
    try:
        proc.wait(timeout=0.2)
    except subprocess.TimeoutExpired:
        return False
    return True


class _Echo:
    """Passes a command's lines on: each finished line, and the newest redrawn one (``\\r``) at
    most once a second."""

    def __init__(self, say: Callable[[str], None] | None) -> None:
        self._say = say
        self._redrawn = 0.0

    def take(self, lines: queue.SimpleQueue[tuple[str, bool]], final: bool = False) -> None:
        latest = None
        while True:
            try:
                line, redraw = lines.get_nowait()
            except queue.Empty:
                break
            if self._say is None:
                continue
            if not redraw:
                self._say(f"  {line}")
            elif final or time.monotonic() - self._redrawn >= 1.0:
                latest = line
        if latest is not None and self._say is not None:
            self._say(f"  {latest}")
            self._redrawn = time.monotonic()


class _Pump:
    """Reads one pipe to its end on a thread: keeps the text, queues each line (a line ends at
    ``\\n`` or at ``\\r``, which progress bars use to redraw)."""

    def __init__(self, pipe: IO[bytes] | None, lines: queue.SimpleQueue[tuple[str, bool]]) -> None:
        self._chunks: list[str] = []
        self._lines = lines
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[bytes] | None) -> None:
        if pipe is None:
            return
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        partial = ""
        with pipe:
            while data := os.read(pipe.fileno(), 65536):
                text = decoder.decode(data)
                self._chunks.append(text)
                parts = _LINE_END.split(partial + text)
                partial = parts.pop()
                for line, end in zip(parts[::2], parts[1::2], strict=True):
                    self._put(line, redraw=end == "\r")
        self._put(partial, redraw=False)

    def _put(self, line: str, redraw: bool) -> None:
        line = _ANSI.sub("", line).strip()
        if line:
            self._lines.put((line, redraw))

    def text(self) -> str:
        """Everything the pipe carried (waits a little for the reader to reach the end)."""
        self._thread.join(timeout=5)
        return "".join(self._chunks)


def without_network(what: str, where: str) -> str:
    """The one explanation of a failed download: what, from where, and the ways forward."""
    return (
        f"Setting up Lean downloads {what} from {where}, so it needs network access once "
        "(everything is cached afterwards); behind a proxy, set HTTPS_PROXY and retry.\n"
        "Without network, point the kernel at a Lean REPL that is already built, either:\n"
        f"  - {REPL_ENV_VAR}: the command that starts it, e.g. "
        f"{REPL_ENV_VAR}='lake env /path/to/repl/.lake/build/bin/repl'; or\n"
        f"  - {PROJECT_ENV_VAR}: a Lake project whose REPL is built (.lake/build/bin/repl in "
        "the project, or in its package .lake/packages/REPL)."
    )


def tail(*outputs: str) -> str:
    """The last lines of a command's output, indented, for an error message."""
    lines = "\n".join(o.strip() for o in outputs if o and o.strip()).splitlines()
    if not lines:
        return "  (no output)"
    return "\n".join("  " + line for line in lines[-_TAIL_LINES:])

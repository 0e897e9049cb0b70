"""`jupyter console --kernel lean4` typed into as a person does, in tmux, against the fake REPL.

The tour's multi-line cells are typed line by line (each line's own indentation left to the
console, which takes it from the kernel's ``is_complete`` reply): each must reach Lean as ONE
cell and show the tour's output; a ``%%lean_batch`` of several commands runs as one batch; a
tour cell with a blank line in it, pasted, runs whole; ``exit`` quits the console, which shuts
the kernel and its REPLs down. Skipped when tmux or jupyter-console is not installed
(``.ci/run`` installs Debian's tmux; jupyter-console is in the ``test`` extra).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import wait_no_repl_processes
from kernel_harness import install_test_kernelspec

TOUR = Path(__file__).resolve().parents[1] / "notebooks" / "tour.ipynb"
TMUX = shutil.which("tmux")

pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux)"),
    pytest.mark.skipif(
        importlib.util.find_spec("jupyter_console") is None,
        reason="jupyter-console is not installed (pip install -e '.[test]')",
    ),
]

#: Generous: the first prompt waits for a kernel and its REPL on a shared, busy machine.
WAIT = 90.0


def tour_cell(cell_id: str) -> str:
    (cell,) = [c for c in json.loads(TOUR.read_text())["cells"] if c.get("id") == cell_id]
    return "".join(cell["source"])


class Console:
    """A ``jupyter console --kernel lean4`` in a private tmux server, typed into with
    ``send-keys`` and read with ``capture-pane``."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.socket = f"lean-kernel-test-{uuid.uuid4().hex[:12]}"
        self.config = folder / "tmux.conf"  # none of the user's tmux settings
        self.config.write_text("set-option -g history-limit 20000\n")
        script = folder / "console.sh"
        console = shlex.join([sys.executable, "-m", "jupyter_console", "--kernel", "lean4"])
        # After the console exits, say how, and keep the pane open to be read.
        script.write_text(f'{console}\necho "console exited: $?"\nexec sleep 600\n')
        self.tmux(
            "new-session", "-d", "-s", "lean", "-x", "200", "-y", "50", "-c", str(folder),
            f"sh {script}", env=env,
        )  # fmt: skip

    def tmux(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
        command = [TMUX, "-f", str(self.config), "-L", self.socket, *args]  # a server of our own
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
        assert done.returncode == 0 or not check, done.stderr
        return done.stdout

    def screen(self) -> str:
        """Everything the console printed so far (wrapped lines joined)."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "lean")

    def wait_for(self, pattern: str, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if re.search(pattern, screen, re.MULTILINE):
                return screen
            assert time.monotonic() < deadline, f"no {pattern!r} on the screen:\n{screen}"
            time.sleep(0.1)

    def type_line(self, text: str) -> None:
        """Type one line (without its indentation: the console puts that in), then Enter."""
        text = text.strip()
        if text:
            self.tmux("send-keys", "-t", "lean", "-l", "--", text)
            self.wait_for(rf"{re.escape(text)}\s*\Z")  # on screen: the console has it
        self.tmux("send-keys", "-t", "lean", "Enter")

    def paste(self, text: str) -> None:
        """Paste ``text`` as a terminal does (bracketed paste), then press Enter."""
        self.tmux("set-buffer", "--", text)
        self.tmux("paste-buffer", "-p", "-t", "lean")
        last = text.rstrip().splitlines()[-1]
        self.wait_for(rf"{re.escape(last)}\s*\Z")
        self.tmux("send-keys", "-t", "lean", "Enter")

    def run(self, count: int, lines: list[str]) -> str:
        """Type ``lines`` at prompt ``In [count]`` and return what the cell printed: all of
        it must run as cell ``count`` (the next prompt is ``count + 1``)."""
        self.wait_for(rf"^In \[{count}\]: \s*\Z")
        for line in lines:
            self.type_line(line)
        return self.output(count)

    def output(self, count: int) -> str:
        """What cell ``count`` printed, once the next prompt is there."""
        screen = self.wait_for(rf"^In \[{count + 1}\]:")
        start = re.search(rf"^In \[{count}\]:", screen, re.MULTILINE)
        end = re.search(rf"^In \[{count + 1}\]:", screen, re.MULTILINE)
        assert start is not None and end is not None
        return screen[start.start() : end.start()]

    def close(self) -> None:
        """Stop the tmux server (the console, if still there, goes with it) and its socket."""
        socket = self.tmux("display-message", "-p", "#{socket_path}", check=False).strip()
        self.tmux("kill-server", check=False)
        if socket:
            Path(socket).unlink(missing_ok=True)


class ReplLog:
    """The commands and tactics the fake REPLs received (the document's and a batch pool's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = 0

    def new_commands(self) -> list[str]:
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        fresh, self.seen = lines[self.seen :], len(lines)
        requests = [json.loads(line)["request"] for line in fresh if line]
        texts = [r.get("cmd", r.get("tactic", "")) for r in requests if isinstance(r, dict)]
        # The cells' own commands: a cell's verdict check (`#print axioms`) is left out.
        return [text for text in texts if text.strip() and not text.startswith("#print axioms")]


@pytest.fixture
def console_session(tmp_path):
    log = ReplLog(tmp_path / "requests.jsonl")
    env = {
        **os.environ,
        "JUPYTER_PATH": str(install_test_kernelspec(tmp_path / "spec")),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "FAKE_REPL_ARGS": shlex.join(["--log", str(log.path)]),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # debugpy's frozen-modules note on the screen
    }
    env.pop("TMUX", None)
    session = Console(tmp_path, env)
    try:
        yield session, log
    finally:
        session.close()
    assert wait_no_repl_processes(timeout=15) == []


def chunks(cell: str) -> list[list[str]]:
    """A tour cell as a person types it into a console: a blank line ends an input."""
    return [part.split("\n") for part in cell.split("\n\n")]


def test_console_runs_the_tours_multi_line_cells_as_one_cell_each_then_exit_quits(
    console_session,
):
    console, log = console_session
    count = 1

    def cell(lines: list[str], *, blank: bool = False) -> str:
        """Type a cell (then a blank line, to end a block); it must run as cell ``count``."""
        nonlocal count
        out = console.run(count, lines + ([""] if blank else []))
        count += 1
        return out

    # A finished one-liner runs on Enter.
    cell([tour_cell("define-double")])
    assert log.new_commands() == [tour_cell("define-double")]
    assert "42" in cell([tour_cell("eval-double")])
    log.new_commands()

    # `def sumTo : Nat → Nat` and its `|` cases: one cell (the finding was three), then its
    # `#eval` after the cell's blank line.
    definition, evaluation = chunks(tour_cell("define-sum"))
    out = cell(definition, blank=True)
    assert "error" not in out.lower(), out
    assert [c.rstrip() for c in log.new_commands()] == ["\n".join(definition)]
    assert "55" in cell(evaluation)
    log.new_commands()

    # `theorem ... := by` and its tactic lines (a blank line ends them); proof mode's
    # `%proof` and its tactic: one cell each.
    for cell_id, blank, shown in [
        ("theorem-sorry", True, "declaration uses `sorry`"),
        ("proof-unfold", False, "⊢"),
        ("proof-omega", False, "Proof complete"),
        ("theorem-proved", True, ""),
    ]:
        source = tour_cell(cell_id)
        out = cell(source.split("\n"), blank=blank)
        assert shown in out and "error" not in out.lower(), out
        sent = [c.rstrip() for c in log.new_commands()]
        assert sent == [source.removeprefix("%proof\n")]

    # A %%lean_batch of three commands: a finished command does not end the cell.
    out = cell(
        [
            "%%lean_batch -w 2 --progress text",
            "theorem a : 1 + 1 = 2 := rfl",
            "----",
            "theorem b : 2 + 2 = 5 := by decide",
            "----",
            "theorem c : 3 = 3 := by",
            "  rfl",
        ],
        blank=True,
    )
    assert "Checking 3 commands on 2 workers" in out, out
    assert re.search(r"^0\s+ok\s.*theorem a", out, re.MULTILINE), out
    assert re.search(r"^1\s+error\s.*theorem b", out, re.MULTILINE), out
    assert re.search(r"^2\s+ok\s.*theorem c", out, re.MULTILINE), out
    assert sorted(c.rstrip() for c in log.new_commands()) == [
        "theorem a : 1 + 1 = 2 := rfl",
        "theorem b : 2 + 2 = 5 := by decide",
        "theorem c : 3 = 3 := by\n  rfl",
    ]

    # Pasted, a tour cell with a blank line inside runs whole, as in a notebook.
    assert "error" not in cell(["%reset"]).lower()
    log.new_commands()
    console.wait_for(rf"^In \[{count}\]: \s*\Z")
    console.paste(tour_cell("define-sum"))
    assert "55" in console.output(count)
    count += 1
    assert log.new_commands() == [tour_cell("define-sum")]

    # `exit` is the console's, not Lean's: it quits and shuts the kernel down.
    console.wait_for(rf"^In \[{count}\]: \s*\Z")
    console.type_line("exit")
    screen = console.wait_for(r"^console exited: \d+")
    assert "console exited: 0" in screen and "Shutting down kernel" in screen, screen
    assert "unexpected identifier" not in screen
    assert log.new_commands() == []

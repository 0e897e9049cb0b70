"""The Lean kernel end to end in a real browser: JupyterLab and Notebook 7 in headless Chromium.

One JupyterLab server for the whole module (started by ``tests/browser.py``: 127.0.0.1, a token,
private config/runtime/data/settings dirs) with the prebuilt labextension and the ``lean4``
kernelspec installed by ``python -m lean_kernel install --prefix`` into a private folder, its
``LEAN_KERNEL_REPL`` set to the project's fake REPL. The server serves copies of
``notebooks/tour.ipynb`` (plus one cell after the deliberate error, to see that Run All stops
there) and a few small notebooks written here; the originals are never touched.

What a user would see, checked in the DOM:

- Run All on the tour: ``#eval`` output, diagnostics underlined at their exact ranges (the text
  under each ``data-range`` span is the source at that range) with their messages, goals in
  collapsible blocks, the error cell failing and Run All stopping there, nothing overflowing;
- Lean keywords coloured by the labextension, ``\\alpha `` typed in a cell becoming ``α``;
- the outputs readable in JupyterLab Dark; long source lines scrolling, long messages and goals
  wrapping, inside the cell;
- an interrupt during a long cell: reported within seconds, and the next cell runs;
- a ``%%lean_batch`` progress bar reaching 100 %;
- the saved notebook in Notebook 7, highlighted and with its outputs.

Screenshots go to ``test-artifacts/browser-*.png`` (and ``browser-failed-<test>.png`` when a test
fails). No process outlives the module: the server, kernels, REPLs and the browser are checked
gone at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from browser import VIEWPORT, LabSession, chromium_available, lab_session
from conftest import fake_repl_command, wait_no_repl_processes

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "notebooks" / "tour.ipynb"
PREBUILT = ROOT / "lean_kernel" / "labextension"
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not chromium_available(),
        reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium) and "
        "Playwright for Python (never `playwright install`)",
    ),
    pytest.mark.timeout(240),
]

AFTER_ERROR_ID = "after-error"
AFTER_ERROR_SOURCE = '#eval "Run All went past the error"'

INTERRUPT_CELLS = {
    "define-kept": "def kept := 7",
    "long-cell": "#fake_sleep 30\n#eval kept",
    "after-interrupt": "#eval kept",
}
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
LONG_CELLS = {
    # A source line far wider than the cell, and a goal that must wrap.
    "long-goal": f"theorem long_sum ({' '.join(_LETTERS)} : Nat) : "
    + " + ".join(_LETTERS)
    + " = "
    + " + ".join(reversed(_LETTERS))
    + " := by\n  sorry",
    # A message with a 300-character word in it.
    "long-word": "#check " + "aVeryLongUnknownIdentifier" * 12,
}
BATCH_CELLS = {
    "batch": "%%lean_batch -w 2\n"
    + "\n----\n".join(f"#fake_sleep 0.2\n#eval {i} * {i}" for i in range(6)),
}
# Each cell costs what a small lemma does in real Lean (2 ms a character: 20-150 ms a cell). With
# instant cells, Run All can outrun the server: ipykernel 7 (with subshells) stops aborting as
# soon as the queue it has is empty, so a request still in flight when the error happens runs.
FAKE_REPL_ARGS = "--char-cost 0.002"
STDERR = "application/vnd.jupyter.stderr"
STDOUT = "application/vnd.jupyter.stdout"


# ---------------------------------------------------------------------------------------------
# The server, the browser and the notebooks


def _notebook(cells: dict[str, str]) -> dict[str, Any]:
    tour = json.loads(TOUR.read_text(encoding="utf-8"))
    return {
        "cells": [
            {
                "cell_type": "code",
                "id": cell_id,
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for cell_id, source in cells.items()
        ],
        "metadata": tour["metadata"],
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _write_notebooks(root: Path) -> dict[str, dict[str, Any]]:
    """Copies of the tour (with a cell after the error) and the small notebooks, by name."""
    tour = json.loads(TOUR.read_text(encoding="utf-8"))
    # The tour tags its error cell `raises-exception` so that nbclient and `nbconvert --execute`
    # run it to the end; JupyterLab then sends that cell with `stop_on_error: false` and Run All
    # goes on past it, by design. Untagged here: a plain failing cell must stop Run All.
    (error,) = [c for c in tour["cells"] if c.get("id") == "deliberate-error"]
    error["metadata"].pop("tags")
    tour["cells"].append(
        {
            "cell_type": "code",
            "id": AFTER_ERROR_ID,
            "metadata": {},
            "source": AFTER_ERROR_SOURCE,
            "outputs": [],
            "execution_count": None,
        }
    )
    notebooks = {
        "tour.ipynb": tour,
        "interrupt.ipynb": _notebook(INTERRUPT_CELLS),
        "batch.ipynb": _notebook(BATCH_CELLS),
        "long.ipynb": _notebook(LONG_CELLS),
    }
    for name, nb in notebooks.items():
        (root / name).write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return notebooks


def _install_kernelspec(prefix: Path) -> Path:
    """``python -m lean_kernel install --prefix``, as a user would; returns the JUPYTER_PATH."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lean_kernel",
            "install",
            "--prefix",
            str(prefix),
            "--env",
            f"LEAN_KERNEL_REPL={fake_repl_command()}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    spec = json.loads((prefix / "share/jupyter/kernels/lean4/kernel.json").read_text())
    assert spec["env"]["LEAN_KERNEL_REPL"] == fake_repl_command()
    return prefix / "share" / "jupyter"


@dataclass
class Lab:
    session: LabSession
    notebooks: dict[str, dict[str, Any]]

    @property
    def page(self) -> Any:
        return self.session.page

    @property
    def root(self) -> Path:
        return self.session.server.root_dir

    def source(self, notebook: str, cell_id: str) -> str:
        cell = next(c for c in self.notebooks[notebook]["cells"] if c.get("id") == cell_id)
        source = cell["source"]
        return source if isinstance(source, str) else "".join(source)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab with the Lean kernel on the fake REPL, and Chromium; all gone afterwards."""
    base = tmp_path_factory.mktemp("browser")
    root = base / "root"
    root.mkdir()
    notebooks = _write_notebooks(root)
    jupyter_path = _install_kernelspec(base / "prefix")
    me = psutil.Process()
    since = time.time()
    spawned: list[psutil.Process] = []
    try:
        with lab_session(
            root,
            extra_labextensions=[PREBUILT],
            private_data_dir=True,
            env={"JUPYTER_PATH": str(jupyter_path), "FAKE_REPL_ARGS": FAKE_REPL_ARGS},
            # window.jupyterapp: wait on the kernel's state, open notebooks, change the theme.
            extra_args=["--LabApp.expose_app_in_browser=True"],
            # Every cell in the DOM (JupyterLab 4 may leave far cells out).
            settings={"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}},
        ) as session:
            lab = Lab(session, notebooks)
            try:
                yield lab
            finally:
                # Everything this test process started: server, kernels, REPLs, browser.
                spawned = [p for p in me.children(recursive=True) if _started_after(p, since)]
    finally:
        _, alive = psutil.wait_procs(spawned, timeout=15)
        left = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"left behind: {[(p.pid, p.cmdline()) for p in left]}"
        assert wait_no_repl_processes(10) == []


def _started_after(process: psutil.Process, since: float) -> bool:
    with contextlib.suppress(psutil.Error):
        return process.create_time() >= since - 1
    return False


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request: pytest.FixtureRequest, lab: Lab) -> Iterator[None]:
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        with contextlib.suppress(Exception):
            screenshot(lab, f"browser-failed-{request.node.name}.png")


def screenshot(lab: Lab, name: str, element: Any = None) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    (element or lab.page).screenshot(path=str(path))
    return path


# ---------------------------------------------------------------------------------------------
# Driving JupyterLab

_CURRENT = "window.jupyterapp.shell.currentWidget"


def open_in_lab(lab: Lab, name: str) -> str:
    """Open notebook ``name`` in JupyterLab, wait for its kernel; returns its panel selector.

    Each cell's node gets ``data-cell-id`` (the cell's id in the file) for the selectors.
    """
    page = lab.page
    if "/lab" not in page.url:
        page.goto(lab.session.server.lab_url(name))
        page.wait_for_function("() => !!window.jupyterapp", timeout=60_000)
        page.evaluate(
            "async () => { await window.jupyterapp.started; await window.jupyterapp.restored; }"
        )
    page.evaluate("(path) => window.jupyterapp.commands.execute('docmanager:open', {path})", name)
    page.wait_for_function(
        f"""(path) => {{
            const w = {_CURRENT};
            return w?.context?.path === path && w.content?.widgets?.length > 0; }}""",
        arg=name,
        timeout=60_000,
    )
    wait_kernel_idle(lab)
    panel_id = page.evaluate(
        f"""() => {{
            const w = {_CURRENT};
            for (const cell of w.content.widgets) cell.node.dataset.cellId = cell.model.id;
            return w.id; }}"""
    )
    return f"#{panel_id}"


def wait_kernel_idle(lab: Lab, timeout: float = 60_000) -> None:
    """The current notebook's kernel is connected and idle."""
    lab.page.wait_for_function(
        f"""() => {{
            const k = {_CURRENT}?.sessionContext?.session?.kernel;
            return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }}""",
        timeout=timeout,
    )


def menu(lab: Lab, label: str, command: str) -> None:
    """Click a main menu entry by its command id (menu names are ambiguous)."""
    page = lab.page
    page.click(f".lm-MenuBar-itemLabel:text-is('{label}')")
    page.click(f"li[data-command='{command}']")


def command(lab: Lab, name: str, args: dict[str, Any] | None = None) -> Any:
    return lab.page.evaluate(
        "([name, args]) => window.jupyterapp.commands.execute(name, args)", [name, args or {}]
    )


def cell(panel: str, cell_id: str) -> str:
    return f"{panel} .jp-Cell[data-cell-id='{cell_id}']"


def prompt(lab: Lab, panel: str, cell_id: str) -> str:
    return lab.page.inner_text(f"{cell(panel, cell_id)} .jp-InputPrompt").strip()


def wait_prompt(lab: Lab, panel: str, cell_id: str, pattern: str, timeout: float = 30) -> None:
    """Wait until the cell's input prompt (``[ ]:``, ``[*]:``, ``[3]:``) matches ``pattern``."""
    lab.page.wait_for_function(
        """([selector, pattern]) => new RegExp('^' + pattern + '$')
            .test(document.querySelector(selector)?.textContent.trim() ?? '')""",
        arg=[f"{cell(panel, cell_id)} .jp-InputPrompt", pattern],
        timeout=timeout * 1000,
    )


def output_text(lab: Lab, panel: str, cell_id: str, mime: str | None = None) -> str:
    kind = f"[data-mime-type='{mime}']" if mime else ""
    outputs = lab.page.locator(f"{cell(panel, cell_id)} .jp-OutputArea-output{kind}")
    return "\n".join(outputs.all_inner_texts())


def wait_output(
    lab: Lab, panel: str, cell_id: str, text: str, mime: str | None = None, timeout: float = 30
) -> str:
    """Wait until an output of the cell (of type ``mime``) contains ``text``."""
    kind = f"[data-mime-type='{mime}']" if mime else ""
    selector = f"{cell(panel, cell_id)} .jp-OutputArea-output{kind}"
    lab.page.wait_for_function(
        """([selector, text]) => Array.from(document.querySelectorAll(selector))
            .some(e => e.innerText.includes(text))""",
        arg=[selector, text],
        timeout=timeout * 1000,
    )
    return output_text(lab, panel, cell_id, mime)


def css_color(lab: Lab, value: str) -> str:
    """What the browser computes for ``color: value`` inside the notebook (theme variables)."""
    return lab.page.evaluate(
        """(value) => { const host = document.querySelector('.jp-OutputArea-output')
                || document.body;
            const e = document.createElement('span'); e.style.color = value;
            host.appendChild(e); const c = getComputedStyle(e).color; e.remove(); return c; }""",
        value,
    )


def _rgba(css: str) -> tuple[float, float, float, float]:
    parts = [float(x) for x in re.findall(r"[\d.]+", css)]
    return (*parts[:3], parts[3] if len(parts) > 3 else 1.0)  # type: ignore[return-value]


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of a (possibly translucent) text colour over an opaque background."""
    fr, fg, fb, fa = _rgba(foreground)
    br, bg, bb, _ = _rgba(background)
    mixed = [fa * f + (1 - fa) * b for f, b in ((fr, br), (fg, bg), (fb, bb))]

    def luminance(rgb: list[float] | tuple[float, ...]) -> float:
        lin = [c / 255 for c in rgb]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in lin]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(mixed), luminance((br, bg, bb))), reverse=True)
    return (high + 0.05) / (low + 0.05)


def diagnostics(lab: Lab, panel: str) -> list[dict[str, Any]]:
    """Every underline span in the outputs: cell, range, text, drawn style, and the messages."""
    return lab.page.evaluate(
        """(panel) => Array.from(document.querySelectorAll(panel + ' .jp-Cell')).flatMap(c =>
            Array.from(c.querySelectorAll('.jp-OutputArea-output .lk-diag[data-range]'))
            .map(s => { const st = getComputedStyle(s);
                return {cell: c.dataset.cellId, range: s.dataset.range, text: s.textContent,
                        cls: s.className, line: st.textDecorationLine,
                        style: st.textDecorationStyle, color: st.textDecorationColor,
                        messages: Array.from(s.closest('.lk-root').querySelectorAll(
                            `.lk-msg[data-range="${s.dataset.range}"],` +
                            `.lk-goal[data-range="${s.dataset.range}"]`))
                            .map(m => m.innerText)}; }))""",
        panel,
    )


def flat(text: str) -> str:
    """Text with its whitespace runs as single spaces (innerText puts grid items on lines)."""
    return " ".join(text.split())


def source_at(source: str, rng: str) -> str:
    """The text of ``source`` in a ``line:col-line:col`` range (1-based lines)."""
    (line, col), (end_line, end_col) = (map(int, p.split(":")) for p in rng.split("-"))
    lines = source.split("\n")
    if line == end_line:
        return lines[line - 1][col:end_col]
    return "\n".join(
        [lines[line - 1][col:], *lines[line : end_line - 1], lines[end_line - 1][:end_col]]
    )


def overflowing(lab: Lab, panel: str) -> list[str]:
    """Outputs wider than their cell (horizontal scrolling inside a source block is fine)."""
    return lab.page.evaluate(
        """(panel) => Array.from(document.querySelectorAll(panel + ' .jp-OutputArea-output'))
            .filter(o => { const box = o.getBoundingClientRect();
                return o.scrollWidth > o.clientWidth + 1 || Array.from(o.querySelectorAll(
                    '.lk-root, .lk-msg, .lk-goal, .lk-status, .lk-table'))
                    .some(e => e.getBoundingClientRect().right > box.right + 1); })
            .map(o => o.closest('.jp-Cell').dataset.cellId)""",
        panel,
    )


def editor_tokens(lab: Lab, scope: str) -> list[dict[str, str]]:
    return lab.page.evaluate(
        """(scope) => Array.from(document.querySelectorAll(scope + ' .cm-content span'))
            .map(e => ({text: e.textContent, cls: e.className,
                        color: getComputedStyle(e).color}))""",
        scope,
    )


def set_theme(lab: Lab, theme: str) -> None:
    command(lab, "apputils:change-theme", {"theme": theme})
    light = "true" if "Light" in theme else "false"
    lab.page.wait_for_selector(
        f"body[data-jp-theme-name='{theme}'][data-jp-theme-light='{light}']",
        state="attached",
        timeout=30_000,
    )


# ---------------------------------------------------------------------------------------------
# The tour, run once in JupyterLab


@dataclass
class Tour:
    panel: str
    run_all_seconds: float


@pytest.fixture(scope="module")
def tour(lab: Lab) -> Tour:
    """The tour open in JupyterLab after Run All (which stops at the deliberate error)."""
    panel = open_in_lab(lab, "tour.ipynb")
    started = time.monotonic()
    menu(lab, "Run", "runmenu:run-all")
    lab.page.wait_for_selector(
        f"{cell(panel, 'deliberate-error')} .jp-OutputArea-output[data-mime-type='{STDERR}']",
        timeout=60_000,
    )
    wait_kernel_idle(lab)
    lab.page.wait_for_function(
        """(panel) => !Array.from(document.querySelectorAll(panel + ' .jp-InputPrompt'))
            .some(p => p.textContent.includes('*'))""",
        arg=panel,
        timeout=30_000,
    )
    return Tour(panel, time.monotonic() - started)


def test_run_all_shows_eval_output_diagnostics_goals_and_stops_at_the_error(
    lab: Lab, tour: Tour
) -> None:
    page, panel = lab.page, tour.panel
    assert tour.run_all_seconds < 30

    # #eval output, as program output.
    assert output_text(lab, panel, "eval-double", STDOUT).strip() == "42"
    assert output_text(lab, panel, "define-sum", STDOUT).strip() == "55"
    assert output_text(lab, panel, "eval-after-edit", STDOUT).strip() == "10"

    # Every underline sits exactly on its range of the cell's source, drawn, with its message.
    found = diagnostics(lab, panel)
    assert len(found) >= 5, found
    for diag in found:
        expected = source_at(lab.source("tour.ipynb", diag["cell"]), diag["range"])
        assert diag["text"] == expected, diag
        assert "underline" in diag["line"], diag
        assert diag["messages"], f"no message for {diag}"
    by_range = {(d["cell"], d["range"]): d for d in found}

    check = by_range["check-double", "1:0-1:6"]
    assert check["text"] == "#check" and "lk-info" in check["cls"]
    assert flat(check["messages"][0]) == "1:0: info: double (n : Nat) : Nat"
    assert (
        "Nat.add_comm (n m : Nat) : n + m = m + n"
        in by_range["check-double", "2:0-2:6"]["messages"][0]
    )

    warning = by_range["theorem-sorry", "1:8-1:18"]
    assert warning["text"] == "double_add" and "lk-warning" in warning["cls"]
    assert warning["style"] == "wavy"
    assert warning["color"] == css_color(lab, "var(--jp-warn-color0)")
    assert flat(warning["messages"][0]) == "1:8: warning: declaration uses `sorry`"

    error = by_range["deliberate-error", "1:29-1:35"]
    assert error["text"] == "decide" and "lk-error" in error["cls"]
    assert error["style"] == "wavy"
    assert error["color"] == css_color(lab, "var(--jp-error-color1)")
    assert flat(error["messages"][0]).startswith("1:29: error: Tactic `decide` proved that the")
    assert "double 2 = 5" in error["messages"][0] and "is false" in error["messages"][0]

    # Goals: shown open, with the proof state to continue from, and collapsible.
    sorry = by_range["theorem-sorry", "2:2-2:7"]
    assert sorry["text"] == "sorry" and "lk-sorry" in sorry["cls"]
    goal = page.locator(f"{cell(panel, 'theorem-sorry')} details.lk-goal")
    assert goal.get_attribute("open") is not None
    assert goal.locator("summary").inner_text() == "2:2: goal (proof state 0)"
    goal_text = goal.locator(".lk-goal-text")
    assert goal_text.inner_text() == "a b : Nat\n⊢ double (a + b) = double a + double b"
    goal.locator("summary").click()
    goal_text.wait_for(state="hidden", timeout=5_000)
    goal.locator("summary").click()
    goal_text.wait_for(state="visible", timeout=5_000)
    unfold = output_text(lab, panel, "proof-unfold")
    assert "proof state 1: Incomplete: open goals remain" in unfold
    assert "⊢ double (a + b) = double a + double b" in unfold
    assert "proof state 2: Completed" in output_text(lab, panel, "proof-omega")
    assert "double_add" in output_text(lab, panel, "cells-table")

    # The error cell failed, and Run All stopped there: the cell after it never ran.
    failure = output_text(lab, panel, "deliberate-error", STDERR)
    assert failure.startswith("LeanError: 1:29: Tactic `decide` proved"), failure
    assert re.fullmatch(r"\[\d+\]:", prompt(lab, panel, "deliberate-error"))
    assert prompt(lab, panel, "after-error") == "[ ]:"
    assert output_text(lab, panel, AFTER_ERROR_ID) == ""

    # Readable, and inside the cell.
    assert overflowing(lab, panel) == []
    _assert_readable(lab, panel)

    page.locator(cell(panel, "theorem-sorry")).scroll_into_view_if_needed()
    screenshot(lab, "browser-lab-light.png")
    screenshot(lab, "browser-lab-light-error.png", page.locator(cell(panel, "deliberate-error")))
    assert not [e for e in lab.session.browser.errors if "lean" in e.lower()]


def _assert_readable(lab: Lab, panel: str) -> None:
    """Message text and heads stand out from their box in the current theme (WCAG AA 4.5:1 for
    text, 3:1 for the bold coloured heads and the underlines)."""
    styles = lab.page.evaluate(
        """(panel) => {
            const style = (sel) => { const e = document.querySelector(panel + ' ' + sel);
                const s = getComputedStyle(e);
                return {color: s.color, bg: s.backgroundColor, deco: s.textDecorationColor}; };
            return {text: style('.lk-msg.lk-error .lk-text'),
                    head: style('.lk-msg.lk-error .lk-head'), box: style('.lk-msg.lk-error'),
                    warn: style('.lk-msg.lk-warning .lk-head'),
                    info: style('.lk-msg.lk-info .lk-head'),
                    warnline: style('.lk-diag.lk-warning'), infoline: style('.lk-diag.lk-info'),
                    goal: style('.lk-goal-text'), goalbox: style('.lk-goal'),
                    src: style('.lk-src'), diag: style('.lk-diag.lk-error'),
                    area: style('.jp-OutputArea-output .lk-root')}; }""",
        panel,
    )
    output_bg = lab.page.evaluate(
        """(panel) => { let e = document.querySelector(panel + ' .lk-root');
            while (e && getComputedStyle(e).backgroundColor === 'rgba(0, 0, 0, 0)')
                e = e.parentElement;
            return e ? getComputedStyle(e).backgroundColor : 'rgb(255, 255, 255)'; }""",
        panel,
    )
    box = styles["box"]["bg"]
    assert contrast(styles["text"]["color"], box) >= 4.5, styles
    for head in ("head", "warn", "info"):
        assert contrast(styles[head]["color"], box) >= 3, (head, styles)
    assert contrast(styles["goal"]["color"], styles["goalbox"]["bg"]) >= 4.5, styles
    assert contrast(styles["src"]["color"], output_bg) >= 4.5, (styles, output_bg)
    for line in ("diag", "warnline", "infoline"):
        assert contrast(styles[line]["deco"], output_bg) >= 3, (line, styles, output_bg)
    assert styles["area"]["color"] == css_color(lab, "var(--jp-content-font-color1)")


def test_lean_cells_are_highlighted_and_take_unicode_input(lab: Lab, tour: Tour) -> None:
    page, panel = lab.page, tour.panel
    page.wait_for_selector(f"{panel} .lean4-keyword", timeout=30_000)
    tokens = editor_tokens(lab, cell(panel, "theorem-sorry"))
    keyword = next(t for t in tokens if t["text"] == "theorem")
    assert "lean4-keyword" in keyword["cls"].split(), tokens
    assert keyword["color"] == css_color(lab, "var(--jp-mirror-editor-keyword-color)")
    plain = page.evaluate(
        "(sel) => getComputedStyle(document.querySelector(sel + ' .cm-line')).color",
        cell(panel, "theorem-sorry"),
    )
    assert keyword["color"] != plain
    assert any(t["text"] == "sorry" and "lean4-sorry" in t["cls"].split() for t in tokens), tokens
    assert any(
        t["text"] == "#eval" and "lean4-command" in t["cls"].split()
        for t in editor_tokens(lab, cell(panel, "eval-double"))
    )

    # A new cell at the end: `\alpha ` becomes α as it is typed. The cell is removed again.
    page.click(f"{cell(panel, AFTER_ERROR_ID)} .jp-InputPrompt")
    command(lab, "notebook:insert-cell-below")
    command(lab, "notebook:enter-edit-mode")
    editor = page.locator(f"{panel} .jp-Cell.jp-mod-active .cm-content")
    editor.wait_for(timeout=10_000)
    page.keyboard.type("example (x : \\alpha ) : x = x := rfl")
    page.wait_for_function(
        "(sel) => document.querySelector(sel).innerText.includes('example (x : α ) : x = x')",
        arg=f"{panel} .jp-Cell.jp-mod-active .cm-content",
        timeout=10_000,
    )
    assert "\\" not in editor.inner_text()
    page.wait_for_selector(f"{panel} .jp-Cell.jp-mod-active .lean4-keyword", timeout=10_000)
    screenshot(lab, "browser-lab-unicode.png", page.locator(f"{panel} .jp-Cell.jp-mod-active"))
    page.keyboard.press("Escape")
    command(lab, "notebook:delete-cell")
    cells = page.evaluate(f"() => {_CURRENT}.content.widgets.map(w => w.model.id)")
    assert cells[-1] == AFTER_ERROR_ID


def test_outputs_are_readable_in_jupyterlab_dark(lab: Lab, tour: Tour) -> None:
    page, panel = lab.page, tour.panel
    set_theme(lab, "JupyterLab Dark")
    try:
        background = page.evaluate(
            "(sel) => getComputedStyle(document.querySelector(sel)).backgroundColor",
            f"{panel} .jp-Notebook",
        )
        assert _rgba(background)[0] < 80, background  # really dark
        _assert_readable(lab, panel)
        assert overflowing(lab, panel) == []
        page.locator(cell(panel, "theorem-sorry")).scroll_into_view_if_needed()
        screenshot(lab, "browser-lab-dark.png")
        screenshot(lab, "browser-lab-dark-error.png", page.locator(cell(panel, "deliberate-error")))
        screenshot(lab, "browser-lab-dark-table.png", page.locator(cell(panel, "cells-table")))
    finally:
        set_theme(lab, "JupyterLab Light")


def test_notebook7_shows_highlighted_code_and_outputs(lab: Lab, tour: Tour) -> None:
    page = lab.page
    command(lab, "docmanager:save")
    page.wait_for_function(f"() => {_CURRENT}.context.model.dirty === false", timeout=30_000)
    saved = json.loads((lab.root / "tour.ipynb").read_text(encoding="utf-8"))
    assert any(c.get("outputs") for c in saved["cells"] if c["cell_type"] == "code")

    page.goto(lab.session.server.url("notebooks/tour.ipynb"))
    error = page.locator(".jp-Notebook .lk-diag.lk-error[data-range='1:29-1:35']")
    error.wait_for(timeout=60_000)
    page.wait_for_selector(".jp-Notebook .cm-content .lean4-keyword", timeout=30_000)
    assert error.inner_text() == "decide"
    # The output's stylesheet survived (the saved notebook is trusted): the underline is drawn.
    assert error.evaluate("e => getComputedStyle(e).textDecorationStyle") == "wavy"
    assert (
        page.locator(".jp-Notebook .lk-goal .lk-goal-text")
        .first.inner_text()
        .endswith("⊢ double (a + b) = double a + double b")
    )
    stdout = page.locator(f".jp-Notebook .jp-OutputArea-output[data-mime-type='{STDOUT}']")
    assert [t.strip() for t in stdout.all_inner_texts()][:3] == ["42", "55", "10"]
    assert (
        "LeanError"
        in page.locator(
            f".jp-Notebook .jp-OutputArea-output[data-mime-type='{STDERR}']"
        ).inner_text()
    )
    keyword = page.locator(".jp-Notebook .cm-content .lean4-keyword").first
    plain = page.evaluate("() => getComputedStyle(document.querySelector('.cm-line')).color")
    assert keyword.evaluate("e => getComputedStyle(e).color") != plain
    page.locator(".jp-Notebook .lk-goal").first.scroll_into_view_if_needed()
    screenshot(lab, "browser-notebook7.png")


def test_long_lines_scroll_and_long_messages_and_goals_wrap_inside_the_cell(lab: Lab) -> None:
    page = lab.page
    panel = open_in_lab(lab, "long.ipynb")
    menu(lab, "Run", "runmenu:run-all")
    wait_output(lab, panel, "long-word", "Unknown identifier", STDERR)
    wait_kernel_idle(lab)
    assert overflowing(lab, panel) == []
    sizes = page.evaluate(
        """(panel) => Object.fromEntries(
            ['.lk-src', '.lk-goal-text', '.lk-msg.lk-error .lk-text'].map(sel => {
                const e = document.querySelector(panel + ' ' + sel);
                const lh = parseFloat(getComputedStyle(e).lineHeight);
                return [sel, {scroll: e.scrollWidth, client: e.clientWidth,
                              lines: Math.round(e.getBoundingClientRect().height / lh)}]; }))""",
        panel,
    )
    # The source keeps its lines (and scrolls sideways); the goal and the message wrap.
    assert sizes[".lk-src"]["scroll"] > sizes[".lk-src"]["client"], sizes
    assert sizes[".lk-goal-text"]["lines"] >= 3, sizes
    assert sizes[".lk-msg.lk-error .lk-text"]["lines"] >= 3, sizes
    assert (
        sizes[".lk-msg.lk-error .lk-text"]["scroll"] <= sizes[".lk-msg.lk-error .lk-text"]["client"]
    ), sizes
    screenshot(lab, "browser-lab-long.png", page.locator(f"{panel} .jp-Notebook"))


def test_interrupt_during_a_long_cell_leaves_the_kernel_usable(lab: Lab) -> None:
    page = lab.page
    panel = open_in_lab(lab, "interrupt.ipynb")
    # Record what the kernel starts executing: the interrupt must come while the long cell runs
    # (ipykernel ignores SIGINT between requests).
    page.evaluate(
        f"""() => {{ window.leanInputs = [];
            {_CURRENT}.sessionContext.session.kernel.iopubMessage.connect((_, msg) => {{
                if (msg.header.msg_type === 'execute_input')
                    window.leanInputs.push(msg.content.code); }}); }}"""
    )
    menu(lab, "Run", "runmenu:run-all")
    page.wait_for_function(
        "(code) => window.leanInputs.includes(code)",
        arg=INTERRUPT_CELLS["long-cell"],
        timeout=30_000,
    )
    wait_prompt(lab, panel, "define-kept", r"\[\d+\]:")
    interrupted = time.monotonic()
    menu(lab, "Kernel", "kernelmenu:interrupt")
    report = wait_output(lab, panel, "long-cell", "KeyboardInterrupt", STDERR, timeout=15)
    elapsed = time.monotonic() - interrupted
    assert elapsed < 5, f"interrupt took {elapsed:.1f} s"
    assert "Interrupted" in report
    wait_kernel_idle(lab)
    # Run All stopped at the interrupted cell; the next cell, run now, sees the document.
    assert prompt(lab, panel, "after-interrupt") == "[ ]:"
    page.click(f"{cell(panel, 'after-interrupt')} .jp-InputPrompt")
    command(lab, "notebook:run-cell")
    assert wait_output(lab, panel, "after-interrupt", "7", STDOUT).strip() == "7"
    wait_kernel_idle(lab)
    screenshot(lab, "browser-interrupt.png", page.locator(f"{panel} .jp-Notebook"))


def test_lean_batch_progress_bar_reaches_100_percent(lab: Lab) -> None:
    page = lab.page
    panel = open_in_lab(lab, "batch.ipynb")
    page.click(f"{cell(panel, 'batch')} .jp-InputPrompt")
    command(lab, "notebook:run-cell")
    outputs = f"{cell(panel, 'batch')} .jp-OutputArea-output"
    # Done: the ipywidgets bar at its maximum (or, in a frontend without widgets, a <progress>
    # at its max or the text line at 100%); or the cell failed (the assertions below say why).
    page.wait_for_function(
        """(sel) => Array.from(document.querySelectorAll(sel)).some(o =>
            o.dataset.mimeType === 'application/vnd.jupyter.stderr'
            || Array.from(o.querySelectorAll('.widget-hprogress .progress-bar'))
                .some(b => b.style.width === '100%')
            || Array.from(o.querySelectorAll('progress'))
                .some(p => p.max > 0 && p.value === p.max)
            || o.innerText.includes('(100%)'))""",
        arg=outputs,
        timeout=60_000,
    )
    wait_kernel_idle(lab)
    screenshot(lab, "browser-lean-batch.png", page.locator(cell(panel, "batch")))
    assert output_text(lab, panel, "batch", STDERR) == ""
    bars = page.locator(f"{outputs} .widget-hprogress .progress-bar, {outputs} progress")
    texts = output_text(lab, panel, "batch")
    done = bars.evaluate_all(
        """bars => bars.some(b => b.tagName === 'PROGRESS' ? b.value === b.max
            : b.style.width === '100%')"""
    )
    assert done or "(100%)" in texts, texts
    assert "6/6" in texts, texts


# ---------------------------------------------------------------------------------------------
# Verdict badges (issue 13)

BADGE_CELLS = {
    "badge-proved": "theorem add_comm' (a b : Nat) : a + b = b + a := Nat.add_comm a b",
    "badge-sorry": "theorem zero_add' (n : Nat) : 0 + n = n := by\n"
    "  have h : n = n := sorry\n  simp",
    "badge-axioms": "axiom cheat : False\n\ntheorem one_eq_two : 1 = 2 := cheat.elim",
    "badge-native": "theorem big : 2 ^ 20 = 1048576 := by native_decide",
    "badge-exercise": "%exercise mul_comm' (a b : Nat) : a * b = b * a",
    # A weakened answer: the cell fails (Run All stops here, at the end).
    "badge-changed": "theorem mul_comm' (a : Nat) : a * 1 = 1 * a := by\n  simp",
}
# Where the badge screenshots go: $LEAN_KERNEL_BADGE_SCREENSHOTS (a folder), else the test's tmp.
BADGE_SHOTS_ENV = "LEAN_KERNEL_BADGE_SCREENSHOTS"


def badge_styles(lab: Lab, panel: str) -> list[dict[str, Any]]:
    """Each verdict row: the name, the badge's text and class, its text colour, and the colour
    it is drawn on (its translucent tint over the output's background, painted on a canvas)."""
    return lab.page.evaluate(
        """(panel) => {
            const paint = (colors) => { const c = document.createElement('canvas');
                c.width = c.height = 1; const g = c.getContext('2d');
                for (const color of colors) { g.fillStyle = color; g.fillRect(0, 0, 1, 1); }
                const [r, gr, b] = g.getImageData(0, 0, 1, 1).data;
                return `rgb(${r}, ${gr}, ${b})`; };
            const under = (e) => { while (e && getComputedStyle(e).backgroundColor
                    === 'rgba(0, 0, 0, 0)') e = e.parentElement;
                return e ? getComputedStyle(e).backgroundColor : 'rgb(255, 255, 255)'; };
            return Array.from(document.querySelectorAll(panel + ' .lk-verdict')).map(row => {
                const badge = row.querySelector('.lk-badge'); const s = getComputedStyle(badge);
                return {cell: row.closest('.jp-Cell').dataset.cellId, name: row.dataset.name,
                        verdict: row.dataset.verdict, text: badge.innerText,
                        cls: badge.className, color: s.color,
                        left: Math.round(badge.getBoundingClientRect().left),
                        bg: paint([under(row), s.backgroundColor]), output: under(row),
                        title: badge.title}; }); }""",
        panel,
    )


def test_verdict_badges_read_well_in_light_and_dark(lab: Lab, tmp_path: Path) -> None:
    page = lab.page
    notebook = _notebook(BADGE_CELLS)
    lab.notebooks["badges.ipynb"] = notebook
    (lab.root / "badges.ipynb").write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    shots = Path(os.environ.get(BADGE_SHOTS_ENV) or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    panel = open_in_lab(lab, "badges.ipynb")
    menu(lab, "Run", "runmenu:run-all")
    failure = wait_output(lab, panel, "badge-changed", "ExerciseError", STDERR)
    assert "this proves a different statement than the exercise asks" in failure
    wait_kernel_idle(lab)

    expected = [
        ("badge-proved", "add_comm'", "proved", "lk-ok", "var(--jp-success-color1)"),
        ("badge-sorry", "zero_add'", "sorry", "lk-warning", "var(--jp-warn-color0)"),
        ("badge-axioms", "cheat", "axioms: cheat", "lk-error", "var(--jp-error-color1)"),
        ("badge-axioms", "one_eq_two", "axioms: cheat", "lk-error", "var(--jp-error-color1)"),
        ("badge-native", "big", "axioms: native_decide", "lk-error", "var(--jp-error-color1)"),
        ("badge-changed", "mul_comm'", "statement changed", "lk-error", "var(--jp-error-color1)"),
    ]
    page.set_viewport_size({"width": 1280, "height": 1400})  # every cell in the screenshot
    for theme, name in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
        set_theme(lab, theme)
        try:
            found = badge_styles(lab, panel)
            assert [(b["cell"], b["name"], b["text"]) for b in found] == [
                (cell_id, decl, text) for cell_id, decl, text, _, _ in expected
            ], found
            for badge, (_, _, _, cls, color) in zip(found, expected, strict=True):
                assert cls in badge["cls"].split(), badge
                assert badge["color"] == css_color(lab, color), (theme, badge)
                # Bold text: WCAG AA for large/bold text, on the badge's own tint.
                assert contrast(badge["color"], badge["bg"]) >= 3, (theme, badge)
                assert badge["title"], badge  # the reason, as a tooltip
            # A cell's badges stand in one column, whatever the length of the names.
            lefts = {b["left"] for b in found if b["cell"] == "badge-axioms"}
            assert len(lefts) == 1, found
            assert overflowing(lab, panel) == []
            page.locator(cell(panel, "badge-proved")).scroll_into_view_if_needed()
            (page.locator(f"{panel} .jp-Notebook")).screenshot(
                path=str(shots / f"badges-{name}.png")
            )
        finally:
            set_theme(lab, "JupyterLab Light")
    page.set_viewport_size(VIEWPORT)

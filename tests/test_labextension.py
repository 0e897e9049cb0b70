"""The JupyterLab/Notebook 7 extension: Lean 4 highlighting and ``\\alpha`` → α input.

- the prebuilt extension in ``lean_kernel/labextension/`` is complete and up to date;
- the wheel ships it under ``share/jupyter/labextensions/`` and JupyterLab sees it enabled;
- in headless Chromium, a ``.lean`` file is highlighted and abbreviations are replaced, in
  JupyterLab and in Notebook 7, and a notebook whose kernel says ``codemirror_mode: lean4``
  gets the same in its cells.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
import sysconfig
import textwrap
import time
import zipfile
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from browser import LabSession, chromium_available, lab_session

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "labextension"
PREBUILT = ROOT / "lean_kernel" / "labextension"
NAME = "lean-kernel-jupyterlab"
ARTIFACTS = ROOT / "test-artifacts"

ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------------------------------------
# The prebuilt extension


def test_prebuilt_extension_is_complete() -> None:
    meta = json.loads((PREBUILT / "package.json").read_text())
    source_meta = json.loads((SOURCE / "package.json").read_text())
    assert meta["name"] == source_meta["name"] == NAME
    assert meta["version"] == source_meta["version"]
    lab = meta["jupyterlab"]
    assert lab["extension"] is True
    assert (PREBUILT / lab["_build"]["load"]).is_file()
    assert list((PREBUILT / "static").glob("remoteEntry.*.js")), "no static/remoteEntry*.js"

    install = json.loads((PREBUILT / "install.json").read_text())
    assert install["packageManager"] == "python"
    assert install["packageName"] == "lean-kernel"

    bundle = "".join(p.read_text(encoding="utf-8") for p in (PREBUILT / "static").glob("*.js"))
    assert "text/x-lean4" in bundle
    assert "lean-kernel:unicode-input" in bundle
    assert '"alpha"' in bundle and "ℕ" in bundle, "the abbreviation table is not bundled"


def test_prebuilt_extension_matches_sources() -> None:
    """A change under labextension/ needs a rebuild (labextension/build.sh)."""
    recorded = (PREBUILT / "build-source.sha256").read_text().strip()
    current = runpy.run_path(str(SOURCE / "source_hash.py"))["source_hash"](SOURCE)
    assert recorded == current, "lean_kernel/labextension/ is stale: run labextension/build.sh"


# ---------------------------------------------------------------------------------------------
# The wheel


def _isolated_env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTHON"))}
    for name in ("config", "data", "runtime"):
        (base / name).mkdir(exist_ok=True)
    env.update(
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        PYTHONNOUSERSITE="1",
    )
    return env


@pytest.mark.timeout(240)
def test_wheel_ships_enabled_labextension(tmp_path: Path) -> None:
    started = time.monotonic()
    env = _isolated_env(tmp_path)
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels)]
    if find_spec("hatchling") is not None:
        build.append("--no-build-isolation")  # no download of the build backend
    subprocess.run([*build, str(ROOT)], check=True, env=env, timeout=180)
    (wheel,) = wheels.glob("lean_kernel-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = [n for n in zf.namelist() if f"/share/jupyter/labextensions/{NAME}/" in n]
    assert any(n.endswith(f"{NAME}/install.json") for n in shipped), (
        "the wheel does not ship the extension: pyproject.toml needs "
        '[tool.hatch.build.targets.wheel.shared-data] "lean_kernel/labextension" = '
        f'"share/jupyter/labextensions/{NAME}"'
    )

    # A fresh venv without pip, seeing this environment's packages (jupyterlab, pip)
    # through a .pth file: fast, and what gets installed lands in the new venv only.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    parents = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_parent_env.pth").write_text("".join(f"{p}\n" for p in sorted(parents)))
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
        check=True,
        env=env,
        timeout=120,
    )

    installed = venv / "share" / "jupyter" / "labextensions" / NAME
    assert (installed / "install.json").is_file()
    meta = json.loads((installed / "package.json").read_text())
    assert (installed / meta["jupyterlab"]["_build"]["load"]).is_file()

    listing = subprocess.run(
        [python, "-m", "jupyterlab.labextensions", "list"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    out = ANSI.sub("", listing.stdout + listing.stderr)
    assert str(installed.parent) in out, out
    assert re.search(rf"{NAME} v{meta['version']} enabled OK \(python, lean-kernel\)", out), out
    assert time.monotonic() - started < 120


# ---------------------------------------------------------------------------------------------
# In the browser

browser = pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium")

LEAN_FILE = textwrap.dedent(
    """\
    /-- The double. -/
    @[simp] def double (n : Nat) : Nat := 2 * n -- twice
    theorem double_eq (n : Nat) : double n = n + n := by
      unfold double; omega
    #eval double 21
    example : (1 : Nat) = 2 := sorry
    """
)

FAKE_KERNEL = textwrap.dedent(
    """\
    from ipykernel.kernelapp import IPKernelApp
    from ipykernel.kernelbase import Kernel


    class FakeLean(Kernel):
        implementation = "fake-lean"
        implementation_version = "0"
        banner = "A kernel that says it speaks Lean 4 and echoes the code"
        language_info = {
            "name": "lean4",
            "codemirror_mode": "lean4",
            "mimetype": "text/x-lean4",
            "file_extension": ".lean",
        }

        def do_execute(self, code, silent, store_history=True, user_expressions=None,
                       allow_stdin=False):
            if not silent:
                self.send_response(self.iopub_socket, "stream",
                                   {"name": "stdout", "text": code})
            return {"status": "ok", "execution_count": self.execution_count,
                    "payload": [], "user_expressions": {}}


    IPKernelApp.launch_instance(kernel_class=FakeLean)
    """
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSession]:
    """JupyterLab with the prebuilt extension and a fake Lean kernel, plus Chromium."""
    if not chromium_available():
        pytest.skip("needs /usr/bin/chromium")
    base = tmp_path_factory.mktemp("labext")
    root = base / "root"
    root.mkdir()
    kernels = base / "jupyter_path" / "kernels" / "fakelean"
    kernels.mkdir(parents=True)
    (base / "fake_lean_kernel.py").write_text(FAKE_KERNEL)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    sys.executable,
                    str(base / "fake_lean_kernel.py"),
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "Fake Lean",
                "language": "lean4",
            }
        )
    )
    with lab_session(
        root,
        extra_labextensions=[PREBUILT],
        private_data_dir=True,
        env={"JUPYTER_PATH": str(base / "jupyter_path")},
    ) as session:
        yield session


def _screenshot(lab: LabSession, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    lab.page.screenshot(path=str(ARTIFACTS / name))


def _tokens(lab: LabSession, scope: str) -> list[dict[str, Any]]:
    """Text, classes and colour of the highlighted spans of the visible editors in ``scope``."""
    return lab.page.evaluate(
        """(scope) => Array.from(document.querySelectorAll(scope + ' .cm-content span'))
            .filter(e => e.offsetParent !== null)
            .map(e => ({text: e.textContent, cls: e.className,
                        color: getComputedStyle(e).color}))""",
        scope,
    )


def _css_color(lab: LabSession, value: str) -> str:
    """What the browser computes for ``color: value`` in the page."""
    return lab.page.evaluate(
        """(value) => { const e = document.createElement('span'); e.style.color = value;
            document.body.appendChild(e); const c = getComputedStyle(e).color; e.remove();
            return c; }""",
        value,
    )


def _token(tokens: list[dict[str, Any]], text: str, cls: str) -> dict[str, Any]:
    found = [t for t in tokens if t["text"] == text and cls in t["cls"].split()]
    assert found, f"no {cls} token {text!r} in {[(t['text'], t['cls']) for t in tokens]}"
    return found[0]


def _editor_text(lab: LabSession, selector: str) -> str:
    return lab.page.locator(f"{selector} >> visible=true").first.inner_text()


def _wait_text(lab: LabSession, selector: str, wanted: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = _editor_text(lab, selector)
        if wanted in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{wanted!r} not in {text!r}")


@browser
@pytest.mark.browser
def test_lean_file_highlighted_and_unicode_input(lab: LabSession) -> None:
    (lab.server.root_dir / "demo.lean").write_text(LEAN_FILE)
    lab.open("demo.lean")
    page = lab.page
    page.wait_for_selector(".jp-FileEditor .lean4-keyword")
    tokens = _tokens(lab, ".jp-FileEditor")

    keyword = _token(tokens, "theorem", "lean4-keyword")
    assert _token(tokens, "def", "lean4-keyword")["color"] == keyword["color"]
    assert keyword["color"] == _css_color(lab, "var(--jp-mirror-editor-keyword-color)")
    _token(tokens, "by", "lean4-keyword")
    _token(tokens, "double", "lean4-definition")
    _token(tokens, "omega", "lean4-tactic")
    _token(tokens, "unfold", "lean4-tactic")
    _token(tokens, "#eval", "lean4-command")
    _token(tokens, "simp", "lean4-attribute")
    _token(tokens, "21", "lean4-number")
    _token(tokens, "-- twice", "lean4-comment")
    _token(tokens, "/-- The double. -/", "lean4-doc-comment")
    sorry = _token(tokens, "sorry", "lean4-sorry")
    assert sorry["color"] == _css_color(lab, "var(--jp-mirror-editor-error-color)")
    assert sorry["color"] != keyword["color"]
    plain = lab.page.evaluate(
        "() => getComputedStyle(document.querySelector('.jp-FileEditor .cm-line')).color"
    )
    assert keyword["color"] != plain

    # Unicode input: replaced on a space, on a character that ends the abbreviation,
    # and on Tab.
    editor = lab.editor()
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("def f (x : \\alpha ) (n : \\N) : \\N := n")
    text = _wait_text(lab, ".jp-FileEditor .cm-content", "def f (x : α ) (n : ℕ) : ℕ := n")
    assert "\\" not in text
    page.keyboard.press("Enter")
    page.keyboard.type("example : p \\to")
    page.keyboard.press("Tab")
    text = _wait_text(lab, ".jp-FileEditor .cm-content", "example : p →")
    assert "\\to" not in text and "→\t" not in text

    # Without an abbreviation, Tab still completes.
    page.keyboard.press("Enter")
    page.keyboard.type("#check doub")
    page.keyboard.press("Tab")
    page.wait_for_selector(".jp-Completer >> visible=true", timeout=10_000)
    _screenshot(lab, "labextension-lean-file.png")
    page.keyboard.press("Escape")
    ours = [e for e in lab.browser.errors if "lean" in e.lower()]
    assert not ours, ours


@browser
@pytest.mark.browser
def test_notebook7_loads_the_extension(lab: LabSession) -> None:
    (lab.server.root_dir / "nb7.lean").write_text(LEAN_FILE)
    page = lab.page
    page.goto(lab.server.url("edit/nb7.lean"))
    page.wait_for_selector(".cm-content .lean4-keyword", timeout=60_000)
    _token(_tokens(lab, ""), "theorem", "lean4-keyword")
    page.locator(".cm-content >> visible=true").first.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("-- \\beta ")
    _wait_text(lab, ".cm-content", "-- β ")


@browser
@pytest.mark.browser
def test_notebook_cells_follow_the_kernel_codemirror_mode(lab: LabSession) -> None:
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": "",
                "outputs": [],
                "execution_count": None,
            }
        ],
        # No language_info: the language must come from the kernel's kernel_info.
        "metadata": {
            "kernelspec": {"name": "fakelean", "display_name": "Fake Lean", "language": "lean4"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (lab.server.root_dir / "cells.ipynb").write_text(json.dumps(notebook))
    page = lab.page
    page.goto(lab.server.lab_url("cells.ipynb"))
    cell = ".jp-Notebook .jp-Cell .cm-content"
    page.wait_for_selector(f"{cell} >> visible=true", timeout=60_000)
    page.locator(f"{cell} >> visible=true").first.click()
    page.keyboard.type("theorem t")
    # Highlighting shows up once the kernel said it speaks lean4.
    page.wait_for_selector(".jp-Notebook .lean4-keyword", timeout=60_000)
    page.keyboard.type(" : \\forall x : \\N, x = x := by intro x; rfl -- \\to")
    # Running the cell replaces the abbreviation still being typed first.
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-Notebook .jp-OutputArea-output").first
    output.wait_for(timeout=60_000)
    deadline = time.monotonic() + 30
    while "→" not in output.inner_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert output.inner_text().strip() == "theorem t : ∀ x : ℕ, x = x := by intro x; rfl -- →"
    _token(_tokens(lab, ".jp-Notebook"), "intro", "lean4-tactic")
    _screenshot(lab, "labextension-notebook.png")

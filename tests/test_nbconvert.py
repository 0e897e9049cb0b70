"""The tour executed as `jupyter nbconvert --execute --to html` does it, and its HTML export.

The notebook runs with plain nbclient against the fake REPL (no cell ids, as nbconvert sends
none: a failing cell is one ``error`` output with the text rendering as its traceback), then is
exported with nbconvert's ``HTMLExporter`` (``lab`` template). Checked:

- the saved ``language_info`` says ``pygments_lexer: lean4``, so code cells are highlighted by
  Pygments' ``Lean4Lexer`` (``<span class="kn">theorem</span>``...);
- the diagnostics' HTML (underlines at exact ranges, messages, goals, its inline stylesheet) is
  in the page (nbconvert re-serialises it: sorted attributes, ``open=""``), and needs nothing
  from the network;
- what the ``lab`` template itself loads from CDNs (require.js and MathJax, always; mermaid and
  the widget manager only when used), and that a three-block child template drops them, so the
  export works offline;
- in Chromium with every http(s) request refused, the offline export asks for nothing, draws
  the underlines and the highlighting, in the light and the dark theme (screenshots in
  ``test-artifacts/nbconvert-*.png``).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import nbformat
import pytest
from browser import chromium_available, chromium_page
from conftest import wait_no_repl_processes
from kernel_harness import install_test_kernelspec
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "notebooks" / "tour.ipynb"
ARTIFACTS = ROOT / "test-artifacts"

#: A child of the ``lab`` template without its CDN scripts (require.js, MathJax, mermaid): the
#: tour has no widgets, math nor diagrams, so nothing is lost and the page works offline.
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

#: What the stock ``lab`` template of nbconvert 7.17 loads from the network, whatever the notebook.
LAB_TEMPLATE_SCRIPTS = {
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe",
}

#: Anything that would make a browser fetch something.
NETWORK = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[nbformat.NotebookNode]:
    """The tour after nbclient ran it top to bottom (the last cell fails on purpose)."""
    jupyter_path = install_test_kernelspec(tmp_path_factory.mktemp("jupyter"))
    nb = nbformat.read(TOUR, as_version=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(jupyter_path))
        # No kernel_name: the kernelspec comes from the notebook, as with nbconvert --execute.
        NotebookClient(
            nb, timeout=60, resources={"metadata": {"path": str(tmp_path_factory.mktemp("run"))}}
        ).execute()
    yield nb
    assert wait_no_repl_processes() == []


def export(nb: nbformat.NotebookNode, *, offline: bool = False, theme: str = "light") -> str:
    options: dict[str, Any] = {"template_name": "lab", "theme": theme, "embed_images": True}
    if offline:
        options["extra_loaders"] = [jinja2.DictLoader({"lean_offline.html.j2": OFFLINE_TEMPLATE})]
        options["template_file"] = "lean_offline.html.j2"
    body, _ = HTMLExporter(**options).from_notebook_node(nb)
    return body


def by_id(nb: nbformat.NotebookNode) -> dict[str, Any]:
    return {cell.id: cell for cell in nb.cells}


def html_outputs(nb: nbformat.NotebookNode) -> list[str]:
    return [
        out.data["text/html"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type in ("display_data", "execute_result") and "text/html" in out.data
    ]


def test_executed_tour_says_pygments_lean4(executed: nbformat.NotebookNode) -> None:
    info = executed.metadata.language_info
    assert (info.name, info.pygments_lexer, info.file_extension) == ("lean4", "lean4", ".lean")
    assert executed.metadata.kernelspec.name == "lean4"


def test_html_export_highlights_code_cells_with_the_lean4_lexer(
    executed: nbformat.NotebookNode,
) -> None:
    page = export(executed)
    code_cells = [c for c in executed.cells if c.cell_type == "code"]
    assert page.count('<div class="highlight hl-lean4">') == len(code_cells)
    assert "hl-python" not in page and "hl-ipython" not in page
    for token in (
        '<span class="kn">theorem</span>',  # Keyword.Namespace: declarations
        '<span class="kn">def</span>',
        '<span class="kn">example</span>',
        '<span class="k">by</span>',
        '<span class="gr">sorry</span>',  # the lexer marks sorry as an error token
        '<span class="mi">21</span>',
        '<span class="bp">→</span>',
    ):
        assert token in page, token
    # ...and the lab template colours those classes from the theme's editor variables.
    assert re.search(r"\.highlight \.kn \{ color: var\(--jp-mirror-editor-keyword-color\)", page)


def test_html_export_keeps_the_diagnostics_and_goals(executed: nbformat.NotebookNode) -> None:
    page = export(executed)
    cells = by_id(executed)
    assert cells["eval-double"].outputs[0].text == "42\n"
    assert "<pre>42\n</pre>" in page
    # Underlines at their exact ranges, with their messages.
    assert re.search(
        r'<span class="lk-diag lk-info" data-range="1:0-1:6"[^>]*>#check</span> double', page
    )
    assert '<span class="lk-text">double (n : Nat) : Nat</span>' in page
    assert re.search(
        r'theorem <span class="lk-diag lk-warning" data-range="1:8-1:18"[^>]*>double_add</span>',
        page,
    )
    assert "declaration uses `sorry`" in page
    assert re.search(r'<span class="lk-diag lk-sorry" data-range="2:2-2:7"[^>]*>sorry</span>', page)
    # Goals, collapsible, with the proof state to continue from.
    (goal,) = [t for t in re.findall(r"<details [^>]*>", page) if 'data-range="2:2-2:7"' in t]
    assert 'class="lk-goal"' in goal and 'data-proof-state="0"' in goal and " open" in goal
    assert html.escape("⊢ double (a + b) = double a + double b", quote=False) in page
    assert "proof state 2: Completed" in page
    # The stylesheet travels with the output.
    assert page.count(".lk-root.lk-root .lk-diag{") == len(html_outputs(executed)) - sum(
        'class="lk-note"' in out for out in html_outputs(executed)
    )
    # The failing cell (no cell ids, like nbconvert): its traceback is the coloured text rendering.
    (error,) = cells["deliberate-error"].outputs
    assert error.output_type == "error" and error.ename == "LeanError"
    assert (
        '<span class="ansi-red-intense-fg ansi-bold">1:29: error:</span> Tactic `decide` proved '
        "that the proposition" in page
    )
    caret = " 1 | example : double 2 = 5 := by decide\n   |" + " " * 30
    assert caret + '<span class="ansi-red-intense-fg ansi-bold">^^^^^^</span>' in page


def test_our_outputs_load_nothing_from_the_network(executed: nbformat.NotebookNode) -> None:
    outputs = html_outputs(executed)
    assert len(outputs) >= 5
    for out in outputs:
        assert not NETWORK.search(out), out[:300]
        assert not re.search(r"https?://|<link|<script|<img|@font-face", out), out[:300]
    # nbconvert re-serialises them (attribute order, open=""), adding nothing.
    page = export(executed)
    ours = sum('class="lk-root"' in out for out in outputs)
    assert page.count('<div class="lk-root">') == ours >= 4


def test_lab_template_loads_cdn_scripts_that_the_offline_template_drops(
    executed: nbformat.NotebookNode,
) -> None:
    """Note for users: nbconvert's own ``lab`` template always asks cdnjs for require.js and
    MathJax (not for our outputs; mermaid and the widget manager only when a notebook uses
    them). Three empty blocks in a child template make the export fully offline."""
    stock = export(executed)
    scripts = set(re.findall(r'<script[^>]*\ssrc="([^"]+)"', stock))
    assert scripts == LAB_TEMPLATE_SCRIPTS
    offline = export(executed, offline=True)
    assert not NETWORK.search(offline), NETWORK.search(offline)
    assert "<script src=" not in offline and "import(" not in offline
    # Nothing of the notebook was lost.
    assert offline.count('<div class="lk-root">') == stock.count('<div class="lk-root">') >= 4
    assert offline.count('<div class="highlight hl-lean4">') == stock.count(
        '<div class="highlight hl-lean4">'
    )


@pytest.mark.browser
@pytest.mark.skipif(
    not chromium_available(),
    reason="needs Debian's Chromium at /usr/bin/chromium and Playwright for Python",
)
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_offline_export_renders_without_network_in_chromium(
    executed: nbformat.NotebookNode, tmp_path: Path, theme: str
) -> None:
    path = tmp_path / f"tour-{theme}.html"
    path.write_text(export(executed, offline=True, theme=theme), encoding="utf-8")
    started = time.monotonic()
    with chromium_page() as browser:
        page = browser.page
        requested: list[str] = []

        def refuse(route: Any) -> None:
            requested.append(route.request.url)
            route.abort()

        page.route(re.compile(r"^(https?|wss?)://"), refuse)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        warning = page.locator(".lk-diag.lk-warning[data-range='1:8-1:18']")
        assert warning.inner_text() == "double_add"
        style = warning.evaluate(
            "e => { const s = getComputedStyle(e); return [s.textDecorationLine,"
            " s.textDecorationStyle, s.textDecorationColor]; }"
        )
        assert style[:2] == ["underline", "wavy"], style
        keyword = page.locator(".highlight .kn").first
        plain = page.locator(".highlight .n").first
        assert keyword.evaluate("e => getComputedStyle(e).color") != plain.evaluate(
            "e => getComputedStyle(e).color"
        )
        # Light or dark, the message text stands out from its box.
        text, box = page.evaluate(
            """() => { const m = document.querySelector('.lk-msg.lk-warning');
                return [getComputedStyle(m.querySelector('.lk-text')).color,
                        getComputedStyle(m).backgroundColor]; }"""
        )
        assert _contrast(text, box) >= 4.5, (text, box)
        overflowing = page.evaluate(
            """() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
                .filter(o => o.scrollWidth > o.clientWidth + 1).length"""
        )
        assert overflowing == 0
        page.locator(".lk-goal").first.scroll_into_view_if_needed()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"nbconvert-tour-{theme}.png"))
        assert requested == [], requested
    assert time.monotonic() - started < 30


def _contrast(foreground: str, background: str) -> float:
    def rgba(css: str) -> list[float]:
        parts = [float(x) for x in re.findall(r"[\d.]+", css)]
        return parts[:3] + [parts[3] if len(parts) > 3 else 1.0]

    *fg, alpha = rgba(foreground)
    bg = rgba(background)[:3]
    mixed = [alpha * f + (1 - alpha) * b for f, b in zip(fg, bg, strict=True)]

    def luminance(rgb: list[float]) -> float:
        lin = [c / 255 for c in rgb]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in lin]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(mixed), luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)

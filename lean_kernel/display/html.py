"""``text/html`` for a cell's result: the cell source with every diagnostic underlined.

The source near each range is shown with the range underlined (nested where ranges overlap), the
messages under the line they end on and goals in collapsible blocks. The HTML is self-contained
(an inline ``<style>`` scoped under ``.lk-root``, no external resources) and takes every colour
from JupyterLab's CSS variables, with fallbacks, so light and dark themes both work. The tables
of :mod:`lean_kernel.display.tables` are styled by the same sheet (``wrap``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

from lean_kernel.display.layout import (
    SEVERITY_RANK,
    CellLayout,
    CellOptions,
    GoalLike,
    Item,
    ProofStatus,
    VerdictLine,
    segments,
    severity_class,
)
from lean_kernel.engine.protocol import Message

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["escape", "render_html", "wrap"]

# Every rule is scoped under ``.lk-root.lk-root`` (written ``S`` at the start of a selector
# below): the doubled class outranks JupyterLab's and nbconvert's own output rules, e.g.
# ``.jp-ThemedContainer .jp-RenderedHTMLCommon pre`` (a background, a line height and no padding
# for every ``<pre>``), which a single class ties with or loses to. Colours come from JupyterLab's
# CSS variables (with light fallbacks for other frontends), so JupyterLab Dark and other themes
# recolour the output. Boxes use the code editor's background, and each severity the shade of its
# colour that stays readable in both Light and Dark (``color0`` for warnings, and for info heads;
# else ``color1``): bold heads >= 3:1 on their box, underlines >= 3:1 on the output, checked in
# tests/test_browser.py.
_SCOPE = ".lk-root.lk-root"
_CSS = """
.lk-root{font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,13px);
line-height:var(--jp-code-line-height,1.4);color:var(--jp-content-font-color1,rgba(0,0,0,.87));
max-width:100%;overflow-x:auto;box-sizing:border-box;word-break:normal;text-align:left}
S pre{margin:0;padding:0;border:0;font:inherit;color:inherit;background:none;
word-break:normal;overflow:visible}
S .lk-src{white-space:pre;max-width:100%;overflow-x:auto;padding:0 0 6px 0}
S .lk-ln{display:inline-block;min-width:3ch;padding-right:1ch;margin-right:1ch;
text-align:right;color:var(--jp-content-font-color3,rgba(0,0,0,.38));
border-right:1px solid var(--jp-border-color2,#e0e0e0);user-select:none}
S .lk-gap{color:var(--jp-content-font-color3,rgba(0,0,0,.38));user-select:none}
S .lk-diag{text-decoration-line:underline;text-decoration-style:wavy;
text-decoration-skip-ink:none;text-decoration-thickness:1px;text-underline-offset:2px}
S .lk-diag.lk-error{text-decoration-color:var(--jp-error-color1,#d32f2f)}
S .lk-diag.lk-warning{text-decoration-color:var(--jp-warn-color0,#e65100)}
S .lk-diag.lk-info{text-decoration-color:var(--jp-info-color1,#0097a7)}
S .lk-diag.lk-trace,S .lk-diag.lk-other{
text-decoration-color:var(--jp-content-font-color2,rgba(0,0,0,.54))}
S .lk-diag.lk-sorry{text-decoration-style:dotted;text-decoration-thickness:2px;
text-decoration-color:var(--jp-success-color1,#388e3c)}
S .lk-msg,S .lk-status,S .lk-goal{margin:2px 0 6px 4ch;padding:2px 8px;max-width:100%;
box-sizing:border-box;background:var(--jp-cell-editor-background,#f5f5f5);
border-left:3px solid var(--jp-content-font-color2,rgba(0,0,0,.54))}
S .lk-msg{display:grid;grid-template-columns:max-content minmax(0,1fr);column-gap:1ch}
S .lk-msg .lk-text,S .lk-status{white-space:pre-wrap;overflow-wrap:anywhere}
S .lk-head{font-weight:bold;white-space:nowrap}
S .lk-msg.lk-error{border-left-color:var(--jp-error-color1,#d32f2f)}
S .lk-msg.lk-error .lk-head{color:var(--jp-error-color1,#d32f2f)}
S .lk-msg.lk-warning{border-left-color:var(--jp-warn-color0,#e65100)}
S .lk-msg.lk-warning .lk-head{color:var(--jp-warn-color0,#e65100)}
S .lk-msg.lk-info{border-left-color:var(--jp-info-color0,#006064)}
S .lk-msg.lk-info .lk-head{color:var(--jp-info-color0,#006064)}
S .lk-status.lk-ok{border-left-color:var(--jp-success-color1,#388e3c)}
S .lk-goal{border-left-color:var(--jp-success-color1,#388e3c)}
S .lk-goal>summary{cursor:pointer;color:var(--jp-content-font-color2,rgba(0,0,0,.54));
display:list-item}
S .lk-goal-text{white-space:pre-wrap;overflow-wrap:anywhere}
S .lk-turnstile{font-weight:bold}
S .lk-case{color:var(--jp-content-font-color2,rgba(0,0,0,.54))}
S .lk-output{white-space:pre-wrap;overflow-wrap:anywhere;margin:0 0 6px 0}
S table.lk-table{border-collapse:collapse;margin:0;font:inherit;color:inherit;
table-layout:auto;max-width:100%}
S table.lk-table th,S table.lk-table td{padding:2px 10px;text-align:left;
vertical-align:top;white-space:pre-wrap;overflow-wrap:break-word;line-height:inherit;
border:0;border-bottom:1px solid var(--jp-border-color2,#e0e0e0);background:none;color:inherit}
S table.lk-table th{font-weight:bold;white-space:nowrap;
border-bottom-color:var(--jp-border-color1,#bdbdbd)}
S table.lk-table td.lk-num{text-align:right;font-variant-numeric:tabular-nums}
S table.lk-table td.lk-error{color:var(--jp-error-color1,#d32f2f)}
S table.lk-table td.lk-warning{color:var(--jp-warn-color0,#e65100)}
S table.lk-table td.lk-ok{color:var(--jp-success-color1,#388e3c)}
S .lk-verdicts{display:grid;margin:0 0 6px 0;
grid-template-columns:minmax(0,max-content) max-content minmax(0,1fr);
column-gap:1ch;row-gap:3px;align-items:baseline}
S .lk-verdict{display:contents}
S .lk-vname{font-weight:bold;overflow-wrap:anywhere}
S .lk-badge{display:inline-block;padding:0 7px;border:1px solid currentColor;
border-radius:9px;font-family:var(--jp-ui-font-family,sans-serif);font-size:.92em;
font-weight:bold;line-height:1.45;white-space:nowrap;
background:color-mix(in oklab,currentColor 12%,transparent)}
S .lk-badge.lk-ok{color:var(--jp-success-color1,#388e3c)}
S .lk-badge.lk-warning{color:var(--jp-warn-color0,#e65100)}
S .lk-badge.lk-error{color:var(--jp-error-color1,#d32f2f)}
S .lk-badge.lk-other{color:var(--jp-content-font-color2,rgba(0,0,0,.54))}
S .lk-why{color:var(--jp-content-font-color2,rgba(0,0,0,.54))}
""".replace("\n", "").replace("S ", f"{_SCOPE} ")
_STYLE = f"<style>{_CSS}</style>"


def render_html(
    source: str,
    messages: Sequence[Message],
    goals: Sequence[GoalLike] | None = None,
    *,
    context: int = 2,
    **options: Unpack[CellOptions],
) -> str:
    """Self-contained HTML: the source near each diagnostic, underlined, messages and goals below.

    Same arguments as :func:`~lean_kernel.display.plain.render_plain`; ``context`` is how many
    source lines to keep around each range (farther lines are folded into a "⋯ N lines" row).
    Returns ``""`` when there is nothing to show.
    """
    cell = CellLayout.of(source, messages, goals, **options)
    body = [_html_verdicts(cell.verdicts)] if cell.verdicts else []
    body += [f'<pre class="lk-output">{escape(text)}</pre>' for text in cell.outputs]
    body.extend(_html_item(item) for item in cell.messages if item.range is None)
    placed = cell.placed()
    if placed:
        body.append(_html_source(cell.lines, placed, context))
    if cell.status is not None:
        body.append(_html_status(cell.status))
    body.extend(_html_item(item) for item in cell.goals if item.range is None)
    return wrap(body)


def wrap(body: list[str]) -> str:
    """The HTML parts in one themed root (with the style sheet); ``""`` when there are none."""
    return f'<div class="lk-root">{_STYLE}{"".join(body)}</div>' if body else ""


def escape(text: str) -> str:
    """``text`` as HTML element content (quotes left alone)."""
    return html.escape(text, quote=False)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _html_line(index: int, text: str, pieces: list[tuple[int, int, Item]], gutter: int) -> str:
    """A source line with the ranges on it in underline spans, nested where they overlap."""
    spans: list[tuple[int, int, Item]] = []
    at_eol: list[Item] = []
    for a, b, item in pieces:
        if a < b:
            spans.append((a, b, item))
        elif a < len(text):  # empty range: underline the character it points at
            spans.append((a, a + 1, item))
        else:
            at_eol.append(item)
    cuts = sorted({0, len(text), *(a for a, _, _ in spans), *(b for _, b, _ in spans)})
    out = [f'<span class="lk-ln" style="min-width:{gutter}ch">{index + 1}</span>']
    for x, y in pairwise(cuts):
        active = sorted((item for a, b, item in spans if a <= x and y <= b), key=_rank)
        chunk = escape(text[x:y])
        for item in reversed(active):
            chunk = _open_diag(item) + chunk + "</span>"
        out.append(chunk)
    out.extend(f"{_open_diag(item, ' lk-eol')} </span>" for item in at_eol)
    return "".join(out)


def _rank(item: Item) -> int:
    """Nesting order: the most severe underline innermost, so its colour is drawn on top."""
    return -1 if item.kind == "goal" else SEVERITY_RANK.get(item.severity, 0)


def _open_diag(item: Item, extra: str = "") -> str:
    assert item.range is not None
    title = item.text.split("\n", 1)[0] if item.kind == "msg" else item.label
    return (
        f'<span class="lk-diag lk-{severity_class(item.severity)}{extra}" '
        f'data-range="{item.range.label()}" title="{_attr(title)}">'
    )


def _goal_text_html(text: str) -> str:
    out = []
    for i, line in enumerate(text.split("\n")):
        if line.startswith("⊢"):
            out.append(f'<span class="lk-turnstile">{escape(line)}</span>')
        elif i == 0 and line.startswith("case "):
            out.append(f'<span class="lk-case">{escape(line)}</span>')
        else:
            out.append(escape(line))
    return "\n".join(out)


def _html_item(item: Item) -> str:
    data = f' data-range="{item.range.label()}"' if item.range else ""
    if item.kind == "goal":
        state = f' data-proof-state="{item.proof_state}"' if item.proof_state is not None else ""
        head = f"{item.head}: {item.label}" if item.head else item.label
        return (
            f'<details class="lk-goal" open{data}{state}><summary>{escape(head)}</summary>'
            f'<pre class="lk-goal-text">{_goal_text_html(item.text)}</pre></details>'
        )
    head = f"{item.head}: {item.severity}:" if item.head else f"{item.severity}:"
    return (
        f'<div class="lk-msg lk-{severity_class(item.severity)}"{data}>'
        f'<span class="lk-head">{escape(head)}</span> '
        f'<span class="lk-text">{escape(item.text)}</span></div>'
    )


def _html_source(lines: list[str], placed: list[Item], context: int) -> str:
    """The source lines near the ranges, underlined, each item placed under its range's end."""
    pieces: dict[int, list[tuple[int, int, Item]]] = {}
    after: dict[int, list[Item]] = {}
    wanted: set[int] = set()
    for item in placed:
        assert item.range is not None
        segs = segments(item.range, lines)
        for i, a, b in segs:
            pieces.setdefault(i, []).append((a, b, item))
        first, last = segs[0][0], segs[-1][0]
        after.setdefault(last, []).append(item)
        for anchor in (first, last):
            wanted.update(
                range(max(anchor - context, 0), min(anchor + context, len(lines) - 1) + 1)
            )
    shown = sorted(wanted)
    gutter = len(str(shown[-1] + 1)) + 1
    out: list[str] = []
    pre: list[str] = []

    def flush() -> None:
        if pre:
            out.append('<pre class="lk-src">' + "\n".join(pre) + "</pre>")
            pre.clear()

    def gap(hidden: int) -> None:
        if hidden > 0:
            pre.append(f'<span class="lk-gap">⋯ {hidden} line{"s" if hidden > 1 else ""}</span>')

    previous = -1
    for i in shown:
        gap(i - previous - 1)
        pre.append(_html_line(i, lines[i], pieces.get(i, []), gutter))
        if i in after:
            flush()
            out.extend(_html_item(item) for item in after[i])
        previous = i
    last_text = max((i for i, line in enumerate(lines) if line.strip()), default=0)
    gap(last_text - previous)
    flush()
    return "".join(out)


def _html_verdicts(lines: list[VerdictLine]) -> str:
    """One row per declaration: its name, the verdict's badge beside it (the reason as its
    tooltip), and the reason in words when the verdict says nothing of the proof; the badges
    line up in a column."""
    rows = []
    for line in lines:
        # Every row fills the three columns, so the badges stand in one column.
        shown = line.reason if line.tone == "other" else ""
        why = f'<span class="lk-why">{escape(shown)}</span>'
        title = f' title="{_attr(line.reason)}"' if line.reason else ""
        rows.append(
            f'<div class="lk-verdict" data-name="{_attr(line.name)}" '
            f'data-verdict="{_attr(line.verdict)}"><span class="lk-vname">{escape(line.name)}'
            f'</span><span class="lk-badge lk-{line.tone}"{title}>{escape(line.badge)}</span>'
            f"{why}</div>"
        )
    return f'<div class="lk-verdicts">{"".join(rows)}</div>'


def _html_status(status: ProofStatus) -> str:
    state = f' data-proof-state="{status.proof_state}"' if status.proof_state is not None else ""
    if status.error is not None:
        return (
            f'<div class="lk-msg lk-error"{state}><span class="lk-head">'
            f"{escape(status.head)}error:</span> "
            f'<span class="lk-text">{escape(status.error)}</span></div>'
        )
    ok = " lk-ok" if status.completed else ""
    return f'<div class="lk-status{ok}"{state}>{escape(status.head + status.text)}</div>'

"""Turn a REPL result and the cell text into what a Jupyter frontend shows.

Two renderings of the same content: ``text/plain`` in the style of codespan / rustc (position,
severity, message, then the source line with a caret underline), readable in ``jupyter console``
and in tracebacks; and ``text/html``, the cell source with every diagnostic underlined at its exact
range, the messages under their line and goals in collapsible blocks. The HTML is self-contained
(inline ``<style>`` scoped under ``.lk-root``, no external resources) and takes every colour from
JupyterLab's CSS variables, with fallbacks, so light and dark themes both work.

Positions are the REPL's: line 1-based, column 0-based, counted in Unicode code points of the text
sent (Lean's ``FileMap.toPosition`` counts characters, not UTF-8 bytes), which is exactly Python
``str`` indexing. Lines are split on ``\\n`` only, as Lean does. When the kernel sent only part of a
cell (magic lines stripped from the top), ``line_offset`` is the number of cell lines before the
text sent: REPL line ``L`` is cell line ``L + line_offset``; ``source`` is always the cell text.

The output of ``#eval`` (its info messages) reads like program output, without position, severity
or caret, as a Python cell's prints would.

Everything here is pure: strings and dicts in, strings and dicts out, nothing of Jupyter imported.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from lean_kernel.engine.protocol import (
    CommandResponse,
    LeanError,
    Message,
    Pos,
    ProofStepResponse,
    Sorry,
)

__all__ = [
    "GoalLike",
    "eval_outputs",
    "render_error_summary",
    "render_html",
    "render_plain",
    "render_result",
    "render_table",
]

GoalLike = Sorry | str
"""A goal to show: a sorry of a command (its goal, proof state and position) or a goal string
of a proof step."""

Response = CommandResponse | ProofStepResponse | LeanError

_SEVERITY_RANK = {"trace": 0, "info": 1, "warning": 2, "error": 3}
_ANSI = {
    "error": "\x1b[1;31m",
    "warning": "\x1b[1;33m",
    "info": "\x1b[1;34m",
    "goal": "\x1b[1;32m",
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
}
_ANSI_RESET = "\x1b[0m"
# A multi-line range longer than this shows its first and last lines only.
_MAX_RANGE_LINES = 5

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
""".replace("\n", "").replace("S ", f"{_SCOPE} ")
_STYLE = f"<style>{_CSS}</style>"


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class _Range:
    """A range in cell coordinates: 0-based line index and code-point column, end exclusive."""

    line: int
    col: int
    end_line: int
    end_col: int

    def label(self) -> str:
        return f"{self.line + 1}:{self.col}-{self.end_line + 1}:{self.end_col}"


@dataclass(frozen=True)
class _Item:
    """One thing to show under the source: a message, a sorry's goal or a proof-step goal."""

    kind: str  # "msg" or "goal"
    severity: str  # message severity; "sorry" for goals
    text: str
    head: str  # "1:7" or "" (no position)
    range: _Range | None  # None: shown without source
    label: str = ""  # goals: "goal (proof state 0)"
    proof_state: int | None = None


def _lines(source: str) -> list[str]:
    return [line.removesuffix("\r") for line in source.split("\n")]


def _locate(
    pos: Pos | None, end: Pos | None, lines: list[str], line_offset: int
) -> tuple[str, _Range | None]:
    """Map a REPL position to (``"line:col"`` header, range in the cell or None)."""
    if pos is None or pos.line <= 0:
        return "", None
    head = f"{pos.line + line_offset}:{pos.column}"
    line = pos.line - 1 + line_offset
    if not 0 <= line < len(lines):
        return head, None
    end = end if end is not None and end.line > 0 else pos
    return head, _Range(line, pos.column, end.line - 1 + line_offset, end.column)


def _severity_class(severity: str) -> str:
    if severity in _SEVERITY_RANK or severity == "sorry":
        return severity
    return "other"


def _is_eval_output(msg: Message, lines: list[str], line_offset: int) -> bool:
    """Whether an info message is the output of ``#eval`` (Lean puts it on the ``#eval`` token)."""
    line = msg.start_pos.line - 1 + line_offset
    if msg.severity != "info" or msg.start_pos.line <= 0 or not 0 <= line < len(lines):
        return False
    return lines[line][msg.start_pos.column :].startswith("#eval")


def _goal_items(goals: Sequence[GoalLike], lines: list[str], line_offset: int) -> list[_Item]:
    """Sorries are labelled with the proof state to continue from; proof-step goals by number."""
    items = []
    count = sum(isinstance(g, str) for g in goals)
    number = 0
    for goal in goals:
        if isinstance(goal, str):
            number += 1
            label = f"goal {number} of {count}" if count > 1 else "goal"
            items.append(_Item("goal", "sorry", goal, "", None, label))
            continue
        head, rng = _locate(goal.start_pos, goal.end_pos, lines, line_offset)
        label = "goal" if goal.proof_state is None else f"goal (proof state {goal.proof_state})"
        items.append(_Item("goal", "sorry", goal.goal, head, rng, label, goal.proof_state))
    return items


def _split(
    source: str,
    messages: Sequence[Message],
    goals: Sequence[GoalLike] | None,
    line_offset: int,
) -> tuple[list[str], list[str], list[_Item], list[_Item]]:
    """Sort a result into (cell lines, #eval outputs, messages, goals), messages by position."""
    lines = _lines(source)
    outputs: list[str] = []
    items: list[_Item] = []
    for msg in messages:
        if _is_eval_output(msg, lines, line_offset):
            outputs.append(msg.data)
            continue
        head, rng = _locate(msg.start_pos, msg.end_pos, lines, line_offset)
        items.append(_Item("msg", msg.severity, msg.data, head, rng))
    items.sort(key=lambda it: (it.range.line, it.range.col) if it.range else (-1, 0))
    goal_items = _goal_items(goals or [], lines, line_offset)
    return lines, outputs, items, goal_items


def _segments(rng: _Range, lines: list[str]) -> list[tuple[int, int, int]]:
    """Per-line pieces ``(line, start, end)`` of a range; ``start == end`` marks an empty range.

    Continuation lines start at their first non-blank character, so indentation is not underlined.
    """
    line, col = rng.line, min(max(rng.col, 0), len(lines[rng.line]))
    end_line, end_col = rng.end_line, rng.end_col
    if end_line >= len(lines):
        end_line, end_col = len(lines) - 1, len(lines[-1])
    end_col = min(max(end_col, 0), len(lines[end_line]))
    if (end_line, end_col) < (line, col):
        end_line, end_col = line, col
    if end_line > line and end_col == 0:  # ends at a line start: really ends on the line before
        end_line -= 1
        end_col = len(lines[end_line])
    pieces = []
    for i in range(line, end_line + 1):
        text = lines[i]
        start = col if i == line else len(text) - len(text.lstrip())
        end = end_col if i == end_line else len(text)
        if end > start:
            pieces.append((i, start, end))
    return pieces or [(line, col, col)]


def _width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


# --------------------------------------------------------------------------- text/plain


def _paint(text: str, style: str, ansi: bool) -> str:
    return f"{_ANSI[style]}{text}{_ANSI_RESET}" if ansi and style in _ANSI else text


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.split("\n"))


def _plain_snippet(rng: _Range, lines: list[str], style: str, ansi: bool) -> list[str]:
    pieces = {i: (a, b) for i, a, b in _segments(rng, lines)}
    first, last = min(pieces), max(pieces)
    shown = list(range(first, last + 1))
    if len(shown) > _MAX_RANGE_LINES:
        shown = [first, first + 1, -1, last - 1, last]
    gutter = len(str(last + 1))
    out = []
    for i in shown:
        if i < 0:
            out.append(_paint(f" {'':>{gutter}} ⋮", "dim", ansi))
            continue
        text = lines[i]
        out.append(_paint(f" {i + 1:>{gutter}} | ", "dim", ansi) + text)
        if i in pieces:
            a, b = pieces[i]
            pad = "".join("\t" if c == "\t" else " " * _width(c) for c in text[:a])
            carets = "".join("^" * _width(c) for c in text[a:b]) or "^"
            out.append(
                _paint(f" {'':>{gutter}} | ", "dim", ansi) + pad + _paint(carets, style, ansi)
            )
    return out


def _plain_item(item: _Item, lines: list[str], ansi: bool) -> str:
    if item.kind == "goal":
        head = f"{item.head}: {item.label}:" if item.head else f"{item.label}:"
        return _paint(head, "goal", ansi) + "\n" + _indent(item.text)
    style = _severity_class(item.severity)
    first, _, rest = item.text.partition("\n")
    head = f"{item.head}: " if item.head else ""
    out = [_paint(f"{head}{item.severity}:", style, ansi) + (f" {first}" if first else "")]
    if rest:
        out.append(_indent(rest))
    if item.range is not None:
        out.extend(_plain_snippet(item.range, lines, style, ansi))
    return "\n".join(out)


def _plain_output(text: str) -> str:
    return text.removesuffix("\n")


def render_plain(
    source: str,
    messages: Sequence[Message],
    goals: Sequence[GoalLike] | None = None,
    *,
    line_offset: int = 0,
    proof_state: int | None = None,
    status: str | None = None,
    show_eval_output: bool = True,
    ansi: bool = False,
) -> str:
    """Codespan-style text: ``line:col: severity: message`` with the source and a caret underline.

    ``goals`` are a command's sorries or a proof step's goal strings; ``proof_state`` and ``status``
    (a proof step's new state and ``proofStatus``) add a header line. ``show_eval_output=False``
    leaves ``#eval`` output out, for a kernel that sends it as a stream instead. ``ansi`` colours
    the text for terminals and tracebacks. Returns ``""`` when there is nothing to show.
    """
    lines, outputs, items, goal_items = _split(source, messages, goals, line_offset)
    blocks = []
    if show_eval_output and outputs:
        blocks.append("\n".join(_plain_output(text) for text in outputs))
    blocks.extend(_plain_item(item, lines, ansi) for item in items)
    if status is not None:
        blocks.append(_plain_status(status, proof_state, bool(goal_items), ansi))
    blocks.extend(_plain_item(item, lines, ansi) for item in goal_items)
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _plain_status(status: str, proof_state: int | None, has_goals: bool, ansi: bool) -> str:
    head = f"proof state {proof_state}: " if proof_state is not None else ""
    if status.startswith("Error"):
        return _paint(f"{head}error:", "error", ansi) + " " + status.removeprefix("Error: ")
    tail = "" if has_goals else "\nno goals"
    return _paint(head, "bold", ansi) + status + tail if head else status + tail


# --------------------------------------------------------------------------- text/html


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _html_line(index: int, text: str, pieces: list[tuple[int, int, _Item]], gutter: int) -> str:
    """A source line with the ranges on it in underline spans, nested where they overlap."""
    spans: list[tuple[int, int, _Item]] = []
    at_eol: list[_Item] = []
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
        chunk = _esc(text[x:y])
        for item in reversed(active):
            chunk = _open_diag(item) + chunk + "</span>"
        out.append(chunk)
    out.extend(f"{_open_diag(item, ' lk-eol')} </span>" for item in at_eol)
    return "".join(out)


def _rank(item: _Item) -> int:
    """Nesting order: the most severe underline innermost, so its colour is drawn on top."""
    return -1 if item.kind == "goal" else _SEVERITY_RANK.get(item.severity, 0)


def _open_diag(item: _Item, extra: str = "") -> str:
    assert item.range is not None
    title = item.text.split("\n", 1)[0] if item.kind == "msg" else item.label
    return (
        f'<span class="lk-diag lk-{_severity_class(item.severity)}{extra}" '
        f'data-range="{item.range.label()}" title="{_attr(title)}">'
    )


def _goal_text_html(text: str) -> str:
    out = []
    for i, line in enumerate(text.split("\n")):
        if line.startswith("⊢"):
            out.append(f'<span class="lk-turnstile">{_esc(line)}</span>')
        elif i == 0 and line.startswith("case "):
            out.append(f'<span class="lk-case">{_esc(line)}</span>')
        else:
            out.append(_esc(line))
    return "\n".join(out)


def _html_item(item: _Item) -> str:
    data = f' data-range="{item.range.label()}"' if item.range else ""
    if item.kind == "goal":
        state = f' data-proof-state="{item.proof_state}"' if item.proof_state is not None else ""
        head = f"{item.head}: {item.label}" if item.head else item.label
        return (
            f'<details class="lk-goal" open{data}{state}><summary>{_esc(head)}</summary>'
            f'<pre class="lk-goal-text">{_goal_text_html(item.text)}</pre></details>'
        )
    head = f"{item.head}: {item.severity}:" if item.head else f"{item.severity}:"
    return (
        f'<div class="lk-msg lk-{_severity_class(item.severity)}"{data}>'
        f'<span class="lk-head">{_esc(head)}</span> '
        f'<span class="lk-text">{_esc(item.text)}</span></div>'
    )


def _html_source(lines: list[str], placed: list[_Item], context: int) -> str:
    """The source lines near the ranges, underlined, each item placed under its range's end."""
    pieces: dict[int, list[tuple[int, int, _Item]]] = {}
    after: dict[int, list[_Item]] = {}
    wanted: set[int] = set()
    for item in placed:
        assert item.range is not None
        segs = _segments(item.range, lines)
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


def render_html(
    source: str,
    messages: Sequence[Message],
    goals: Sequence[GoalLike] | None = None,
    *,
    line_offset: int = 0,
    proof_state: int | None = None,
    status: str | None = None,
    show_eval_output: bool = True,
    context: int = 2,
) -> str:
    """Self-contained HTML: the source near each diagnostic, underlined, messages and goals below.

    Same arguments as :func:`render_plain`; ``context`` is how many source lines to keep around
    each range (farther lines are folded into a "⋯ N lines" row). Returns ``""`` when there is
    nothing to show.
    """
    lines, outputs, items, goal_items = _split(source, messages, goals, line_offset)
    body = []
    if show_eval_output:
        body.extend(f'<pre class="lk-output">{_esc(_plain_output(t))}</pre>' for t in outputs)
    body.extend(_html_item(item) for item in items if item.range is None)
    placed = [item for item in items + goal_items if item.range is not None]
    if placed:
        body.append(_html_source(lines, placed, context))
    if status is not None:
        body.append(_html_status(status, proof_state, bool(goal_items)))
    body.extend(_html_item(item) for item in goal_items if item.range is None)
    return _wrap(body)


def _html_status(status: str, proof_state: int | None, has_goals: bool) -> str:
    state = f' data-proof-state="{proof_state}"' if proof_state is not None else ""
    head = f"proof state {proof_state}: " if proof_state is not None else ""
    if status.startswith("Error"):
        return (
            f'<div class="lk-msg lk-error"{state}><span class="lk-head">{_esc(head)}error:</span> '
            f'<span class="lk-text">{_esc(status.removeprefix("Error: "))}</span></div>'
        )
    ok = " lk-ok" if status == "Completed" else ""
    tail = "" if has_goals else "\nno goals"
    return f'<div class="lk-status{ok}"{state}>{_esc(head + status + tail)}</div>'


def _wrap(body: list[str]) -> str:
    return f'<div class="lk-root">{_STYLE}{"".join(body)}</div>' if body else ""


# --------------------------------------------------------------------------- responses


def eval_outputs(source: str, messages: Sequence[Message], *, line_offset: int = 0) -> list[str]:
    """The output of the cell's ``#eval`` commands, in order, each ending in a newline.

    For a kernel that sends program output as a ``stream`` (then render with
    ``show_eval_output=False``), as a Python cell's prints are.
    """
    lines = _lines(source)
    return [
        msg.data if msg.data.endswith("\n") else msg.data + "\n"
        for msg in messages
        if _is_eval_output(msg, lines, line_offset)
    ]


def _render_args(response: Response) -> dict[str, Any]:
    if isinstance(response, LeanError):
        text = response.message.removeprefix("Lean error:\n")  # the REPL's wrapper, not Lean's
        error = Message(pos=Pos(line=0, column=0), severity="error", data=text)
        return {"messages": [error]}
    if isinstance(response, ProofStepResponse):
        traces = [
            Message(pos=Pos(line=0, column=0), severity="trace", data=trace)
            for trace in response.traces or []
        ]
        return {
            "messages": [*response.messages, *traces],
            "goals": [*response.sorries, *response.goals],
            "proof_state": response.proof_state,
            "status": response.proof_status,
        }
    return {"messages": response.messages, "goals": response.sorries}


def render_result(
    source: str, response: Response, *, line_offset: int = 0, show_eval_output: bool = True
) -> dict[str, str]:
    """A Jupyter mimebundle (``text/plain`` and ``text/html``) for a REPL response.

    ``source`` is the cell (for a proof step, the tactic text). Returns ``{}`` when there is
    nothing to show (no messages, sorries nor goals), so the kernel can send no output at all.
    """
    args = _render_args(response)
    options = {"line_offset": line_offset, "show_eval_output": show_eval_output}
    plain = render_plain(source, **args, **options)
    if not plain:
        return {}
    return {"text/plain": plain, "text/html": render_html(source, **args, **options)}


def render_error_summary(
    source: str, response: Response, *, line_offset: int = 0, show_eval_output: bool = True
) -> dict[str, Any]:
    """The ``ename`` / ``evalue`` / ``traceback`` of a Jupyter error reply for a failed cell.

    ``evalue`` is the first error in one line; ``traceback`` is the whole rendering in ANSI colour,
    so an error reply alone (what ``nbclient`` and ``jupyter_kernel_test`` expect) shows it all.
    """
    args = _render_args(response)
    lines = _lines(source)
    errors = [
        (_locate(m.start_pos, m.end_pos, lines, line_offset)[0], m.data)
        for m in args["messages"]
        if m.severity == "error"
    ]
    status = args.get("status") or ""
    if status.startswith("Error"):
        errors.append(("", status.removeprefix("Error: ")))
    if errors:
        head, text = errors[0]
        evalue = (f"{head}: " if head else "") + text.split("\n", 1)[0]
        if len(errors) > 1:
            evalue += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    else:
        evalue = "no error"
    plain = render_plain(
        source, **args, line_offset=line_offset, show_eval_output=show_eval_output, ansi=True
    )
    return {"ename": "LeanError", "evalue": evalue, "traceback": plain.rstrip("\n").split("\n")}


# --------------------------------------------------------------------------- tables


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("\r", "").replace("\n", " ⏎ ")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text_width(text: str) -> int:
    return sum(_width(c) for c in text)


_STATUS_CLASS = re.compile(r"^(error|warning|ok)\b", re.IGNORECASE)


def render_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> dict[str, str]:
    """A mimebundle with an aligned text table and a themed HTML table (batch results, ``%cells``).

    ``columns`` picks and orders the keys shown (default: every key, in first-seen order).
    Numbers are right-aligned; cells starting with error / warning / ok are coloured in HTML.
    """
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    texts = [[_cell_text(row.get(col)) for col in columns] for row in rows]
    numeric = [bool(rows) and all(_is_number(row.get(col)) for row in rows) for col in columns]
    widths = [
        max([_text_width(col), *(_text_width(r[j]) for r in texts)])
        for j, col in enumerate(columns)
    ]

    def pad(text: str, j: int) -> str:
        fill = " " * (widths[j] - _text_width(text))
        return fill + text if numeric[j] else text + fill

    plain_rows = [
        [pad(col, j) for j, col in enumerate(columns)],
        ["-" * w for w in widths],
        *([pad(t, j) for j, t in enumerate(r)] for r in texts),
    ]
    plain = "\n".join("  ".join(r).rstrip() for r in plain_rows) + "\n"

    head = "".join(f"<th>{_esc(col)}</th>" for col in columns)
    body = []
    for r in texts:
        cells = []
        for j, text in enumerate(r):
            classes = ["lk-num"] if numeric[j] else []
            match = _STATUS_CLASS.match(text)
            if match:
                classes.append(f"lk-{match.group(1).lower()}")
            cls = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{cls}>{_esc(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    table = (
        f'<table class="lk-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    return {"text/plain": plain, "text/html": _wrap([table])}

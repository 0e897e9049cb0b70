"""``text/plain`` for a cell's result, in the style of codespan / rustc.

Each message is its position, severity and text, then the source line with a caret underline;
goals are ``⊢`` blocks. Readable in ``jupyter console`` and, coloured with ANSI codes, in the
traceback of an error reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lean_kernel.display.layout import (
    CellLayout,
    CellOptions,
    GoalLike,
    Item,
    ProofStatus,
    Range,
    VerdictLine,
    char_width,
    segments,
    severity_class,
)
from lean_kernel.engine.protocol import Message

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["render_plain"]

_ANSI = {
    "error": "\x1b[1;31m",
    "warning": "\x1b[1;33m",
    "info": "\x1b[1;34m",
    "goal": "\x1b[1;32m",
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
}
# The ANSI style of a verdict's tone (``VerdictLine.tone``).
_VERDICT_STYLES = {"ok": "goal", "warning": "warning", "error": "error", "other": "dim"}
_ANSI_RESET = "\x1b[0m"
# A multi-line range longer than this shows its first and last lines only.
_MAX_RANGE_LINES = 5


def render_plain(
    source: str,
    messages: Sequence[Message],
    goals: Sequence[GoalLike] | None = None,
    *,
    ansi: bool = False,
    **options: Unpack[CellOptions],
) -> str:
    """Codespan-style text: ``line:col: severity: message`` with the source and a caret underline.

    ``goals`` are a command's sorries or a proof step's goal strings; ``options`` are described
    in :class:`~lean_kernel.display.layout.CellOptions` (e.g. ``line_offset``, ``status``).
    ``ansi`` colours the text for terminals and tracebacks. Returns ``""`` when there is nothing
    to show.
    """
    cell = CellLayout.of(source, messages, goals, **options)
    blocks = []
    if cell.verdicts:
        blocks.append("\n".join(_plain_verdict(line, ansi) for line in cell.verdicts))
    if cell.outputs:
        blocks.append("\n".join(cell.outputs))
    blocks.extend(_plain_item(item, cell.lines, ansi) for item in cell.messages)
    if cell.status is not None:
        blocks.append(_plain_status(cell.status, ansi))
    blocks.extend(_plain_item(item, cell.lines, ansi) for item in cell.goals)
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _paint(text: str, style: str, ansi: bool) -> str:
    return f"{_ANSI[style]}{text}{_ANSI_RESET}" if ansi and style in _ANSI else text


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.split("\n"))


def _plain_snippet(rng: Range, lines: list[str], style: str, ansi: bool) -> list[str]:
    pieces = {i: (a, b) for i, a, b in segments(rng, lines)}
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
            pad = "".join("\t" if c == "\t" else " " * char_width(c) for c in text[:a])
            carets = "".join("^" * char_width(c) for c in text[a:b]) or "^"
            out.append(
                _paint(f" {'':>{gutter}} | ", "dim", ansi) + pad + _paint(carets, style, ansi)
            )
    return out


def _plain_item(item: Item, lines: list[str], ansi: bool) -> str:
    if item.kind == "goal":
        head = f"{item.head}: {item.label}:" if item.head else f"{item.label}:"
        return _paint(head, "goal", ansi) + "\n" + _indent(item.text)
    style = severity_class(item.severity)
    first, _, rest = item.text.partition("\n")
    head = f"{item.head}: " if item.head else ""
    out = [_paint(f"{head}{item.severity}:", style, ansi) + (f" {first}" if first else "")]
    if rest:
        out.append(_indent(rest))
    if item.range is not None:
        out.extend(_plain_snippet(item.range, lines, style, ansi))
    return "\n".join(out)


def _plain_verdict(line: VerdictLine, ansi: bool) -> str:
    """``foo: axioms cheat``; a verdict that says nothing of the proof says why."""
    why = f" ({line.reason})" if line.tone == "other" and line.reason else ""
    return f"{line.name}: " + _paint(line.words, _VERDICT_STYLES[line.tone], ansi) + why


def _plain_status(status: ProofStatus, ansi: bool) -> str:
    if status.error is not None:
        return _paint(f"{status.head}error:", "error", ansi) + " " + status.error
    return _paint(status.head, "bold", ansi) + status.text if status.head else status.text

"""Tables of results (a batch, ``%cells``, the pool's workers) as aligned text and themed HTML."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from lean_kernel.display.html import escape, wrap
from lean_kernel.display.layout import char_width
from lean_kernel.engine.outcome import FAILED

__all__ = ["render_table", "titled"]

_STATUS_CLASS = re.compile(r"^(error|warning|ok)\b", re.IGNORECASE)
# Verdicts (engine.verdict) that are no failure word: proved as ok, the rest as what they are.
_VERDICT_COLOURS = {
    "proved": "ok",
    "sorry": "warning",
    "axioms": "warning",
    "unknown": "warning",
    "escape": "error",
    "statement changed": "error",
}


def render_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> dict[str, str]:
    """A mimebundle with an aligned text table and a themed HTML table (batch results, ``%cells``).

    ``columns`` picks and orders the keys shown (default: every key, in first-seen order).
    Numbers are right-aligned; cells starting with error / warning / ok are coloured in HTML, and
    so are outcomes and verdicts: a failure (``timeout``, ``out of memory``...), ``escape`` and
    ``statement changed`` as errors, ``sorry``, ``axioms`` and ``unknown`` as warnings,
    ``proved`` as ok.
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

    head = "".join(f"<th>{escape(col)}</th>" for col in columns)
    body = []
    for r in texts:
        cells = []
        for j, text in enumerate(r):
            classes = ["lk-num"] if numeric[j] else []
            colour = _colour(text)
            if colour:
                classes.append(f"lk-{colour}")
            cls = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{cls}>{escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    table = (
        f'<table class="lk-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    return {"text/plain": plain, "text/html": wrap([table])}


def titled(title: str, bundle: dict[str, str]) -> dict[str, str]:
    """``bundle`` (text/plain and text/html, e.g. a ``render_table``) under a bold title, so
    several tables shown together (``%lean_status``) say which is which."""
    return {
        "text/plain": f"{title}\n{bundle['text/plain']}",
        "text/html": f"<div><b>{escape(title)}</b></div>{bundle['text/html']}",
    }


def _colour(text: str) -> str | None:
    """``error``, ``warning`` or ``ok`` for a cell that states one, else None."""
    if text in FAILED or text.split(":", 1)[0] in FAILED:  # ``stopped: ...`` too
        return "error"
    if text in _VERDICT_COLOURS:
        return _VERDICT_COLOURS[text]
    match = _STATUS_CLASS.match(text)
    return match.group(1).lower() if match else None


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
    return sum(char_width(c) for c in text)

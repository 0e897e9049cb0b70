"""What both renderings of a cell's result share: where each message, goal and output goes.

``text/plain`` (:mod:`lean_kernel.display.plain`) and ``text/html``
(:mod:`lean_kernel.display.html`) show the same content; this module decides that content once:
the cell's lines, the ``#eval`` output, the messages sorted by position, the goals, the proof
step's status line, and for each the range of the cell it points at.

Positions are the REPL's: line 1-based, column 0-based, counted in Unicode code points of the text
sent (Lean's ``FileMap.toPosition`` counts characters, not UTF-8 bytes), which is exactly Python
``str`` indexing. Lines are split on ``\\n`` only, as Lean does. When the kernel sent only part of a
cell (magic lines stripped from the top), ``line_offset`` is the number of cell lines before the
text sent: REPL line ``L`` is cell line ``L + line_offset``; ``source`` is always the cell text.

The output of ``#eval`` (its info messages) reads like program output, without position, severity
or caret, as a Python cell's prints would.

The names here serve the renderers of this package; users call the functions that
``lean_kernel.display`` exports.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

from lean_kernel.engine.protocol import Message, Pos, Sorry
from lean_kernel.engine.verdict import (
    NATIVE_DECIDE_AXIOMS,
    STANDARD_AXIOMS,
    DeclVerdict,
    is_allowed,
)

__all__ = [
    "SEVERITY_RANK",
    "CellLayout",
    "CellOptions",
    "GoalLike",
    "Item",
    "ProofStatus",
    "Range",
    "VerdictLine",
    "cell_lines",
    "char_width",
    "is_eval_output",
    "locate",
    "proof_step_error",
    "segments",
    "severity_class",
]

GoalLike = Sorry | str
"""A goal to show: a sorry of a command (its goal, proof state and position) or a goal string
of a proof step."""

SEVERITY_RANK = {"trace": 0, "info": 1, "warning": 2, "error": 3}


class CellOptions(TypedDict, total=False):
    """The keyword arguments ``render_plain`` and ``render_html`` share.

    ``line_offset``: cell lines before the text sent to the REPL (default 0). ``proof_state`` and
    ``status``: a proof step's new state and ``proofStatus``, shown as a header line.
    ``show_eval_output=False`` leaves ``#eval`` output out, for a kernel that sends it as a
    stream instead (default True). ``verdicts``: the verdict of each declaration of the cell
    (``engine.verdict``), shown first, one line each.
    """

    line_offset: int
    proof_state: int | None
    status: str | None
    show_eval_output: bool
    verdicts: Sequence[DeclVerdict]


@dataclass(frozen=True)
class Range:
    """A range in cell coordinates: 0-based line index and code-point column, end exclusive."""

    line: int
    col: int
    end_line: int
    end_col: int

    def label(self) -> str:
        """``line:col-line:col`` with lines 1-based, as the user reads them in the cell."""
        return f"{self.line + 1}:{self.col}-{self.end_line + 1}:{self.end_col}"


@dataclass(frozen=True)
class Item:
    """One thing to show under the source: a message, a sorry's goal or a proof-step goal."""

    kind: Literal["msg", "goal"]
    severity: str  # message severity; "sorry" for goals
    text: str
    head: str  # "1:7" or "" (no position)
    range: Range | None  # None: shown without source
    label: str = ""  # goals: "goal (proof state 0)"
    proof_state: int | None = None


@dataclass(frozen=True)
class ProofStatus:
    """A proof step's status line: the proof state it made and how the step went."""

    proof_state: int | None
    #: Why the step failed (the REPL's ``Error: ...`` status without its prefix), else None.
    error: str | None
    #: The status itself, with ``no goals`` on a second line when no goal remains.
    text: str
    #: The proof is done (``Completed``).
    completed: bool

    @property
    def head(self) -> str:
        """``proof state N: `` or nothing, written before the status."""
        return f"proof state {self.proof_state}: " if self.proof_state is not None else ""

    @classmethod
    def of(cls, status: str, proof_state: int | None, has_goals: bool) -> ProofStatus:
        """The line for a step that made ``proof_state`` with the REPL's ``proofStatus``."""
        error = proof_step_error(status)
        text = status if has_goals or error is not None else status + "\nno goals"
        return cls(proof_state, error, text, status == "Completed")


def proof_step_error(status: str) -> str | None:
    """Why a proof step failed, from the REPL's ``proofStatus`` (``Error: ...``); else None."""
    return status.removeprefix("Error: ") if status.startswith("Error") else None


#: The style each verdict reads in (the rest: ``error``): green proved, amber sorry, grey for a
#: verdict that says nothing about the proof (its check failed, or it never ran to the end).
_VERDICT_TONES: dict[str, Literal["ok", "warning", "other"]] = {
    "proved": "ok",
    "sorry": "warning",
    "unknown": "other",
    "stopped": "other",
    "cancelled": "other",
}
# A badge names this many axioms or escapes, then says how many more there are.
_BADGE_NAMES = 2


@dataclass(frozen=True)
class VerdictLine:
    """One declaration's verdict as both renderings show it: ``foo: axioms cheat`` in text, a
    badge reading ``axioms: cheat`` beside the name in HTML."""

    name: str
    verdict: str
    #: what follows the name in text: ``proved``, ``axioms cheat``, ``escape implemented_by (3:2)``
    words: str
    #: the badge's text: ``proved``, ``axioms: cheat``, ``escape: implemented_by``
    badge: str
    tone: Literal["ok", "warning", "error", "other"]
    #: why, in words a student understands ("" when the verdict says it all)
    reason: str

    @classmethod
    def of(cls, verdict: DeclVerdict, line_offset: int = 0) -> VerdictLine:
        """The line for ``verdict``; escape positions are cell lines (``line_offset``)."""
        word = verdict.verdict
        details: list[str] = []
        if word == "axioms":
            details = [name for name in verdict.axioms if name not in STANDARD_AXIOMS]
            details = details or list(verdict.axioms)
        elif word == "escape":
            details = list(dict.fromkeys(escape.kind for escape in verdict.escapes))
        words = word
        if details:
            words += " " + ", ".join(details)
        if word == "escape" and verdict.escapes:
            first = verdict.escapes[0]
            words += f" ({first.line + line_offset}:{first.column})"
        badge = word
        if details:
            # native_decide's axioms are named per computation in recent Lean: say the tactic.
            named = list(
                dict.fromkeys(
                    "native_decide" if is_allowed(name, NATIVE_DECIDE_AXIOMS) else name
                    for name in details
                )
            )
            more = len(named) - _BADGE_NAMES
            shown = ", ".join(named[:_BADGE_NAMES]) + (f" +{more}" if more > 0 else "")
            badge = f"{word}: {shown}"
        tone = _VERDICT_TONES.get(word, "error")
        return cls(verdict.name, word, words, badge, tone, verdict.reason)


@dataclass(frozen=True)
class CellLayout:
    """A result sorted for showing: what goes where, before either rendering styles it."""

    lines: list[str]
    #: ``#eval`` output, each without its last newline (empty when not shown)
    outputs: list[str]
    #: messages, those without a position first, then by position
    messages: list[Item]
    goals: list[Item]
    status: ProofStatus | None
    verdicts: list[VerdictLine]

    @classmethod
    def of(
        cls,
        source: str,
        messages: Sequence[Message],
        goals: Sequence[GoalLike] | None = None,
        *,
        line_offset: int = 0,
        proof_state: int | None = None,
        status: str | None = None,
        show_eval_output: bool = True,
        verdicts: Sequence[DeclVerdict] = (),
    ) -> CellLayout:
        """Sort a result (the arguments of ``render_plain`` / ``render_html``) for showing."""
        lines = cell_lines(source)
        outputs: list[str] = []
        items: list[Item] = []
        for msg in messages:
            if is_eval_output(msg, lines, line_offset):
                outputs.append(msg.data.removesuffix("\n"))
                continue
            head, rng = locate(msg.start_pos, msg.end_pos, lines, line_offset)
            items.append(Item("msg", msg.severity, msg.data, head, rng))
        items.sort(key=lambda it: (it.range.line, it.range.col) if it.range else (-1, 0))
        goal_items = _goal_items(goals or [], lines, line_offset)
        shown = None if status is None else ProofStatus.of(status, proof_state, bool(goal_items))
        lines_of_verdicts = [VerdictLine.of(verdict, line_offset) for verdict in verdicts]
        outputs = outputs if show_eval_output else []
        return cls(lines, outputs, items, goal_items, shown, lines_of_verdicts)

    def placed(self) -> list[Item]:
        """The messages and goals that point into the cell, in the order they are listed."""
        return [item for item in self.messages + self.goals if item.range is not None]


def cell_lines(source: str) -> list[str]:
    """The cell's lines as Lean counts them (split on ``\\n``; a ``\\r`` before it dropped)."""
    return [line.removesuffix("\r") for line in source.split("\n")]


def locate(
    pos: Pos | None, end: Pos | None, lines: list[str], line_offset: int
) -> tuple[str, Range | None]:
    """Map a REPL position to (``"line:col"`` header, range in the cell or None)."""
    if pos is None or pos.line <= 0:
        return "", None
    head = f"{pos.line + line_offset}:{pos.column}"
    line = pos.line - 1 + line_offset
    if not 0 <= line < len(lines):
        return head, None
    end = end if end is not None and end.line > 0 else pos
    return head, Range(line, pos.column, end.line - 1 + line_offset, end.column)


def severity_class(severity: str) -> str:
    """The style a severity is shown in: its own, ``sorry`` for goals, ``other`` if unknown."""
    if severity in SEVERITY_RANK or severity == "sorry":
        return severity
    return "other"


def is_eval_output(msg: Message, lines: list[str], line_offset: int) -> bool:
    """Whether an info message is the output of ``#eval`` (Lean puts it on the ``#eval`` token)."""
    line = msg.start_pos.line - 1 + line_offset
    if msg.severity != "info" or msg.start_pos.line <= 0 or not 0 <= line < len(lines):
        return False
    return lines[line][msg.start_pos.column :].startswith("#eval")


def _goal_items(goals: Sequence[GoalLike], lines: list[str], line_offset: int) -> list[Item]:
    """Sorries are labelled with the proof state to continue from; proof-step goals by number."""
    items = []
    count = sum(isinstance(g, str) for g in goals)
    number = 0
    for goal in goals:
        if isinstance(goal, str):
            number += 1
            label = f"goal {number} of {count}" if count > 1 else "goal"
            items.append(Item("goal", "sorry", goal, "", None, label))
            continue
        head, rng = locate(goal.start_pos, goal.end_pos, lines, line_offset)
        label = "goal" if goal.proof_state is None else f"goal (proof state {goal.proof_state})"
        items.append(Item("goal", "sorry", goal.goal, head, rng, label, goal.proof_state))
    return items


def segments(rng: Range, lines: list[str]) -> list[tuple[int, int, int]]:
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


def char_width(char: str) -> int:
    """Terminal columns a character takes: 2 for East Asian wide and full-width, else 1."""
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1

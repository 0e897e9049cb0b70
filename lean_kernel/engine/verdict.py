"""Verdicts: is a declaration *proved*, or does it only look so?

"No errors" is not "proved": a ``sorry`` inside a ``have``, ``native_decide``, a user ``axiom``,
``implemented_by`` or ``set_option debug.skipKernelTC true`` all elaborate without an error, and
so does a theorem whose statement was quietly weakened. A verdict puts together three checks:

* what Lean says the declaration depends on: ``#print axioms NAME``, sent on a side env (the
  env the command built; the document never sees what the check adds), parsed from Lean's own
  message (`parse_axioms_message`);
* a scan of the command's source for ways around the kernel (`scan_escapes`; comments and
  strings never count);
* for a declaration with a reference statement, whether it proves exactly that statement:
  ``example : STATEMENT := @NAME`` elaborated on the same env.

The words (`Verdict`), worst first: the command's own failure (``error``, ``timeout``,
``crashed``, ``out of memory``, ``stopped``, ``cancelled``), ``statement changed``, ``escape``,
``sorry``, ``axioms`` (any axiom beyond the allowed ones: `STANDARD_AXIOMS`, plus
`NATIVE_DECIDE_AXIOMS` with ``allow=("native_decide",)``), ``unknown`` (the check itself failed:
never read as proved), ``proved``. A command's heartbeat stop (outcome ``out of heartbeats``) is a
``timeout`` (Lean's "deterministic timeout"); a Python exception in its place an ``error``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any, Literal, get_args

from lean_kernel.engine.protocol import Command, LeanError, Message, Response
from lean_kernel.errors import LeanKernelError
from lean_kernel.text.syntax import IDENT_RE, declared_names, mask

__all__ = [
    "ALLOWANCES",
    "NATIVE_DECIDE_AXIOMS",
    "STANDARD_AXIOMS",
    "VERDICTS",
    "CommandVerdict",
    "DeclVerdict",
    "Escape",
    "UnprovedError",
    "Verdict",
    "allowed_axioms",
    "command_verdict",
    "failure_verdict",
    "is_allowed",
    "judge",
    "judge_evidence",
    "parse_axioms_message",
    "scan_escapes",
    "verdicts_for",
]

Verdict = Literal[
    "proved", "sorry", "axioms", "escape", "statement changed", "error", "timeout", "crashed",
    "out of memory", "stopped", "cancelled", "unknown",
]  # fmt: skip
#: Every verdict word.
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)

#: The axioms of Lean's logic that every proof may use (mathlib's own rule).
STANDARD_AXIOMS: frozenset[str] = frozenset({"propext", "Classical.choice", "Quot.sound"})
#: What ``native_decide`` adds, by Lean version: ``Lean.ofReduceBool`` (and
#: ``Lean.trustCompiler`` behind it) up to early 2026, then one generated axiom per computation
#: (``thm._native.native_decide.ax_1_1``). Entries with ``*`` are patterns (`is_allowed`).
NATIVE_DECIDE_AXIOMS: frozenset[str] = frozenset(
    {"Lean.ofReduceBool", "Lean.trustCompiler", "*._native.native_decide.*"}
)
#: The words ``allow=`` takes, and the axioms each one permits beyond the standard ones.
ALLOWANCES: Mapping[str, frozenset[str]] = {"native_decide": NATIVE_DECIDE_AXIOMS}

# Worst first: an item's verdict is its worst declaration's.
_WORST_FIRST = (
    "error", "timeout", "crashed", "out of memory", "stopped", "cancelled", "statement changed",
    "escape", "sorry", "axioms", "unknown", "proved",
)  # fmt: skip
# A command's outcome (engine.outcome) that is a failure, as a verdict and in words.
_FAILURES: dict[str, tuple[Verdict, str]] = {
    "error": ("error", "Lean reported an error"),
    "out of heartbeats": ("timeout", "Lean stopped it at its heartbeat limit (maxHeartbeats)"),
    "timeout": ("timeout", "it ran over its time limit"),
    "crashed": ("crashed", "the REPL crashed while checking it"),
    "out of memory": ("out of memory", "the REPL ran out of memory while checking it"),
    "stopped": ("stopped", "it was stopped while it ran"),
    "cancelled": ("cancelled", "it was cancelled before it ran"),
    "exception": ("error", "checking it raised an exception"),
}


@dataclass(frozen=True)
class Escape:
    """A place in the source that steps outside the kernel's checking."""

    #: ``implemented_by`` | ``extern`` | ``unsafe`` | ``debug option`` | ``open private`` |
    #: ``unchecked declaration`` (``addDeclWithoutChecking``) | ``redefined #print``
    kind: str
    #: the matched source text, e.g. ``set_option debug.skipKernelTC true``
    text: str
    #: 1-based, in the text scanned
    line: int
    #: 0-based
    column: int


@dataclass(frozen=True)
class DeclVerdict:
    """The verdict on one declaration, with what it rests on.

    ``axioms``: what ``#print axioms`` listed (empty: none, or not listed: see ``listed``);
    ``escapes``: the command's escapes (they concern every declaration it adds); ``reason``:
    words a student understands; ``listed``: whether Lean's answer was read; ``statement_ok``:
    whether it proves its reference statement (None: it has none, or not checked).
    """

    name: str
    verdict: Verdict
    axioms: tuple[str, ...] = ()
    escapes: tuple[Escape, ...] = ()
    reason: str = ""
    listed: bool = False
    statement_ok: bool | None = None

    @property
    def proved(self) -> bool:
        """Whether the declaration is proved (standard or allowed axioms only)."""
        return self.verdict == "proved"

    def evidence(self) -> dict[str, Any]:
        """What Lean said, as plain data (JSON): enough to judge it again (`judge_evidence`)."""
        return {
            "name": self.name,
            "axioms": list(self.axioms) if self.listed else None,
            "statement_ok": self.statement_ok,
        }


@dataclass(frozen=True)
class CommandVerdict:
    """A whole command's verdict: its worst declaration's (or its failure), with the words."""

    verdict: Verdict
    reason: str
    declarations: tuple[DeclVerdict, ...] = ()


class UnprovedError(LeanKernelError, ValueError):
    """A command was required to be ``proved`` and its verdict is another; ``verdict`` and
    ``reason`` say which and why."""

    outcome = "error"

    def __init__(self, message: str = "", *, verdict: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.verdict = verdict
        self.reason = reason


# -- allowed axioms ------------------------------------------------------------------------------


def allowed_axioms(allow: Iterable[str] = ()) -> frozenset[str]:
    """`STANDARD_AXIOMS` plus what the ``allow`` words permit (`ALLOWANCES`); a ValueError for
    a word that is not one."""
    if isinstance(allow, str):
        allow = [allow]
    allowed = set(STANDARD_AXIOMS)
    for word in allow:
        if word not in ALLOWANCES:
            raise ValueError(
                f"allow takes {', '.join(sorted(ALLOWANCES))}, not {word!r} (the standard axioms "
                f"{', '.join(sorted(STANDARD_AXIOMS))} are always allowed)"
            )
        allowed |= ALLOWANCES[word]
    return frozenset(allowed)


def is_allowed(axiom: str, allowed: frozenset[str]) -> bool:
    """Whether ``axiom`` is in ``allowed`` (entries with ``*`` match as patterns)."""
    if axiom in allowed:
        return True
    return any("*" in pattern and fnmatchcase(axiom, pattern) for pattern in allowed)


# -- the source scan -----------------------------------------------------------------------------

_ATTRIBUTE_OPEN = re.compile(r"@\[|\battribute\s*\[")
_IN_ATTRIBUTE = re.compile(r"(?<![\w.])(implemented_by|extern)(?![\w'!?])")
_ESCAPES = (
    ("unsafe", re.compile(r"(?<![\w.'])unsafe(?![\w'!?])")),
    ("debug option", re.compile(r"\bset_option\s+debug\.[\w.]+(?:[ \t]+[\w.]+)?")),
    ("open private", re.compile(r"\bopen\s+private\b")),
    ("unchecked declaration", re.compile(r"(?<![\w'])(?:[\w.]+\.)?addDeclWithoutChecking\b")),
)
# `macro "#print" ...` or `macro_rules | `(#print ...)`: the check itself made to say anything.
_REDEFINED_PRINT = re.compile(r'"#print\b|`\(\s*#print\b')
# Text without any of these has no escape (most commands: no need to mask them).
_ESCAPE_WORDS = ("implemented_by", "extern", "unsafe", "debug.", "private", "addDecl", "#print")


def scan_escapes(text: str) -> list[Escape]:
    """Every place ``text`` steps outside the kernel's checking, in source order:
    ``@[implemented_by f]`` and ``@[extern ...]`` (also through ``attribute [...]``): code
    the kernel never sees stands for a definition; ``unsafe`` (a modifier or the ``unsafe`` term):
    no kernel check at all; ``set_option debug.<anything>`` (``debug.skipKernelTC`` turns the
    kernel's type check off); ``open private``: another module's private declarations;
    ``addDeclWithoutChecking``: declarations added past the kernel by meta code. Comments and
    string contents are masked first (`text.syntax.mask`), so they never count. Also a
    ``#print`` redefined by ``macro`` / ``macro_rules``: it would answer the axiom check."""
    return list(_escapes(text))


@functools.lru_cache(maxsize=64)
def _masked(text: str) -> str:
    return mask(text).text


@functools.lru_cache(maxsize=64)
def _escapes(text: str) -> tuple[Escape, ...]:
    if not any(word in text for word in _ESCAPE_WORDS):
        return ()
    masked = _masked(text)
    found: list[tuple[int, str, str]] = []
    for opened in _ATTRIBUTE_OPEN.finditer(masked):
        end = _closing_bracket(masked, opened.end())
        for m in _IN_ATTRIBUTE.finditer(masked, opened.end(), end):
            comma = masked.find(",", m.end(), end)  # where this attribute of the list ends
            found.append((m.start(), m.group(1), text[m.start() : comma if comma >= 0 else end]))
    for kind, pattern in _ESCAPES:
        found.extend((m.start(), kind, text[m.start() : m.end()]) for m in pattern.finditer(masked))
    for m in _REDEFINED_PRINT.finditer(text):
        if masked[m.start()] in '"`':  # a string or a quotation, not a comment
            found.append((m.start(), "redefined #print", m.group()))
    escapes = []
    for start, kind, matched in sorted(set(found)):
        line = masked.count("\n", 0, start) + 1
        column = start - (masked.rfind("\n", 0, start) + 1)
        escapes.append(Escape(kind, " ".join(matched.split()), line, column))
    return tuple(escapes)


def _closing_bracket(masked: str, start: int) -> int:
    depth = 1
    for k in range(start, len(masked)):
        depth += {"[": 1, "]": -1}.get(masked[k], 0)
        if depth == 0:
            return k
    return len(masked)


# -- Lean's answer -------------------------------------------------------------------------------

_DEPENDS = re.compile(r"'(?P<name>.+)' depends on axioms: \[(?P<axioms>[^\]]*)\]", re.DOTALL)
_DEPENDS_ON_NONE = re.compile(r"'(?P<name>.+)' does not depend on any axioms", re.DOTALL)


def parse_axioms_message(data: str) -> tuple[str, tuple[str, ...]] | None:
    """The declaration and axioms of a ``#print axioms`` message (``'foo' depends on axioms:
    [propext, sorryAx]`` or ``'foo' does not depend on any axioms``; a long list may wrap
    over lines); None for any other text."""
    text = data.strip()
    if m := _DEPENDS_ON_NONE.fullmatch(text):
        return m.group("name"), ()
    if m := _DEPENDS.fullmatch(text):
        axioms = tuple(a.strip() for a in m.group("axioms").split(","))
        if all(axioms):
            return m.group("name"), axioms
    return None


# -- judging -------------------------------------------------------------------------------------


def failure_verdict(outcome: str) -> tuple[Verdict, str] | None:
    """The verdict and words for a command whose outcome is a failure; None otherwise."""
    return _FAILURES.get(outcome)


def judge(
    outcome: str,
    axioms: tuple[str, ...] | None,
    escapes: list[Escape],
    allowed: frozenset[str] = STANDARD_AXIOMS,
    statement_ok: bool | None = None,
    name: str = "",
) -> DeclVerdict:
    """The verdict on declaration ``name`` of a command that ended with ``outcome`` (a word of
    ``engine.outcome``), whose axioms Lean listed (None: the check failed), whose source has
    ``escapes`` and whose statement check gave ``statement_ok`` (None: none made). Precedence:
    the failure, ``statement changed``, ``escape``, ``unknown`` (axioms None: never proved),
    ``sorry`` (``sorryAx``), ``axioms`` (any not ``allowed``), ``proved``."""
    evidence: dict[str, Any] = dict(name=name, axioms=axioms or (), escapes=tuple(escapes))
    evidence.update(listed=axioms is not None, statement_ok=statement_ok)
    failure = failure_verdict(outcome)
    if failure is not None:
        return DeclVerdict(verdict=failure[0], reason=failure[1], **evidence)
    if statement_ok is False:
        reason = "this proves a different statement than the one asked for"
        return DeclVerdict(verdict="statement changed", reason=reason, **evidence)
    if escapes:
        return DeclVerdict(verdict="escape", reason=_escape_words(escapes), **evidence)
    if axioms is None:
        reason = "Lean did not list what it depends on, so it cannot be called proved"
        return DeclVerdict(verdict="unknown", reason=reason, **evidence)
    if "sorryAx" in axioms:
        return DeclVerdict(verdict="sorry", reason="this proof still uses sorry", **evidence)
    others = [a for a in axioms if not is_allowed(a, allowed)]
    if others:
        return DeclVerdict(verdict="axioms", reason=_axiom_words(others), **evidence)
    return DeclVerdict(verdict="proved", reason="proved, with the allowed axioms only", **evidence)


def judge_evidence(
    evidence: Mapping[str, Any],
    outcome: str,
    escapes: list[Escape],
    allowed: frozenset[str] = STANDARD_AXIOMS,
) -> DeclVerdict:
    """`judge` again from a declaration's `DeclVerdict.evidence` (e.g. a stored one), under
    today's rules: the command's ``escapes`` and the ``allowed`` axioms of this run."""
    axioms, statement_ok = evidence.get("axioms"), evidence.get("statement_ok")
    listed = tuple(map(str, axioms)) if isinstance(axioms, list) else None
    checked = statement_ok if isinstance(statement_ok, bool) else None
    return judge(outcome, listed, escapes, allowed, checked, str(evidence.get("name", "")))


def _escape_words(escapes: Sequence[Escape]) -> str:
    places = ", ".join(f"`{e.text}` (line {e.line})" for e in escapes[:3])
    more = f" and {len(escapes) - 3} more" if len(escapes) > 3 else ""
    return f"this steps outside the kernel's checking: {places}{more}"


def _axiom_words(axioms: Sequence[str]) -> str:
    native = [a for a in axioms if is_allowed(a, NATIVE_DECIDE_AXIOMS)]
    names = ", ".join(f"`{a}`" for a in axioms)
    words = f"this relies on the axiom{'s' if len(axioms) > 1 else ''} {names}"
    if native:
        words += " (native_decide: it trusts the compiler, not the kernel)"
    return words


def command_verdict(
    outcome: str, text: str, declarations: Sequence[DeclVerdict] = ()
) -> CommandVerdict:
    """A command's verdict: its failure, else its worst declaration's; a ``sorry`` outcome no
    declaration accounts for is ``sorry``; an ``example`` or a nameless ``instance`` (Lean
    keeps no name to ask about) and a command that declares nothing are ``unknown``."""
    failure = failure_verdict(outcome)
    if failure is not None:
        return CommandVerdict(failure[0], failure[1], tuple(declarations))
    # An escape concerns the whole command: its words name no declaration.
    candidates = [
        (d.verdict, d.reason if d.verdict == "escape" or not d.name else f"`{d.name}`: {d.reason}")
        for d in declarations
    ]
    if outcome == "sorry" and not any(d.verdict == "sorry" for d in declarations):
        candidates.append(("sorry", "this still uses sorry"))
    escapes = scan_escapes(text)
    if escapes and not declarations:
        candidates.append(("escape", _escape_words(escapes)))
    if _anonymous_declaration(text):
        reason = (
            "an `example` or a nameless `instance` leaves no name to ask Lean about: name it "
            "(theorem NAME ...) to get a verdict"
        )
        candidates.append(("unknown", reason))
    if not candidates:
        candidates.append(("unknown", "this command declares nothing to judge"))
    verdict, reason = min(candidates, key=lambda c: _WORST_FIRST.index(c[0]))
    return CommandVerdict(verdict, reason, tuple(declarations))


_EXAMPLE = re.compile(r"(?<![\w.'])example(?![\w'!?])")
_INSTANCE = re.compile(r"(?<![\w.'\[])instance(?![\w'!?])\s*(?:\(\s*priority\s*:=[^)]*\))?\s*")


def _anonymous_declaration(text: str) -> bool:
    """Whether ``text`` has an ``example`` or an ``instance`` without a name."""
    if "example" not in text and "instance" not in text:
        return False
    masked = _masked(text)
    if _EXAMPLE.search(masked):
        return True
    for m in _INSTANCE.finditer(masked):
        if masked[: m.start()].rstrip().endswith("deriving"):
            continue
        if not IDENT_RE.match(masked, m.end()) or masked.startswith("where", m.end()):
            return True
    return False


# -- asking Lean ---------------------------------------------------------------------------------


def verdicts_for(
    run: Callable[[Command], Response],
    env: int,
    text: str,
    outcome: str,
    allowed: frozenset[str] = STANDARD_AXIOMS,
    statements: Mapping[str, str] | None = None,
) -> list[DeclVerdict]:
    """One verdict per declaration ``text`` adds (`text.syntax.declared_names`), in order, and
    one for each name of ``statements`` it does not declare (``statement changed``).

    ``run`` sends a command (``Command(cmd=..., env=env)``: a side env, never the document's
    next one); one round trip asks ``#print axioms`` of every name and checks each reference
    statement (``statements[NAME]``, a type) by elaborating ``example : STATEMENT := @NAME``.
    Nothing is asked when ``outcome`` is already a failure. An answer that is missing or cannot
    be read, or a ``run`` that raises, makes the verdict ``unknown``, never ``proved``."""
    names = declared_names(text)
    statements = dict(statements or {})
    escapes = scan_escapes(text)
    answers = {}
    if failure_verdict(outcome) is None and names:
        answers = _ask(run, env, names, {n: s for n, s in statements.items() if n in names})
    verdicts = []
    for name in names:
        axioms, statement_ok = answers.get(name, (None, None))
        verdicts.append(judge(outcome, axioms, escapes, allowed, statement_ok, name))
    for name in statements:
        if name not in names:
            verdict = judge(outcome, None, escapes, allowed, False, name)
            if verdict.verdict == "statement changed":
                reason = f"this declares no `{name}`, the name of the statement asked for"
                verdict = replace(verdict, reason=reason)
            verdicts.append(verdict)
    return verdicts


def _ask(
    run: Callable[[Command], Response],
    env: int,
    names: Sequence[str],
    statements: Mapping[str, str],
) -> dict[str, tuple[tuple[str, ...] | None, bool | None]]:
    """``{name: (axioms or None, statement_ok or None)}`` from one command on ``env``."""
    lines: list[str] = []
    pieces: list[tuple[str, str, int, int]] = []  # (name, "axioms" | "statement", first, last)
    for name in names:
        lines.append(f"#print axioms {name}")
        pieces.append((name, "axioms", len(lines), len(lines)))
    for name, statement in statements.items():
        first = len(lines) + 1
        # Newlines keep a trailing line comment of the statement from eating what follows.
        lines.extend(f"example : {statement}\n  := @{name}".split("\n"))
        pieces.append((name, "statement", first, len(lines)))
    try:
        response = run(Command(cmd="\n".join(lines), env=env))
    except Exception:  # noqa: BLE001 - a check that failed is an unknown verdict
        return {}
    if isinstance(response, LeanError):
        return {}
    answers: dict[str, tuple[tuple[str, ...] | None, bool | None]] = {}
    for name, kind, first, last in pieces:
        messages = [m for m in response.messages if first <= m.start_pos.line <= last]
        axioms, statement_ok = answers.get(name, (None, None))
        if kind == "axioms":
            axioms = _axioms_of(messages)
        else:
            statement_ok = not any(m.severity == "error" for m in messages)
        answers[name] = (axioms, statement_ok)
    return answers


def _axioms_of(messages: list[Message]) -> tuple[str, ...] | None:
    """The axioms one ``#print axioms`` answered; None unless exactly one info reads as such."""
    parsed = [parse_axioms_message(m.data) for m in messages if m.severity == "info"]
    if len(parsed) != 1 or parsed[0] is None or any(m.severity == "error" for m in messages):
        return None
    return parsed[0][1]

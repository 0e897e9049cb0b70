"""Exercises for teaching: ``%exercise NAME : STATEMENT [--allow native_decide]``.

A teacher's cell (one nbgrader can lock read-only) declares an exercise in the kernel session:
the cell that declares ``NAME`` must prove exactly ``STATEMENT`` (Lean elaborates
``example : STATEMENT := @NAME`` on that cell's env) with the verdict ``proved``; else the cell
fails (an error reply, so nbgrader scores a graded cell 0) and says why in words a student
understands. The same magic placed after the answer checks it at once: that cell is the grader.

Exercises live as long as the kernel session, and come back after a restart only as the
notebook runs their cells again. This module holds the parsing, the registry, and the words;
``kernel.grading`` runs the checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from lean_kernel.engine.verdict import (
    NATIVE_DECIDE_AXIOMS,
    STANDARD_AXIOMS,
    DeclVerdict,
    allowed_axioms,
    is_allowed,
    judge,
)
from lean_kernel.text.syntax import IDENT_RE, mask, statement_colon

__all__ = [
    "EXERCISE_HELP",
    "EXERCISE_USAGE",
    "Exercise",
    "ExerciseUsageError",
    "Exercises",
    "describe_axioms",
    "parse_exercise",
    "problem",
]

EXERCISE_USAGE = "%exercise NAME [BINDERS] : STATEMENT [--allow native_decide]"
EXERCISE_HELP = (
    "an exercise: the cell that declares NAME must prove exactly STATEMENT, with no sorry and "
    "only Lean's standard axioms (--allow native_decide: also native_decide), else it fails; "
    "when NAME is declared already, check it now (a grader cell after the answer)"
)
# What each axiom a proof may depend on means for it (`%axioms`); the rest are declared by
# someone with `axiom`.
_AXIOM_WORDS = {
    "propext": "one of Lean's standard axioms",
    "Classical.choice": "one of Lean's standard axioms",
    "Quot.sound": "one of Lean's standard axioms",
    "sorryAx": "a sorry: the proof is not finished",
}
_NATIVE_WORDS = "native_decide: trusts the compiler, not the kernel"
_USER_WORDS = "declared with `axiom`: nothing checks it"
_ALLOW = re.compile(r"\s--allow(?:\s+|=)(\S+)\s*$")
# Why a verdict fails an exercise, for those whose words do not depend on the details.
_WORDS = {
    "sorry": "this proof still uses sorry",
    "error": "this cell has errors: fix them first",
    "timeout": "Lean ran out of time checking this proof",
    "out of memory": "Lean ran out of memory checking this proof",
    "crashed": "Lean crashed checking this proof",
    "stopped": "checking this proof was interrupted",
    "cancelled": "checking this proof was interrupted",
}


class ExerciseUsageError(ValueError):
    """``%exercise`` was written wrongly; the message says how to write it."""


@dataclass(frozen=True)
class Exercise:
    """An exercise: ``name`` must have the type ``statement`` (binders turned into ``∀``)
    and use no axioms beyond ``allowed``; ``allows`` are the words ``--allow`` gave."""

    name: str
    statement: str
    allowed: frozenset[str] = STANDARD_AXIOMS
    allows: tuple[str, ...] = ()
    #: as the teacher wrote it (``add_zero (n : Nat) : n + 0 = n``)
    shown: str = ""

    def describe(self) -> str:
        """One line for notes: the statement, and what is allowed beyond the usual."""
        extra = f" (allowed: {', '.join(self.allows)})" if self.allows else ""
        return f"`{self.shown or f'{self.name} : {self.statement}'}`{extra}"


def parse_exercise(args: str) -> Exercise:
    """``NAME [BINDERS] : STATEMENT [--allow native_decide]`` as an `Exercise`.

    Binders are written as in a theorem (``add_zero (n : Nat) : n + 0 = n``) and become a
    ``∀`` of the statement. Raises `ExerciseUsageError` saying what is wrong.
    """
    allows: list[str] = []
    rest = args.strip()
    while (match := _ALLOW.search(" " + rest)) is not None:
        allows[:0] = [word for word in match.group(1).split(",") if word]
        rest = (" " + rest)[: match.start()].strip()
    if "--allow" in rest.split():
        raise ExerciseUsageError(
            f"%exercise: --allow goes last, with what to allow. Usage: {EXERCISE_USAGE}"
        )
    if not rest:
        raise ExerciseUsageError(
            "%exercise needs the name of the declaration and its statement, e.g. "
            f"`%exercise add_zero (n : Nat) : n + 0 = n`. Usage: {EXERCISE_USAGE}"
        )
    if ":=" in mask(rest).text:
        raise ExerciseUsageError(
            "%exercise: give the statement only (no `:=` and proof); the student's cell gives "
            f"the proof. Usage: {EXERCISE_USAGE}"
        )
    try:
        allowed = allowed_axioms(allows)
    except ValueError as err:
        raise ExerciseUsageError(f"%exercise --allow: {err}.") from None
    name = IDENT_RE.match(rest)
    colon = statement_colon(mask(rest).text, name.end()) if name else -1
    statement = rest[colon + 1 :].strip()
    if name is None or colon < 0 or not statement:
        raise ExerciseUsageError(
            f"%exercise {rest}: write the name of the declaration, its binders if any, a colon "
            f"and the statement, as in a theorem: `%exercise add_zero (n : Nat) : n + 0 = n`. "
            f"Usage: {EXERCISE_USAGE}"
        )
    binders = rest[name.end() : colon].strip()
    if binders:
        statement = f"∀ {binders}, {statement}"
    return Exercise(name.group(0), statement, allowed, tuple(dict.fromkeys(allows)), shown=rest)


class Exercises:
    """The exercises of the kernel session, by name, and the cell that declared each."""

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[Exercise, str | None]] = {}

    def add(self, exercise: Exercise, cell_id: str | None) -> bool:
        """Declare (or declare again) an exercise from the cell ``cell_id`` (None: a cell
        without an id). Returns whether another cell had declared it before: a cell that
        repeats an exercise is a grader, and the answer must be there already."""
        before = self._by_name.get(exercise.name)
        self._by_name[exercise.name] = (exercise, cell_id)
        return before is not None and (cell_id is None or before[1] != cell_id)

    def get(self, name: str) -> Exercise | None:
        """The exercise called ``name``, if any."""
        found = self._by_name.get(name)
        return None if found is None else found[0]

    def among(self, names: Iterable[str]) -> list[Exercise]:
        """The exercises among ``names`` (a cell's declarations), in their order."""
        return [found for name in names if (found := self.get(name)) is not None]

    def clear(self) -> None:
        """Forget every exercise (``%reset``)."""
        self._by_name.clear()

    def adjusted(self, verdicts: Iterable[DeclVerdict]) -> list[DeclVerdict]:
        """The verdicts with each exercise's own allowances (``--allow native_decide``): an
        ``axioms`` verdict whose axioms that exercise allows is ``proved``."""
        out = []
        for verdict in verdicts:
            exercise = self.get(verdict.name)
            if exercise is not None and verdict.verdict == "axioms" and exercise.allows:
                allowed = judge(
                    "ok",
                    verdict.axioms,
                    list(verdict.escapes),
                    allowed=exercise.allowed,
                    statement_ok=True,
                    name=verdict.name,
                )
                reason = f"allowed in this exercise: {', '.join(exercise.allows)}"
                verdict = replace(allowed, reason=allowed.reason or reason)
            out.append(verdict)
        return out


def problem(exercise: Exercise, verdict: DeclVerdict | None) -> str | None:
    """Why ``verdict`` does not answer ``exercise``, in words a student understands, as a
    sentence naming it; None when it does (``proved``, exactly the statement asked)."""
    head = f"`{exercise.name}` is not accepted: "
    if verdict is None:
        return head + "lean_kernel could not judge it; run the cell again."
    word = verdict.verdict
    if word == "proved":
        return None
    if word == "statement changed":
        asked = exercise.shown or f"{exercise.name} : {exercise.statement}"
        why = f"this proves a different statement than the exercise asks (`{asked}`)"
    elif word == "axioms":
        why = _axioms_words(exercise, verdict.axioms)
    elif word == "escape":
        places = ", ".join(f"`{e.text}` (line {e.line})" for e in verdict.escapes)
        why = f"this steps outside Lean's checking: {places or 'an escape hatch'}"
    elif word in _WORDS:
        why = _WORDS[word]
    else:
        detail = f" ({verdict.reason})" if verdict.reason else ""
        why = f"lean_kernel could not check this proof{detail}; run the cell again"
    return f"{head}{why}."


def _axioms_words(exercise: Exercise, axioms: Iterable[str]) -> str:
    extra = [name for name in axioms if not is_allowed(name, exercise.allowed)]
    if extra and all(is_allowed(name, NATIVE_DECIDE_AXIOMS) for name in extra):
        return "native_decide is not allowed in this exercise"
    names = ", ".join(f"`{name}`" for name in extra) or "an axiom"
    return f"this relies on the axiom{'s' if len(extra) > 1 else ''} {names}"


def describe_axioms(name: str, axioms: Iterable[str]) -> str:
    """What ``%axioms`` prints: the axioms ``name`` depends on, each with what it means."""
    axioms = list(axioms)
    if not axioms:
        return f"{name} depends on no axioms."
    width = max(len(axiom) for axiom in axioms)
    lines = [f"{name} depends on {len(axioms)} axiom{'s' if len(axioms) > 1 else ''}:"]
    for axiom in axioms:
        words = _AXIOM_WORDS.get(axiom)
        if words is None:
            words = _NATIVE_WORDS if is_allowed(axiom, NATIVE_DECIDE_AXIOMS) else _USER_WORDS
        lines.append(f"  {axiom:<{width}}  {words}")
    return "\n".join(lines)

"""Proofs that look clean but are not, each with the verdict it must get (issue 13).

Shared by the batch tests (tests/test_batch_verdicts.py) and the kernel's: each `Case` is a
command as a user writes it, the verdict the tests expect from the fake REPL
(tests/fake_repl.py), and why, in one line. Options a case needs travel with it: ``allow``
(axioms allowed beyond the standard ones), ``statement`` (the reference statement the proof must
prove) and ``timeout`` (seconds, for the case that never answers).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CORPUS", "Case", "case"]


@dataclass(frozen=True)
class Case:
    """One command and the verdict it gets."""

    name: str
    text: str
    verdict: str
    why: str
    allow: tuple[str, ...] = ()
    statement: str | None = None
    timeout: float | None = None
    #: what the verdict's reason must mention (an axiom's name, the escape...)
    mentions: str = ""


CORPUS: tuple[Case, ...] = (
    Case(
        "clean proof",
        "theorem add_comm' (a b : Nat) : a + b = b + a := Nat.add_comm a b",
        "proved",
        "no sorry, no axiom beyond the standard three, nothing outside the kernel",
    ),
    Case(
        "sorry in a have",
        "theorem have_sorry (n : Nat) : n + 0 = n := by\n  have h : n = n := sorry\n  simp",
        "sorry",
        "the `have` is closed by sorry: #print axioms lists sorryAx",
        mentions="sorry",
    ),
    Case(
        "sorry in decreasing_by",
        "def halve (n : Nat) : Nat :=\n  if n = 0 then 0 else halve (n / 2)\ndecreasing_by sorry",
        "sorry",
        "termination is proved by sorry: the definition depends on sorryAx",
        mentions="sorry",
    ),
    Case(
        "sorry in an instance",
        "instance instInhabitedEmpty : Inhabited Empty := ⟨sorry⟩",
        "sorry",
        "the instance's value is sorry",
        mentions="sorry",
    ),
    Case(
        "native_decide",
        "theorem pow_mod : 2 ^ 64 % 7 = 2 := by native_decide",
        "axioms",
        "native_decide trusts the compiler: its axiom (Lean.ofReduceBool; since Lean 4.29 one "
        "`_native` axiom per use) is no standard axiom",
        mentions="native_decide",
    ),
    Case(
        "native_decide, allowed",
        "theorem pow_mod : 2 ^ 64 % 7 = 2 := by native_decide",
        "proved",
        "allow=('native_decide',) permits its axioms",
        allow=("native_decide",),
    ),
    Case(
        "axiom cheat used directly",
        "axiom cheat : False\ntheorem one_eq_two : 1 = 2 := cheat.elim",
        "axioms",
        "the proof rests on the user's axiom `cheat`",
        mentions="cheat",
    ),
    Case(
        "axiom cheat through a lemma",
        "axiom cheat : False\n"
        "theorem helper : 1 = 2 := cheat.elim\n"
        "theorem two_eq_three : 2 = 3 := by\n  have h := helper\n  omega",
        "axioms",
        "the axiom is reached through `helper`: #print axioms is transitive",
        mentions="cheat",
    ),
    Case(
        "implemented_by",
        "def fastImpl (n : Nat) : Nat := n\n"
        "@[implemented_by fastImpl] def slow (n : Nat) : Nat := n + 1\n"
        "theorem slow_one : slow 1 = 2 := rfl",
        "escape",
        "compiled code stands for `slow`, and the kernel never checks that they agree",
        mentions="implemented_by fastImpl",
    ),
    Case(
        "debug.skipKernelTC",
        "set_option debug.skipKernelTC true in\ntheorem skipped : 1 + 1 = 2 := rfl",
        "escape",
        "the kernel's type check is switched off for the theorem",
        mentions="debug.skipKernelTC",
    ),
    Case(
        "weakened statement",
        "theorem add_comm_ref (a b : Nat) : a + 0 = a := Nat.add_zero a",
        "statement changed",
        "it proves `a + 0 = a`, not the reference `a + b = b + a`",
        statement="theorem add_comm_ref (a b : Nat) : a + b = b + a := by sorry",
        mentions="different statement",
    ),
    Case(
        "the reference statement, proved",
        "theorem add_comm_ref (a b : Nat) : a + b = b + a := Nat.add_comm a b",
        "proved",
        "the same statement as the reference, proved",
        statement="theorem add_comm_ref (a b : Nat) : a + b = b + a := by sorry",
    ),
    Case(
        "an example",
        "example : 2 + 2 = 4 := rfl",
        "unknown",
        "an example leaves no name for #print axioms: unknown, never proved",
        mentions="example",
    ),
    Case(
        "error",
        "theorem wrong : 1 = 2 := rfl",
        "error",
        "Lean rejects the proof",
    ),
    Case(
        "timeout",
        "theorem hangs : True := trivial\n#fake_hang",
        "timeout",
        "the command never answers and is killed at its time limit",
        timeout=1.0,
    ),
    Case(
        "crash",
        "theorem crashes : True := trivial\n#fake_crash",
        "crashed",
        "the REPL dies while checking it",
    ),
)


def case(name: str) -> Case:
    """The corpus case called ``name``."""
    return next(c for c in CORPUS if c.name == name)

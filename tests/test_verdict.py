"""The verdict engine (lean_kernel/engine/verdict.py), without a REPL: Lean's messages given
as literal text, the REPL as a scripted ``run``."""

from __future__ import annotations

import pytest

from lean_kernel.engine.protocol import Command, CommandResponse, LeanError, Message, Pos
from lean_kernel.engine.verdict import (
    NATIVE_DECIDE_AXIOMS,
    STANDARD_AXIOMS,
    VERDICTS,
    DeclVerdict,
    Escape,
    allowed_axioms,
    command_verdict,
    is_allowed,
    judge,
    judge_evidence,
    parse_axioms_message,
    scan_escapes,
    verdicts_for,
)
from lean_kernel.errors import ReplTimeoutError

# -- Lean's message --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("'foo' depends on axioms: [propext, sorryAx]", ("foo", ("propext", "sorryAx"))),
        ("'Foo.bar' does not depend on any axioms", ("Foo.bar", ())),
        (
            "'Scope.fromBytes'_append' depends on axioms: [propext]",
            ("Scope.fromBytes'_append", ("propext",)),
        ),
        # A long list wraps over lines.
        (
            "'big' depends on axioms: [propext,\n Classical.choice,\n Quot.sound,\n "
            "big._native.native_decide.ax_1_1]",
            (
                "big",
                ("propext", "Classical.choice", "Quot.sound", "big._native.native_decide.ax_1_1"),
            ),
        ),
        ("'«my thm»' depends on axioms: [cheat]", ("«my thm»", ("cheat",))),
        ("  'foo' does not depend on any axioms\n", ("foo", ())),
    ],
)
def test_the_print_axioms_message_is_read_as_lean_writes_it(data, expected):
    assert parse_axioms_message(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        "Unknown constant `foo`",
        "'foo' depends on axioms: []",
        "'foo' depends on axioms: [propext, ]",
        "foo depends on axioms: [propext]",
        "'foo' depends on axioms: propext",
        "",
        "2",
    ],
)
def test_anything_else_is_no_answer(data):
    assert parse_axioms_message(data) is None


# -- judging ---------------------------------------------------------------------------------------

ESCAPE = Escape("implemented_by", "implemented_by fastImpl", 2, 2)


@pytest.mark.parametrize(
    ("outcome", "axioms", "escapes", "statement_ok", "verdict"),
    [
        ("ok", (), [], None, "proved"),
        ("ok", ("propext", "Classical.choice", "Quot.sound"), [], None, "proved"),
        ("sorry", ("propext", "sorryAx"), [], None, "sorry"),
        ("ok", ("cheat",), [], None, "axioms"),
        ("ok", ("Lean.ofReduceBool", "Lean.trustCompiler"), [], None, "axioms"),
        ("ok", ("sorryAx", "cheat"), [], None, "sorry"),
        ("ok", (), [ESCAPE], None, "escape"),
        ("ok", ("sorryAx",), [ESCAPE], None, "escape"),
        ("ok", (), [], False, "statement changed"),
        ("ok", ("sorryAx",), [ESCAPE], False, "statement changed"),
        ("ok", (), [], True, "proved"),
        # The check failed: never proved, but what is known for sure still wins.
        ("ok", None, [], None, "unknown"),
        ("ok", None, [], True, "unknown"),
        ("ok", None, [], False, "statement changed"),
        ("ok", None, [ESCAPE], None, "escape"),
        # The command's own failure comes first.
        ("error", ("sorryAx",), [ESCAPE], False, "error"),
        ("out of heartbeats", None, [], None, "timeout"),
        ("timeout", None, [], None, "timeout"),
        ("crashed", None, [], None, "crashed"),
        ("out of memory", None, [], None, "out of memory"),
        ("stopped", None, [], None, "stopped"),
        ("cancelled", None, [], None, "cancelled"),
        ("exception", None, [], None, "error"),
    ],
)
def test_judge_follows_the_precedence(outcome, axioms, escapes, statement_ok, verdict):
    judged = judge(outcome, axioms, escapes, STANDARD_AXIOMS, statement_ok, "foo")
    assert judged.verdict == verdict and judged.verdict in VERDICTS
    assert judged.proved == (verdict == "proved")
    assert judged.reason
    assert judged.listed == (axioms is not None)


def test_the_reasons_are_in_a_student_s_words():
    assert judge("sorry", ("sorryAx",), []).reason == "this proof still uses sorry"
    assert judge("ok", ("propext", "cheat"), []).reason == "this relies on the axiom `cheat`"
    changed = judge("ok", (), [], statement_ok=False).reason
    assert changed == "this proves a different statement than the one asked for"
    native = judge("ok", ("Lean.ofReduceBool",), []).reason
    assert "`Lean.ofReduceBool`" in native and "native_decide" in native
    assert "`implemented_by fastImpl` (line 2)" in judge("ok", (), [ESCAPE]).reason


def test_native_decide_axioms_are_allowed_only_when_asked_in_every_lean_era():
    native = allowed_axioms(["native_decide"])
    assert allowed_axioms() == STANDARD_AXIOMS and native > STANDARD_AXIOMS
    for axioms in (
        ("Lean.ofReduceBool",),
        ("Lean.ofReduceBool", "Lean.trustCompiler"),
        ("thm._native.native_decide.ax_1_1", "propext"),
    ):
        assert judge("ok", axioms, []).verdict == "axioms"
        assert judge("ok", axioms, [], native).verdict == "proved"
    # A pattern allows what Lean generates for native_decide, not any axiom with such a name part.
    assert not is_allowed("thm._native.bv_decide.ax_1", native)
    assert not is_allowed("cheat", native) and is_allowed("propext", native)
    assert allowed_axioms("native_decide") == native


def test_an_unknown_allowance_says_what_is_accepted():
    with pytest.raises(ValueError, match="allow takes native_decide, not 'sorry'"):
        allowed_axioms(["sorry"])


def test_evidence_is_judged_again_under_today_s_rules():
    first = judge("ok", ("Lean.ofReduceBool",), [], STANDARD_AXIOMS, True, "big")
    assert first.verdict == "axioms"
    again = judge_evidence(first.evidence(), "ok", [], NATIVE_DECIDE_AXIOMS | STANDARD_AXIOMS)
    assert (again.name, again.verdict, again.axioms, again.statement_ok) == (
        "big",
        "proved",
        ("Lean.ofReduceBool",),
        True,
    )
    unlisted = judge("ok", None, [], name="x")
    assert unlisted.evidence() == {"name": "x", "axioms": None, "statement_ok": None}
    assert judge_evidence(unlisted.evidence(), "ok", []).verdict == "unknown"
    assert judge_evidence({"name": "x", "axioms": "garbage"}, "ok", []).verdict == "unknown"


# -- the source scan -------------------------------------------------------------------------------


def test_escapes_are_found_with_their_place():
    text = (
        "def fastImpl (n : Nat) : Nat := n\n"
        "@[simp, implemented_by fastImpl] def slow (n : Nat) : Nat := n + 1\n"
        '@[extern "lean_magic"] opaque magic : Nat\n'
        "unsafe def raw : Nat := 0\n"
        "set_option debug.skipKernelTC true in\n"
        "theorem t : True := trivial\n"
        "open private secret in\n"
        "attribute [implemented_by fastImpl] slow\n"
        "#eval Lean.Environment.addDeclWithoutChecking\n"
        'macro "#print" "axioms" x:ident : command => `(#eval 0)\n'
    )
    found = [(e.kind, e.text, e.line, e.column) for e in scan_escapes(text)]
    assert found == [
        ("implemented_by", "implemented_by fastImpl", 2, 8),
        ("extern", 'extern "lean_magic"', 3, 2),
        ("unsafe", "unsafe", 4, 0),
        ("debug option", "set_option debug.skipKernelTC true", 5, 0),
        ("open private", "open private", 7, 0),
        ("implemented_by", "implemented_by fastImpl", 8, 11),
        ("unchecked declaration", "Lean.Environment.addDeclWithoutChecking", 9, 6),
        ("redefined #print", '"#print', 10, 6),
    ]


def test_any_debug_option_is_an_escape():
    [escape] = scan_escapes("set_option debug.byAsSorry true\ntheorem t : 1 = 2 := by simp")
    assert (escape.kind, escape.text) == ("debug option", "set_option debug.byAsSorry true")


def test_comments_strings_and_longer_names_never_count():
    text = (
        "-- @[implemented_by f] unsafe set_option debug.skipKernelTC true\n"
        '/- open private x\n   @[extern "c"] -/\n'
        'def s := "unsafe implemented_by set_option debug.skipKernelTC true"\n'
        "def unsafeCast' := 1\n"
        "def Foo.unsafe := 2\n"
        "theorem uses_extern_name (extern : Nat) : extern = extern := rfl\n"
        '-- macro "#print" : command\n'
    )
    assert scan_escapes(text) == []


def test_clean_text_has_no_escapes():
    assert scan_escapes("theorem add (a b : Nat) : a + b = b + a := Nat.add_comm a b") == []


# -- a command's verdict ---------------------------------------------------------------------------


def test_a_command_is_as_bad_as_its_worst_declaration():
    parts = [
        judge("ok", (), [], name="a"),
        judge("ok", ("cheat",), [], name="b"),
        judge("ok", ("sorryAx",), [], name="c"),
    ]
    judged = command_verdict("sorry", "text", parts)
    assert (judged.verdict, judged.reason) == ("sorry", "`c`: this proof still uses sorry")
    assert judged.declarations == tuple(parts)
    unknown_and_axioms = command_verdict("ok", "", [parts[1], judge("ok", None, [], name="d")])
    assert unknown_and_axioms.verdict == "axioms"
    assert (
        command_verdict("ok", "", [parts[0], judge("ok", None, [], name="d")]).verdict == "unknown"
    )


def test_what_no_declaration_accounts_for_is_never_proved():
    assert command_verdict("ok", "#eval 1 + 1").verdict == "unknown"
    example = command_verdict("ok", "example : 2 + 2 = 4 := rfl")
    assert example.verdict == "unknown" and "example" in example.reason
    assert command_verdict("sorry", "example : 2 + 2 = 5 := sorry").verdict == "sorry"
    anonymous = "instance : Inhabited Nat := ⟨0⟩"
    assert command_verdict("ok", anonymous, [judge("ok", (), [], name="x")]).verdict == "unknown"
    named = "instance instX : Inhabited Nat := ⟨0⟩\nderiving instance Repr for Foo"
    assert command_verdict("ok", named, [judge("ok", (), [], name="instX")]).verdict == "proved"
    escaping = command_verdict("ok", "set_option debug.skipKernelTC true")
    assert escaping.verdict == "escape"


def test_a_failed_command_is_its_failure():
    assert command_verdict("timeout", "theorem t : True := trivial").verdict == "timeout"
    assert command_verdict("out of heartbeats", "").reason.startswith("Lean stopped it")


# -- asking Lean (a scripted REPL) -----------------------------------------------------------------


class Script:
    """A ``run`` that records the commands and answers each ``#print axioms`` line as told."""

    def __init__(self, axioms: dict[str, str], mismatched: frozenset[str] = frozenset()) -> None:
        self.axioms = axioms
        self.mismatched = mismatched
        self.commands: list[Command] = []

    def __call__(self, command: Command) -> CommandResponse:
        self.commands.append(command)
        messages = []
        lines = command.cmd.split("\n")
        for number, line in enumerate(lines, start=1):
            if line.startswith("#print axioms "):
                name = line.removeprefix("#print axioms ")
                answer = self.axioms.get(name)
                severity = "info" if answer is not None else "error"
                data = answer if answer is not None else f"Unknown constant `{name}`"
                messages.append(
                    Message(pos=Pos(line=number, column=0), severity=severity, data=data)
                )
            if line.startswith("  := @") and line.removeprefix("  := @") in self.mismatched:
                data = "type mismatch"
                messages.append(
                    Message(pos=Pos(line=number, column=5), severity="error", data=data)
                )
        return CommandResponse(env=99, messages=messages)


def test_one_round_trip_asks_every_declaration_on_the_env_given():
    script = Script(
        {
            "cheat": "'cheat' depends on axioms: [cheat]",
            "helper": "'helper' depends on axioms: [cheat]",
            "Foo.main": "'Foo.main' depends on axioms: [cheat, propext]",
        }
    )
    text = (
        "axiom cheat : False\ntheorem helper : 1 = 2 := cheat.elim\n"
        "namespace Foo\ntheorem main : 2 = 3 := by\n  have := helper\n  omega\nend Foo"
    )
    verdicts = verdicts_for(script, 7, text, "ok")
    assert [(v.name, v.verdict, v.axioms) for v in verdicts] == [
        ("cheat", "axioms", ("cheat",)),
        ("helper", "axioms", ("cheat",)),
        ("Foo.main", "axioms", ("cheat", "propext")),
    ]
    [command] = script.commands
    assert command.env == 7
    assert command.cmd == "#print axioms cheat\n#print axioms helper\n#print axioms Foo.main"


def test_a_failed_command_is_not_asked_about():
    script = Script({})
    [verdict] = verdicts_for(script, 7, "theorem t : 1 = 2 := rfl", "error")
    assert verdict.verdict == "error" and script.commands == []


def test_a_reference_statement_is_checked_on_the_same_round_trip():
    script = Script(
        {
            "good": "'good' does not depend on any axioms",
            "weak": "'weak' does not depend on any axioms",
        },
        mismatched=frozenset({"weak"}),
    )
    text = "theorem good : 1 = 1 := rfl\ntheorem weak : True := trivial"
    statements = {"good": "1 = 1", "weak": "∀ (n : Nat)\n  , n = n", "absent": "False"}
    verdicts = verdicts_for(script, 3, text, "ok", statements=statements)
    assert [(v.name, v.verdict, v.statement_ok) for v in verdicts] == [
        ("good", "proved", True),
        ("weak", "statement changed", False),
        ("absent", "statement changed", False),
    ]
    assert "declares no `absent`" in verdicts[2].reason
    [command] = script.commands
    assert command.cmd.endswith(
        "example : 1 = 1\n  := @good\nexample : ∀ (n : Nat)\n  , n = n\n  := @weak"
    )


@pytest.mark.parametrize(
    "answer",
    [
        LeanError(message="Unknown environment."),
        CommandResponse(env=1, messages=[]),
        CommandResponse(
            env=1, messages=[Message(pos=Pos(line=1, column=0), severity="info", data="garbage")]
        ),
        CommandResponse(
            env=1,
            messages=[
                Message(pos=Pos(line=1, column=0), severity="info", data=data)
                for data in ("'t' does not depend on any axioms", "'t' depends on axioms: [cheat]")
            ],
        ),
        ReplTimeoutError("the check took too long", timeout=1.0),
    ],
    ids=["refused", "silent", "garbled", "two answers", "raised"],
)
def test_a_check_that_fails_is_unknown_never_proved(answer):
    def run(command: Command):
        if isinstance(answer, BaseException):
            raise answer
        return answer

    [verdict] = verdicts_for(run, 1, "theorem t : True := trivial", "ok", statements={"t": "True"})
    assert verdict.verdict == "unknown" and not verdict.proved and not verdict.listed


def test_unknown_constant_is_unknown():
    [verdict] = verdicts_for(Script({}), 1, "theorem t : True := trivial", "ok")
    assert verdict.verdict == "unknown"


def test_decl_verdicts_are_plain_values():
    verdict = DeclVerdict("t", "proved", ("propext",), (), "proved", True, None)
    assert verdict.proved and verdict == DeclVerdict(
        "t", "proved", ("propext",), (), "proved", True
    )

"""The fake Lean REPL (tests/fake_repl.py) speaks the real REPL's protocol.

Every engine, kernel and batch test drives the fake, so these tests pin down what it promises:
framing, id numbering, the error objects, the Lean subset, pickling, fault injection, the cost
model and the request log. The fake is driven over pipes exactly as the engine drives the REPL.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

FAKE = Path(__file__).with_name("fake_repl.py")
TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "repl-transcripts"


class FakeRepl:
    """One fake REPL process in its own session; stderr goes to a file so it never blocks."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str]) -> None:
        self.stderr_file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        self.buffer = b""

    def send_raw(self, text: str) -> None:
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def send(self, request: dict) -> None:
        self.send_raw(json.dumps(request, ensure_ascii=False) + "\n\n")

    def read_raw(self, timeout: float = 20.0) -> str:
        """The next answer's text, up to (not including) the blank line that ends it."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError(f"no answer within {timeout} s; got {self.buffer!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError(f"REPL closed stdout; pending {self.buffer!r}")
            self.buffer += chunk
        answer, _, self.buffer = self.buffer.partition(b"\n\n")
        return answer.decode()

    def request(self, request: dict, timeout: float = 20.0) -> dict:
        self.send(request)
        return json.loads(self.read_raw(timeout))

    def timed(self, request: dict) -> tuple[float, dict]:
        start = time.monotonic()
        answer = self.request(request)
        return time.monotonic() - start, answer

    def stderr(self) -> bytes:
        self.stderr_file.seek(0)
        return self.stderr_file.read()

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def close(self) -> None:
        """End the process like the engine does: EOF first, SIGKILL to its group if it lingers."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self.proc.stdout.close()
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.stderr_file.close()


@pytest.fixture
def start(tmp_path):
    """Start fake REPLs in tmp_path; all of them are ended and reaped after the test."""
    started: list[FakeRepl] = []

    def _start(*args: str, env: dict[str, str] | None = None) -> FakeRepl:
        environ = {k: v for k, v in os.environ.items() if k != "FAKE_REPL_ARGS"}
        environ.update(env or {})
        repl = FakeRepl(*args, cwd=tmp_path, env=environ)
        started.append(repl)
        return repl

    yield _start
    for repl in started:
        repl.close()
    assert all(repl.proc.poll() is not None for repl in started)


def run_script(stdin: str, *args: str, cwd: Path, timeout: float = 30.0):
    """Run the fake on a whole input, like the REPL's own test runner does."""
    environ = {k: v for k, v in os.environ.items() if k != "FAKE_REPL_ARGS"}
    return subprocess.run(
        [sys.executable, str(FAKE), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=timeout,
    )


def messages(answer: dict) -> list[tuple[str, str]]:
    return [(m["severity"], m["data"]) for m in answer.get("messages", [])]


# ---------------------------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------------------------


def test_answer_is_leans_pretty_json_ended_by_a_blank_line(start):
    repl = start()
    repl.send({"cmd": "def f : Nat := by sorry"})
    assert repl.read_raw() == (
        '{"sorries":\n'
        ' [{"proofState": 0,\n'
        '   "pos": {"line": 1, "column": 18},\n'
        '   "goal": "⊢ Nat",\n'
        '   "endPos": {"line": 1, "column": 23}}],\n'
        ' "messages":\n'
        ' [{"severity": "warning",\n'
        '   "pos": {"line": 1, "column": 4},\n'
        '   "endPos": {"line": 1, "column": 5},\n'
        '   "data": "declaration uses `sorry`"}],\n'
        ' "env": 0}'
    )
    assert repl.request({"cmd": "def g := 1"}) == {"env": 1}


def test_request_may_span_several_lines(start):
    repl = start()
    repl.send_raw('{"cmd":\n  "def f := 1",\n  "allTactics": false}\n\n')
    assert json.loads(repl.read_raw()) == {"env": 0}


def test_line_breaks_inside_a_request_are_dropped_like_the_real_repl(start):
    repl = start()
    repl.send_raw('{"cmd": "theorem foo : 1 = 1 := by\nsorry"}\n\n')
    answer = json.loads(repl.read_raw())
    assert messages(answer) == [("error", "Unknown identifier `bysorry`")]


def test_queries_starting_with_hash_or_dashes_get_no_answer(start):
    repl = start()
    repl.send_raw("# a comment\n\n-- another\n\n")
    assert repl.request({"cmd": "def f := 1"}) == {"env": 0}


def test_unknown_fields_are_ignored(start):
    repl = start()
    assert repl.request({"cmd": "def f := 1", "someNewOption": [1, 2]}) == {"env": 0}


def test_last_request_without_blank_line_is_answered_and_eof_exits_0(tmp_path):
    done = run_script('{"cmd": "def f := 1"}\n\n{"cmd": "#eval f", "env": 0}', cwd=tmp_path)
    assert done.returncode == 0
    answers = done.stdout.split("\n\n")
    assert answers[-1] == ""
    assert json.loads(answers[1])["messages"][0]["data"] == "1"


def test_eof_without_requests_exits_0(tmp_path):
    assert run_script("", cwd=tmp_path).returncode == 0


# ---------------------------------------------------------------------------------------------
# Error objects, and the requests the real REPL dies on
# ---------------------------------------------------------------------------------------------


def test_unknown_environment_is_an_error_object_that_consumes_no_id(start):
    repl = start()
    assert repl.request({"cmd": "def f := 1", "env": 3}) == {"message": "Unknown environment."}
    assert repl.request({"env": 3, "pickleTo": "x.olean"}) == {"message": "Unknown environment."}
    assert repl.request({"cmd": "def f := 1"}) == {"env": 0}


def test_unknown_proof_state_error_objects(start):
    repl = start()
    assert repl.request({"tactic": "rfl", "proofState": 0}) == {"message": "Unknown proof state."}
    # The REPL's pickling path spells it with a capital S.
    assert repl.request({"proofState": 0, "pickleTo": "p.olean"}) == {
        "message": "Unknown proof State."
    }


def test_missing_file_is_an_error_object(start):
    repl = start()
    assert repl.request({"path": "missing.lean"}) == {
        "message": "no such file or directory (error code: 2)\n  file: missing.lean"
    }
    assert repl.request({"cmd": "def f := 1"}) == {"env": 0}


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        ('{"cmd": oops}\n\n', '{"message": "Could not parse JSON:\\noffset'),
        ('{"cmd": "def f := 1"}\n\n\n', '{"message": "Could not parse JSON:\\noffset'),
        ('{"cmd": 42}\n\n', "Could not parse as a valid JSON command"),
        ('{"cmd": "x", "env": -1}\n\n', "Could not parse as a valid JSON command"),
    ],
    ids=["invalid-json", "extra-blank-line", "wrong-field-type", "negative-env"],
)
def test_unparsable_requests_end_the_process_like_the_real_repl(tmp_path, stdin, expected):
    done = run_script(stdin, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("uncaught exception: ")
    assert expected in done.stderr


# ---------------------------------------------------------------------------------------------
# Id numbering
# ---------------------------------------------------------------------------------------------


def test_env_ids_count_up_from_zero_for_every_command(start, tmp_path):
    repl = start()
    assert repl.request({"cmd": "def f := 1"})["env"] == 0
    assert repl.request({"cmd": "#eval nope", "env": 0})["env"] == 1
    assert repl.request({"cmd": "def f := 2", "env": 0})["env"] == 2
    assert repl.request({"env": 0, "pickleTo": str(tmp_path / "e.olean")}) == {"env": 0}
    assert repl.request({"unpickleEnvFrom": str(tmp_path / "e.olean")}) == {"env": 3}
    assert repl.request({"cmd": "example : f = f := rfl", "env": 3}) == {"env": 4}


def test_sorries_get_proof_states_in_order_and_every_tactic_step_makes_one(start):
    repl = start()
    answer = repl.request(
        {"cmd": "theorem a : 1 = 1 := sorry\ntheorem b (x : Int) : x = x := by\n  sorry"}
    )
    assert [(s["proofState"], s["goal"]) for s in answer["sorries"]] == [
        (0, "⊢ 1 = 1"),
        (1, "x : Int\n⊢ x = x"),
    ]
    step = repl.request({"tactic": "have h : x = 1 := sorry", "proofState": 1})
    assert step["sorries"] == [{"proofState": 2, "goal": "x : Int\n⊢ x = 1"}]
    assert step["proofState"] == 3
    assert repl.request({"tactic": "rfl", "proofState": 3}) == {
        "proofState": 4,
        "goals": [],
        "proofStatus": "Incomplete: contains sorry",
    }


def test_tactics_and_root_goals_are_numbered_after_sorries(start):
    repl = start()
    answer = repl.request(
        {
            "cmd": "theorem t (p : Prop) (hp : p) : p ∧ p := by\n  constructor\n  · sorry\n"
            "  · exact hp",
            "allTactics": True,
            "rootGoals": True,
        }
    )
    assert [s["proofState"] for s in answer["sorries"]] == [0, 1]
    root = answer["sorries"][1]
    assert root["pos"] == root["endPos"] == {"line": 1, "column": 41}
    assert [(t["tactic"], t["proofState"]) for t in answer["tactics"]] == [
        ("constructor", 2),
        ("sorry", 3),
        ("exact hp", 4),
    ]
    assert answer["tactics"][2]["goals"] == "case right\np : Prop\nhp : p\n⊢ p"
    assert repl.request({"tactic": "exact ⟨hp, hp⟩", "proofState": 1})["proofStatus"] == (
        "Completed"
    )


# ---------------------------------------------------------------------------------------------
# The Lean subset
# ---------------------------------------------------------------------------------------------


def test_eval_computes_arithmetic_strings_and_earlier_definitions(start):
    repl = start()
    answer = repl.request(
        {
            "cmd": "def double (n : Nat) := 2 * n\n"
            "def fib : Nat → Nat\n  | 0 => 0\n  | 1 => 1\n  | n + 2 => fib (n + 1) + fib n\n"
            "#eval double 21\n#eval 10 - 20\n#eval (10 : Int) - 20\n#eval 2 ^ 10 % 1000\n"
            '#eval "a" ++ "b"\n#eval fib 30\n#eval IO.println "hi"'
        }
    )
    assert [data for _, data in messages(answer)] == [
        "42",
        "0",
        "-10",
        "24",
        '"ab"',
        "832040",
        "hi",
    ]
    assert answer["messages"][0]["pos"] == {"line": 6, "column": 0}
    assert answer["messages"][0]["endPos"] == {"line": 6, "column": 5}


def test_check_prints_signatures_and_expression_types(start):
    repl = start()
    answer = repl.request(
        {
            "cmd": "def f := 37\ntheorem demo (a b : Nat) : a + b = b + a := by omega\n"
            "#check f\n#check demo\n#check 2 + 2\n#check (rfl : f = 37)"
        }
    )
    assert messages(answer) == [
        ("info", "f : Nat"),
        ("info", "demo (a b : Nat) : a + b = b + a"),
        ("info", "2 + 2 : Nat"),
        ("info", "rfl : f = f"),
    ]


def test_unknown_identifier_is_reported_at_its_range(start):
    repl = start()
    answer = repl.request({"cmd": "def f := 1\n#check g\n#eval f + h"})
    assert answer["messages"] == [
        {
            "severity": "error",
            "pos": {"line": 2, "column": 7},
            "endPos": {"line": 2, "column": 8},
            "data": "Unknown identifier `g`",
        },
        {
            "severity": "error",
            "pos": {"line": 3, "column": 10},
            "endPos": {"line": 3, "column": 11},
            "data": "Unknown identifier `h`",
        },
    ]


def test_redeclaring_a_name_in_the_env_chain_is_already_declared(start):
    repl = start()
    repl.request({"cmd": "namespace A\ndef f := 1\nend A"})
    answer = repl.request({"cmd": "def A.f := 2", "env": 0})
    assert answer["messages"] == [
        {
            "severity": "error",
            "pos": {"line": 1, "column": 4},
            "endPos": {"line": 1, "column": 7},
            "data": "`A.f` has already been declared",
        }
    ]
    assert repl.request({"cmd": "def A.f := 2"}) == {"env": 2}


def test_docstring_query_answers_with_the_docstring(start):
    repl = start()
    repl.request({"cmd": "/-- Doubles `n`. -/\ndef double (n : Nat) := 2 * n\ndef plain := 1"})
    query = (
        "open Lean in\n#eval show MetaM Unit from do\n"
        '  let doc ← findDocString? (← getEnv) `{}\n  logInfo m!"{{doc}}"'
    )
    answer = repl.request({"cmd": query.format("double"), "env": 0})
    assert messages(answer) == [("info", "Doubles `n`.")]
    assert answer["messages"][0]["pos"] == {"line": 2, "column": 0}
    assert "messages" not in repl.request({"cmd": query.format("plain"), "env": 0})
    assert messages(repl.request({"cmd": query.format("Nat"), "env": 0}))


def test_namespaces_sections_and_open(start):
    repl = start()
    answer = repl.request(
        {
            "cmd": "namespace Geo\ndef area (w h : Nat) := w * h\nend Geo\nsection\nopen Geo\n"
            "#eval area 3 4\nend\n#eval Geo.area 2 2\nend Geo"
        }
    )
    assert messages(answer) == [
        ("info", "12"),
        ("info", "4"),
        ("error", "invalid 'end', insufficient scopes"),
    ]


def test_set_option_accepts_known_options_and_rejects_unknown_ones(start):
    repl = start()
    answer = repl.request(
        {"cmd": "set_option pp.all true\nset_option maxHeartbeats 400000\nset_option pp.bogus true"}
    )
    assert answer["messages"] == [
        {
            "severity": "error",
            "pos": {"line": 3, "column": 0},
            "endPos": {"line": 3, "column": 24},
            "data": "unknown option 'pp.bogus'",
        }
    ]
    repl.request({"cmd": "set_option pp.universes true"})
    printed = repl.request({"cmd": "#print List.cons", "env": 1})
    assert messages(printed) == [
        ("info", "constructor List.cons.{u} : {α : Type u} → α → List.{u} α → List.{u} α")
    ]


def test_imports_only_without_env_and_at_the_start(start):
    repl = start()
    assert repl.request({"cmd": "import Lean\nimport Mathlib.Tactic\ndef f := 1"}) == {"env": 0}
    wrong = "invalid 'import' command, it must be used in the beginning of the file"
    assert messages(repl.request({"cmd": "import Lean", "env": 0})) == [("error", wrong)]
    assert messages(repl.request({"cmd": "def g := 1\nimport Lean"})) == [("error", wrong)]
    fresh = repl.request({"cmd": "import Lean\n#eval f"})
    assert messages(fresh) == [("error", "Unknown identifier `f`")]


# ---------------------------------------------------------------------------------------------
# A missing import: silent, and an empty environment (as the real REPL answers)
# ---------------------------------------------------------------------------------------------

#: Lean's processHeader message, as a REPL with leanprover-community/repl PR #73 shows it.
MISSING = (
    "unknown module prefix 'NoSuchModule'\n\nNo directory 'NoSuchModule' or file "
    "'NoSuchModule.olean' in the search path entries:\n/fake-lean/lib/lean"
)


def test_a_missing_import_is_a_bare_env_in_which_not_even_nat_exists(start):
    repl = start()
    assert repl.request({"cmd": "import NoSuchModule"}) == {"env": 0}
    assert messages(repl.request({"cmd": "#check Nat", "env": 0})) == [
        ("error", "Unknown identifier `Nat`")
    ]
    assert messages(repl.request({"cmd": "#eval 2 + 2", "env": 0}))[0][0] == "error"
    assert messages(repl.request({"cmd": "#print axioms Nat", "env": 0})) == [
        ("error", "Unknown constant `Nat`")
    ]
    # One missing module fails the whole header: Mathlib is not loaded either.
    mixed = repl.request({"cmd": "import Mathlib\nimport NoSuchModule\n#check Nat"})
    assert messages(mixed) == [("error", "Unknown identifier `Nat`")]
    # What the env declares itself still exists.
    own = repl.request({"cmd": "axiom A : Type\n#check A", "env": 0})
    assert messages(own) == [("info", "A : Type")]


def test_known_modules_still_import(start):
    repl = start()
    for header in ("import Init", "import Lean", "import Mathlib", "import Mathlib.Tactic"):
        answer = repl.request({"cmd": f"{header}\n#check Nat"})
        assert messages(answer) == [("info", "Nat : Type")], header


def test_a_bare_env_stays_bare_through_a_pickle(start, tmp_path):
    repl = start()
    repl.request({"cmd": "import NoSuchModule"})
    repl.request({"pickleTo": str(tmp_path / "bare.olean"), "env": 0})
    other = start()
    assert other.request({"unpickleEnvFrom": str(tmp_path / "bare.olean")}) == {"env": 0}
    assert messages(other.request({"cmd": "#check Nat", "env": 0}))[0][0] == "error"


def test_the_flag_reports_the_missing_import_like_a_fixed_repl(start):
    repl = start("--report-import-errors")
    answer = repl.request({"cmd": "import Lean\nimport NoSuchModule Other"})
    assert answer == {
        "messages": [
            {
                "severity": "error",
                "pos": {"line": 1, "column": 0},
                "endPos": None,
                "data": MISSING,
            }
        ],
        "env": 0,
    }
    assert messages(repl.request({"cmd": "#check Nat", "env": 0}))[0][0] == "error"
    assert repl.request({"cmd": "import Mathlib"}) == {"env": 2}


# ---------------------------------------------------------------------------------------------
# #print axioms: Lean's one info message, axioms collected transitively and sorted by Name.lt
# ---------------------------------------------------------------------------------------------

SORRY_USED = ("warning", "declaration uses `sorry`")


def axioms_of(repl, cmd: str, name: str, env: int | None = None) -> tuple[list, list]:
    """Elaborate `cmd`, then `#print axioms name` on its env: (cmd's messages, the print's)."""
    answer = repl.request({"cmd": cmd} if env is None else {"cmd": cmd, "env": env})
    printed = repl.request({"cmd": f"#print axioms {name}", "env": answer["env"]})
    return messages(answer), printed["messages"]


def test_print_axioms_is_one_info_on_the_print_token(start):
    repl = start()
    _, printed = axioms_of(repl, "theorem two : 1 + 1 = 2 := rfl", "two")
    assert printed == [
        {
            "severity": "info",
            "pos": {"line": 1, "column": 0},
            "endPos": {"line": 1, "column": 6},
            "data": "'two' does not depend on any axioms",
        }
    ]


@pytest.mark.parametrize(
    ("cmd", "name"),
    [
        ("theorem t : 1 = 1 := by\n  have h : 2 = 2 := by sorry\n  rfl", "t"),
        ("theorem t : 1 = 1 := by\n  have h : 2 = 2 := sorry\n  rfl", "t"),
        ("theorem t : True := by\n  admit", "t"),
        ("theorem t (p : Prop) : p := by\n  exact sorry", "t"),
    ],
)
def test_a_sorry_anywhere_in_a_proof_is_sorry_ax(start, cmd, name):
    found, printed = axioms_of(start(), cmd, name)
    assert found == [SORRY_USED]
    assert printed[0]["data"] == f"'{name}' depends on axioms: [sorryAx]"


def test_a_sorry_in_decreasing_by_is_sorry_ax(start):
    repl = start()
    cmd = "def f (n : Nat) : Nat := if n = 0 then 0 else f (n - 1)\ndecreasing_by sorry"
    answer = repl.request({"cmd": cmd})
    assert messages(answer) == [SORRY_USED]
    assert answer["messages"][0]["pos"] == {"line": 1, "column": 4}
    assert answer["sorries"][0]["goal"] == "n : Nat\n⊢ n - 1 < n"
    printed = repl.request({"cmd": "#print axioms f", "env": 0})
    assert messages(printed) == [("info", "'f' depends on axioms: [sorryAx]")]
    proved = "def g (n : Nat) : Nat := if n = 0 then 0 else g (n - 1)\ndecreasing_by omega"
    found, printed = axioms_of(repl, proved, "g")
    assert found == [] and printed[0]["data"] == "'g' depends on axioms: [propext]"


def test_a_sorry_in_an_instance_field_is_sorry_ax(start):
    repl = start()
    cmd = "class Shape where\n  sides : Nat\ninstance : Shape where\n  sides := sorry"
    answer = repl.request({"cmd": cmd})
    assert messages(answer) == [SORRY_USED]
    assert answer["messages"][0]["pos"] == {"line": 3, "column": 0}
    assert answer["sorries"][0]["goal"] == "⊢ Nat"
    printed = repl.request({"cmd": "#print axioms instShape", "env": 0})
    assert messages(printed) == [("info", "'instShape' depends on axioms: [sorryAx]")]


def test_a_user_axiom_counts_used_directly_and_through_a_lemma(start):
    repl = start()
    base = repl.request({"cmd": "axiom cheat : False"})
    assert base == {"env": 0}
    cmd = (
        "theorem direct : 1 = 2 := cheat.elim\n"
        "theorem lemma1 : 1 = 2 := by exact absurd cheat id\n"
        "theorem through : 2 = 1 := by\n  have h := lemma1\n  simp [h]"
    )
    answer = repl.request({"cmd": cmd, "env": 0})
    assert "messages" not in answer
    for name, listed in [
        ("cheat", "cheat"),
        ("direct", "cheat"),
        ("lemma1", "cheat"),
        ("through", "cheat, propext"),
    ]:
        printed = repl.request({"cmd": f"#print axioms {name}", "env": answer["env"]})
        assert messages(printed) == [("info", f"'{name}' depends on axioms: [{listed}]")]


def test_axioms_are_sorted_like_leans_name_lt(start):
    # Shorter names first, then component by component (propext before Classical.choice).
    cmd = (
        "axiom Zeta : True\naxiom cheat : False\n"
        "theorem mix (p : Prop) : p ∨ ¬p := by\n"
        "  have a := Zeta\n  have b : False := cheat\n  have c : 1 = 1 := by sorry\n"
        "  exact Classical.em p"
    )
    _, printed = axioms_of(start(), cmd, "mix")
    assert printed[0]["data"] == (
        "'mix' depends on axioms: [Zeta, cheat, propext, sorryAx, Classical.choice, Quot.sound]"
    )


@pytest.mark.parametrize(
    ("version", "listed"),
    [
        ([], "t._native.native_decide.ax_1_1"),  # the 4.3x era: one axiom per evaluation
        (["--lean-version", "4.29.0"], "t._native.native_decide.ax_1_1"),
        (["--lean-version", "4.28.0"], "Lean.ofReduceBool, Lean.trustCompiler"),
        (["--lean-version", "4.19.0"], "Lean.ofReduceBool, Lean.trustCompiler"),
        (["--lean-version", "4.2.0"], "Lean.ofReduceBool"),
    ],
)
def test_native_decide_leaves_the_axioms_of_the_lean_version(start, version, listed):
    found, printed = axioms_of(start(*version), "theorem t : 2 + 2 = 4 := by native_decide", "t")
    assert found == [] and printed[0]["data"] == f"'t' depends on axioms: [{listed}]"


def test_each_native_evaluation_is_its_own_axiom_and_a_constant(start):
    repl = start()
    cmd = "theorem t : 2 + 2 = 4 := by\n  have : 1 = 1 := by decide +native\n  native_decide"
    _, printed = axioms_of(repl, cmd, "t")
    assert printed[0]["data"] == (
        "'t' depends on axioms: [t._native.decide.ax_1_1, t._native.native_decide.ax_1_1]"
    )
    check = repl.request({"cmd": "#check t._native.native_decide.ax_1_1", "env": 0})
    assert messages(check) == [
        ("info", "t._native.native_decide.ax_1_1 : decide (2 + 2 = 4) = true")
    ]


@pytest.mark.parametrize(
    ("proof", "listed"),
    [
        ("rfl", None),
        ("by rfl", None),
        ("by decide", None),
        ("by exact rfl", None),
        ("by simp", "propext"),
        ("by omega", "propext"),
        ("by norm_num", "propext"),
        ("by\n  by_contra h\n  exact h rfl", "propext, Classical.choice, Quot.sound"),
    ],
)
def test_tactics_leave_plausible_standard_axioms(start, proof, listed):
    found, printed = axioms_of(start(), f"theorem t : 2 + 2 = 4 := {proof}", "t")
    assert found == []
    expected = f"depends on axioms: [{listed}]" if listed else "does not depend on any axioms"
    assert printed[0]["data"] == f"'t' {expected}"


def test_classical_proofs_depend_on_the_standard_three(start):
    repl = start()
    three = "propext, Classical.choice, Quot.sound"
    standard = f"depends on axioms: [{three}]"
    for cmd in [
        "theorem t (p : Prop) : p ∨ ¬p := Classical.em p",
        "open Classical in\ntheorem t (p : Prop) : p ∨ ¬p := em p",
        "theorem t (p : Prop) (h : ¬¬p) : p := by\n  by_cases hp : p\n  · exact hp\n"
        "  · exact absurd hp h",
    ]:
        _, printed = axioms_of(repl, cmd, "t")
        assert printed[0]["data"] == f"'t' {standard}", cmd
    for name, listed in [("propext", "propext"), ("Classical.em", three)]:
        _, printed = axioms_of(repl, "", name)
        assert printed[0]["data"] == f"'{name}' depends on axioms: [{listed}]"


def test_unknown_names_and_namespaces(start):
    repl = start()
    found, printed = axioms_of(
        repl, "namespace Foo\ntheorem bar : True := trivial\nend Foo", "nope"
    )
    assert printed == [
        {
            "severity": "error",
            "pos": {"line": 1, "column": 14},
            "endPos": {"line": 1, "column": 18},
            "data": "Unknown constant `nope`",
        }
    ]
    printed = repl.request({"cmd": "#print axioms Foo.bar", "env": 0})
    assert messages(printed) == [("info", "'Foo.bar' does not depend on any axioms")]


def test_a_proof_with_an_error_is_added_with_sorry_ax_like_lean(start):
    found, printed = axioms_of(start(), "theorem t : 2 + 2 = 5 := by decide", "t")
    assert found[0][0] == "error"
    assert printed[0]["data"] == "'t' depends on axioms: [sorryAx]"


@pytest.mark.parametrize(
    "cmd",
    [
        "def one := 1\n@[implemented_by one] def zero : Nat := 0",
        '@[extern "lean_fast"] def fast (n : Nat) : Nat := n',
        "unsafe def raw : Nat := 1",
        "set_option debug.skipKernelTC true in\ntheorem t : True := trivial",
        "set_option debug.skipKernelTC true\ntheorem t : True := trivial",
        "opaque secret : Nat",
    ],
)
def test_escapes_elaborate_silently_like_lean(start, cmd):
    assert start().request({"cmd": cmd}) == {"env": 0}


@pytest.mark.parametrize(
    ("statement", "ok"),
    [
        ("∀ (n : Nat), n + 0 = n", True),
        ("∀ (m : Nat)\n  , m + 0 = m", True),  # another binder name, the verdict's layout
        ("∀ n : Nat, n + 0 = n", True),
        ("∀ (n : Nat), (n + 0) = n", True),
        ("∀ (n : Nat), 0 + n = n", False),  # `0 + n` does not unfold on a variable
        ("∀ (n : Nat), n + 1 = n + 1", False),
        ("0 + 0 = 0", False),
        ("True", False),
    ],
)
def test_a_statement_check_is_up_to_definitional_equality_like_lean(start, statement, ok):
    repl = start()
    repl.request({"cmd": "theorem add_zero (n : Nat) : n + 0 = n := rfl"})
    answer = repl.request({"cmd": f"example : {statement}\n  := @add_zero", "env": 0})
    assert ("messages" not in answer) == ok, answer


def test_a_weakened_statement_is_a_type_mismatch(start):
    repl = start()
    repl.request({"cmd": "theorem small : 2 ^ 10 = 1024 := by decide"})
    assert repl.request({"cmd": "example : 1024 = 1024 := @small", "env": 0}) == {"env": 1}
    answer = repl.request({"cmd": "example : 2 ^ 10 = 1025 := @small", "env": 0})
    assert answer["messages"] == [
        {
            "severity": "error",
            "pos": {"line": 1, "column": 27},
            "endPos": {"line": 1, "column": 33},
            "data": "type mismatch\n  @small\nhas type\n  2 ^ 10 = 1024 : Prop\nbut is "
            "expected to have type\n  2 ^ 10 = 1025 : Prop",
        }
    ]


def test_axioms_survive_a_pickle(start, tmp_path):
    repl = start()
    repl.request({"cmd": "axiom cheat : False\ntheorem t : 1 = 2 := cheat.elim"})
    repl.request({"pickleTo": str(tmp_path / "env.olean"), "env": 0})
    other = start()
    other.request({"unpickleEnvFrom": str(tmp_path / "env.olean")})
    printed = other.request({"cmd": "#print axioms t", "env": 0})
    assert messages(printed) == [("info", "'t' depends on axioms: [cheat]")]


def test_sorry_reports_goal_proof_state_and_warning_at_the_name(start):
    repl = start()
    answer = repl.request({"cmd": "theorem foo (x : Int) (h : x  = 2) : x = 2 := by sorry"})
    assert answer["sorries"] == [
        {
            "proofState": 0,
            "pos": {"line": 1, "column": 49},
            "endPos": {"line": 1, "column": 54},
            "goal": "x : Int\nh : x = 2\n⊢ x = 2",
        }
    ]
    assert answer["messages"][0]["pos"] == {"line": 1, "column": 8}
    assert messages(answer) == [("warning", "declaration uses `sorry`")]
    example = repl.request({"cmd": "example : True := sorry"})
    assert example["messages"][0]["endPos"] == {"line": 1, "column": 7}


def test_by_blocks_report_failures_like_lean(start):
    repl = start()
    answer = repl.request(
        {
            "cmd": "example : 2 + 2 = 4 := by decide\n"
            "example : 2 + 2 = 5 := by decide\n"
            "def f : Nat := by apply Nat.succ\n"
            "example : True := by\n  exact nothing\n"
            "example (p q : Prop) (hp : p) (hq : q) : p ∧ q := by\n  constructor <;> assumption"
        }
    )
    assert messages(answer) == [
        ("error", "Tactic `decide` proved that the proposition\n  2 + 2 = 5\nis false"),
        ("error", "unsolved goals\n⊢ Nat"),
        ("error", "Unknown identifier `nothing`"),
    ]
    assert answer["messages"][1]["pos"] == {"line": 3, "column": 15}
    assert answer["messages"][1]["endPos"] == {"line": 3, "column": 32}


def test_tactic_mode_transforms_and_closes_goals(start):
    repl = start()
    repl.request({"cmd": "theorem t (p q : Prop) : p → q → p ∧ q := by sorry"})
    step = repl.request({"tactic": "intro hp hq", "proofState": 0})
    assert step["goals"] == ["p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q"]
    split = repl.request({"tactic": "constructor", "proofState": step["proofState"]})
    assert split["goals"] == [
        "case left\np q : Prop\nhp : p\nhq : q\n⊢ p",
        "case right\np q : Prop\nhp : p\nhq : q\n⊢ q",
    ]
    done = repl.request({"tactic": "all_goals assumption", "proofState": split["proofState"]})
    assert done == {"proofState": 3, "goals": [], "proofStatus": "Completed"}


def test_tactic_mode_by_cases_as_in_the_real_repl(start):
    repl = start()
    repl.request({"cmd": "theorem foo (x : Int) : x = x := by sorry"})
    cases = repl.request({"proofState": 0, "tactic": "by_cases h : x < 0"})
    assert cases["goals"] == [
        "case pos\nx : Int\nh : x < 0\n⊢ x = x",
        "case neg\nx : Int\nh : ¬x < 0\n⊢ x = x",
    ]
    assert repl.request({"proofState": 1, "tactic": "case pos => rfl"})["goals"] == [
        "case neg\nx : Int\nh : ¬x < 0\n⊢ x = x"
    ]


def test_tactic_mode_errors(start):
    repl = start()
    repl.request({"cmd": "theorem t (x : Nat) : x = x := by sorry\ntheorem u : False := sorry"})
    unknown_id = repl.request({"tactic": "exact my_fake_premise", "proofState": 0})
    assert unknown_id["proofStatus"] == "Incomplete: contains sorry"
    assert unknown_id["messages"] == [
        {
            "severity": "error",
            "pos": {"line": 0, "column": 0},
            "endPos": {"line": 0, "column": 0},
            "data": "Unknown identifier `my_fake_premise`",
        }
    ]
    assert repl.request({"tactic": "exat 42", "proofState": 0}) == {
        "message": "Lean error:\n<input>:1:1: unknown tactic"
    }
    assert repl.request({"tactic": "exact?", "proofState": 1}) == {
        "message": "Lean error:\n`exact?` could not close the goal. Try `apply?` to see partial "
        "suggestions."
    }
    assert repl.request({"tactic": "rfl", "proofState": 0})["proofState"] == 3


def test_circular_proofs_are_rejected(start):
    repl = start()
    answer = repl.request({"cmd": "theorem ex : False := by exact ex"})
    assert answer["messages"][0]["data"].startswith("fail to show termination for\n  ex\n")
    repl.request({"cmd": "theorem ex : False := sorry"})
    status = repl.request({"proofState": 0, "tactic": "exact ex"})["proofStatus"]
    assert status.startswith("Error: kernel type check failed")


def test_file_mode_elaborates_a_file_on_an_env(start, tmp_path):
    (tmp_path / "demo.lean").write_text("#check demo\n\n#check f\n")
    repl = start()
    repl.request({"cmd": "def f : Nat := 1"})
    repl.request({"cmd": "theorem demo (a b: Nat): a + b = b + a := by omega", "env": 0})
    answer = repl.request({"path": "demo.lean", "env": 1})
    assert answer["env"] == 2
    assert messages(answer) == [("info", "demo (a b : Nat) : a + b = b + a"), ("info", "f : Nat")]


def test_fork_only_options(start):
    cmd = "/-- Doc. -/\ndef answer (n : Nat) : Nat := n + 42"
    fork = start()
    decls = fork.request({"cmd": cmd, "declarations": True})["declarations"]
    assert [(d["name"], d["kind"], d["modifiers"]["docString"]["content"]) for d in decls] == [
        ("answer", "definition", "Doc.")
    ]
    check = {"cmd": "#check 1", "setOptions": [[["pp", "numericTypes"], True]]}
    assert messages(fork.request(check)) == [("info", "(1 : Nat) : Nat")]
    upstream = start("--flavor", "upstream")
    assert upstream.request({"cmd": cmd, "declarations": True}) == {"env": 0}
    assert messages(upstream.request(check)) == [("info", "1 : Nat")]


def test_infotree_lists_tactic_nodes(start):
    repl = start()
    answer = repl.request({"cmd": "def f (h : Int) : Nat := by constructor", "infotree": "full"})
    node = answer["infotree"][0]["node"]
    assert node["stx"]["pp"] == "constructor"
    assert node["goalsBefore"] == ["h : Int\n⊢ Nat"]
    assert node["goalsAfter"] == []


# ---------------------------------------------------------------------------------------------
# Pickling
# ---------------------------------------------------------------------------------------------


def test_pickled_env_is_restored_in_another_process(start, tmp_path):
    first = start()
    first.request({"cmd": "import Lean\nnamespace X\ndef f := 42\nend X\nopen X"})
    assert first.request({"env": 0, "pickleTo": str(tmp_path / "env.olean")}) == {"env": 0}
    second = start()
    second.request({"cmd": "def unrelated := 1"})
    assert second.request({"unpickleEnvFrom": str(tmp_path / "env.olean")}) == {"env": 1}
    assert messages(second.request({"cmd": "#eval f", "env": 1})) == [("info", "42")]
    clash = second.request({"cmd": "def X.f := 1", "env": 1})
    assert messages(clash) == [("error", "`X.f` has already been declared")]


def test_pickled_proof_state_is_restored_with_a_new_id(start, tmp_path):
    repl = start()
    repl.request({"cmd": "def f : Nat := by sorry"})
    path = str(tmp_path / "ps.olean")
    pickled = repl.request({"pickleTo": path, "proofState": 0})
    assert pickled == {"proofState": 1, "goals": ["⊢ Nat"], "proofStatus": pickled["proofStatus"]}
    restored = start()
    assert restored.request({"unpickleProofStateFrom": path})["proofState"] == 0
    assert restored.request({"unpickleProofStateFrom": path, "env": 0}) == {
        "message": "Unknown environment."
    }
    assert restored.request({"tactic": "exact 37", "proofState": 0})["proofStatus"] == "Completed"


def test_unpickling_a_missing_file_ends_the_process(start, tmp_path):
    repl = start()
    repl.send({"unpickleEnvFrom": str(tmp_path / "missing.olean")})
    assert repl.wait() == 1
    assert b"uncaught exception: " in repl.stderr()
    assert b"no such file or directory" in repl.stderr()


# ---------------------------------------------------------------------------------------------
# Fault injection
# ---------------------------------------------------------------------------------------------


def test_fake_crash_exits_with_the_code_and_a_panic_line_without_answering(start):
    repl = start()
    assert repl.request({"cmd": "def f := 1"}) == {"env": 0}
    repl.send({"cmd": "def g := 2\n#fake_crash 7", "env": 0})
    assert repl.wait() == 7
    assert b"PANIC" in repl.stderr()
    with pytest.raises(EOFError):
        repl.read_raw(timeout=5)


def test_fake_crash_default_code_and_in_tactic_mode(start):
    repl = start()
    repl.request({"cmd": "def f : Nat := by sorry"})
    repl.send({"tactic": "#fake_crash", "proofState": 0})
    assert repl.wait() == 1


def test_fake_hang_never_answers(start):
    repl = start()
    repl.send({"cmd": "#fake_hang"})
    with pytest.raises(TimeoutError):
        repl.read_raw(timeout=1.0)
    assert repl.proc.poll() is None
    repl.kill()


def test_fake_sleep_delays_then_answers_normally(start):
    repl = start()
    repl.request({"cmd": "def f := 1"})
    elapsed, answer = repl.timed({"cmd": "#fake_sleep 0.6\n#eval f", "env": 0})
    assert elapsed >= 0.55
    assert messages(answer) == [("info", "1")]
    assert answer["messages"][0]["pos"] == {"line": 2, "column": 0}


def test_fake_garbage_is_a_framed_non_json_block_and_the_repl_goes_on(start):
    repl = start()
    repl.send({"cmd": "#fake_garbage"})
    garbage = repl.read_raw()
    with pytest.raises(ValueError):
        json.loads(garbage)
    assert repl.request({"cmd": "def f := 1"}) == {"env": 0}


def test_fake_stderr_writes_that_many_bytes_then_answers(start):
    repl = start()
    assert repl.request({"cmd": "#fake_stderr 300000\ndef f := 1"}) == {"env": 0}
    assert len(repl.stderr()) == 300000


def test_fake_memory_is_resident_grows_gradually_and_is_held(start):
    repl = start()
    repl.request({"cmd": "def f := 1"})
    process = psutil.Process(repl.proc.pid)
    before = process.memory_info().rss
    repl.send({"cmd": "#fake_memory 160 1.0", "env": 0})
    time.sleep(0.4)
    partway = process.memory_info().rss
    assert json.loads(repl.read_raw()) == {"env": 1}
    after = process.memory_info().rss
    assert after - before >= 150 * 2**20
    assert partway < after - 40 * 2**20
    time.sleep(0.2)
    assert process.memory_info().rss >= after - 10 * 2**20


def test_crash_after_n_requests(start):
    repl = start("--crash-after", "3")
    assert repl.request({"cmd": "def f := 1"}) == {"env": 0}
    assert repl.request({"cmd": "def g := 1"}) == {"env": 1}
    repl.send({"cmd": "def h := 1"})
    assert repl.wait() == 1
    assert b"PANIC" in repl.stderr()


def test_memory_baseline_is_allocated_at_start(start):
    small = start()
    big = start("--memory-baseline", "120")
    small.request({"cmd": "def f := 1"})
    big.request({"cmd": "def f := 1"})
    small_rss = psutil.Process(small.proc.pid).memory_info().rss
    big_rss = psutil.Process(big.proc.pid).memory_info().rss
    assert big_rss - small_rss >= 100 * 2**20


# ---------------------------------------------------------------------------------------------
# Cost model
# ---------------------------------------------------------------------------------------------

HEADER = "import Mathlib\n"
BODY = "".join(f"theorem t{i} : {i} + 0 = {i} := by simp\n" for i in range(14))


def test_import_cost_is_paid_by_each_import_command(start):
    repl = start("--import-cost", "0.8")
    first, answer = repl.timed({"cmd": HEADER})
    assert answer == {"env": 0}
    assert first >= 0.75
    on_env, _ = repl.timed({"cmd": "def f := 1", "env": 0})
    assert on_env < 0.4
    again, _ = repl.timed({"cmd": HEADER + "def g := 1"})
    assert again >= 0.75


def test_char_cost_charges_every_elaborated_character(start):
    repl = start("--char-cost", "0.002")
    repl.request({"cmd": "def warm := 1"})
    elapsed, _ = repl.timed({"cmd": BODY})
    assert len(BODY) * 0.002 * 0.9 <= elapsed


def test_fork_reuses_a_prefix_shared_on_the_same_parent_env(start):
    repl = start("--char-cost", "0.002", "--import-cost", "0.5")
    full_cost = 0.5 + len(HEADER + BODY) * 0.002
    first, _ = repl.timed({"cmd": HEADER + BODY, "incrementality": True})
    assert first >= 0.9 * full_cost
    edited, _ = repl.timed({"cmd": HEADER + BODY + "#eval 1", "incrementality": True})
    assert edited < 0.4 * full_cost
    header_only, _ = repl.timed({"cmd": HEADER + "#eval 2", "incrementality": True})
    assert header_only < 0.4 * full_cost
    without_flag, _ = repl.timed({"cmd": HEADER + BODY + "#eval 3"})
    assert without_flag >= 0.9 * full_cost


def test_prefix_reuse_is_per_parent_env(start):
    repl = start("--char-cost", "0.002")
    repl.request({"cmd": "def a := 1"})
    repl.request({"cmd": "def b := 1"})
    repl.timed({"cmd": BODY, "env": 0, "incrementality": True})
    same_parent, _ = repl.timed({"cmd": BODY + "#eval 1", "env": 0, "incrementality": True})
    other_parent, _ = repl.timed({"cmd": BODY + "#eval 1", "env": 1, "incrementality": True})
    assert same_parent < 0.4 * len(BODY) * 0.002
    assert other_parent >= 0.9 * len(BODY) * 0.002


def test_upstream_flavor_ignores_incrementality(start):
    repl = start("--char-cost", "0.002", "--flavor", "upstream")
    repl.timed({"cmd": BODY, "incrementality": True})
    again, answer = repl.timed({"cmd": BODY + "#eval 1", "incrementality": True})
    assert again >= len(BODY) * 0.002 * 0.9
    assert messages(answer) == [("info", "1")]


def test_flags_are_read_from_the_environment_variable(start):
    repl = start(env={"FAKE_REPL_ARGS": "--import-cost 0.5 --flavor=upstream"})
    elapsed, _ = repl.timed({"cmd": "import Lean"})
    assert elapsed >= 0.45


def test_bad_flags_are_a_usage_error(tmp_path):
    done = run_script("", "--flavor", "nightly", cwd=tmp_path)
    assert done.returncode == 2
    assert "usage" in done.stderr


# ---------------------------------------------------------------------------------------------
# Request log
# ---------------------------------------------------------------------------------------------


def test_log_has_one_json_line_per_request_received(start, tmp_path):
    log = tmp_path / "requests.jsonl"
    repl = start("--log", str(log))
    before = time.time()
    repl.request({"cmd": "def f := 1"})
    repl.send_raw("-- just a comment\n\n")
    repl.request({"tactic": "rfl", "proofState": 0})
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["request"] for e in entries] == [
        {"cmd": "def f := 1"},
        "-- just a comment",
        {"tactic": "rfl", "proofState": 0},
    ]
    assert {e["pid"] for e in entries} == {repl.proc.pid}
    assert all(before <= e["t"] <= time.time() for e in entries)
    assert all(e["elapsed"] >= 0 for e in entries)


# ---------------------------------------------------------------------------------------------
# Real REPL transcripts
# ---------------------------------------------------------------------------------------------

# Transcripts whose commands lie in the fake's subset. Left out: app_type_mismatch and
# app_type_mismatch2 (kernel checks of metavariable-laden proofs), infotree (unused-variables
# linter), no_goal_sorry (elaboration of `set Nat`); pickle_scoped_notation* have no answers.
SHAPE_COVERED = [
    "all_tactics",
    "all_tactics-20250622",
    "assumption_proof",
    "by_cases",
    "def_eval",
    "dup_msg",
    "dup_sorries",
    "file",
    "file2",
    "file_env",
    "import_lean",
    "incomplete",
    "invalid_line_break",
    "invalid_tactic",
    "line_breaks",
    "no_goal_sorry_2",
    "options",
    "pickle_environment",
    "pickle_environment_with_imports",
    "pickle_open",
    "pickle_open_2",
    "pickle_open_scoped",
    "pickle_proof_state_1",
    "pickle_proof_state_2",
    "pickle_proof_state_env",
    "proof_branching",
    "proof_step",
    "proof_transitivity",
    "readme",
    "root_goals",
    "self_proof_apply_check",
    "self_proof_check",
    "self_proof_exact_check",
    "self_proof_rw",
    "sorry_hypotheses",
    "synthesize_placeholder",
    "tactic_mode_sorry",
    "tactic_sorry",
    "term_sorry",
    "unfinished_tactic_block",
    "unknown_environment",
    "unknown_proof_state",
    "unknown_tactic",
]
# The covered transcripts the fake reproduces byte for byte; the others differ only in texts
# the fake cannot know (usedConstants, `exact?` suggestions, kernel error expressions).
BYTE_EXACT = sorted(
    set(SHAPE_COVERED)
    - {"all_tactics", "file", "file2", "root_goals", "self_proof_check", "self_proof_rw"}
)
# Transcripts that read a pickle written by another transcript.
PREREQUISITE = {"pickle_open_2": "pickle_open", "pickle_proof_state_2": "pickle_proof_state_1"}

needs_transcripts = pytest.mark.skipif(
    not TRANSCRIPTS.is_dir(), reason=f"real REPL transcripts not found at {TRANSCRIPTS}"
)


def replay(name: str, workdir: Path) -> tuple[list[str], list[str]]:
    """Feed NAME.in to a fresh fake in `workdir`; return (expected, actual) answer texts."""
    (workdir / "test").mkdir(exist_ok=True)
    for lean in TRANSCRIPTS.glob("*.lean"):
        shutil.copy(lean, workdir / "test" / lean.name)
    if name in PREREQUISITE:
        replay(PREREQUISITE[name], workdir)
    done = run_script((TRANSCRIPTS / f"{name}.in").read_text(), cwd=workdir)
    assert done.returncode == 0, done.stderr
    expected = (TRANSCRIPTS / f"{name}.expected.out").read_text()
    return expected.split("\n\n")[:-1], done.stdout.split("\n\n")[:-1]


def shape(value: object, key: str | None = None) -> object:
    """Keys, id numbering and severities; other leaves reduced to their type."""
    if key in ("env", "proofState", "severity"):
        return value
    if key == "proofStatus":
        return value.split(":")[0]
    if key == "usedConstants":
        return "constants"
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


@needs_transcripts
@pytest.mark.parametrize("name", SHAPE_COVERED)
def test_transcript_answers_have_the_real_shape(name, tmp_path):
    expected, actual = replay(name, tmp_path)
    assert [shape(json.loads(a)) for a in actual] == [shape(json.loads(e)) for e in expected]


@needs_transcripts
@pytest.mark.parametrize("name", BYTE_EXACT)
def test_transcript_answers_are_reproduced_byte_for_byte(name, tmp_path):
    expected, actual = replay(name, tmp_path)
    assert actual == expected


# ---------------------------------------------------------------------------------------------
# Heartbeats: Lean's maxHeartbeats, with the cost model as the work done
# ---------------------------------------------------------------------------------------------

#: Lean's text (throwMaxHeartbeat, src/Lean/CoreM.lean, as Lean 4.2x-4.33 render it).
HEARTBEAT_ERROR = (
    "(deterministic) timeout at `whnf`, maximum number of heartbeats ({}) has been reached\n\n"
    "Note: Use `set_option maxHeartbeats <num>` to set the limit.\n\n"
    "Hint: Additional diagnostic information may be available using the `set_option "
    "diagnostics true` command."
)
SLOW_THEOREM = "theorem slow : True := by\n  #fake_sleep 5\n  trivial"


def test_command_over_max_heartbeats_stops_with_leans_exact_error(start):
    repl = start("--heartbeat-rate", "1000")
    limit = {"setOptions": [[["maxHeartbeats"], 300]]}
    assert repl.request({"cmd": "def a := 1", **limit}) == {"env": 0}
    elapsed, answer = repl.timed({"cmd": f"{SLOW_THEOREM}\ndef b := a + 1", "env": 0})
    assert answer["messages"] == [
        {
            "severity": "error",
            "pos": {"line": 1, "column": 0},
            "endPos": {"line": 3, "column": 9},
            "data": HEARTBEAT_ERROR.format(300),
        }
    ]
    assert answer["env"] == 1  # the env is returned, as Lean does
    assert 0.25 <= elapsed < 2.0  # stopped at 300 / 1000 s, not after the 5 s of work
    after = repl.request({"cmd": "#check slow\n#eval b", "env": 1})
    assert messages(after)[0] == ("error", "Unknown identifier `slow`")  # the theorem is not in
    assert messages(after)[1] == ("info", "2")  # the command after it ran


def test_set_option_in_wins_for_its_declaration_and_set_option_for_later_ones(start):
    repl = start("--heartbeat-rate", "1000")
    tight = {"setOptions": [[["maxHeartbeats"], 100]]}
    repl.request({"cmd": "def a := 1", **tight})
    inner = "theorem slow : True := by\n  #fake_sleep 0.3\n  trivial"
    answer = repl.request({"cmd": f"set_option maxHeartbeats 1000 in\n{inner}", "env": 0})
    assert "messages" not in answer
    stopped = repl.request({"cmd": inner.replace("slow", "slow2"), "env": 0})
    assert messages(stopped) == [("error", HEARTBEAT_ERROR.format(100))]
    raised = repl.request({"cmd": "set_option maxHeartbeats 0", "env": 0})  # 0: no limit
    assert "messages" not in repl.request({"cmd": inner, "env": raised["env"]})


def test_fork_set_options_only_apply_to_a_command_without_env(start):
    repl = start("--heartbeat-rate", "1000")
    repl.request({"cmd": "def a := 1"})
    ignored = {"setOptions": [[["maxHeartbeats"], 100]]}
    quick = "theorem q : True := by\n  #fake_sleep 0.3\n  trivial"
    assert "messages" not in repl.request({"cmd": quick, "env": 0, **ignored})
    # With incrementality, a header seen before keeps the options it was first elaborated with.
    first = {"cmd": "import Lean\ndef a := 1", "incrementality": True}
    repl.request(first)
    again = repl.request({**first, "cmd": f"import Lean\n{quick}", **ignored})
    assert "messages" not in again


def test_upstream_ignores_set_options_but_honours_set_option(start):
    repl = start("--heartbeat-rate", "1000", "--flavor", "upstream")
    quick = "theorem q : True := by\n  #fake_sleep 0.3\n  trivial"
    assert "messages" not in repl.request({"cmd": quick, "setOptions": [[["maxHeartbeats"], 100]]})
    limited = repl.request({"cmd": "set_option maxHeartbeats 100"})
    stopped = repl.request({"cmd": quick.replace("q", "r"), "env": limited["env"]})
    assert messages(stopped) == [("error", HEARTBEAT_ERROR.format(100))]


def test_heartbeat_error_follows_the_diagnostics_and_module_name_options(start):
    repl = start("--heartbeat-rate", "1000")
    base = repl.request({"cmd": "set_option maxHeartbeats 100\nset_option diagnostics true"})
    plain = repl.request({"cmd": SLOW_THEOREM, "env": base["env"]})
    assert messages(plain) == [("error", HEARTBEAT_ERROR.format(100).split("\n\nHint")[0])]
    quiet = repl.request({"cmd": "set_option debug.moduleNameAtTimeout false", "env": 0})
    bare = repl.request({"cmd": SLOW_THEOREM, "env": quiet["env"]})
    assert messages(bare)[0][1].startswith("(deterministic) timeout, maximum number of heartbeats")


def test_hang_stops_at_leans_default_limit_and_without_a_rate_heartbeats_are_not_counted(start):
    repl = start("--heartbeat-rate", "400000")  # Lean's default 200000 in half a second
    hang = "theorem h : True := by\n  #fake_hang\n  trivial"
    assert messages(repl.request({"cmd": hang})) == [("error", HEARTBEAT_ERROR.format(200000))]
    uncounted = start()
    uncounted.request({"cmd": "set_option maxHeartbeats 1"})
    elapsed, answer = uncounted.timed({"cmd": SLOW_THEOREM.replace("5", "0.3"), "env": 0})
    assert "messages" not in answer and elapsed >= 0.25

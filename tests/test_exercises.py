"""Exercises for teaching: ``%exercise`` in the kernel, and nbgrader's autograde scoring them.

The kernel runs on the fake REPL. A cell declaring an exercise's name must prove exactly its
statement with the verdict ``proved``, else it fails (error reply) with words a student reads;
the same magic after the answer checks it at once. The last test is a course as nbgrader keeps
one (``source/``, ``release/``, ``submitted/``, a gradebook in a temporary folder): the teacher's
notebook is released with ``nbgrader generate_assignment``, five students' submissions are
graded with ``nbgrader autograde``, and only the real proofs get points.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import wait_no_repl_processes
from kernel_harness import KernelSession, kernelspecs_on_jupyter_path

from lean_kernel.engine.verdict import DeclVerdict, Escape
from lean_kernel.kernel.exercises import (
    Exercise,
    Exercises,
    ExerciseUsageError,
    describe_axioms,
    parse_exercise,
    problem,
)

ADD_ZERO = "%exercise add_zero (n : Nat) : n + 0 = n"
PROOF = "theorem add_zero (n : Nat) : n + 0 = n := rfl"


# -- the magic's line and the words ------------------------------------------------------------


def test_exercise_line_reads_like_a_theorem_header():
    exercise = parse_exercise("add_zero (n : Nat) : n + 0 = n")
    assert exercise.name == "add_zero"
    assert exercise.statement == "∀ (n : Nat), n + 0 = n"
    assert exercise.allows == () and "Lean.ofReduceBool" not in exercise.allowed
    assert parse_exercise("two : ∀ n : Nat, n = n").statement == "∀ n : Nat, n = n"
    native = parse_exercise("big : 2 ^ 10 = 1024 --allow native_decide")
    assert native.statement == "2 ^ 10 = 1024" and native.allows == ("native_decide",)
    assert "Lean.ofReduceBool" in native.allowed


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("", "needs the name of the declaration and its statement"),
        ("add_zero", "a colon and the statement, as in a theorem"),
        ("(n : Nat) : n = n", "write the name of the declaration"),
        ("add_zero : 1 = 1 := rfl", "give the statement only"),
        ("add_zero : 1 = 1 --allow cheat", "allow takes native_decide, not 'cheat'"),
        ("add_zero : 1 = 1 --allow", "--allow goes last, with what to allow"),
    ],
)
def test_a_wrong_exercise_line_says_how_to_write_it(line, words):
    with pytest.raises(ExerciseUsageError) as caught:
        parse_exercise(line)
    assert words in str(caught.value)


def verdict(word, axioms=(), escapes=(), name="add_zero") -> DeclVerdict:
    return DeclVerdict(name, word, tuple(axioms), tuple(escapes), listed=True)


@pytest.mark.parametrize(
    ("decl", "words"),
    [
        (verdict("sorry", ["sorryAx"]), "this proof still uses sorry"),
        (
            verdict("statement changed"),
            "this proves a different statement than the exercise asks",
        ),
        (verdict("axioms", ["propext", "cheat"]), "this relies on the axiom `cheat`"),
        (verdict("axioms", ["Lean.ofReduceBool"]), "native_decide is not allowed in this exercise"),
        (
            verdict("axioms", ["add_zero._native.native_decide.ax_1_1"]),
            "native_decide is not allowed in this exercise",
        ),
        (
            verdict("escape", escapes=[Escape("implemented_by", "implemented_by f", 2, 2)]),
            "this steps outside Lean's checking: `implemented_by f` (line 2)",
        ),
        (verdict("error"), "this cell has errors: fix them first"),
        (verdict("timeout"), "Lean ran out of time checking this proof"),
        (verdict("unknown"), "could not check this proof"),
    ],
)
def test_each_verdict_but_proved_fails_an_exercise_in_a_students_words(decl, words):
    exercise = parse_exercise("add_zero (n : Nat) : n + 0 = n")
    said = problem(exercise, decl)
    assert said is not None and said.startswith("`add_zero` is not accepted: ") and words in said
    assert problem(exercise, verdict("proved", ["propext"])) is None
    assert "could not judge it" in (problem(exercise, None) or "")


def test_an_exercise_that_allows_native_decide_accepts_its_axioms_only():
    exercises = Exercises()
    exercises.add(parse_exercise("big : 2 ^ 10 = 1024 --allow native_decide"), "cell-1")
    native = verdict("axioms", ["big._native.native_decide.ax_1_1"], name="big")
    cheat = verdict("axioms", ["Lean.ofReduceBool", "cheat"], name="big")
    other = verdict("axioms", ["Lean.ofReduceBool"], name="other")
    adjusted = exercises.adjusted([native, cheat, other])
    assert [v.verdict for v in adjusted] == ["proved", "axioms", "axioms"]
    exercise = exercises.get("big")
    assert isinstance(exercise, Exercise)
    assert problem(exercise, adjusted[1]) == (
        "`big` is not accepted: this relies on the axiom `cheat`."
    )


def test_axioms_are_listed_with_what_each_means():
    text = describe_axioms("foo", ["propext", "sorryAx", "Lean.ofReduceBool", "cheat"])
    assert text.splitlines() == [
        "foo depends on 4 axioms:",
        "  propext            one of Lean's standard axioms",
        "  sorryAx            a sorry: the proof is not finished",
        "  Lean.ofReduceBool  native_decide: trusts the compiler, not the kernel",
        "  cheat              declared with `axiom`: nothing checks it",
    ]
    assert describe_axioms("foo", []) == "foo depends on no axioms."


# -- in the kernel -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory):
    with kernelspecs_on_jupyter_path(tmp_path_factory.mktemp("jupyter")) as path:
        yield path
    assert wait_no_repl_processes() == []


@pytest.fixture(scope="module")
def shared_kernel(jupyter_path):
    session = KernelSession()
    yield session
    session.close()


@pytest.fixture
def kernel(shared_kernel):
    """The module's kernel with an empty document and no exercises (``%reset``)."""
    assert shared_kernel.execute("%reset").status == "ok"
    return shared_kernel


def test_a_declared_exercise_accepts_a_real_proof(kernel):
    declared = kernel.cell(ADD_ZERO)
    assert declared.status == "ok"
    assert "must prove exactly this" in declared.plain and "add_zero (n : Nat)" in declared.plain
    answer = kernel.cell(PROOF)
    assert answer.status == "ok", answer.plain
    assert "add_zero: proved" in answer.plain
    grader = kernel.cell(ADD_ZERO)
    assert grader.status == "ok", grader.plain
    assert "answers the exercise: proved as stated" in grader.plain


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (
            "theorem add_zero (n : Nat) : n + 0 = n := by\n  sorry",
            "this proof still uses sorry",
        ),
        (
            # Weakened: an extra hypothesis. (`n = n` would be accepted: Lean checks the
            # statement up to definitional unfolding, and `n + 0` unfolds to `n`.)
            "theorem add_zero (n : Nat) (h : n = 0) : n + 0 = n := rfl",
            "this proves a different statement than the exercise asks "
            "(`add_zero (n : Nat) : n + 0 = n`)",
        ),
        (
            "axiom cheat : False\ntheorem add_zero (n : Nat) : n + 0 = n := cheat.elim",
            "this relies on the axiom `cheat`",
        ),
        (
            "theorem add_zero (n : Nat) : n + 0 = n := by\n  have h : 1 = 1 := sorry\n  rfl",
            "this proof still uses sorry",
        ),
    ],
)
def test_an_answer_that_is_not_a_proof_of_the_statement_fails_saying_why(kernel, answer, words):
    assert kernel.cell(ADD_ZERO).status == "ok"
    run = kernel.cell(answer)
    assert run.status == "error", run.plain
    assert run.reply["ename"] == "ExerciseError"
    assert run.reply["evalue"] == f"`add_zero` is not accepted: {words}."
    assert "add_zero: " in run.plain  # the badge line is shown above the error
    grader = kernel.cell(ADD_ZERO)
    assert grader.status == "error" and words in grader.reply["evalue"]


def test_native_decide_fails_an_exercise_unless_it_allows_it(kernel):
    assert kernel.cell("%exercise small : 2 ^ 10 = 1024").status == "ok"
    run = kernel.cell("theorem small : 2 ^ 10 = 1024 := by native_decide")
    assert run.status == "error", run.plain
    assert "native_decide is not allowed in this exercise" in run.reply["evalue"]
    allowed = kernel.cell("%exercise big : 2 ^ 10 = 1024 --allow native_decide")
    assert "(allowed: native_decide)" in allowed.plain
    run = kernel.cell("theorem big : 2 ^ 10 = 1024 := by native_decide")
    assert run.status == "ok", run.plain
    assert "big: proved" in run.plain


def test_a_grader_cell_without_an_answer_fails(kernel):
    # The teacher's cell run again (same id) only declares it again.
    assert kernel.execute(ADD_ZERO, "teacher").status == "ok"
    assert kernel.execute(ADD_ZERO, "teacher").status == "ok"
    grader = kernel.execute(ADD_ZERO, "grader")
    assert grader.status == "error"
    assert "no cell declares it yet" in grader.reply["evalue"]
    # So does a cell without an id (nbclient, nbgrader) after any other.
    assert kernel.execute(ADD_ZERO).status == "error"


def test_an_edited_answer_is_judged_again(kernel):
    kernel.cell(ADD_ZERO)
    first = kernel.execute("theorem add_zero (n : Nat) : n + 0 = n := by\n  sorry", "answer")
    assert first.status == "error"
    fixed = kernel.execute(PROOF, "answer")
    assert fixed.status == "ok", fixed.plain
    assert kernel.cell(ADD_ZERO).status == "ok"


def test_the_exercise_and_its_answer_in_one_cell_are_checked_when_it_runs(kernel):
    cell = f"{ADD_ZERO}\ntheorem add_zero (n : Nat) : n + 0 = n := by\n  sorry"
    assert kernel.execute(cell, "both").status == "error"
    again = kernel.execute(cell.replace("by\n  sorry", "rfl"), "both")
    assert again.status == "ok", again.plain


def test_reset_forgets_the_exercises(kernel):
    kernel.cell(ADD_ZERO)
    assert kernel.execute("%reset").status == "ok"
    sorry = kernel.cell("theorem add_zero (n : Nat) : n + 0 = n := by\n  sorry")
    assert sorry.status == "ok" and "add_zero: sorry" in sorry.plain


def test_a_wrong_exercise_magic_is_a_usage_error(kernel):
    run = kernel.cell("%exercise add_zero")
    assert run.reply["ename"] == "UsageError"
    assert "%exercise NAME [BINDERS] : STATEMENT" in run.reply["evalue"]


# -- nbgrader ----------------------------------------------------------------------------------

ASSIGNMENT = "ps1"
# What the teacher's notebook holds: each exercise declared (locked), the answer (a solution
# cell, with the solution between the delimiters nbgrader removes), and the grader (a locked
# test cell with points).
EXERCISES = {
    "add_zero": (
        "add_zero (n : Nat) : n + 0 = n",
        "theorem add_zero (n : Nat) : n + 0 = n := by\n  -- BEGIN SOLUTION\n  rfl\n"
        "  -- END SOLUTION",
        2,
    ),
    "small": (
        "small : 2 ^ 10 = 1024",
        "theorem small : 2 ^ 10 = 1024 := by\n  -- BEGIN SOLUTION\n  decide\n  -- END SOLUTION",
        1,
    ),
    "big": (
        "big : 2 ^ 10 = 1024 --allow native_decide",
        "theorem big : 2 ^ 10 = 1024 := by\n  -- BEGIN SOLUTION\n  native_decide\n"
        "  -- END SOLUTION",
        1,
    ),
}
# Each student's answers (None: the released stub, `sorry`), and the points each should get.
SUBMISSIONS = {
    "ada": (
        {
            "add_zero": "theorem add_zero (n : Nat) : n + 0 = n := by\n  simp",
            "small": "theorem small : 2 ^ 10 = 1024 := by\n  decide",
            "big": "theorem big : 2 ^ 10 = 1024 := by\n  native_decide",
        },
        {"add_zero": 2, "small": 1, "big": 1},
    ),
    "sam": ({}, {"add_zero": 0, "small": 0, "big": 0}),
    "cy": (
        {"add_zero": "theorem add_zero (n : Nat) : 0 + n = n := by\n  simp"},
        {"add_zero": 0, "small": 0, "big": 0},
    ),
    "eve": (
        {
            "add_zero": "axiom cheat : False\n\ntheorem add_zero (n : Nat) : n + 0 = n :=\n"
            "  cheat.elim",
            "small": "theorem small : 2 ^ 10 = 1024 := cheat.elim",
            "big": "theorem big : 2 ^ 10 = 1024 := by\n  native_decide",
        },
        {"add_zero": 0, "small": 0, "big": 1},
    ),
    "nat": (
        {
            "add_zero": "theorem add_zero (n : Nat) : n + 0 = n := rfl",
            "small": "theorem small : 2 ^ 10 = 1024 := by\n  native_decide",
            "big": "theorem big : 2 ^ 10 = 1024 := by\n  decide",
        },
        {"add_zero": 2, "small": 0, "big": 1},
    ),
}
NBGRADER_CONFIG = """\
c = get_config()
c.CourseDirectory.course_id = "lean-course"
# A Lean answer cell is released with `sorry` where the solution was.
c.ClearSolutions.code_stub = {"lean4": "sorry"}
c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"
c.Execute.timeout = 60
"""


def nbgrader_cell(source: str, grade_id: str, **flags: object) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    meta = {"grade": False, "solution": False, "locked": False, "task": False}
    cell.metadata.nbgrader = {**meta, "grade_id": grade_id, "schema_version": 3, **flags}
    return cell


def teacher_notebook() -> nbformat.NotebookNode:
    tour = nbformat.read(Path(__file__).parents[1] / "notebooks" / "tour.ipynb", as_version=4)
    cells = [nbformat.v4.new_markdown_cell("# Problem set 1: prove each statement")]
    for name, (line, solution, points) in EXERCISES.items():
        cells += [
            nbformat.v4.new_markdown_cell(f"Prove `{line.split(' --')[0]}`."),
            nbgrader_cell(f"%exercise {line}", f"exercise-{name}", locked=True),
            nbgrader_cell(solution, f"answer-{name}", solution=True),
            nbgrader_cell(
                f"%exercise {line}", f"check-{name}", grade=True, locked=True, points=points
            ),
        ]
    return nbformat.v4.new_notebook(cells=cells, metadata=tour.metadata)


def nbgrader(course: Path, *args: str) -> None:
    """Run the nbgrader command line in the course folder, as a teacher does."""
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def submit(course: Path, student: str, answers: dict[str, str]) -> None:
    released = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    for cell in released.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        name = grade_id.removeprefix("answer-")
        if grade_id.startswith("answer-") and name in answers:
            cell.source = answers[name]
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(released, folder / f"{ASSIGNMENT}.ipynb")


@pytest.mark.timeout(900)
def test_nbgrader_autograde_gives_points_only_for_real_proofs(jupyter_path, tmp_path):
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
    nbformat.write(teacher_notebook(), course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")

    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    released = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    stubs = [c.source for c in released.cells if "answer-" in json.dumps(c.metadata)]
    assert stubs == [
        "theorem add_zero (n : Nat) : n + 0 = n := by\n  sorry",
        "theorem small : 2 ^ 10 = 1024 := by\n  sorry",
        "theorem big : 2 ^ 10 = 1024 := by\n  sorry",
    ]
    for student, (answers, _) in SUBMISSIONS.items():
        submit(course, student, answers)
    nbgrader(course, "autograde", ASSIGNMENT, "--create", "--force")

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student, (_, expected) in SUBMISSIONS.items():
            notebook = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student)
            scores = {grade.name.removeprefix("check-"): grade.score for grade in notebook.grades}
            assert scores == expected, (student, _errors(course, student))


def _errors(course: Path, student: str) -> list[str]:
    """The error lines of a graded notebook, to say why a score was not the one expected."""
    graded = course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    if not graded.exists():
        return ["(not autograded)"]
    notebook = nbformat.read(graded, 4)
    return [
        f"{cell.metadata.get('nbgrader', {}).get('grade_id')}: {out.ename}: {out.evalue}"
        for cell in notebook.cells
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]

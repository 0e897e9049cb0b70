"""What the kernel does with verdicts: judge a cell's declarations, hold exercises to them.

After a Lean cell runs, each declaration it adds gets its verdict (``Notebook.verdicts``: one
command on the cell's env, none for a cell without declarations), shown as a badge beside its
name. A cell that declares an exercise's name (``%exercise``) must prove exactly its statement
with the verdict ``proved``; otherwise the cell fails with an error reply saying why, in a
student's words (``exercises.problem``), which is what makes nbgrader score it 0.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from lean_kernel.display.diagnostics import render_verdicts
from lean_kernel.engine.verdict import DeclVerdict
from lean_kernel.kernel.exercises import Exercise, Exercises, problem
from lean_kernel.kernel.host import Output, Reply
from lean_kernel.notebook import CellRun, CellVerdicts, Notebook, Recheck

__all__ = ["EXERCISE_ENAME", "Grader", "show_rechecks"]

#: The ename of a cell that does not answer its exercise.
EXERCISE_ENAME = "ExerciseError"


def show_rechecks(output: Output, rechecks: Sequence[Recheck | None]) -> None:
    """One note line per re-check or replay that did something."""
    for recheck in rechecks:
        if recheck is not None and (
            recheck.cells or recheck.failed or recheck.interrupted or recheck.broken
        ):
            output.note(recheck.summary())


class Grader:
    """The session's exercises, and the verdicts of the cells run under them."""

    def __init__(self, output: Output) -> None:
        self.output = output
        self.exercises = Exercises()

    def judge(self, notebook: Notebook, run: CellRun, cancel: threading.Event) -> CellVerdicts:
        """The verdicts of what the cell that ran adds, with its exercises' statements checked
        (none when the REPL died on it; nothing is sent for a cell that declares nothing, or
        that Lean rejected: its declarations are ``error``). Cells elaborated to judge it (it
        had no live env) are added to ``run.rechecks``."""
        cell = run.cell
        if cell is None:
            return CellVerdicts([])
        exercises = self.exercises.among(cell.declares)
        statements = {exercise.name: exercise.statement for exercise in exercises}
        judged = notebook.run_verdicts(run, statements=statements or None, cancel=cancel)
        judged.verdicts = self.exercises.adjusted(judged.verdicts)
        return judged

    def failure(self, verdicts: Sequence[DeclVerdict]) -> Reply | None:
        """The error reply of a cell whose declarations do not answer their exercises (None:
        they do, or none is an exercise)."""
        problems = [
            words
            for verdict in verdicts
            if (exercise := self.exercises.get(verdict.name)) is not None
            and (words := problem(exercise, verdict)) is not None
        ]
        if not problems:
            return None
        return self.output.error(EXERCISE_ENAME, " ".join(problems))

    def declare(
        self,
        notebook: Notebook,
        exercise: Exercise,
        cell_id: str | None,
        cancel: threading.Event,
    ) -> Reply | None:
        """``%exercise``: declare it; when its name is in the document (in another cell),
        check that cell now. A cell repeating an exercise declared elsewhere is a grader: the
        answer must be there already."""
        repeated = self.exercises.add(exercise, cell_id)
        name = exercise.name
        cell = notebook.declaring(name)
        if cell is not None and cell_id is not None and cell.id == cell_id:
            cell = None  # the code below the magic declares it: checked when it runs
        if cell is None:
            if repeated:
                return self.output.error(
                    EXERCISE_ENAME,
                    f"`{name}` is not accepted: no cell declares it yet. Write its proof in a "
                    f"cell above this one (`theorem {name} ...`), run that cell, then this one.",
                )
            also = "".join(f" and {word}'s" for word in exercise.allows)
            self.output.note(
                f"Exercise {exercise.describe()}: the cell that declares `{name}` must prove "
                f"exactly this, with no sorry and only Lean's standard axioms{also}."
            )
            return None
        judged = notebook.verdicts(cell, statements={name: exercise.statement}, cancel=cancel)
        show_rechecks(self.output, [judged.recheck])
        verdicts = [v for v in self.exercises.adjusted(judged.verdicts) if v.name == name]
        self.output.display(render_verdicts(verdicts))
        words = problem(exercise, verdicts[0] if verdicts else None)
        if words is not None:
            return self.output.error(EXERCISE_ENAME, words)
        self.output.note(f"`{name}` ({cell.label}) answers the exercise: proved as stated.")
        return None

"""notebooks/tour.ipynb runs top to bottom with nbclient against the fake REPL.

Two frontends: plain nbclient (no cell ids: every cell is new, errors are one text traceback),
and nbclient sending each cell's id as JupyterLab does, which also allows an edited re-run.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from conftest import wait_no_repl_processes
from jupyter_core.utils import run_sync
from kernel_harness import kernelspecs_on_jupyter_path
from nbclient import NotebookClient

TOUR = Path(__file__).resolve().parents[1] / "notebooks" / "tour.ipynb"


@pytest.fixture(scope="module", autouse=True)
def jupyter_path(tmp_path_factory):
    with kernelspecs_on_jupyter_path(tmp_path_factory.mktemp("jupyter")):
        yield
    assert wait_no_repl_processes() == []


class CellIdClient(NotebookClient):
    """nbclient that puts each cell's id in the execute_request metadata, as JupyterLab does."""

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        kc = self.kc
        original = kc.execute

        def execute(code, silent=False, store_history=True, stop_on_error=True, **kwargs):
            content = {
                "code": code,
                "silent": silent,
                "store_history": store_history,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": stop_on_error,
            }
            msg = kc.session.msg("execute_request", content, metadata={"cellId": cell.id})
            kc.shell_channel.send(msg)
            return msg["header"]["msg_id"]

        kc.execute = execute
        try:
            return await super().async_execute_cell(
                cell, cell_index, execution_count, store_history
            )
        finally:
            kc.execute = original

    execute_cell = run_sync(async_execute_cell)


def by_id(nb) -> dict:
    return {cell.id: cell for cell in nb.cells}


def text_of(cell) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("display_data", "execute_result"):
            parts.append(out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append("\n".join(out.traceback))
    return "\n".join(parts)


def errors(nb) -> list[str]:
    return [
        cell.id
        for cell in nb.cells
        if cell.cell_type == "code" and any(o.output_type == "error" for o in cell.outputs)
    ]


def test_tour_metadata_selects_lean4():
    nb = nbformat.read(TOUR, as_version=4)
    info = nb.metadata.language_info
    assert (info.name, info.pygments_lexer, info.codemirror_mode) == ("lean4", "lean4", "lean4")
    assert nb.metadata.kernelspec.name == "lean4"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code[-1].metadata.tags == ["raises-exception"]
    assert all("raises-exception" not in cell.metadata.get("tags", []) for cell in code[:-1])


def test_tour_runs_top_to_bottom_with_nbclient(tmp_path):
    nb = nbformat.read(TOUR, as_version=4)
    NotebookClient(
        nb, timeout=60, kernel_name="lean4", resources={"metadata": {"path": tmp_path}}
    ).execute()
    cells = by_id(nb)
    assert cells["eval-double"].outputs[0].text == "42\n"
    assert "55" in text_of(cells["define-sum"])
    assert "double (n : Nat) : Nat" in text_of(cells["check-double"])
    assert "declaration uses `sorry`" in text_of(cells["theorem-sorry"])
    assert "⊢ double (a + b) = double a + double b" in text_of(cells["theorem-sorry"])
    assert "Completed" in text_of(cells["proof-omega"])
    assert "double_add" in text_of(cells["cells-table"])
    assert errors(nb) == ["deliberate-error"]
    (error,) = cells["deliberate-error"].outputs
    assert error.ename == "LeanError" and "decide" in error.evalue
    assert cells["deliberate-error"].execution_count is not None


def test_tour_in_a_notebook_frontend_allows_an_edited_rerun(tmp_path):
    nb = nbformat.read(TOUR, as_version=4)
    client = CellIdClient(
        nb, timeout=60, kernel_name="lean4", resources={"metadata": {"path": tmp_path}}
    )
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        cells = by_id(nb)
        assert errors(nb) == ["deliberate-error"]
        kinds = [o.output_type for o in cells["deliberate-error"].outputs]
        assert kinds == ["display_data", "error"]
        assert "lk-diag lk-error" in cells["deliberate-error"].outputs[0].data["text/html"]
        assert "lk-diag" in cells["theorem-sorry"].outputs[0].data["text/html"]

        index = nb.cells.index(cells["define-double"])
        cells["define-double"].source = "def double (n : Nat) : Nat := n + n"
        client.execute_cell(cells["define-double"], index)
        assert errors(nb) == ["deliberate-error"]
        later = cells["eval-after-edit"]
        client.execute_cell(later, nb.cells.index(later))
        note, result = later.outputs
        assert note.data["text/plain"].startswith("Re-checked ")
        assert "no new errors" in note.data["text/plain"]
        assert result.text == "10\n"


# -- notebooks/teaching.ipynb: verdicts and graded exercises -----------------------------------

TEACHING = TOUR.parent / "teaching.ipynb"
REJECTED = ["rejected-changed", "rejected-sorry", "rejected-native", "rejected-axiom"]


def test_teaching_sheet_is_an_nbgrader_sheet_saved_with_its_outputs():
    nb = nbformat.read(TEACHING, as_version=4)
    assert nb.metadata.kernelspec.name == "lean4" and nb.metadata.language_info.name == "lean4"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs for cell in code), "run it and save it with its outputs"
    tagged = [c.id for c in code if "raises-exception" in c.metadata.get("tags", [])]
    assert tagged == REJECTED
    graded = {c.id: c.metadata.nbgrader for c in code if "nbgrader" in c.metadata}
    checks = [grade_id for grade_id, meta in graded.items() if meta["grade"]]
    assert checks == ["check-add-zero", "check-pow", "check-big"]
    assert all(graded[c]["locked"] and graded[c]["points"] == 1 for c in checks)
    answers = [grade_id for grade_id, meta in graded.items() if meta["solution"]]
    assert all("-- BEGIN SOLUTION" in by_id(nb)[a].source for a in answers) and len(answers) == 3


def test_teaching_sheet_runs_top_to_bottom_with_nbclient(tmp_path):
    saved = by_id(nbformat.read(TEACHING, as_version=4))
    nb = nbformat.read(TEACHING, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    NotebookClient(
        nb, timeout=60, kernel_name="lean4", resources={"metadata": {"path": tmp_path}}
    ).execute()
    cells = by_id(nb)
    assert text_of(cells["verdict-proved"]) == "add_comm': proved\n"
    assert text_of(cells["verdict-sorry"]).startswith("zero_add': sorry\n")
    assert text_of(cells["verdict-axiom"]).startswith(
        "cheat: axioms cheat\none_eq_two: axioms cheat"
    )
    assert "cheat  declared with `axiom`: nothing checks it" in text_of(cells["axioms-magic"])
    for check in ("check-add-zero", "check-pow", "check-big"):
        assert "answers the exercise: proved as stated" in text_of(cells[check]), check
    assert errors(nb) == REJECTED
    words = {cell_id: cells[cell_id].outputs[-1].evalue for cell_id in REJECTED}
    assert words == {
        "rejected-changed": "`mul_comm'` is not accepted: this proves a different statement "
        "than the exercise asks (`mul_comm' (a b : Nat) : a * b = b * a`).",
        "rejected-sorry": "`succ_pos'` is not accepted: this proof still uses sorry.",
        "rejected-native": "`ten_lt` is not accepted: native_decide is not allowed in this "
        "exercise.",
        "rejected-axiom": "`not_false` is not accepted: this relies on the axiom `cheat`.",
    }
    # The outputs saved in the notebook are this run's.
    ran = {i: text_of(c) for i, c in cells.items() if c.cell_type == "code"}
    assert ran == {i: text_of(c) for i, c in saved.items() if c.cell_type == "code"}

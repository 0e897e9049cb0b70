"""notebooks/python_magics.ipynb runs top to bottom in a python3 kernel against the fake REPL."""

from __future__ import annotations

import gc
import re
import time
from pathlib import Path

import nbformat
import pytest
from conftest import fake_repl_command, wait_no_repl_processes
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "python_magics.ipynb"


def outputs_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            parts.append(output["text"])
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook, executed once for the tests of this module."""
    with pytest.MonkeyPatch.context() as patch:
        # The kernel inherits this environment: the notebook itself names no REPL.
        patch.setenv("LEAN_KERNEL_REPL", fake_repl_command())
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        client = NotebookClient(
            notebook,
            kernel_name="python3",
            timeout=120,
            resources={"metadata": {"path": str(tmp_path_factory.mktemp("nb"))}},
        )
        client.execute()
    gc.collect()
    return notebook


def test_python_magics_notebook_runs_against_the_fake_repl(executed):
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    for cell in code:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{cell.source!r} raised {errors[0]['ename']}: {errors[0]['evalue']}"
    texts = {cell.source.split("\n", 1)[0]: outputs_text(cell) for cell in code}

    def output(first_line_start: str) -> str:
        (text,) = [t for line, t in texts.items() if line.startswith(first_line_start)]
        return text

    assert "42" in output("%%lean -o first") and "goal" in output("%%lean -o first")
    assert "True ['42', 'declaration uses `sorry`']" in output("print(first.ok")
    assert "'100'" in output("value = %lean")
    assert "Checking 4 commands on 2 workers" in output("%%lean_batch -w 2 -o checks")
    summary = output("checks.summary()")
    assert "'ok': 2" in summary and "'error': 1" in summary and "'sorry': 1" in summary
    assert "20 items: 20 ok" in output("statements = ")
    assert "Batch pool: 2 workers" in output("%lean_status")


def test_notebook_leaves_no_repl_behind(executed):
    assert wait_no_repl_processes(10) == []


# -- saved progress is the final state (nbconvert --execute, nbclient) --------------------------

PROGRESS_LINE = re.compile(r"^\w+: \d+/\d+ \(\d+%\)")


def saved_progress_lines(notebook) -> list[str]:
    """The text of every progress display the notebook saved."""
    return [
        text
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if PROGRESS_LINE.match(text := output.get("data", {}).get("text/plain", ""))
    ]


def saved_bars(notebook) -> list[tuple[int, int, str]]:
    """(value, max, description) of every progress bar in the saved widget state."""
    key = "application/vnd.jupyter.widget-state+json"
    models = notebook.metadata.get("widgets", {}).get(key, {}).get("state", {})
    return sorted(
        (m["state"]["value"], m["state"]["max"], m["state"]["description"])
        for m in models.values()
        if m["model_name"] == "IntProgressModel"
    )


def test_saved_notebook_keeps_the_final_progress_of_each_batch(executed):
    lines = saved_progress_lines(executed)
    assert len(lines) == 2, lines
    assert lines[0].startswith("checks: 4/4 (100%) done ok 2, sorry 1, error 1; "), lines
    assert lines[1].startswith("generated: 20/20 (100%) done ok 20; "), lines
    assert saved_bars(executed) == [(4, 4, "4/4"), (20, 20, "20/20")]


SLOW = [f"#fake_sleep 0.2\ntheorem t{i} : {i} = {i} := rfl" for i in range(12)]
LATE_BATCHES = [
    "%load_ext lean_kernel",
    f"slow = {SLOW!r} + ['theorem s : 1 = 1 := by sorry']\n%lean_batch -i slow -o later -w 2",
    "later.wait(timeout=60)",  # the batch above ends here, in another cell
    "%lean_batch -i slow -o textual -w 2 --progress text\ntextual.wait(60)",
    # The README's snippet, in a notebook: run_batch(show_progress=True) is a widget here.
    "from lean_kernel import Command, LeanREPLConfig, LeanServerPool\n\n"
    "with LeanServerPool(LeanREPLConfig(), num_workers=2) as pool:\n"
    "    results = pool.run_batch(\n"
    '        [Command(cmd=f"import Mathlib\\nexample : {n} + 0 = {n} := by simp")'
    " for n in range(300)],\n"
    "        timeout_per_cmd=60,\n"
    "        show_progress=True,\n"
    "    )",
]


def test_batches_ending_in_a_later_cell_save_their_final_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAN_KERNEL_REPL", fake_repl_command())
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(code) for code in LATE_BATCHES],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": tmp_path}}
    ).execute()
    lines = saved_progress_lines(notebook)
    assert [line.split(":")[0] for line in lines] == ["later", "textual", "batch"], lines
    assert all(" done ok " in line and "ETA" not in line for line in lines), lines
    assert lines[0].startswith("later: 13/13 (100%) done ok 12, sorry 1; ")
    assert lines[2].startswith("batch: 300/300 (100%) done ok 300; ")
    assert saved_bars(notebook) == [(13, 13, "13/13"), (300, 300, "300/300")]
    gc.collect()
    assert wait_no_repl_processes(10) == []


def test_a_batch_ending_between_cells_is_saved_as_it_ended(tmp_path, monkeypatch):
    """nbclient saves only what comes while a cell runs: the end of a batch that finishes while
    the kernel is idle is shown again by the next cell."""
    monkeypatch.setenv("LEAN_KERNEL_REPL", fake_repl_command())
    cells = [
        "%load_ext lean_kernel",
        f"slow = {SLOW[:4]!r}\n%lean_batch -i slow -o idle -w 2",
        "%lean_batch -i slow -o idle_text -w 2 --progress text",
        "print(idle.summary_line(), idle_text.summary_line())",
    ]
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(code) for code in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=60, resources={"metadata": {"path": tmp_path}}
    )
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells[:3]):
            client.execute_cell(cell, index)
        time.sleep(2)  # both batches (0.4 s each) end while no cell runs
        client.execute_cell(notebook.cells[3], 3)
        client.set_widgets_metadata()
    assert "idle: 4 items: 4 ok" in notebook.cells[3].outputs[0].text
    lines = saved_progress_lines(notebook)
    assert [line.split(" (")[0] for line in lines] == ["idle: 4/4", "idle_text: 4/4"], lines
    assert all(" (100%) done ok 4; " in line for line in lines), lines
    assert saved_bars(notebook) == [(4, 4, "4/4")]
    gc.collect()
    assert wait_no_repl_processes(10) == []

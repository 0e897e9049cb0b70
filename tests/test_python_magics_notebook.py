"""notebooks/python_magics.ipynb runs top to bottom in a python3 kernel against the fake REPL."""

from __future__ import annotations

import gc
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

"""A missing import is an error everywhere, although the REPL answers a bare ``{"env": 0}``.

The fake REPL answers like the real one (fork v1.3.18 and upstream): no message, an empty
environment. A notebook cell, a batch header and a kernel cell that import a module that does
not exist fail, naming it and where it was looked for; a module that exists still imports.
"""

from __future__ import annotations

import pytest
from conftest import read_log
from kernel_harness import KernelSession
from test_kernel import jupyter_path  # noqa: F401 - a fixture

from lean_kernel import LeanServerPool
from lean_kernel.engine.imports import PROBE, imported_modules
from lean_kernel.notebook import Notebook


def test_imported_modules_are_read_past_comments():
    text = "/- import Hidden -/\nimport Mathlib.Data.Nat public import Foo.Bar\n-- import No\n"
    assert imported_modules(text) == ["Mathlib.Data.Nat", "Foo.Bar"]


def test_a_notebook_cell_importing_a_missing_module_fails_naming_it(fake_config, request_log):
    with Notebook(fake_config) as notebook:
        run = notebook.run("import NoSuchModule", cell_id="a")
        assert run.response is not None and run.response.has_errors()
        message = run.response.get_errors()[0].data
        assert "`NoSuchModule`" in message and "not in the project" in message
        assert run.response.get_errors()[0].start_pos.line == 1
        # The probe is one command on the import's env, nothing else.
        assert [r.get("cmd") for r in read_log(request_log)][-1] == PROBE


def test_an_existing_module_imports_and_costs_one_probe(fake_config, request_log):
    with Notebook(fake_config) as notebook:
        run = notebook.run("import Mathlib", cell_id="a")
        assert run.response is not None and not run.response.has_errors()
        assert notebook.run("#eval 1 + 1", cell_id="b").response.messages[-1].data == "2"
    sent = [r.get("cmd") for r in read_log(request_log)]
    assert sent.count(PROBE) == 1


def test_a_batch_header_importing_a_missing_module_fails_every_item(fake_config):
    commands = [f"import NoSuchModule\ntheorem t{i} : True := trivial" for i in range(4)]
    with LeanServerPool(fake_config, num_workers=2, cache=False) as pool:
        results = pool.run_batch(commands).results
    assert results.statuses == ["error"] * 4
    assert all("`NoSuchModule`" in item.first_message() for item in results)


def test_a_kernel_cell_importing_a_missing_module_is_an_error(jupyter_path):  # noqa: F811
    kernel = KernelSession()
    try:
        run = kernel.execute("import NoSuchModule")
        assert run.status == "error"
        assert "NoSuchModule" in run.plain
    finally:
        kernel.close()


@pytest.mark.parametrize("text", ["import Mathlib\n#eval 1", "#eval 1"])
def test_cells_without_a_missing_import_are_not_probed_twice(fake_config, request_log, text):
    with Notebook(fake_config) as notebook:
        assert not notebook.run(text, cell_id="a").response.has_errors()
    sent = [r.get("cmd") for r in read_log(request_log)]
    assert sent.count(PROBE) == (1 if text.startswith("import") else 0)

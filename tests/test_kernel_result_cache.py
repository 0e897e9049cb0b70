"""A restarted kernel re-running a notebook sends nothing to Lean for unchanged cells.

The real kernel process, driven through jupyter_client: cells run, the kernel is restarted (the
client's restart, as the Kernel menu does), the same cells run again. The fake REPL's request
log shows what reached Lean; the result cache is a file of the test's own
(``LEAN_KERNEL_RESULT_CACHE``).
"""

from __future__ import annotations

import json

import pytest
from conftest import our_repl_processes, wait_no_repl_processes
from kernel_harness import Execution, KernelSession, kernelspecs_on_jupyter_path

CELLS = [
    ("c1", "def a := 1"),
    ("c2", "/-- Two, from `a`. -/\ndef b := a + 1"),
    ("c3", "theorem two : b = 2 := rfl"),
    ("c4", "#eval b"),
    ("c5", "#eval nope"),
]
FROM_THE_CACHE = "From the result cache"


@pytest.fixture(scope="module", autouse=True)
def jupyter_path(tmp_path_factory):
    with kernelspecs_on_jupyter_path(tmp_path_factory.mktemp("jupyter")):
        yield


@pytest.fixture
def kernel(tmp_path):
    """A kernel with a request log and a result cache of its own; yields it and its log."""
    log = tmp_path / "requests.jsonl"
    cache = tmp_path / "results.sqlite3"
    session = KernelSession(
        fake_args=["--log", str(log)], env={"LEAN_KERNEL_RESULT_CACHE": str(cache)}
    )
    yield session, log
    session.close()
    assert wait_no_repl_processes() == []


def sent(log) -> list[str]:
    """The commands the fake REPL received, in order (a cell's verdict check, `#print axioms`,
    left out: `checks` counts those)."""
    return [cmd for cmd in _commands(log) if not cmd.startswith("#print axioms")]


def checks(log) -> list[str]:
    """The verdict checks the fake REPL received, in order."""
    return [cmd for cmd in _commands(log) if cmd.startswith("#print axioms")]


def _commands(log) -> list[str]:
    if not log.exists():
        return []
    requests = [json.loads(line)["request"] for line in log.read_text().splitlines() if line]
    return [request["cmd"] for request in requests if "cmd" in request]


def restart(session: KernelSession) -> None:
    session.km.restart_kernel(now=False)
    session.kc.wait_for_ready(timeout=60)
    session.drain()


def seen(run: Execution) -> tuple:
    """What a cell showed, notes aside: reply status, stdout, displays, error text."""
    displays = [d for d in run.displays if "lk-note" not in d.get("text/html", "")]
    error = run.error["evalue"] if run.error else None
    return run.status, run.stdout, displays, error


def notes(run: Execution) -> str:
    return "\n".join(d["text/plain"] for d in run.displays if "lk-note" in d.get("text/html", ""))


def test_a_restarted_kernel_rerunning_a_notebook_sends_nothing_to_lean(kernel):
    session, log = kernel
    first = [session.execute(code, cell_id) for cell_id, code in CELLS]
    assert [run.status for run in first] == ["ok"] * 4 + ["error"]
    assert first[3].stdout == "2\n"
    assert sent(log) == [code for _, code in CELLS]
    before = session.pid
    assert [p for p in our_repl_processes() if p.ppid() == before] != []

    assert checks(log) == ["#print axioms a", "#print axioms b", "#print axioms two"]
    restart(session)
    assert session.pid != before
    count, checked = len(sent(log)), len(checks(log))
    again = [session.execute(code, cell_id) for cell_id, code in CELLS]
    assert len(sent(log)) == count and len(checks(log)) == checked  # nothing reached Lean
    assert [p for p in our_repl_processes() if p.ppid() == session.pid] == []  # none started
    assert [seen(run) for run in again] == [seen(run) for run in first]
    assert all(FROM_THE_CACHE in notes(run) for run in again)

    edited = session.execute("theorem two : b = 2 := by rfl", "c3")
    assert edited.status == "ok"
    assert sent(log)[count:] == [CELLS[0][1], CELLS[1][1], "theorem two : b = 2 := by rfl"]
    assert "Elaborated 2 cells answered from the result cache" in notes(edited)
    below = session.execute("#eval b", "c4")
    assert below.stdout == "2\n" and FROM_THE_CACHE not in notes(below)
    assert sent(log)[-1] == "#eval b"


def test_inspection_after_a_restart_elaborates_the_cells_from_the_cache(kernel):
    session, log = kernel
    for cell_id, code in CELLS[:2]:
        session.execute(code, cell_id)
    restart(session)
    count = len(sent(log))
    for cell_id, code in CELLS[:2]:
        assert FROM_THE_CACHE in notes(session.execute(code, cell_id))
    assert len(sent(log)) == count
    reply = session.inspect("#eval b", cursor_pos=7)
    assert reply["found"] is True and "Two, from `a`." in reply["data"]["text/plain"]
    assert sent(log)[count : count + 2] == [code for _, code in CELLS[:2]]

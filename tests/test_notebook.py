"""The cell model (lean_kernel.notebook) against the fake REPL, without Jupyter."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest
from conftest import fake_repl_command, our_repl_processes, read_log, wait_no_repl_processes

from lean_kernel import (
    LeanREPLConfig,
    ReplCancelledError,
    ReplCrashedError,
    ReplMemoryError,
    ReplTimeoutError,
)
from lean_kernel.engine.outcome import status_of
from lean_kernel.engine.resultstore import ResultStore
from lean_kernel.notebook import (
    ImportPlacementError,
    Notebook,
    ProofStateError,
    is_import_cell,
    split_tactics,
)

pytestmark = pytest.mark.usefixtures("no_repl_left_behind")


@pytest.fixture
def notebook(fake_config):
    with Notebook(fake_config) as notebook:
        yield notebook


def commands(log) -> list[str]:
    return [r["cmd"] for r in read_log(log) if "cmd" in r]


def outputs(run) -> list[str]:
    return [m.data for m in run.response.messages]


def test_new_cells_are_appended_in_execution_order(notebook):
    notebook.run("def a := 1", cell_id="x")
    notebook.run("def b := a + 1", cell_id="y")
    assert [c.id for c in notebook.cells] == ["x", "y"]
    assert outputs(notebook.run("#eval b", cell_id="z")) == ["2"]


def test_rerun_of_edited_cell_replaces_it(notebook):
    notebook.run("def f := 1", cell_id="def")
    run = notebook.run("def f := 2", cell_id="def")
    assert not run.has_errors, run.response
    assert len(notebook.cells) == 1
    assert outputs(notebook.run("#eval f", cell_id="use")) == ["2"]


def test_later_cells_go_stale_and_are_rechecked_before_a_later_cell(notebook, request_log):
    notebook.run("def f := 1", cell_id="a", label="[1]")
    notebook.run("def g := f + 1", cell_id="b", label="[2]")
    notebook.run("def f := 10", cell_id="a", label="[3]")
    assert [notebook.status(c) for c in notebook.cells] == ["ok", "stale"]
    run = notebook.run("#eval g", cell_id="c", label="[4]")
    assert outputs(run) == ["11"]
    (recheck,) = run.rechecks
    assert recheck.kind == "stale" and [c.label for c in recheck.cells] == ["[2]"]
    assert "Re-checked 1 stale cell [2]" in recheck.summary()
    assert commands(request_log)[-2:] == ["def g := f + 1", "#eval g"]


def test_rerun_of_a_stale_cell_does_not_elaborate_it_twice(notebook, request_log):
    notebook.run("def f := 1", cell_id="a")
    notebook.run("def g := f", cell_id="b")
    notebook.run("def f := 2", cell_id="a")
    run = notebook.run("def g := f + 1", cell_id="b")
    assert run.rechecks == []
    assert commands(request_log).count("def g := f + 1") == 1


def test_identical_rerun_is_served_from_the_cache(notebook, request_log):
    notebook.run("def f := 1", cell_id="a")
    notebook.run("#eval f", cell_id="b")
    sent = len(read_log(request_log))
    again = notebook.run("#eval f", cell_id="b")
    first_again = notebook.run("def f := 1", cell_id="a")
    assert again.cached and first_again.cached
    assert outputs(again) == ["1"]
    assert len(read_log(request_log)) == sent
    assert all(notebook.status(c) == "ok" for c in notebook.cells)


def test_reverting_an_edit_reuses_the_first_result(notebook, request_log):
    notebook.run("def f := 1", cell_id="a")
    notebook.run("def f := 2", cell_id="a")
    sent = len(read_log(request_log))
    assert notebook.run("def f := 1", cell_id="a").cached
    assert len(read_log(request_log)) == sent


def test_new_errors_in_rechecked_cells_are_reported_with_their_cell(notebook):
    notebook.run("def f := 1", cell_id="a", label="[1]")
    notebook.run("def g := f", cell_id="b", label="[2]")
    notebook.run("def h := 3", cell_id="a", label="[3]")
    run = notebook.run("#eval 1", cell_id="c", label="[4]")
    summary = run.rechecks[0].summary()
    assert "new errors in [2]" in summary and "f" in summary
    assert notebook.status(notebook.cells[1]) == "error"


def test_crash_replays_document(fake_config, request_log):
    with Notebook(fake_config) as notebook:
        notebook.run("def f := 5", cell_id="a", label="[1]")
        run = notebook.run("#fake_crash 3", cell_id="b", label="[2]")
        assert run.error is not None and run.replay is not None
        assert "[2] crashed the REPL (exit code 3)" in run.replay.summary()
        assert "Replayed 1 cell [1]" in run.replay.summary() or "replayed 1 cell [1]" in (
            run.replay.summary()
        )
        assert notebook.status(notebook.cells[1]) == "failed"
        assert outputs(notebook.run("#eval f", cell_id="c")) == ["5"]
    pids = {entry["pid"] for entry in map(_entry, request_log.read_text().splitlines())}
    assert len(pids) == 2


def _entry(line: str) -> dict:
    import json

    return json.loads(line)


def test_failed_cell_is_not_replayed(notebook, request_log):
    notebook.run("#fake_crash", cell_id="boom")
    notebook.restart()
    assert commands(request_log).count("#fake_crash") == 1


def test_timeout_kills_and_replays(notebook):
    notebook.run("def f := 2", cell_id="a")
    started = time.monotonic()
    run = notebook.run("#fake_hang", cell_id="b", timeout=0.5)
    assert isinstance(run.error, ReplTimeoutError)
    assert time.monotonic() - started < 5
    assert "timed out after 0.5 s" in run.replay.summary()
    assert outputs(notebook.run("#eval f", cell_id="c")) == ["2"]


def test_cancel_stops_the_command_and_replays(notebook):
    notebook.run("def f := 3", cell_id="a")
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    run = notebook.run("#fake_hang", cell_id="b", cancel=cancel)
    assert isinstance(run.error, ReplCancelledError)
    assert time.monotonic() - started < 3
    assert not cancel.is_set()  # spent on this command, not on the replay
    assert outputs(notebook.run("#eval f", cell_id="c")) == ["3"]


def test_cancel_before_a_stale_recheck_changes_nothing(notebook, request_log):
    notebook.run("def f := 1", cell_id="a")
    notebook.run("def g := f", cell_id="b")
    notebook.run("def f := 2", cell_id="a")
    cancel = threading.Event()
    cancel.set()
    run = notebook.run("#eval g", cell_id="c", cancel=cancel)
    assert isinstance(run.error, ReplCancelledError) and run.cell is None
    assert [c.id for c in notebook.cells] == ["a", "b"]
    assert "#eval g" not in commands(request_log)


def test_restart_replays_and_reports_time(notebook):
    notebook.run("def f := 1", cell_id="a", label="[1]")
    notebook.run("def g := f", cell_id="b", label="[2]")
    recheck = notebook.restart()
    assert recheck.kind == "replay" and len(recheck.cells) == 2
    assert recheck.summary().startswith("REPL restarted; replayed 2 cells [1] [2] in ")


def test_server_restart_between_cells_is_replayed_before_the_next(notebook):
    notebook.run("def f := 7", cell_id="a")
    notebook.server.kill()  # the process is gone; the server restarts it on the next request
    run = notebook.run("#eval f", cell_id="b")
    assert outputs(run) == ["7"]
    assert run.rechecks and run.rechecks[0].kind == "replay"


def test_import_cell_goes_to_the_top_and_the_rest_is_rechecked(notebook, request_log):
    notebook.run("def f := 1", cell_id="a")
    run = notebook.run("import Lean", cell_id="imp")
    assert not run.has_errors
    assert [c.id for c in notebook.cells] == ["imp", "a"]
    assert notebook.status(notebook.cells[1]) == "stale"
    notebook.run("#eval f", cell_id="b")
    sent = [r for r in read_log(request_log) if r.get("cmd") == "import Lean"]
    assert sent and "env" not in sent[0]


def test_second_import_cell_is_refused_and_changes_nothing(notebook):
    notebook.run("import Lean", cell_id="imp", label="[1]")
    notebook.run("def f := 1", cell_id="a")
    with pytest.raises(ImportPlacementError, match=r"first cell.*\[1\] already"):
        notebook.run("-- more\nimport Mathlib", cell_id="other")
    assert [c.id for c in notebook.cells] == ["imp", "a"]
    notebook.run("import Lean\nimport Mathlib", cell_id="imp")
    assert [c.id for c in notebook.cells] == ["imp", "a"]


def test_is_import_cell_ignores_comments():
    assert is_import_cell("/- header -/\n-- note\nimport Mathlib")
    assert not is_import_cell("def imports := 1")


def test_forget_takes_a_cell_out_and_later_cells_go_stale(notebook):
    notebook.run("def f := 1", cell_id="a")
    notebook.run("def g := 2", cell_id="b")
    assert notebook.forget("a")
    assert notebook.status(notebook.cells[0]) == "stale"
    run = notebook.run("#eval f", cell_id="c")
    assert run.has_errors


def test_query_does_not_change_the_document(notebook):
    notebook.run("def f := 1", cell_id="a")
    result = notebook.query("#check f")
    assert result.messages[0].data == "f : Nat"
    assert notebook.status(notebook.cells[0]) == "ok"
    run = notebook.run("#eval f", cell_id="b")
    assert run.rechecks == []


def test_declared_names_follow_the_document(notebook):
    notebook.run("namespace Foo\ndef bar := 1\nend Foo", cell_id="a")
    assert "Foo.bar" in notebook.declared_names()
    notebook.run("def baz := 1", cell_id="a")
    assert notebook.declared_names() == ["baz"]


# -- proof mode -------------------------------------------------------------------------------

THEOREM = "theorem t (p q : Prop) (hp : p) (hq : q) : p ∧ q := by sorry"


def test_proof_runs_tactics_on_the_last_sorry_and_continues(notebook):
    run = notebook.run(THEOREM, cell_id="thm")
    (sorry,) = run.response.sorries
    first = notebook.prove("constructor\nexact hp", cell_id="p1")
    assert first.start == sorry.proof_state
    assert first.response.goals == ["case right\np q : Prop\nhp : p\nhq : q\n⊢ q"]
    assert first.response.proof_state == first.handle
    second = notebook.prove("exact hq", cell_id="p2")
    assert second.start == first.handle and second.complete


def test_proof_rerun_starts_where_it_started(notebook):
    notebook.run(THEOREM, cell_id="thm")
    first = notebook.prove("constructor", cell_id="p1")
    notebook.prove("exact hp", cell_id="p2")
    again = notebook.prove("constructor\nexact hp\nexact hq", cell_id="p1")
    assert again.start == first.start and again.complete


def test_proof_follows_an_edited_earlier_proof_cell(notebook):
    notebook.run(THEOREM, cell_id="thm")
    notebook.prove("constructor", cell_id="p1")
    notebook.prove("exact hp", cell_id="p2")
    notebook.prove("constructor\nexact hp", cell_id="p1")
    rerun = notebook.prove("exact hq", cell_id="p2")
    assert rerun.complete


def test_proof_error_is_placed_on_its_line(notebook):
    notebook.run(THEOREM, cell_id="thm")
    run = notebook.prove("constructor\nexact bogus", cell_id="p")
    assert run.has_errors and run.line == 1 and run.steps == 2
    assert run.handle is None


def test_proof_states_survive_a_restart(notebook):
    notebook.run(THEOREM, cell_id="thm")
    first = notebook.prove("constructor", cell_id="p1")
    notebook.restart()
    again = notebook.prove("exact hp\nexact hq", proof_state=first.handle, cell_id="p2")
    assert again.complete


def test_proof_without_sorry_is_a_clear_error(notebook):
    notebook.run("def f := 1", cell_id="a")
    with pytest.raises(ProofStateError, match="no `sorry`"):
        notebook.prove("simp", cell_id="p")
    with pytest.raises(ProofStateError, match="no proof state 99"):
        notebook.prove("simp", proof_state=99, cell_id="p")


def test_proof_state_of_an_edited_cell_is_refused(notebook):
    run = notebook.run(THEOREM, cell_id="thm")
    old = run.response.sorries[0].proof_state
    notebook.run(THEOREM.replace("p ∧ q", "q ∧ p"), cell_id="thm")
    with pytest.raises(ProofStateError, match="changed or is gone"):
        notebook.prove("constructor", proof_state=old, cell_id="p")


def test_split_tactics_keeps_indented_continuations():
    text = "intro n\n-- comment\ninduction n with\n  | zero => rfl\n  | succ k ih => simp\nsimp"
    assert split_tactics(text) == [
        (0, "intro n"),
        (2, "induction n with\n  | zero => rfl\n  | succ k ih => simp"),
        (5, "simp"),
    ]


def test_use_config_switches_repl_and_replays(notebook, tmp_path):
    notebook.run("def f := 4", cell_id="a")
    other = tmp_path / "other.jsonl"
    recheck = notebook.use_config(
        LeanREPLConfig(repl_command=fake_repl_command("--log", str(other)))
    )
    assert recheck.kind == "replay" and len(recheck.cells) == 1
    assert outputs(notebook.run("#eval f", cell_id="b")) == ["4"]
    assert commands(other) == ["def f := 4", "#eval f"]


def test_reset_forgets_everything(notebook):
    notebook.run("def f := 4", cell_id="a")
    notebook.reset()
    assert notebook.cells == []
    assert notebook.run("#eval f", cell_id="b").has_errors


def test_table_lists_cells_with_status(notebook):
    notebook.run("def f := 1", cell_id="a", label="[1]")
    notebook.run("#eval nope", cell_id="b", label="[2]")
    notebook.run(THEOREM, cell_id="c", label="[3]")
    notebook.run("def f := 2", cell_id="a", label="[4]")
    rows = notebook.table()
    assert [r["cell"] for r in rows] == ["[4]", "[2]", "[3]"]
    assert [r["status"] for r in rows] == ["ok", "stale", "stale"]
    notebook.run("#eval 1", cell_id="d", label="[5]")
    statuses = [r["status"] for r in notebook.table()]
    assert statuses == ["ok", "error", "warning: sorry", "ok"]


FLAKY_REPL = """
import os, sys
marker = sys.argv[1]
if os.path.exists(marker + ".broken"):
    sys.exit(7)
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def test_a_repl_that_cannot_restart_does_not_mark_cells_failed(tmp_path):
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY_REPL)
    marker = tmp_path / "repl"
    command = [sys.executable, str(script), str(marker), *fake_repl_command().split()[1:]]
    with Notebook(LeanREPLConfig(repl_command=command)) as notebook:
        notebook.server.max_restart_attempts = 2
        notebook.run("def f := 1", cell_id="a", label="[1]")
        (tmp_path / "repl.broken").touch()
        run = notebook.run("#fake_crash", cell_id="b", label="[2]")
        assert run.error is not None
        assert "could not be started again" in run.replay.summary()
        assert notebook.status(notebook.cells[0]) == "stale"
        (tmp_path / "repl.broken").unlink()
        again = notebook.run("#eval f", cell_id="c")
        assert outputs(again) == ["1"]


def test_a_second_cancel_stops_the_replay_and_the_next_run_finishes_it(notebook):
    notebook.run("def f := 5\n#fake_sleep 1", cell_id="slow", label="[1]")
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    threading.Timer(0.8, cancel.set).start()  # lands during the replay of [1]
    run = notebook.run("#fake_hang", cell_id="b", cancel=cancel)
    assert isinstance(run.error, ReplCancelledError)
    assert run.replay.interrupted and run.replay.left == 1
    assert "interrupted with 1 cell left" in run.replay.summary()
    cancel.clear()
    again = notebook.run("#eval f", cell_id="c")
    assert outputs(again) == ["5"] and again.rechecks[0].kind == "replay"


# -- the restart note names the true cause ----------------------------------------------------


def _kill_between_cells(notebook) -> None:
    """SIGKILL the idle REPL from outside, and wait until it is gone."""
    os.kill(notebook.server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while notebook.server.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_restart_note_names_a_repl_killed_between_cells_not_an_earlier_crash(notebook):
    notebook.run("def secret := 41", cell_id="a", label="[1]")
    crashed = notebook.run("#fake_crash", cell_id="b", label="[2]")
    assert "[2] crashed the REPL" in crashed.replay.summary()
    _kill_between_cells(notebook)
    run = notebook.run("#eval secret + 1", cell_id="c", label="[3]")
    assert outputs(run) == ["42"]
    (replay,) = run.rechecks
    summary = replay.summary()
    assert replay.kind == "replay" and "replayed 1 cell [1]" in summary
    assert "died between cells (signal 9, SIGKILL)" in summary
    assert "crashed" not in summary and "[2]" not in summary


def test_interrupt_note_names_the_interrupted_cell_only_for_that_restart(notebook):
    notebook.run("def f := 3", cell_id="a", label="[1]")
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    interrupted = notebook.run("#fake_hang", cell_id="b", label="[2]", cancel=cancel)
    assert "REPL restarted because [2] was interrupted" in interrupted.replay.summary()
    _kill_between_cells(notebook)
    run = notebook.run("#eval f", cell_id="c", label="[3]")
    assert outputs(run) == ["3"]
    summary = run.rechecks[0].summary()
    assert "died between cells (signal 9" in summary and "interrupted" not in summary
    assert notebook.restart().summary().startswith("REPL restarted; replayed")


def test_stopped_repl_note_says_so(notebook):
    notebook.run("def f := 7", cell_id="a", label="[1]")
    notebook.run("#fake_crash", cell_id="b", label="[2]")
    notebook.server.kill()
    summary = notebook.run("#eval f", cell_id="c").rechecks[0].summary()
    assert "its process had been stopped" in summary and "[2]" not in summary


def test_repl_killed_near_its_memory_limit_reads_as_out_of_memory(fake_config):
    with Notebook(fake_config, max_process_memory=300) as notebook:
        notebook.run("def f := 1", cell_id="a", label="[1]")
        notebook.run("#fake_memory 250 1", cell_id="b", label="[2]", timeout=30)
        pid = notebook.server.pid
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
        run = notebook.run("#fake_hang", cell_id="c", label="[3]", timeout=30)
        assert isinstance(run.error, ReplMemoryError) and run.error.by_system
        assert "[3] ran out of memory (last seen " in run.replay.summary()
        assert notebook.cells[2].failure.startswith("ran out of memory (last seen ")
        assert notebook.status(notebook.cells[2]) == "failed"


def test_repl_killed_with_little_memory_reads_as_a_crash(notebook):
    notebook.run("#fake_sleep 0.5", cell_id="a", label="[1]")
    pid = notebook.server.pid
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    run = notebook.run("#fake_hang", cell_id="b", label="[2]", timeout=30)
    assert type(run.error) is ReplCrashedError
    summary = run.replay.summary()
    assert "[2] crashed the REPL (signal 9, SIGKILL)" in summary
    assert "memory" not in summary


# -- heartbeats: a runaway cell stops as a Lean error, the REPL keeps the document ---------------

RUNAWAY = "theorem runaway : True := by\n  #fake_hang\n  trivial"


def heartbeat_notebook(request_log, *flags: str, **kwargs) -> Notebook:
    """The fork, burning 1000 heartbeats a second (a config that knows it), with ``flags``."""
    command = fake_repl_command("--log", str(request_log), "--heartbeat-rate", "1000", *flags)
    config = LeanREPLConfig(repl_command=command, repl_flavor="fork", heartbeat_rate=1000)
    return Notebook(config, **kwargs)


def test_cell_over_its_heartbeat_limit_is_a_lean_error_and_nothing_is_replayed(request_log):
    with heartbeat_notebook(request_log, "--import-cost", "0.5", timeout=2) as notebook:
        notebook.run("import Mathlib\ndef a := 1", cell_id="imports")
        notebook.run("def b := a + 1", cell_id="b")
        process = (notebook.server.pid, notebook.server.generation)
        run = notebook.run(RUNAWAY, cell_id="runaway", label="[3]")
        assert run.error is None and run.replay is None and run.has_errors
        (message,) = run.response.messages
        assert message.severity == "error"
        assert message.data.startswith(
            "(deterministic) timeout at `whnf`, maximum number of heartbeats (2000)"
        )
        assert (notebook.server.pid, notebook.server.generation) == process
        assert [notebook.status(c) for c in notebook.cells] == ["ok", "ok", "error"]
        assert outputs(notebook.run("#eval b", cell_id="after")) == ["2"]
    imports = [c for c in commands(request_log) if c.startswith("import")]
    assert len(imports) == 1  # the header was never elaborated again


def test_heartbeats_off_falls_back_to_kill_and_replay(request_log):
    with heartbeat_notebook(request_log, timeout=0.5, heartbeats="off") as notebook:
        notebook.run("def a := 1", cell_id="a")
        generation = notebook.server.generation
        run = notebook.run(RUNAWAY, cell_id="runaway", label="[2]")
        assert isinstance(run.error, ReplTimeoutError) and run.response is None
        assert run.replay is not None and "[2] timed out after 0.5 s" in run.replay.summary()
        assert notebook.server.generation == generation + 1
        assert outputs(notebook.run("#eval a", cell_id="after")) == ["1"]
    assert not any("maxHeartbeats" in c for c in commands(request_log))


def test_a_cells_own_heartbeats_win_and_a_stopped_cell_is_not_served_from_the_cache(
    request_log,
):
    slow = "theorem slow : True := by\n  #fake_sleep 0.4\n  trivial"
    with heartbeat_notebook(request_log, heartbeats=100) as notebook:
        notebook.run("def a := 1", cell_id="a")
        stopped = notebook.run(slow, cell_id="slow")
        assert stopped.response.messages[0].data.startswith("(deterministic) timeout")
        again = notebook.run(slow, cell_id="slow", heartbeats=5000)
        assert not again.cached and not again.has_errors
        assert notebook.run(slow, cell_id="slow", heartbeats=5000).cached
        assert notebook.heartbeats == 100
        notebook.heartbeats = "off"
        assert notebook.heartbeats == "off"
        with pytest.raises(ValueError, match="not a heartbeat limit"):
            notebook.heartbeats = "plenty"


# -- the persistent result store: a new process re-running a notebook --------------------------

FIVE_CELLS = [
    "def a := 1",
    "def b := a + 1",
    "theorem two : b = 2 := rfl",
    "#eval b",
    "#eval nope",
]


@pytest.fixture
def store(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite3")
    yield store
    store.close()


def notebook_logging_to(log, monkeypatch, store, **options) -> Notebook:
    """A notebook with its own fake REPL process, logging to ``log``. Every such notebook has
    the same config (the log is a flag in FAKE_REPL_ARGS), so they share the store's answers,
    as a kernel restarted on the same Lean does."""
    monkeypatch.setenv("FAKE_REPL_ARGS", f"--log {log}")
    return Notebook(LeanREPLConfig(repl_command=fake_repl_command()), store=store, **options)


def run_all(notebook, texts, **options) -> list:
    return [notebook.run(text, cell_id=f"c{i}", **options) for i, text in enumerate(texts)]


def same_answer(run, earlier) -> bool:
    """The same messages (text, severity, positions) and status as an earlier answer."""
    mine = run.response if hasattr(run, "response") else run
    theirs = earlier.response if hasattr(earlier, "response") else earlier
    return mine.messages == theirs.messages and status_of(mine) == status_of(theirs)


def test_a_new_process_answers_unchanged_cells_from_the_store_without_starting_lean(
    tmp_path, monkeypatch, store
):
    first_log, second_log = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    with notebook_logging_to(first_log, monkeypatch, store) as first:
        before = run_all(first, FIVE_CELLS)
    assert commands(first_log) == FIVE_CELLS
    assert wait_no_repl_processes() == []
    with notebook_logging_to(second_log, monkeypatch, store) as second:
        again = run_all(second, FIVE_CELLS)
        assert all(run.from_store and run.cached for run in again)
        assert second.running_server is None and our_repl_processes() == []
        assert read_log(second_log) == []
        assert all(same_answer(run, old) for run, old in zip(again, before, strict=True))
        assert [run.has_errors for run in again] == [False] * 4 + [True]
        assert [second.status(c) for c in second.cells] == ["ok"] * 4 + ["error"]
        assert "(from the result cache)" in second.table()[0]["status"]

        edited = second.run("theorem two : b = 2 := by rfl", cell_id="c2")
        assert commands(second_log) == [*FIVE_CELLS[:2], "theorem two : b = 2 := by rfl"]
        (recheck,) = edited.rechecks
        assert recheck.kind == "cached"
        assert "Elaborated 2 cells answered from the result cache" in recheck.summary()
        assert all(
            same_answer(cell.result, old)
            for cell, old in zip(second.cells[:2], before[:2], strict=True)
        )
        assert not edited.from_store and not edited.has_errors
        # Below the edit the env is another one: those answers are not the store's to give.
        assert [second.status(c) for c in second.cells] == ["ok"] * 3 + ["stale"] * 2
        below = second.run("#eval b", cell_id="c3")
        assert not below.from_store and outputs(below) == ["2"]


def test_sorries_and_timeouts_run_for_real_and_a_failed_cell_adds_nothing_to_the_key(
    tmp_path, monkeypatch, store
):
    cells = ["def a := 1", "theorem s : a = 1 := by sorry", "#fake_hang", "#eval a + 1"]
    first_log, second_log = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    with notebook_logging_to(first_log, monkeypatch, store, timeout=0.5) as first:
        before = run_all(first, cells)
    assert isinstance(before[2].error, ReplTimeoutError)
    with notebook_logging_to(second_log, monkeypatch, store, timeout=0.5) as second:
        again = run_all(second, cells)
        assert [run.from_store for run in again] == [True, False, False, True]
        sent = commands(second_log)
        assert sent[:3] == cells[:3]  # the sorry needs its cell above live; the hang is tried
        assert isinstance(again[2].error, ReplTimeoutError)
        assert same_answer(again[1], before[1]) and same_answer(again[3], before[3])
        # The sorry's proof state is live: %proof works on it.
        assert second.prove("rfl", cell_id="p").complete


def test_an_answer_lean_took_longer_than_the_timeout_to_give_runs_again(
    tmp_path, monkeypatch, store
):
    slow = "#fake_sleep 0.3\n#eval 1"
    with notebook_logging_to(tmp_path / "first.jsonl", monkeypatch, store) as first:
        assert not first.run(slow, cell_id="slow").has_errors
    with notebook_logging_to(tmp_path / "second.jsonl", monkeypatch, store) as second:
        run = second.run(slow, cell_id="slow", timeout=0.1)
        assert not run.from_store and isinstance(run.error, ReplTimeoutError)


def test_another_heartbeat_limit_is_another_key(tmp_path, monkeypatch, store):
    with notebook_logging_to(tmp_path / "first.jsonl", monkeypatch, store) as first:
        run_all(first, FIVE_CELLS[:2])
    with notebook_logging_to(tmp_path / "second.jsonl", monkeypatch, store) as second:
        runs = run_all(second, FIVE_CELLS[:2], heartbeats=1000)
        assert [run.from_store for run in runs] == [False, False]


def test_a_query_elaborates_the_cells_from_the_store_first(tmp_path, monkeypatch, store):
    with notebook_logging_to(tmp_path / "first.jsonl", monkeypatch, store) as first:
        run_all(first, FIVE_CELLS[:2])
    second_log = tmp_path / "second.jsonl"
    with notebook_logging_to(second_log, monkeypatch, store) as second:
        run_all(second, FIVE_CELLS[:2])
        assert [m.data for m in second.query("#eval b").messages] == ["2"]
        assert commands(second_log) == [*FIVE_CELLS[:2], "#eval b"]
        assert [second.status(c) for c in second.cells] == ["ok", "ok"]
        assert "result cache" not in second.table()[1]["status"]


def test_a_change_above_a_cell_from_the_store_makes_it_stale_and_reverting_it_does_not(
    tmp_path, monkeypatch, store
):
    with notebook_logging_to(tmp_path / "first.jsonl", monkeypatch, store) as first:
        run_all(first, FIVE_CELLS[:4])
    with notebook_logging_to(tmp_path / "second.jsonl", monkeypatch, store) as second:
        run_all(second, FIVE_CELLS[:4])
        second.run("def b := a + 2", cell_id="c1")
        assert [second.status(c) for c in second.cells] == ["ok", "ok", "stale", "stale"]
        assert outputs(second.run("#eval b", cell_id="c3")) == ["3"]
        back = second.run("def b := a + 1", cell_id="c1")
        assert back.from_store  # its key is the first notebook's again
        assert [second.status(c) for c in second.cells] == ["ok", "ok", "stale", "stale"]
        runs = [second.run(FIVE_CELLS[i], cell_id=f"c{i}") for i in (2, 3)]
        assert all(run.from_store for run in runs) and outputs(runs[1]) == ["2"]


def test_rebuilding_an_imported_module_of_the_project_is_another_key(tmp_path, monkeypatch, store):
    olean = tmp_path / ".lake" / "build" / "lib" / "lean" / "Project" / "Basic.olean"
    olean.parent.mkdir(parents=True)
    olean.write_bytes(b"built once")
    config = LeanREPLConfig(repl_command=fake_repl_command(), working_dir=tmp_path)
    cells = ["import Project.Basic", "def x := 1"]

    def run_in_a_new_notebook() -> list[bool]:
        with Notebook(config, store=store) as notebook:
            return [run.from_store for run in run_all(notebook, cells)]

    assert run_in_a_new_notebook() == [False, False]
    assert run_in_a_new_notebook() == [True, True]
    olean.write_bytes(b"built again, after an edit")
    assert run_in_a_new_notebook() == [False, False]


def test_switching_repl_has_the_new_one_check_the_cells_from_the_store(
    tmp_path, monkeypatch, store
):
    with notebook_logging_to(tmp_path / "first.jsonl", monkeypatch, store) as first:
        run_all(first, FIVE_CELLS[:2])
    second_log = tmp_path / "second.jsonl"
    with notebook_logging_to(second_log, monkeypatch, store) as second:
        assert all(run.from_store for run in run_all(second, FIVE_CELLS[:2]))
        other = LeanREPLConfig(repl_command=fake_repl_command("--lean-version", "4.19.0"))
        replay = second.use_config(other)
        assert [c.label for c in replay.cells] == ["#1", "#2"]
        assert replay.summary().startswith("Switched REPL; replayed 2 cells #1 #2")
        assert commands(second_log) == FIVE_CELLS[:2]
        assert [second.status(c) for c in second.cells] == ["ok", "ok"]
        assert not any(cell.from_store for cell in second.cells)

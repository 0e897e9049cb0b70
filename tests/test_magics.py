"""The IPython extension through IPython's InteractiveShell, against the fake REPL."""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import threading
import time
from types import SimpleNamespace

import pytest
from conftest import fake_repl_command, our_repl_processes, read_log, wait_no_repl_processes
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import lean_kernel.batch.capacity as capacity_module
from lean_kernel.batch.results import BatchResults
from lean_kernel.ipython.magics import LeanMagics
from lean_kernel.ipython.result import LeanCellError, LeanResult

HEADER = "import Mathlib\nopen Nat\n"


@pytest.fixture
def shell(monkeypatch, request_log):
    """An InteractiveShell with the extension loaded on the fake REPL (with a request log)."""
    monkeypatch.setenv("LEAN_KERNEL_REPL", fake_repl_command("--log", str(request_log)))
    for name in ("LEAN_KERNEL_TIMEOUT", "LEAN_KERNEL_MEMORY_LIMIT_MB", "LEAN_KERNEL_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    ipython = InteractiveShell.instance()
    run(ipython, "%load_ext lean_kernel")
    yield ipython
    run(ipython, "%unload_ext lean_kernel")
    gc.collect()
    assert wait_no_repl_processes() == []


def run(shell: InteractiveShell, code: str, cell_id: str | None = None):
    """Run a cell; fail on a Python error (UsageErrors included)."""
    result = shell.run_cell(code, cell_id=cell_id)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


def session(shell: InteractiveShell):
    return shell.magics_manager.registry["LeanMagics"].session


def batch_cell(commands: list[str], options: str = "") -> str:
    return f"%%lean_batch {options}\n" + "\n----\n".join(commands)


# -- loading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lean_kernel", "lean_interact"])
def test_load_ext_under_both_names_adds_the_magics(monkeypatch, name):
    monkeypatch.setenv("LEAN_KERNEL_REPL", fake_repl_command())
    shell = InteractiveShell.instance()
    run(shell, f"%load_ext {name}")
    try:
        magics = shell.magics_manager.magics
        assert {"lean", "lean_config", "lean_status"} <= set(magics["line"])
        assert {"lean", "lean_batch"} <= set(magics["cell"]) & set(magics["line"])
        assert run(shell, "%lean #eval 6 * 7").messages[0].data == "42"
    finally:
        run(shell, f"%unload_ext {name}")
    assert "lean_batch" not in shell.magics_manager.magics["cell"]
    assert wait_no_repl_processes() == []


def test_kernel_environment_variables_give_the_defaults(monkeypatch, capsys):
    monkeypatch.setenv("LEAN_KERNEL_REPL", fake_repl_command())
    monkeypatch.setenv("LEAN_KERNEL_TIMEOUT", "7")
    monkeypatch.setenv("LEAN_KERNEL_MEMORY_LIMIT_MB", "lots")
    shell = InteractiveShell.instance()
    run(shell, "%load_ext lean_kernel")
    try:
        assert "LEAN_KERNEL_MEMORY_LIMIT_MB" in capsys.readouterr().out  # reported, not fatal
        assert session(shell).settings.timeout == 7
    finally:
        run(shell, "%unload_ext lean_kernel")


def test_loading_both_names_shares_one_session(shell):
    first = session(shell)
    run(shell, "%load_ext lean_interact")
    try:
        assert session(shell) is first
    finally:
        shell.extension_manager.loaded.discard("lean_interact")


# -- %lean / %%lean ----------------------------------------------------------------------------


def test_lean_cell_returns_a_result_object_for_python(shell):
    result = run(shell, "%%lean\ndef f := 37\n#eval f + 5\ntheorem t : 1 = 1 := by sorry")
    assert isinstance(result, LeanResult) and result.ok
    assert [m.data for m in result.messages] == ["42", "declaration uses `sorry`"]
    assert result.sorries[0].goal == "⊢ 1 = 1" and result.sorries[0].proof_state == 0
    assert isinstance(result.env, int)
    bundle = result._repr_mimebundle_()
    assert "⊢ 1 = 1" in bundle["text/plain"] and "lk-root" in bundle["text/html"]


def test_lean_cell_judges_each_declaration_as_the_kernel_does(shell):
    result = run(
        shell,
        "%%lean\naxiom cheat : False\ntheorem a : 1 = 1 := rfl\n"
        "theorem b : 2 = 2 := by sorry\ntheorem c : 1 = 2 := cheat.elim",
    )
    assert [(v.name, v.verdict) for v in result.verdicts] == [
        ("cheat", "axioms"),
        ("a", "proved"),
        ("b", "sorry"),
        ("c", "axioms"),
    ]
    assert result.verdicts[3].axioms == ("cheat",)
    bundle = result._repr_mimebundle_()
    for line in ("a: proved", "b: sorry", "c: axioms cheat"):
        assert line in bundle["text/plain"]
    assert bundle["text/html"].count('class="lk-verdict"') == 4
    broken = run(shell, "%%lean\ntheorem d : 1 = 2 := oops")
    assert [(v.name, v.verdict) for v in broken.verdicts] == [("d", "error")]


def test_line_magic_value_can_be_assigned(shell):
    run(shell, "answer = %lean #eval 40 + 2")
    assert shell.user_ns["answer"].messages[0].data == "42"


def test_lean_cell_output_option_and_errors(shell):
    result = run(shell, "%%lean -o checked\ntheorem bad : 1 = 2 := oops_unknown")
    assert shell.user_ns["checked"] is result
    assert result.has_errors and "oops_unknown" in result.errors[0].data
    assert "error" in result._repr_mimebundle_()["text/plain"]


def test_raise_option_makes_lean_errors_python_errors(shell):
    with pytest.raises(LeanCellError, match="oops_unknown"):
        run(shell, "%%lean --raise\n#check oops_unknown")


def test_rerun_of_a_cell_replaces_it_in_place(shell):
    run(shell, "%%lean\ndef f := 37", cell_id="cell-a")
    run(shell, "%%lean\n#eval f", cell_id="cell-b")
    edited = run(shell, "%%lean\ndef f := 38", cell_id="cell-a")
    assert not edited.has_errors  # no "already declared": it runs on the env before it
    again = run(shell, "%%lean\n#eval f", cell_id="cell-b")
    assert again.messages[0].data == "38"
    assert len(session(shell).notebook.cells) == 2


def test_line_magics_in_one_cell_are_separate_cells(shell):
    code = "a = %lean def g := 1\nb = %lean #eval g + 1"
    run(shell, code, cell_id="cell-c")
    run(shell, code, cell_id="cell-c")  # re-running replaces both, no "already declared"
    assert not shell.user_ns["a"].has_errors
    assert shell.user_ns["b"].messages[0].data == "2"
    assert len(session(shell).notebook.cells) == 2


def test_without_cell_ids_every_run_is_a_new_cell(shell):
    run(shell, "%lean #eval 1")
    run(shell, "%lean #eval 1")
    assert len(session(shell).notebook.cells) == 2


def test_interrupt_kills_the_running_command_and_the_next_cell_works(shell):
    run(shell, "%lean def kept := 7")
    # The interrupt must come while the command runs: 1.5 s leaves a loaded CI machine time to
    # send it (at 0.5 s one CI run interrupted the cell before it reached the REPL).
    timer = threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run(shell, "%lean #fake_hang")
    assert time.monotonic() - start < 6  # generous: shared, loaded CI machines
    assert session(shell).notebook.server.restart_count == 1
    assert run(shell, "%lean #eval kept").messages[0].data == "7"  # replayed, in sync


def test_empty_lean_is_a_usage_error(shell):
    with pytest.raises(UsageError, match="needs Lean code"):
        run(shell, "%lean")


# -- %%lean_batch ------------------------------------------------------------------------------


def test_lean_batch_returns_before_the_batch_finishes(shell):
    commands = [f"#fake_sleep 0.5\n#eval {i}" for i in range(6)]
    start = time.monotonic()
    run(shell, batch_cell(commands, "-w 2 -o res --progress none"))
    returned = time.monotonic() - start
    results = shell.user_ns["res"]
    assert isinstance(results, BatchResults)
    assert returned < 1.0 and not results.complete  # the batch takes at least 1.5 s
    assert results.wait(timeout=10)
    assert [item.messages[0].data for item in results] == [str(i) for i in range(6)]


def test_lean_batch_widget_reaches_the_total_with_results_in_input_order(shell):
    commands = [f"{HEADER}theorem t{i} : {i} = {i} := rfl\n#eval {i}" for i in range(12)]
    run(shell, batch_cell(commands, "-w 3 -o res --progress widget"))
    batch = session(shell).batches[-1]
    assert batch.progress.finished.wait(10)
    view = batch.progress.view
    assert view.bar.max == 12 and view.bar.value == 12
    assert view.cancel_button.disabled and "ok 12" in view.counts.value
    results = shell.user_ns["res"]
    assert [item.index for item in results] == list(range(12))
    assert [item.messages[-1].data for item in results] == [str(i) for i in range(12)]
    assert all(item.status == "ok" and item.time >= 0 for item in results)


def test_lean_batch_crash_or_timeout_leaves_the_others_intact(shell):
    commands = [f"#eval {i}" for i in range(6)]
    commands[1] = "#fake_crash"
    commands[4] = "#fake_hang"
    run(shell, batch_cell(commands, "-w 2 -t 0.5 -o res --progress none"))
    results = shell.user_ns["res"]
    assert results.wait(timeout=10)
    assert results.statuses == ["ok", "crashed", "ok", "ok", "timeout", "ok"]
    assert [results[i].messages[0].data for i in (0, 2, 3, 5)] == ["0", "2", "3", "5"]
    assert results.summary()["crashed"] == 1 and results.summary()["timeout"] == 1


def test_cancel_button_stops_pending_items_and_leaves_no_process(shell):
    commands = [f"#fake_sleep 5\n#eval {i}" for i in range(20)]
    run(shell, batch_cell(commands, "-w 2 -o res --progress widget"))
    batch = session(shell).batches[-1]
    time.sleep(0.5)  # both workers are in their first 5-second command
    clicked = time.monotonic()
    batch.progress.view.cancel_button.click()
    results = shell.user_ns["res"]
    assert results.wait(timeout=5) and time.monotonic() - clicked < 2.0
    assert results.statuses == ["cancelled"] * 20
    assert batch.progress.finished.wait(5) and batch.progress.view.cancel_button.disabled
    # The two killed REPLs were replaced by the pool's two workers: nothing else runs.
    pids = {w["pid"] for w in session(shell)._pool.status()["workers"]}
    assert {p.pid for p in wait_for_processes(2)} == pids


def wait_for_processes(count: int, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while len(procs := our_repl_processes()) != count and time.monotonic() < deadline:
        time.sleep(0.05)
    return procs


def test_lean_batch_reads_commands_from_a_python_list(shell):
    shell.user_ns["statements"] = [f"theorem s{i} : {i} + 1 = {i + 1} := rfl" for i in range(5)]
    run(shell, "%lean_batch -i statements -o res --header 'open Nat' --progress none")
    results = shell.user_ns["res"]
    assert results.wait(timeout=10) and results.statuses == ["ok"] * 5


def test_lean_batch_pool_stays_warm_across_invocations(shell, request_log):
    commands = [f"{HEADER}theorem t{i} : {i} = {i} := rfl" for i in range(8)]
    run(shell, batch_cell(commands, "-w 2 -o first --progress none"))
    assert shell.user_ns["first"].wait(10)
    pool = session(shell)._pool
    run(shell, batch_cell(commands, "-w 2 -o second --progress none"))
    assert shell.user_ns["second"].wait(10)
    assert session(shell)._pool is pool
    imports = [r for r in read_log(request_log) if r.get("cmd") == "import Mathlib\n"]
    assert 1 <= len(imports) <= 2  # once per worker, not once per batch


def test_lean_batch_results_table_and_dataframe(shell):
    commands = ["#eval 1", "theorem bad : 1 = 2 := oops_unknown", "theorem s : 1 = 1 := by sorry"]
    run(shell, batch_cell(commands, "-o res --progress none"))
    results = shell.user_ns["res"]
    assert results.wait(10)
    assert results.statuses == ["ok", "error", "sorry"]
    frame = results.to_pandas()
    assert list(frame["status"]) == ["ok", "error", "sorry"]
    assert "oops_unknown" in frame.loc[1, "first_message"]
    bundle = results._repr_mimebundle_()
    assert "1 error" in bundle["text/plain"] and "<table" in bundle["text/html"]


def test_text_progress_is_one_display_updated_in_place(shell, monkeypatch):
    sent: list[tuple[bool, dict, dict]] = []
    monkeypatch.setattr(
        shell.display_pub,
        "publish",
        lambda data, metadata=None, transient=None, update=False, **kw: sent.append(
            (update, data, transient or {})
        ),
    )
    commands = [f"#fake_sleep 0.1\n#eval {i}" for i in range(4)]
    run(shell, batch_cell(commands, "-w 1 -o res --progress text"))
    batch = session(shell).batches[-1]
    assert batch.progress.finished.wait(10)
    ids = {transient["display_id"] for _, _, transient in sent}
    assert len(ids) == 1
    assert [update for update, _, _ in sent][:2] == [False, True]
    assert "4/4" in sent[-1][1]["text/plain"] and "ok 4" in sent[-1][1]["text/plain"]


def test_bad_batch_arguments_are_usage_errors(shell):
    with pytest.raises(UsageError, match="-w needs at least 1"):
        run(shell, "%%lean_batch -w 0\n#eval 1")
    with pytest.raises(UsageError, match="no such variable"):
        run(shell, "%lean_batch -i nothing_here")


# -- %lean_config / %lean_status ---------------------------------------------------------------


def test_lean_config_sets_timeout_and_workers(shell, capsys):
    run(shell, "%lean_config --timeout 0.5 --workers 2")
    assert "timeout per command: 0.5 s" in capsys.readouterr().out
    result = run(shell, "%lean #fake_hang")
    assert result.has_errors and "TimeoutError" in result._repr_mimebundle_()["text/plain"]
    run(shell, batch_cell(["#eval 1", "#fake_hang"], "-o res --progress none"))
    results = shell.user_ns["res"]
    assert results.wait(10) and results.statuses == ["ok", "timeout"]
    assert session(shell)._pool.num_workers == 2


def test_lean_config_memory_limit_caps_batch_workers(shell, monkeypatch):
    mb = 1024 * 1024
    fake_memory = SimpleNamespace(total=16_000 * mb, available=10_000 * mb, percent=37.5)
    monkeypatch.setattr(capacity_module.psutil, "virtual_memory", lambda: fake_memory)
    run(shell, "%lean_config --memory 3000")
    with pytest.warns(RuntimeWarning, match="2 workers instead of 6"):
        run(shell, batch_cell(["#eval 1"], "-w 6 -o res --progress none"))
    assert session(shell)._pool.num_workers == 2
    assert shell.user_ns["res"].wait(10)


def test_lean_config_repl_change_replays_the_document(shell, request_log, capsys):
    run(shell, "%lean def h := 5")
    other = fake_repl_command("--log", str(request_log), "--flavor", "upstream")
    run(shell, f"%lean_config --repl {json.dumps(other)}")
    assert "replayed 1 cell" in capsys.readouterr().out
    assert run(shell, "%lean #eval h").messages[0].data == "5"


def test_lean_status_shows_servers_pool_and_memory(shell, capsys):
    run(shell, "%lean_status")
    out = capsys.readouterr().out
    assert "not started" in out and "Machine memory" in out
    run(shell, "%lean #eval 1")
    run(shell, batch_cell(["#eval 1", "#eval 2"], "-w 2 -o res --progress none"))
    shell.user_ns["res"].wait(10)
    run(shell, "%lean_status")
    out = capsys.readouterr().out
    assert "Session REPL" in out and "Batch pool: 2 workers" in out
    assert "headers held" in out and "res" in out and "2/2" in out


def test_magics_class_is_reusable(shell):
    assert isinstance(shell.magics_manager.registry["LeanMagics"], LeanMagics)


# -- idle reaping --------------------------------------------------------------------------------


def repl_pids(log) -> set[int]:
    """The fake REPL processes that received requests (the log has one JSON line each)."""
    return {json.loads(line)["pid"] for line in log.read_text().splitlines() if line}


def ended(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid not in {p.pid for p in our_repl_processes()}:
            return True
        time.sleep(0.05)
    return False


def test_lean_config_idle_reaps_pool_repls_and_status_shows_it(shell, request_log, capsys):
    run(shell, "%lean_config --idle 0.5")
    assert "idle batch REPLs end after: 0.5 s" in capsys.readouterr().out
    run(shell, batch_cell(["#eval 1", "#eval 2"], "-w 2 -o res --progress none"))
    results = shell.user_ns["res"]
    assert results.wait(10) and results.statuses == ["ok", "ok"], [str(i.error) for i in results]
    first = repl_pids(request_log)
    assert len(first) == 2 and all(ended(pid) for pid in first)
    run(shell, "%lean_status")
    out = capsys.readouterr().out
    assert "idle limit 0.5 s" in out and out.count("reaped (idle)") == 2
    run(shell, batch_cell(["#eval 3", "#eval 4"], "-o again --progress none"))
    assert shell.user_ns["again"].wait(10) and shell.user_ns["again"].statuses == ["ok", "ok"]
    assert repl_pids(request_log) - first  # started afresh on demand
    run(shell, "%lean_config --idle none")
    out = capsys.readouterr().out
    assert "idle batch REPLs end after: never" in out and "new idle limit" in out
    run(shell, batch_cell(["#eval 5"], "-o kept --progress none"))
    assert shell.user_ns["kept"].wait(10)
    assert session(shell)._pool.idle_timeout is None
    with pytest.raises(UsageError, match="not a number of seconds"):
        run(shell, "%lean_config --idle soon")


def test_idle_limit_comes_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("LEAN_KERNEL_REPL", fake_repl_command())
    monkeypatch.setenv("LEAN_KERNEL_IDLE_TIMEOUT", "90s")
    shell = InteractiveShell.instance()
    run(shell, "%load_ext lean_kernel")
    try:
        assert session(shell).settings.idle_timeout == 90
        run(shell, "%lean_config")
        assert "idle batch REPLs end after: 90 s" in capsys.readouterr().out
    finally:
        run(shell, "%unload_ext lean_kernel")
    monkeypatch.setenv("LEAN_KERNEL_IDLE_TIMEOUT", "a while")
    run(shell, "%load_ext lean_kernel")
    try:
        assert "LEAN_KERNEL_IDLE_TIMEOUT" in capsys.readouterr().out  # reported, not fatal
        assert session(shell).settings.idle_timeout == 600  # the default
    finally:
        run(shell, "%unload_ext lean_kernel")


# -- outcomes: each under its own name ----------------------------------------------------------

#: One command per outcome (a header gives the heartbeat one an env to carry Lean's limit).
OUTCOME_COMMANDS = {
    "ok": "#eval 1",
    "sorry": "theorem s : 1 = 1 := by sorry",
    "error": "theorem bad : 1 = 2 := oops_unknown",
    "out of heartbeats": HEADER + "theorem slow : True := by\n  #fake_hang\n  trivial",
    "timeout": "#fake_hang",
    "crashed": "#fake_crash",
    "out of memory": "#fake_memory 1000 2",
}


def test_batch_outcomes_each_show_under_their_own_name_and_a_sorry_is_never_ok(
    shell, monkeypatch, request_log, capsys
):
    """Lean's heartbeat limit at 1000 per second (1 s: 1000 heartbeats), 150 MB per REPL."""
    repl = fake_repl_command("--log", str(request_log), "--heartbeat-rate", "1000")
    monkeypatch.setenv("LEAN_KERNEL_REPL", repl)
    monkeypatch.setenv("LEAN_KERNEL_REPL_FLAVOR", "fork")
    monkeypatch.setenv("LEAN_KERNEL_HEARTBEAT_RATE", "1000")
    monkeypatch.setenv("LEAN_KERNEL_MEMORY_LIMIT_MB", "150")
    run(shell, "%reload_ext lean_kernel")  # the session reads the settings anew
    run(shell, batch_cell(list(OUTCOME_COMMANDS.values()), "-w 2 -t 1 -o mixed --progress none"))
    results = shell.user_ns["mixed"]
    assert results.wait(60)
    words = list(OUTCOME_COMMANDS)
    assert results.outcomes == words, [str(item.error) for item in results]
    assert results.statuses == ["ok", "sorry", "error", "error", "timeout", "crashed", "crashed"]

    plain = results._repr_mimebundle_()["text/plain"]
    counts = "1 ok, 1 sorry, 1 error, 1 out of heartbeats, 1 timeout, 1 crashed, 1 out of memory;"
    assert counts in plain
    shown = [line.split("  ", 2)[:2] for line in plain.splitlines()[3:]]
    assert [word.strip() for _, word in shown] == words

    frame = results.to_pandas()
    assert list(frame["outcome"]) == words and (frame["outcome"] == "ok").sum() == 1

    capsys.readouterr()
    run(shell, "%lean_status")
    out = capsys.readouterr().out
    lines = out.splitlines()
    title = lines.index("Batches")  # then the header, a rule, and one row per batch
    head, row = lines[title + 1], lines[title + 3]
    assert head.split()[:5] == ["results", "done", "ok", "sorry", "failed"]
    assert row.split()[:5] == ["mixed", "7/7", "1", "1", "5"]
    assert "1 error, 1 out of heartbeats, 1 timeout, 1 crashed, 1 out of memory" in row


# -- progress ends on its final state; a terminal's prompt is left alone --------------------------

SLOW_MIXED = [f"#fake_sleep 0.2\n#eval {i}" for i in range(5)] + ["theorem s : 1 = 1 := by sorry"]


def test_wait_returns_once_widget_and_text_progress_show_the_final_state(shell, monkeypatch):
    published: list[dict] = []
    monkeypatch.setattr(
        shell.display_pub,
        "publish",
        lambda data, metadata=None, transient=None, update=False, **kw: published.append(data),
    )
    run(shell, batch_cell(SLOW_MIXED, "-w 2 -o bar --progress widget"))
    run(shell, batch_cell(SLOW_MIXED, "-w 2 -o line --progress text"))
    # No waiting for the progress driver here: wait() returns after the final state is shown.
    assert shell.user_ns["bar"].wait(30) and shell.user_ns["line"].wait(30)
    view = session(shell).batches[-2].progress.view
    assert (view.bar.value, view.bar.max, view.bar.description) == (6, 6, "6/6")
    assert view.counts.value == "ok 5, sorry 1" and "ETA" not in view.times.value
    assert view.bar.bar_style == "warning"  # a sorry is accepted, not proved: not green
    last = {data["text/plain"].split(":")[0]: data["text/plain"] for data in published}
    assert last["bar"].startswith("bar: 6/6 (100%) done ok 5, sorry 1; ")
    assert last["line"].startswith("line: 6/6 (100%) done ok 5, sorry 1; ")


def test_background_batch_in_a_terminal_shell_writes_nothing_over_the_prompt(
    shell, monkeypatch, capsys
):
    import lean_kernel.display.terminal as terminal

    above_prompt: list[str] = []
    monkeypatch.setattr(terminal, "_print_above_prompt", above_prompt.append)
    run(shell, batch_cell(SLOW_MIXED, "-w 2 -o res"))  # auto, and no kernel: a terminal
    cell = capsys.readouterr().err
    assert "\n" not in cell and (cell == "" or cell.endswith("\r"))  # its live line, wiped
    assert shell.user_ns["res"].wait(30)  # meanwhile the user types at the prompt
    assert capsys.readouterr().err == ""  # so nothing was written on the terminal
    assert len(above_prompt) == 1  # but one line above the prompt says how it ended
    assert above_prompt[0].startswith("res: 6/6 (100%) done ok 5, sorry 1; ")

    # The same commands again, run (not answered from the result cache): a live line again.
    run(shell, batch_cell(SLOW_MIXED, "-w 2 -o again --no-cache"))
    capsys.readouterr()
    run(shell, "again.wait(30)")  # a cell waiting for the batch: a live line, then the end
    written = capsys.readouterr().err
    last = written.rsplit("\r", 1)[-1]
    assert last.endswith("\n") and last.rstrip().startswith("again: 6/6 (100%) done ok 5, ")
    assert len(above_prompt) == 1


def test_terminal_ipython_never_writes_progress_over_the_prompt(tmp_path):
    """A real ``ipython`` on a pty: a batch finishing behind the prompt while the user types."""
    pexpect = pytest.importorskip("pexpect")
    env = dict(os.environ, LEAN_KERNEL_REPL=fake_repl_command(), PROMPT_TOOLKIT_NO_CPR="1")
    env.update(TERM="xterm", IPYTHONDIR=str(tmp_path / "ipython"))
    for name in ("LEAN_KERNEL_TIMEOUT", "LEAN_KERNEL_MEMORY_LIMIT_MB", "LEAN_KERNEL_PROJECT"):
        env.pop(name, None)
    options = ["--no-banner", "--colors=NoColor", "--HistoryManager.enabled=False"]
    child = pexpect.spawn(
        sys.executable,
        ["-m", "IPython", *options],
        env=env,
        encoding="utf-8",
        dimensions=(40, 160),
        timeout=30,
    )
    try:
        child.expect(r"In \[1\]")
        child.sendline("%load_ext lean_kernel")
        child.expect(r"In \[2\]")
        child.sendline('slow = [f"#fake_sleep 0.3\\n#eval {i}" for i in range(12)]')
        child.expect(r"In \[3\]")
        child.sendline("%lean_batch -i slow -o res -w 2")
        child.expect(r"In \[4\]")
        child.send("x = 1 + 1")  # typing while the batch runs, not yet Enter
        child.expect(r"res: 12/12 \(100%\) done ok 12; [\d.]+ s elapsed\r\n")
        behind_the_prompt = child.before
        assert "res:" not in behind_the_prompt and "ETA" not in behind_the_prompt
        child.expect(r"In \[4\]: x = 1 \+ 1")  # the prompt, redrawn with what was typed
        child.sendline("")
        child.expect(r"In \[5\]")
        child.sendline("print(x * 21)")
        child.expect(r"\D42\r\n")

        child.sendline("%lean_batch -i slow -o res2 -w 2 --no-cache")  # run again, live
        child.expect(r"In \[7\]")
        child.sendline("res2.wait()")  # waiting in a cell: the line is live, and ends
        child.expect(r"res2: \d+/12 \(\d+%\) ok \d+; [\d.]+ s elapsed, ETA")
        child.expect(r"\rres2: 12/12 \(100%\) done ok 12; [\d.]+ s elapsed *\r\n")
        child.expect(r"Out\[7\]: \S*True")
        child.expect(r"In \[8\]")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert wait_no_repl_processes(10) == []

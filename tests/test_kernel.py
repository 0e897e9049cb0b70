"""The Lean kernel as a frontend sees it: a real kernel process driven through jupyter_client.

Cells carry ids in their metadata (as JupyterLab, Notebook 7 and VS Code send them); the kernel
runs the fake REPL with a request log, so each test can check what reached the REPL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time

import psutil
import pytest
from conftest import wait_no_repl_processes
from kernel_harness import (
    BARE_KERNEL_NAME,
    KERNEL_NAME,
    KernelSession,
    kernelspecs_on_jupyter_path,
)
from verdict_corpus import CORPUS


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory):
    with kernelspecs_on_jupyter_path(tmp_path_factory.mktemp("jupyter")) as path:
        yield path


class RequestLog:
    """The requests the fake REPL received since a test started (kernels are shared)."""

    def __init__(self, path) -> None:
        self.path = path
        self.start = 0

    def mark(self) -> None:
        self.start = len(self._lines())

    def _lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self._lines()[self.start :] if line]

    def requests(self) -> list[dict]:
        return [entry["request"] for entry in self.entries()]

    def commands(self) -> list[str]:
        return [r["cmd"] for r in self.requests() if isinstance(r, dict) and "cmd" in r]

    def pids(self) -> set[int]:
        return {entry["pid"] for entry in self.entries()}


@pytest.fixture(scope="module")
def shared_log(tmp_path_factory):
    return RequestLog(tmp_path_factory.mktemp("log") / "requests.jsonl")


@pytest.fixture(scope="module")
def shared_kernel(jupyter_path, shared_log):
    session = KernelSession(fake_args=["--log", str(shared_log.path)])
    yield session
    session.close()
    assert wait_no_repl_processes() == []


@pytest.fixture
def kernel(shared_kernel, shared_log):
    """The module's kernel, with an empty document (``%reset``) and the log marked."""
    assert shared_kernel.execute("%reset").status == "ok"
    shared_log.mark()
    return shared_kernel


@pytest.fixture
def log(shared_log):
    return shared_log


@pytest.fixture
def start_kernel(jupyter_path, tmp_path):
    """Start a kernel of its own (fake flags and environment); returns it and its log."""
    sessions: list[KernelSession] = []

    def start(*fake_args: str, env: dict[str, str] | None = None, kernel_name=KERNEL_NAME):
        own = RequestLog(tmp_path / f"requests-{len(sessions)}.jsonl")
        session = KernelSession(
            fake_args=["--log", str(own.path), *fake_args], env=env, kernel_name=kernel_name
        )
        sessions.append(session)
        return session, own

    yield start
    for session in sessions:
        session.close()
    # The module's shared kernel still runs its REPL: check these kernels' REPLs only.
    left = [pid for pid in logs_pids(tmp_path) if wait_gone(pid)]
    assert left == []


def logs_pids(folder) -> set[int]:
    return {pid for path in folder.glob("requests-*.jsonl") for pid in RequestLog(path).pids()}


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether the process is still running after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return False
        time.sleep(0.05)
    return True


# -- kernel info ----------------------------------------------------------------------------


def test_kernel_info_describes_lean4(kernel):
    reply = kernel.reply(kernel.kc.kernel_info())
    info = reply["language_info"]
    assert info["name"] == "lean4" and info["file_extension"] == ".lean"
    assert info["pygments_lexer"] == "lean4" and info["codemirror_mode"] == "lean4"
    assert info["mimetype"] == "text/x-lean4"
    assert "Lean 4 kernel" in reply["banner"] and "fake_repl.py" in reply["banner"]


# -- the cell model ---------------------------------------------------------------------------


def test_rerun_of_edited_cell_replaces_it(kernel):
    assert kernel.execute("def f := 1", "def").status == "ok"
    assert kernel.execute("#eval f", "use").stdout == "1\n"
    edited = kernel.execute("def f := 2", "def")
    assert edited.status == "ok", edited.plain
    assert "already" not in edited.plain
    assert kernel.execute("#eval f", "use").stdout == "2\n"


def test_stale_cells_are_rechecked_before_a_later_cell_runs(kernel, log):
    kernel.execute("def f := 1", "a")
    second = kernel.execute("def g := f + 1", "b")
    kernel.execute("def f := 10", "a")
    later = kernel.execute("#eval g", "c")
    assert later.stdout == "11\n"
    note = later.displays[0]["text/plain"]
    label = f"[{second.reply['execution_count']}]"
    assert note.startswith(f"Re-checked 1 stale cell {label} in ") and "no new errors" in note
    cells = [c for c in log.commands() if not c.startswith("#print axioms")]  # verdict checks
    assert cells[-3:] == ["def f := 10", "def g := f + 1", "#eval g"]


def test_recheck_reports_new_errors_with_their_cell(kernel):
    kernel.execute("def f := 1", "a")
    user = kernel.execute("def g := f", "b")
    kernel.execute("def h := 1", "a")
    later = kernel.execute("#eval 1", "c")
    label = f"[{user.reply['execution_count']}]"
    assert f"new errors in {label}" in later.displays[0]["text/plain"]


def test_identical_rerun_is_served_from_the_cache(kernel, log):
    kernel.execute("def f := 1", "a")
    first = kernel.execute("#eval f", "b")
    sent = len(log.requests())
    again = kernel.execute("#eval f", "b")
    assert again.stdout == first.stdout == "1\n"
    assert kernel.execute("def f := 1", "a").status == "ok"
    assert len(log.requests()) == sent


def test_cells_without_ids_are_appended(kernel):
    kernel.execute("def f := 1")
    assert kernel.execute("#eval f + 1").stdout == "2\n"


def test_emptied_cell_leaves_the_document(kernel):
    kernel.execute("def f := 1", "a")
    emptied = kernel.execute("", "a")
    assert "taken out of the document" in emptied.displays[0]["text/plain"]
    assert kernel.execute("#eval f", "b").status == "error"


def test_cells_deleted_in_jupyterlab_leave_the_document(kernel):
    kernel.execute("def f := 1", "a")
    kernel.execute("def g := 2", "b")
    run = kernel.execute("#eval g", "c", deletedCells=["a", "never-ran"])
    assert run.stdout == "2\n"
    assert "Deleted cell [" in run.displays[0]["text/plain"]
    assert kernel.execute("#eval f", "d").status == "error"


def test_import_cell_moves_to_the_top(kernel, log):
    kernel.execute("def f := 1", "a")
    assert kernel.execute("import Lean", "imports").status == "ok"
    assert kernel.execute("#eval f", "b").stdout == "1\n"
    imports = [r for r in log.requests() if r.get("cmd") == "import Lean"]
    assert imports and "env" not in imports[0]
    refused = kernel.execute("import Mathlib", "other")
    assert refused.status == "error" and refused.reply["ename"] == "ImportPlacementError"
    assert "first cell" in refused.reply["evalue"]


# -- rendering ---------------------------------------------------------------------------------


def test_eval_output_is_a_stream_and_messages_are_rich_displays(kernel):
    run = kernel.execute("#eval 1 + 1\n#check Nat", "a")
    assert run.status == "ok" and run.stdout == "2\n"
    (bundle,) = run.displays
    assert "Nat : Type" in bundle["text/plain"] and "lk-root" in bundle["text/html"]


def test_lean_errors_make_the_reply_an_error(kernel):
    run = kernel.execute("def x : Nat := nope", "a")
    assert run.status == "error" and run.reply["ename"] == "LeanError"
    assert "nope" in run.reply["evalue"]
    kinds = [kind for kind, _ in run.outputs]
    assert kinds == ["display_data", "error"]
    assert "lk-diag lk-error" in run.displays[0]["text/html"]


def test_error_without_cell_id_is_one_error_output_with_the_whole_text(kernel):
    run = kernel.execute("#eval 5\ndef x : Nat := nope")
    assert run.status == "error" and [kind for kind, _ in run.outputs] == ["error"]
    text = "\n".join(run.error["traceback"])
    assert "nope" in text and "^" in text and "5" in text


def test_warnings_and_sorries_are_ok_and_show_goals(kernel):
    run = kernel.execute("theorem t (n : Nat) : n + 0 = n := by sorry", "a")
    assert run.status == "ok"
    plain = run.displays[0]["text/plain"]
    assert "declaration uses `sorry`" in plain and "⊢ n + 0 = n" in plain
    assert re.search(r"goal \(proof state \d+\)", plain)


# -- magics -----------------------------------------------------------------------------------

THEOREM = "theorem t (p q : Prop) (hp : p) (hq : q) : p ∧ q := by sorry"


def test_proof_magic_shows_goals_and_continues(kernel):
    kernel.execute(THEOREM, "thm")
    first = kernel.execute("%proof\nconstructor", "p1")
    assert first.status == "ok"
    assert "case left" in first.displays[0]["text/plain"]
    second = kernel.execute("%proof\nexact hp", "p2")
    assert "case right" in second.displays[0]["text/plain"]
    assert "case left" not in second.displays[0]["text/plain"]
    done = kernel.execute("%proof\nexact hq", "p3")
    assert "Completed" in done.plain and "Proof complete" in done.plain


def test_proof_magic_error_is_a_lean_error(kernel):
    shown = kernel.execute(THEOREM, "thm").displays[0]["text/plain"]
    state = re.search(r"proof state (\d+)", shown).group(1)
    run = kernel.execute(f"%proof {state}\nconstructor\nexact bogus", "p")
    assert run.status == "error" and run.reply["ename"] == "LeanError"
    assert "bogus" in run.reply["evalue"]


def test_proof_magic_without_sorry_is_a_clear_error(kernel):
    run = kernel.execute("%proof\nsimp", "p")
    assert run.status == "error" and "no `sorry`" in run.reply["evalue"]


def test_unknown_magic_lists_the_known_ones(kernel):
    run = kernel.execute("%bogus 1", "a")
    assert run.status == "error" and run.reply["ename"] == "UsageError"
    for name in ("%proof", "%timeout", "%restart", "%reset", "%cells", "%load", "%project"):
        assert name in run.reply["evalue"]
    assert kernel.execute("#eval 1", "b").stdout == "1\n"


def test_bad_magic_arguments_are_usage_errors(kernel):
    assert kernel.execute("%timeout soon", "a").reply["ename"] == "UsageError"
    assert kernel.execute("%proof first\nsimp", "b").reply["ename"] == "UsageError"
    assert kernel.execute("%cells now", "c").reply["ename"] == "UsageError"


def test_cells_magic_shows_the_document(kernel):
    kernel.execute("def f := 1", "a")
    kernel.execute("#eval nope", "b")
    kernel.execute("def f := 2", "a")
    table = kernel.execute("%cells", "c")
    plain = table.displays[0]["text/plain"]
    assert "def f := 2" in plain and "stale" in plain
    assert "lk-table" in table.displays[0]["text/html"]


def test_load_runs_a_lean_file(kernel, tmp_path):
    path = tmp_path / "defs.lean"
    path.write_text("def loaded := 41\n#eval loaded + 1\n")
    run = kernel.execute(f"%load {path}", "a")
    assert run.status == "ok" and run.stdout == "42\n"
    missing = kernel.execute(f"%load {tmp_path / 'none.lean'}", "b")
    assert missing.reply["ename"] == "UsageError" and "Cannot read" in missing.reply["evalue"]


def test_timeout_magic_sets_the_default_and_per_cell_limit(kernel):
    assert "no limit" in kernel.execute("%timeout", "a").plain
    assert "2 s" in kernel.execute("%timeout 2", "b").plain
    started = time.monotonic()
    run = kernel.execute("%timeout 0.5\n#fake_hang", "c")
    assert run.reply["ename"] == "TimeoutError" and time.monotonic() - started < 10
    assert "no limit" in kernel.execute("%timeout none", "d").plain


def test_restart_magic_replays_the_document(kernel, log):
    kernel.execute("def f := 3", "a")
    run = kernel.execute("%restart", "b")
    assert "REPL restarted; replayed 1 cell" in run.plain
    assert kernel.execute("#eval f", "c").stdout == "3\n"
    assert len(log.pids()) == 2


def test_reset_magic_forgets_the_document(kernel):
    kernel.execute("def f := 3", "a")
    assert "Document cleared" in kernel.execute("%reset", "b").plain
    assert kernel.execute("#eval f", "c").status == "error"


def test_project_magic_switches_and_replays(kernel, tmp_path, log):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "lakefile.toml").write_text('name = "proj"\n')
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.19.0\n")
    kernel.execute("def f := 8", "a")
    run = kernel.execute(f"%project {project}", "b")
    assert run.status == "ok", run.plain
    assert "Now running" in run.plain and "replayed 1 cell" in run.plain
    assert kernel.execute("#eval f", "c").stdout == "8\n"
    assert len(log.pids()) == 2
    assert "fake_repl.py" in kernel.execute("%project", "d").plain
    assert kernel.execute(f"%project {tmp_path / 'nope'}", "e").reply["ename"] == "UsageError"


def test_help_magic_lists_magics(kernel):
    assert "%proof [N]" in kernel.execute("%help").stdout


# -- failures of the REPL ------------------------------------------------------------------------


def test_crash_is_recovered_with_the_document_intact(kernel, log):
    kernel.execute("def f := 5", "a")
    run = kernel.execute("#fake_crash 3", "b")
    assert run.status == "error" and run.reply["ename"] == "ReplCrashedError"
    assert "replayed 1 cell" in run.displays[0]["text/plain"]
    assert kernel.execute("#eval f", "c").stdout == "5\n"
    assert len(log.pids()) == 2


def test_timeout_is_recovered_with_the_document_intact(start_kernel):
    kernel, _ = start_kernel(env={"LEAN_KERNEL_TIMEOUT": "0.5"})
    kernel.execute("def f := 6", "a")
    started = time.monotonic()
    run = kernel.execute("#fake_hang", "b")
    assert run.reply["ename"] == "TimeoutError" and time.monotonic() - started < 10
    assert "timed out after 0.5 s" in run.displays[0]["text/plain"]
    assert kernel.execute("#eval f", "c").stdout == "6\n"


def test_memory_blowup_is_recovered_with_the_document_intact(start_kernel):
    kernel, _ = start_kernel(env={"LEAN_KERNEL_MEMORY_LIMIT_MB": "150"})
    kernel.execute("def f := 7", "a")
    run = kernel.execute("#fake_memory 600 2", "b", timeout=60)
    assert run.reply["ename"] == "MemoryError", run.plain
    assert "memory limit" in run.reply["evalue"]
    after = kernel.execute("#eval f", "c")
    assert after.stdout == "7\n", after.outputs


def test_interrupt_stops_the_command_and_replays_the_document(kernel):
    kernel.execute("def f := 9", "a")
    msg_id = kernel.send("#fake_hang", "b")
    time.sleep(0.5)
    interrupted = time.monotonic()
    kernel.km.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=20)
    assert time.monotonic() - interrupted < 3
    assert run.reply["ename"] == "KeyboardInterrupt"
    assert "replayed 1 cell" in run.displays[0]["text/plain"]
    assert kernel.execute("#eval f", "c").stdout == "9\n"
    assert kernel.km.is_alive()


def test_interrupt_request_message_also_stops_the_command(kernel):
    """interrupt_mode "message" (remote kernels, gateways) reaches the same cancel flag."""
    kernel.execute("def f := 4", "a")
    msg_id = kernel.send("#fake_hang", "b")
    time.sleep(0.5)
    kernel.kc.control_channel.send(kernel.kc.session.msg("interrupt_request", {}))
    run = kernel.collect(msg_id, timeout=20)
    assert run.reply["ename"] == "KeyboardInterrupt"
    assert kernel.execute("#eval f", "c").stdout == "4\n"


def test_bad_settings_are_reported_and_ignored(start_kernel):
    kernel, _ = start_kernel(
        env={"LEAN_KERNEL_TIMEOUT": "soon", "LEAN_KERNEL_INCREMENTAL": "maybe"}
    )
    run = kernel.execute("#eval 1", "a")
    warnings = "".join(c["text"] for kind, c in run.outputs if kind == "stream")
    assert "LEAN_KERNEL_TIMEOUT='soon' ignored" in warnings
    assert "LEAN_KERNEL_INCREMENTAL='maybe' ignored" in warnings
    assert run.stdout == "1\n"


def test_incremental_setting_turns_off_incrementality(start_kernel):
    kernel, own = start_kernel(env={"LEAN_KERNEL_INCREMENTAL": "off"})
    kernel.execute("def f := 1", "a")
    assert own.requests() and all("incrementality" not in r for r in own.requests())


def test_incrementality_is_sent_by_default(kernel, log):
    kernel.execute("def f := 1", "a")
    assert log.requests()[-1]["incrementality"] is True


# -- completion, inspection, is_complete ---------------------------------------------------------


def test_completion_offers_abbreviations_keywords_and_declared_names(kernel):
    reply = kernel.complete("def x := \\alpha")
    assert reply["matches"][0] == "α" and reply["cursor_start"] == len("def x := ")
    kernel.execute("def myDouble (n : Nat) := 2 * n", "a")
    assert "myDouble" in kernel.complete("#eval myDo")["matches"]
    assert "theorem" in kernel.complete("theo")["matches"]
    assert "simp" in kernel.complete("example : True := by\n  sim")["matches"]


def test_inspect_shows_signature_and_docstring_without_changing_the_document(kernel):
    kernel.execute("/-- Doubles a number. -/\ndef double (n : Nat) : Nat := 2 * n", "a")
    reply = kernel.inspect("#eval double 2", cursor_pos=8)
    assert reply["found"] is True
    text = reply["data"]["text/plain"]
    assert "double (n : Nat) : Nat" in text and "Doubles a number." in text
    assert "```lean" in reply["data"]["text/markdown"]
    assert kernel.inspect("#eval nothingHere")["found"] is False
    after = kernel.execute("#eval double 3", "b")
    assert after.stdout == "6\n" and not after.displays  # nothing went stale


def test_is_complete_for_the_console(kernel):
    assert kernel.is_complete("def x := 1")["status"] == "complete"
    incomplete = kernel.is_complete("theorem t : True := by")
    assert incomplete["status"] == "incomplete" and incomplete["indent"] == "  "
    assert kernel.is_complete("def x := (1 + 1))")["status"] == "invalid"
    assert kernel.is_complete("%cells")["status"] == "complete"
    assert kernel.is_complete("%proof")["status"] == "incomplete"
    assert kernel.is_complete("%nope")["status"] == "invalid"


# -- widgets -------------------------------------------------------------------------------------


def test_widget_comms_can_talk_back(kernel):
    comm_id = "test-control"
    open_msg = kernel.kc.session.msg(
        "comm_open",
        {"comm_id": comm_id, "target_name": "jupyter.widget.control", "data": {}},
        metadata={"version": "1.0.0"},
    )
    kernel.kc.shell_channel.send(open_msg)
    request = kernel.kc.session.msg(
        "comm_msg", {"comm_id": comm_id, "data": {"method": "request_states"}}
    )
    kernel.kc.shell_channel.send(request)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msg = kernel.kc.get_iopub_msg(timeout=10)
        if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == comm_id:
            assert msg["content"]["data"]["method"] == "update_states"
            return
    raise AssertionError("the widget control comm never answered")


# -- setting up ------------------------------------------------------------------------------


def test_missing_repl_is_a_clear_error_and_the_kernel_lives(start_kernel, tmp_path):
    missing = str(tmp_path / "no-such-repl")
    kernel, _ = start_kernel(env={"LEAN_KERNEL_REPL": missing}, kernel_name=BARE_KERNEL_NAME)
    banner = kernel.reply(kernel.kc.kernel_info())["banner"]
    assert "not ready" in banner
    run = kernel.execute("#eval 1", "a")
    assert run.reply["ename"] == "ReplSetupError" and "LEAN_KERNEL_REPL" in run.reply["evalue"]
    assert kernel.execute("%help", "b").status == "ok"


def test_first_cell_sets_up_lean_with_progress_in_place(start_kernel, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "lakefile.toml").write_text('name = "proj"\n')
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.19.0\n")
    env = {
        "LEAN_KERNEL_REPL": "",
        "LEAN_KERNEL_PROJECT": str(project),
        "LEAN_KERNEL_CACHE_DIR": str(tmp_path / "cache"),
        "ELAN_HOME": str(tmp_path / "elan"),
        "PATH": "/nonexistent",
    }
    kernel, _ = start_kernel(env=env, kernel_name=BARE_KERNEL_NAME)
    run = kernel.execute("#eval 1", "a")
    (kind, first), (update_kind, update) = run.outputs[:2]
    assert (kind, update_kind) == ("display_data", "update_display_data")
    assert first["transient"]["display_id"] == update["transient"]["display_id"]
    assert "uses Lean v4.19.0" in update["data"]["text/plain"]
    assert run.reply["ename"] == "ReplSetupError" and "elan" in run.reply["evalue"]


def test_repl_killed_near_its_memory_limit_says_out_of_memory(start_kernel):
    kernel, log = start_kernel(env={"LEAN_KERNEL_MEMORY_LIMIT_MB": "300"})
    kernel.execute("def f := 8", "a")
    assert kernel.execute("#fake_memory 250 1", "b", timeout=60).status == "ok"
    (pid,) = log.pids()
    msg_id = kernel.send("#fake_hang", "c")
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)  # as the system's out-of-memory killer does
    run = kernel.collect(msg_id, timeout=30)
    assert run.reply["ename"] == "MemoryError", run.plain
    evalue = run.reply["evalue"]
    assert "out of memory (last seen " in evalue and "MB)" in evalue, evalue
    note = run.displays[0]["text/plain"]
    assert "ran out of memory (last seen " in note and "replayed 2 cells" in note, note
    assert kernel.execute("#eval f", "d").stdout == "8\n"


# -- heartbeats: Lean's own limit before the timeout ----------------------------------------------

HEARTBEAT_ENV = {
    "LEAN_KERNEL_REPL_FLAVOR": "fork",
    "LEAN_KERNEL_HEARTBEAT_RATE": "1000",
    "LEAN_KERNEL_TIMEOUT": "1",
}
RUNAWAY = "theorem t : True := by\n  #fake_hang\n  trivial"


def test_runaway_cell_stops_at_the_heartbeat_limit_and_the_repl_keeps_its_state(start_kernel):
    kernel, own = start_kernel("--heartbeat-rate", "1000", env=HEARTBEAT_ENV)
    kernel.execute("def f := 6", "a")
    run = kernel.execute(RUNAWAY, "b")
    assert run.status == "error" and run.reply["ename"] == "LeanError"
    assert "maximum number of heartbeats (1000) has been reached" in run.plain
    assert "the REPL kept its state, nothing was replayed" in run.plain
    assert "REPL restarted" not in run.plain
    assert kernel.execute("#eval f", "c").stdout == "6\n"
    assert len(own.pids()) == 1


def test_heartbeats_magic_sets_the_default_and_per_cell_limit(start_kernel):
    kernel, own = start_kernel("--heartbeat-rate", "1000", env=HEARTBEAT_ENV)
    shown = kernel.execute("%heartbeats", "a").plain
    assert "auto: 1000 for 1 s (1000 per second)" in shown and "after 2.2 s" in shown
    kernel.execute("def f := 1", "first")  # a document's first cell has no env to limit
    slow = "theorem s : True := by\n  #fake_sleep 0.3\n  trivial"
    cut = kernel.execute(f"%heartbeats 100\n{slow}", "b")
    assert "maximum number of heartbeats (100)" in cut.plain
    assert "Heartbeats per cell: 50" in kernel.execute("%heartbeats 50", "c").plain
    assert "heartbeats (50)" in kernel.execute(slow.replace(" s ", " s2 "), "d").plain
    kernel.execute("%heartbeats off", "e")
    run = kernel.execute(RUNAWAY, "f")
    assert run.reply["ename"] == "TimeoutError" and "REPL restarted" in run.plain
    bad = kernel.execute("%heartbeats lots", "g")
    assert bad.reply["ename"] == "UsageError" and "not a heartbeat limit" in bad.reply["evalue"]
    # 100 for [b], 50 for [d] on it, then Lean's default back for the cell without a limit.
    assert [c for c in own.commands() if "maxHeartbeats" in c][:3] == [
        "set_option maxHeartbeats 100",
        "set_option maxHeartbeats 50",
        "set_option maxHeartbeats 200000",
    ]


def test_unknown_repl_flavour_keeps_the_timeout_only(start_kernel):
    kernel, own = start_kernel("--heartbeat-rate", "1000", env={"LEAN_KERNEL_TIMEOUT": "1"})
    assert "only the timeout applies" in kernel.execute("%heartbeats", "a").plain
    kernel.execute("def f := 1", "b")
    assert kernel.execute(RUNAWAY, "c").reply["ename"] == "TimeoutError"
    assert not any("maxHeartbeats" in c for c in own.commands())


def test_lean_batch_heartbeats_option_limits_each_command(start_kernel):
    kernel, own = start_kernel("--heartbeat-rate", "1000", env=HEARTBEAT_ENV)
    slow = "theorem s : True := by\n  #fake_sleep 0.3\n  trivial"
    run = kernel.execute(
        f"%%lean_batch --heartbeats 100 -o hb --progress none\n{slow}\n----\n#eval 1"
    )
    assert run.status == "ok", run.plain
    item = kernel.execute("%batch hb 0", "b").plain
    assert "hb #0: error" in item and "maximum number of heartbeats (100)" in item
    assert "hb #1: ok" in kernel.execute("%batch hb 1", "c").plain
    assert "set_option maxHeartbeats 100" in own.commands()
    bad = kernel.execute("%%lean_batch --heartbeats lots\n#eval 1")
    assert bad.reply["ename"] == "UsageError" and "not a heartbeat limit" in bad.reply["evalue"]


# -- jupyter console: is_complete for multi-line cells, exit / quit ------------------------------


def test_is_complete_keeps_multi_line_cells_together(kernel):
    def status(code: str) -> tuple[str, str]:
        reply = kernel.is_complete(code)
        return reply["status"], reply.get("indent", "")

    cases = "def sumTo : Nat → Nat\n  | 0 => 0\n  | n + 1 => (n + 1) + sumTo n"
    assert status("def sumTo : Nat → Nat") == ("incomplete", "  ")
    assert status(cases) == ("incomplete", "  ")
    assert status(cases + "\n") == ("complete", "")
    assert status("#eval match 3 with") == ("incomplete", "  ")
    assert status("structure Point where\n  x : Nat") == ("incomplete", "  ")
    assert status("#eval 1 + 1") == ("complete", "")
    assert status("%%lean_batch") == ("incomplete", "")
    assert status("%%lean_batch\n#eval 1\n----\n#eval 2") == ("incomplete", "")
    assert status("%%lean_batch\n#eval 1\n----\n#eval 2\n") == ("complete", "")
    assert status("%%lean_batch\ntheorem t : True := by") == ("incomplete", "  ")
    assert status("%proof\nsimp") == ("complete", "")
    assert status("exit") == ("complete", "")


@pytest.mark.parametrize("code", ["exit", "quit", "exit()", " quit() \n"])
def test_exit_and_quit_ask_the_console_to_quit_without_reaching_lean(kernel, log, code):
    run = kernel.execute(code)
    assert run.status == "ok" and run.outputs == []
    assert run.reply["payload"] == [{"source": "ask_exit", "keepkernel": False}]
    assert log.commands() == []
    assert kernel.execute("#eval 2 + 2").stdout == "4\n"  # the kernel itself stays up


def test_exit_keep_kernel_and_exit_in_a_notebook(kernel, log):
    kept = kernel.execute("exit(keep_kernel=True)")
    assert kept.reply["payload"] == [{"source": "ask_exit", "keepkernel": True}]
    in_notebook = kernel.execute("exit", "a")
    assert in_notebook.reply["payload"][0]["source"] == "ask_exit"
    assert "Kernel menu" in in_notebook.plain  # notebooks ignore the request: say so
    assert log.commands() == []
    # Only `exit` alone is the frontend's: in Lean code it is Lean's to judge.
    kernel.execute("#eval 1\nexit", "b")
    assert log.commands() == ["#eval 1\nexit"]


def test_setup_display_ends_on_the_failure_instead_of_setting_up(start_kernel, tmp_path):
    """On a machine without Lean the first cell's setup line says that setup failed, above the
    error, instead of staying at "Setting up Lean..."."""
    missing = str(tmp_path / "no-such-repl")
    kernel, _ = start_kernel(env={"LEAN_KERNEL_REPL": missing}, kernel_name=BARE_KERNEL_NAME)
    run = kernel.execute("#eval 1", "a")
    assert run.reply["ename"] == "ReplSetupError"
    shown = [c for kind, c in run.outputs if "display_data" in kind and c.get("transient")]
    assert shown and shown[0]["data"]["text/plain"] == "Setting up Lean..."
    ids = {c["transient"]["display_id"] for c in shown}
    assert len(ids) == 1, "one display, updated in place"
    last = shown[-1]["data"]["text/plain"]
    assert last.startswith("Setting up Lean: failed after ") and "error is below" in last
    kinds = [kind for kind, _ in run.outputs]
    assert kinds.index("error") > max(i for i, k in enumerate(kinds) if "display_data" in k)
    # The kernel lives on, and the next cell says the same, without a stale line either.
    again = kernel.execute("#eval 2", "b")
    assert again.reply["ename"] == "ReplSetupError"
    assert again.outputs[-2][1]["data"]["text/plain"].startswith("Setting up Lean: failed")


def test_cells_magic_shows_each_cell_under_its_own_word_and_never_a_sorry_as_ok(start_kernel):
    kernel, _ = start_kernel("--heartbeat-rate", "1000", env=HEARTBEAT_ENV)
    kernel.execute("def f := 6", "a")
    kernel.execute("theorem s : 1 = 1 := by sorry", "b")
    kernel.execute("#eval nope", "c")
    kernel.execute(RUNAWAY, "d")
    kernel.execute("#fake_crash", "e")
    plain = kernel.execute("%cells", "f").displays[0]["text/plain"]
    head, _, *rows = plain.splitlines()
    start, end = head.index("status"), head.index("time (s)")  # the status column
    words = [row[start:end].strip() for row in rows]
    assert words[:3] == ["ok", "warning: sorry", "error"], plain
    assert words[3] == "out of heartbeats: Lean's limit", plain
    assert words[4].startswith("error: crashed the REPL"), plain


class _Sent:
    """A jupyter_client ``Session`` stand-in that keeps what would go out on iopub."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict]] = []

    def send(self, _socket, kind: str, content: dict, parent: dict) -> None:
        self.messages.append((kind, content))


@pytest.mark.parametrize(
    ("raised", "last"),
    [
        (None, "Setting up Lean: done in 0 s (built the REPL)."),
        (RuntimeError("no network"), "Setting up Lean: failed after 0 s (the error is below)."),
        (KeyboardInterrupt(), "Setting up Lean: interrupted after 0 s."),
    ],
)
def test_setup_display_ends_on_how_setup_ended(raised, last):
    from lean_kernel.kernel.output import KernelOutput

    session = _Sent()
    output = KernelOutput(session, iopub_socket=None)
    expected = pytest.raises(type(raised)) if raised else contextlib.nullcontext()
    with expected, output.progress("Setting up Lean") as say:
        say("built the REPL")
        if raised:
            raise raised
    texts = [content["data"]["text/plain"] for _, content in session.messages]
    assert texts[0] == "Setting up Lean..." and texts[-1] == last
    kinds = [kind for kind, _ in session.messages]
    assert kinds == ["display_data", "update_display_data", "update_display_data"]
    assert len({content["transient"]["display_id"] for _, content in session.messages}) == 1


# -- verdicts: a badge per declaration, %axioms ------------------------------------------------

CHEAT = "axiom cheat : False\ntheorem c : 1 = 2 := cheat.elim"


def verdict_lines(run) -> list[str]:
    """The ``name: verdict`` lines at the top of the cell's result display."""
    (bundle,) = [d for d in run.displays if "lk-verdicts" in d.get("text/html", "")]
    return bundle["text/plain"].split("\n\n", 1)[0].splitlines()


def badges(run) -> list[tuple[str, str, str]]:
    """(name, badge class, badge text) of each verdict row of the cell's HTML."""
    (bundle,) = [d for d in run.displays if "lk-verdicts" in d.get("text/html", "")]
    return re.findall(
        r'data-name="([^"]+)"[^>]*><span class="lk-vname">[^<]*</span>'
        r'<span class="lk-badge (lk-\w+)"[^>]*>([^<]+)</span>',
        bundle["text/html"],
    )


def test_each_declaration_gets_its_verdict_as_a_badge_and_a_line_of_text(kernel):
    proved = kernel.execute("theorem p : 1 + 1 = 2 := rfl", "p")
    assert proved.status == "ok"
    assert verdict_lines(proved) == ["p: proved"]
    assert badges(proved) == [("p", "lk-ok", "proved")]

    sorry = kernel.execute("theorem s : 2 = 2 := by\n  have h : 1 = 1 := sorry\n  rfl", "s")
    assert sorry.status == "ok"  # Lean accepts it; it is not proved
    assert verdict_lines(sorry) == ["s: sorry"]
    assert badges(sorry) == [("s", "lk-warning", "sorry")]
    assert "declaration uses `sorry`" in sorry.plain  # the diagnostics are still there

    cheat = kernel.execute(CHEAT, "c")
    assert verdict_lines(cheat) == ["cheat: axioms cheat", "c: axioms cheat"]
    assert badges(cheat) == [
        ("cheat", "lk-error", "axioms: cheat"),
        ("c", "lk-error", "axioms: cheat"),
    ]
    through = kernel.execute("theorem d : 1 = 2 := c", "d")  # the axiom through a lemma
    assert verdict_lines(through) == ["d: axioms cheat"]

    native = kernel.execute("theorem n : 2 ^ 10 = 1024 := by native_decide", "n")
    (line,) = verdict_lines(native)
    assert line.startswith("n: axioms ")
    assert badges(native) == [("n", "lk-error", "axioms: native_decide")]

    escape = kernel.execute(
        "def f (n : Nat) : Nat := n\n@[implemented_by f] def g (n : Nat) : Nat := n + 1", "e"
    )
    assert verdict_lines(escape) == [
        "f: escape implemented_by (2:2)",
        "g: escape implemented_by (2:2)",
    ]
    assert ("g", "lk-error", "escape: implemented_by") in badges(escape)

    wrong = kernel.execute("theorem w : 1 = 2 := rfl", "w")
    assert wrong.status == "error"
    assert verdict_lines(wrong) == ["w: error"]


def test_verdicts_cost_one_command_per_cell_with_declarations_and_none_without(kernel, log):
    kernel.execute("#eval 1 + 1", "a")
    kernel.execute("theorem one : 1 = 1 := rfl\ntheorem two : 2 = 2 := rfl", "b")
    kernel.execute("theorem bad : 1 = 2 := rfl", "c")  # Lean rejects it: its verdict is error
    sent = log.commands()
    checks = [c for c in sent if c.startswith("#print axioms")]
    assert len(checks) == 1 and "one" in checks[0] and "two" in checks[0]
    assert [c for c in sent if c not in checks] == [
        "#eval 1 + 1",
        "theorem one : 1 = 1 := rfl\ntheorem two : 2 = 2 := rfl",
        "theorem bad : 1 = 2 := rfl",
    ]
    # Run again unchanged: the cell and its check both come from the cache.
    again = kernel.execute("theorem one : 1 = 1 := rfl\ntheorem two : 2 = 2 := rfl", "b")
    assert verdict_lines(again) == ["one: proved", "two: proved"]
    assert log.commands() == sent


def test_axioms_magic_lists_what_a_declaration_depends_on(kernel, log):
    kernel.execute(CHEAT, "a")
    shown = kernel.execute("%axioms c", "b")
    assert shown.status == "ok", shown.plain
    assert (
        shown.stdout == "c depends on 1 axiom:\n  cheat  declared with `axiom`: nothing checks it\n"
    )
    kernel.execute("theorem p : 1 + 1 = 2 := rfl", "c")
    assert kernel.execute("%axioms p", "d").stdout == "p depends on no axioms.\n"
    missing = kernel.execute("%axioms nope", "e")
    assert missing.reply["ename"] == "LeanError" and "nope" in missing.reply["evalue"]
    usage = kernel.execute("%axioms", "f")
    assert usage.reply["ename"] == "UsageError" and "%axioms NAME" in usage.reply["evalue"]
    # Asked on the end of the document (a side env: the next cell is built on `p`'s cell).
    asked = log.requests()[-1]
    assert asked["cmd"] == "#print axioms nope" and isinstance(asked["env"], int)
    assert kernel.execute("theorem q : p = p := rfl", "g").status == "ok"


def test_a_cell_from_the_result_store_is_judged_from_the_store(start_kernel):
    first, first_log = start_kernel()
    assert verdict_lines(first.execute("theorem p : 1 + 1 = 2 := rfl", "a")) == ["p: proved"]
    assert verdict_lines(first.execute(CHEAT, "b"))[1] == "c: axioms cheat"
    second, second_log = start_kernel()  # the same result store (the test's own)
    again = [second.execute("theorem p : 1 + 1 = 2 := rfl", "a"), second.execute(CHEAT, "b")]
    assert [verdict_lines(run) for run in again] == [
        ["p: proved"],
        ["cheat: axioms cheat", "c: axioms cheat"],
    ]
    assert all("From the result cache" in run.plain for run in again)
    assert second_log.commands() == []  # no REPL was even started


def test_a_stored_cell_without_its_check_is_elaborated_to_judge_it(tmp_path):
    from conftest import fake_repl_command, read_log

    from lean_kernel.engine.config import LeanREPLConfig
    from lean_kernel.engine.resultstore import ResultStore
    from lean_kernel.notebook import Notebook

    log = tmp_path / "requests.jsonl"
    config = LeanREPLConfig(repl_command=fake_repl_command("--log", str(log)))
    store = ResultStore(tmp_path / "results.sqlite3")
    try:
        with Notebook(config, store=store) as notebook:  # runs the cells, judges nothing
            notebook.run("def a := 1", cell_id="a")
            notebook.run("theorem p : a = 1 := rfl", cell_id="p")
        with Notebook(config, store=store) as notebook:
            assert notebook.run("def a := 1", cell_id="a").from_store
            run = notebook.run("theorem p : a = 1 := rfl", cell_id="p")
            assert run.from_store and run.cell is not None
            sent = len(read_log(log))
            judged = notebook.verdicts(run.cell)
            assert [(v.name, v.verdict) for v in judged.verdicts] == [("p", "proved")]
            assert judged.asked and judged.recheck is not None and judged.recheck.cells
            commands = [r["cmd"] for r in read_log(log)[sent:]]
            assert commands == ["def a := 1", "theorem p : a = 1 := rfl", "#print axioms p"]
        with Notebook(config, store=store) as notebook:  # now the store has the check too
            notebook.run("def a := 1", cell_id="a")
            run = notebook.run("theorem p : a = 1 := rfl", cell_id="p")
            sent = len(read_log(log))
            judged = notebook.verdicts(run.cell)
            assert [(v.name, v.verdict) for v in judged.verdicts] == [("p", "proved")]
            assert not judged.asked and judged.recheck is None
            assert len(read_log(log)) == sent
    finally:
        store.close()


def _corpus_case_id(case) -> str:
    return case.name.replace(" ", "-")


# The corpus of look-clean-but-are-not proofs (tests/verdict_corpus.py), each run as a cell. A
# case with a reference statement, or axioms it allows, runs under `%exercise` (the kernel's way
# to say both); an `example` has no name to ask Lean about, so it gets no badge.
@pytest.mark.parametrize("case", CORPUS, ids=_corpus_case_id)
def test_corpus_each_proof_gets_its_verdict_in_the_kernel(kernel, case):
    if case.statement or case.allow:
        header = (case.statement or case.text).removeprefix("theorem ").split(":=")[0].strip()
        allow = "".join(f" --allow {word}" for word in case.allow)
        assert kernel.execute(f"%exercise {header}{allow}", "exercise").status == "ok"
    code = case.text if case.timeout is None else f"%timeout {case.timeout:g}\n{case.text}"
    run = kernel.execute(code, "case", timeout=60)
    if case.verdict in ("timeout", "crashed"):  # the REPL was replaced: no answer to judge
        ename = {"timeout": "TimeoutError", "crashed": "ReplCrashedError"}[case.verdict]
        assert run.reply["ename"] == ename, run.plain
        return
    html = "".join(d.get("text/html", "") for d in run.displays)
    if case.verdict == "unknown":
        assert "lk-verdict" not in html, html
        return
    assert set(re.findall(r'data-verdict="([^"]+)"', html)) == {case.verdict}, run.plain
    assert all(line.split(": ", 1)[1].startswith(case.verdict) for line in verdict_lines(run))
    failing = case.verdict in ("error", "statement changed")
    assert run.status == ("error" if failing else "ok"), run.plain
    assert case.mentions in html + run.reply.get("evalue", ""), (case.mentions, html)


def test_a_verdict_that_says_nothing_of_the_proof_says_why():
    from lean_kernel.display.diagnostics import render_verdicts
    from lean_kernel.engine.verdict import DeclVerdict

    unknown = DeclVerdict("foo", "unknown", reason="Lean did not list what it depends on")
    bundle = render_verdicts([unknown, DeclVerdict("bar", "proved", ("propext",))])
    assert bundle["text/plain"] == (
        "foo: unknown (Lean did not list what it depends on)\nbar: proved\n"
    )
    html = bundle["text/html"]
    assert '<span class="lk-badge lk-other" title="Lean did not list' in html
    assert '<span class="lk-why">Lean did not list what it depends on</span>' in html
    assert '<span class="lk-badge lk-ok">proved</span><span class="lk-why"></span>' in html
    assert render_verdicts([]) == {}

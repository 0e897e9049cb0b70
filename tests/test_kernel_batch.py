"""``%%lean_batch`` and ``%batch`` in the Lean kernel, driven through jupyter_client.

The kernel runs the fake REPL with a request log (its batch pool's REPLs log there too), so the
tests can see which process ran what. Widget messages are collected whatever their parent, as
a frontend routes them by comm id; a frontend's Cancel click is a ``comm_msg`` on the shell
channel, as JupyterLab sends it.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import wait_no_repl_processes
from kernel_harness import Execution, KernelSession
from test_kernel import RequestLog, jupyter_path, start_kernel, wait_gone  # noqa: F401 - fixtures

ROW = re.compile(
    r"^(\d+)\s+(ok|sorry|error|out of heartbeats|timeout|crashed|out of memory|stopped|"
    r"cancelled|exception)\b"
)


@pytest.fixture(scope="module")
def shared_log(tmp_path_factory):
    return RequestLog(tmp_path_factory.mktemp("batchlog") / "requests.jsonl")


@pytest.fixture(scope="module")
def shared_kernel(jupyter_path, shared_log):  # noqa: F811 - jupyter_path is a fixture
    session = KernelSession(fake_args=["--log", str(shared_log.path)])
    yield session
    session.close()
    assert wait_no_repl_processes() == []


@pytest.fixture
def kernel(shared_kernel, shared_log):
    shared_kernel.drain()
    shared_log.mark()
    return shared_kernel


@pytest.fixture
def log(shared_log):
    return shared_log


@dataclass
class Collector:
    """The iopub messages of one execution, plus every comm message (any parent)."""

    kernel: KernelSession
    msg_id: str
    outputs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    comms: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    idle: bool = False
    started: float = field(default_factory=time.monotonic)

    def until(self, predicate, timeout: float = 30.0) -> None:
        """Read messages until ``predicate(self)`` holds or the execution ends."""
        deadline = time.monotonic() + timeout
        while not self.idle and not predicate(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no such message came")
            try:
                msg = self.kernel.kc.get_iopub_msg(timeout=min(left, 0.2))
            except Exception:  # noqa: BLE001 - queue.Empty: look at the predicate again
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind.startswith("comm_"):
                self.comms.append((kind, content))
                continue
            if msg["parent_header"].get("msg_id") != self.msg_id:
                continue
            if kind == "status" and content["execution_state"] == "idle":
                self.idle = True
            elif kind not in ("status", "execute_input"):
                self.outputs.append((kind, content))

    def finish(self, timeout: float = 30.0) -> Execution:
        self.until(lambda _: False, timeout) if not self.idle else None
        reply = self.kernel.reply(self.msg_id, timeout)
        return Execution(reply, self.outputs, time.monotonic() - self.started)

    def widget(self, model: str) -> str | None:
        """The comm id of the first widget of model ``model`` (e.g. ``ButtonModel``)."""
        for kind, content in self.comms:
            state = (content.get("data") or {}).get("state") or {}
            if kind == "comm_open" and state.get("_model_name") == model:
                return content["comm_id"]
        return None

    def values(self, comm_id: str) -> list[Any]:
        """The ``value`` a widget was given, in order (its opening state, then updates)."""
        found = []
        for _, content in self.comms:
            state = (content.get("data") or {}).get("state") or {}
            if content.get("comm_id") == comm_id and "value" in state:
                found.append(state["value"])
        return found


def start(kernel: KernelSession, code: str) -> Collector:
    return Collector(kernel, kernel.send(code, uuid.uuid4().hex))


def batch(kernel: KernelSession, commands: list[str], options: str = "", timeout=30.0):
    collector = start(kernel, f"%%lean_batch {options}\n" + "\n----\n".join(commands))
    return collector.finish(timeout), collector


def table(run: Execution) -> list[tuple[int, str]]:
    """(index, status) of each row of the final results table."""
    bundle = next(d for d in reversed(run.displays) if "items:" in d.get("text/plain", ""))
    assert "<table" in bundle["text/html"]
    return [
        (int(m[1]), m[2]) for line in bundle["text/plain"].splitlines() if (m := ROW.match(line))
    ]


def pids_running(log: RequestLog, needle: str) -> set[int]:
    return {
        entry["pid"]
        for entry in log.entries()
        if needle in str((entry["request"] or {}).get("cmd", ""))
    }


# -- a batch: progress, then the table ----------------------------------------------------------


def test_widget_progress_reaches_the_total_then_a_table_in_input_order(kernel):
    commands = [f"theorem t{i} : {i} = {i} := rfl\n#eval {i}" for i in range(6)]
    commands[3] = "theorem bad : 1 = 2 := oops_unknown"
    run, collector = batch(kernel, commands, "-w 2 -o first")
    assert run.status == "ok", run.plain
    assert "Checking 6 commands on 2 workers" in run.plain and "`first`" in run.plain
    bar = collector.widget("IntProgressModel")
    assert bar is not None and collector.widget("ButtonModel") is not None
    assert collector.values(bar)[-1] == 6
    final = [c for kind, c in run.outputs if kind == "update_display_data"]
    assert "6/6" in final[-1]["data"]["text/plain"] and "done" in final[-1]["data"]["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in final[-1]["data"]
    statuses = ["ok", "ok", "ok", "error", "ok", "ok"]
    assert table(run) == list(enumerate(statuses))
    assert "oops_unknown" in run.plain


def test_text_progress_is_one_display_updated_in_place(kernel):
    commands = [f"#fake_sleep 0.3\n#eval {i}" for i in range(4)]
    run, collector = batch(kernel, commands, "-w 1 --progress text")
    assert run.status == "ok" and collector.comms == []
    shown = [(kind, c) for kind, c in run.outputs if "lean-progress" in str(c.get("transient", {}))]
    ids = {c["transient"]["display_id"] for _, c in shown}
    assert len(ids) == 1 and shown[0][0] == "display_data"
    assert {kind for kind, _ in shown[1:]} == {"update_display_data"} and len(shown) >= 3
    assert "4/4" in shown[-1][1]["data"]["text/plain"]
    assert table(run) == [(i, "ok") for i in range(4)]


def test_a_crashing_item_fails_alone_and_the_cell_is_ok(kernel):
    commands = [f"#eval {i}" for i in range(5)]
    commands[2] = "#fake_crash"
    run, _ = batch(kernel, commands, "-w 2 --progress none")
    assert run.status == "ok", run.plain
    assert table(run) == list(enumerate(["ok", "ok", "crashed", "ok", "ok"]))
    assert "lean-progress" not in str(run.outputs)


def test_batches_are_independent_of_the_document(kernel):
    assert kernel.cell("def docOnly := 5").status == "ok"
    run, _ = batch(kernel, ["#eval docOnly", "def batchOnly := 1\n#eval batchOnly"])
    assert table(run) == [(0, "error"), (1, "ok")]
    assert kernel.cell("#eval batchOnly").status == "error"
    assert kernel.cell("#eval docOnly").stdout == "5\n"


def test_header_is_elaborated_once_per_worker_across_batches(kernel, log):
    commands = [f"theorem s{i} : succ {i} = {i + 1} := rfl" for i in range(8)]
    options = "-w 2 --progress none --header 'import Mathlib\\nopen Nat'"
    for _ in range(2):
        run, _ = batch(kernel, commands, options)
        assert table(run) == [(i, "ok") for i in range(8)]
    imports = [r for r in log.requests() if r.get("cmd") == "import Mathlib\n"]
    assert 1 <= len(imports) <= 2, imports  # once per worker, not per batch nor per command


# -- stopping a batch ----------------------------------------------------------------------------


def test_cancel_button_clicked_in_the_frontend_stops_the_batch(kernel, log):
    collector = start(kernel, "%%lean_batch -w 2\n" + "\n----\n".join(["#fake_sleep 30"] * 8))
    collector.until(lambda c: c.widget("ButtonModel") is not None, 10)
    collector.until(lambda _: len(pids_running(log, "#fake_sleep 30")) == 2, 10)
    button = collector.widget("ButtonModel")
    click = {"comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}}
    clicked = time.monotonic()
    kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_msg", click))
    run = collector.finish(10)
    assert time.monotonic() - clicked < 3, "the click did not reach the widget"
    # The two running when the click came were stopped (their REPLs killed); no other started.
    rows = table(run)
    assert run.status == "ok" and [i for i, _ in rows] == list(range(8))
    assert sorted(word for _, word in rows) == ["cancelled"] * 6 + ["stopped"] * 2
    assert not [pid for pid in pids_running(log, "#fake_sleep 30") if wait_gone(pid)]
    assert kernel.cell("#eval 41 + 1").stdout == "42\n"


def test_interrupt_cancels_the_batch_kills_its_repls_and_the_kernel_goes_on(kernel, log):
    commands = ["#eval 0", *(["#fake_sleep 30"] * 6)]
    collector = start(kernel, "%%lean_batch -w 2 -o slow\n" + "\n----\n".join(commands))
    collector.until(lambda _: len(pids_running(log, "#fake_sleep 30")) == 2, 10)
    interrupted = time.monotonic()
    kernel.km.interrupt_kernel()
    run = collector.finish(15)
    assert time.monotonic() - interrupted < 3
    assert run.reply["ename"] == "KeyboardInterrupt" and "`slow` cancelled" in run.reply["evalue"]
    rows = table(run)
    assert rows[0] == (0, "ok") and [i for i, _ in rows] == list(range(7))
    assert sorted(word for _, word in rows[1:]) == ["cancelled"] * 4 + ["stopped"] * 2
    assert not [pid for pid in pids_running(log, "#fake_sleep 30") if wait_gone(pid)]
    assert kernel.cell("#eval 7").stdout == "7\n"
    again, _ = batch(kernel, ["#eval 1", "#eval 2"], "-w 2")
    assert again.status == "ok" and table(again) == [(0, "ok"), (1, "ok")]


# -- arguments and kept results ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-w 0", "at least 1 worker"),
        ("--progress bogus", "invalid choice: 'bogus' (choose from 'auto', 'widget', 'text'"),
        ("--bogus", "unrecognized arguments: --bogus\nusage: %%lean_batch [-w WORKERS]"),
        ("-i commands", "only exists in Python notebooks"),
    ],
)
def test_bad_arguments_fail_the_cell_and_say_what_is_valid(kernel, line, message):
    run = kernel.cell(f"%%lean_batch {line}\n#eval 1")
    assert run.status == "error" and run.reply["ename"] == "UsageError"
    assert message in run.reply["evalue"]


def test_an_empty_batch_says_how_to_write_one(kernel):
    run = kernel.cell("%%lean_batch -w 2\n\n")
    assert run.reply["ename"] == "UsageError" and "separated by ---- lines" in run.reply["evalue"]


def test_batch_magic_shows_kept_results_again(kernel):
    batch(kernel, ["#eval 10", "theorem bad : 1 = 2 := oops_unknown"], "-o kept --progress none")
    listing = kernel.cell("%batch")
    assert "Batches" in listing.plain and "kept" in listing.plain and "Batch pool" in listing.plain
    again = kernel.cell("%batch kept")
    assert table(again) == [(0, "ok"), (1, "error")]
    item = kernel.cell("%batch kept 1")
    assert "kept #1: error" in item.plain and "oops_unknown" in item.plain
    assert "text/html" in item.displays[-1]
    missing = kernel.cell("%batch nothing")
    assert missing.reply["ename"] == "UsageError" and "kept:" in missing.reply["evalue"]
    assert kernel.cell("%batch kept 9").reply["ename"] == "UsageError"


# -- the pool's lifetime -------------------------------------------------------------------------


def test_project_rebuilds_the_pool_and_shutdown_leaves_no_repl(jupyter_path, tmp_path):  # noqa: F811
    own = RequestLog(tmp_path / "requests.jsonl")
    kernel = KernelSession(fake_args=["--log", str(own.path)])
    try:
        run, _ = batch(kernel, ["#eval 1\n-- first", "#eval 2\n-- first"], "-w 2")
        assert run.status == "ok"
        first = pids_running(own, "-- first")
        assert first
        project = tmp_path / "proj"
        project.mkdir()
        (project / "lakefile.toml").write_text('name = "proj"\n')
        (project / "lean-toolchain").write_text("leanprover/lean4:v4.19.0\n")
        assert kernel.cell(f"%project {project}").status == "ok"
        assert not [pid for pid in first if wait_gone(pid)]  # the old pool is closed
        run, _ = batch(kernel, ["#eval 3\n-- second", "#eval 4\n-- second"], "-w 2")
        assert run.status == "ok"
        second = pids_running(own, "-- second")
        assert second and not second & first
    finally:
        kernel.close()
    assert not [pid for pid in own.pids() if wait_gone(pid)]


def test_kernel_restart_closes_the_pool(jupyter_path, tmp_path):  # noqa: F811
    own = RequestLog(tmp_path / "requests.jsonl")
    kernel = KernelSession(fake_args=["--log", str(own.path)])
    try:
        run, _ = batch(kernel, ["#eval 1\n-- before", "#eval 2\n-- before"], "-w 2")
        before = pids_running(own, "-- before")
        assert run.status == "ok" and before
        kernel.km.restart_kernel()
        kernel.kc.wait_for_ready(timeout=60)
        assert not [pid for pid in before if wait_gone(pid)]
        run, _ = batch(kernel, ["#eval 3\n-- after"], "-w 1")
        assert table(run) == [(0, "ok")]
    finally:
        kernel.close()
    assert not [pid for pid in own.pids() if wait_gone(pid)]


# -- idle reaping --------------------------------------------------------------------------------


def test_idle_pool_repls_are_reaped_and_batch_shows_it(jupyter_path, tmp_path):  # noqa: F811
    own = RequestLog(tmp_path / "requests.jsonl")
    env = {"LEAN_KERNEL_IDLE_TIMEOUT": "0.5"}
    kernel = KernelSession(fake_args=["--log", str(own.path)], env=env)
    try:
        run, _ = batch(kernel, ["#eval 1\n-- first", "#eval 2\n-- first"], "-w 2")
        assert table(run) == [(0, "ok"), (1, "ok")]
        first = pids_running(own, "-- first")
        assert first and not [pid for pid in first if wait_gone(pid)]  # ended while idle
        listing = kernel.cell("%batch")
        assert "idle limit 0.5 s" in listing.plain
        assert listing.plain.count("reaped (idle)") == 2, listing.plain
        again, _ = batch(kernel, ["#eval 3\n-- second", "#eval 4\n-- second"], "-w 2")
        assert table(again) == [(0, "ok"), (1, "ok")]  # restarted on demand, nothing failed
        second = pids_running(own, "-- second")
        assert second and not second & first
    finally:
        kernel.close()
    assert not [pid for pid in own.pids() if wait_gone(pid)]


# -- outcomes: each under its own name ----------------------------------------------------------

#: One command per outcome (a header gives the heartbeat one an env to carry Lean's limit).
OUTCOME_COMMANDS = {
    "ok": "#eval 1",
    "sorry": "theorem s : 1 = 1 := by sorry",
    "error": "theorem bad : 1 = 2 := oops_unknown",
    "out of heartbeats": "import Mathlib\ntheorem slow : True := by\n  #fake_hang\n  trivial",
    "timeout": "#fake_hang",
    "crashed": "#fake_crash",
    "out of memory": "#fake_memory 1000 2",
}
#: Lean's heartbeat limit at 1000 per second, 150 MB per REPL.
OUTCOME_ENV = {
    "LEAN_KERNEL_REPL_FLAVOR": "fork",
    "LEAN_KERNEL_HEARTBEAT_RATE": "1000",
    "LEAN_KERNEL_MEMORY_LIMIT_MB": "150",
}


def outcome_rows(plain: str) -> list[tuple[int, str]]:
    """(index, outcome) of each row of a results table shown as text."""
    words = "|".join(re.escape(word) for word in OUTCOME_COMMANDS)
    row = re.compile(rf"^(\d+)\s+({words})\s{{2,}}")
    return [(int(m[1]), m[2]) for line in plain.splitlines() if (m := row.match(line))]


def test_batch_outcomes_each_show_under_their_own_name_in_the_table_and_in_batch(
    start_kernel,  # noqa: F811 - the fixture imported above
):
    kernel, _ = start_kernel("--heartbeat-rate", "1000", env=OUTCOME_ENV)
    commands = "\n----\n".join(OUTCOME_COMMANDS.values())
    run = kernel.execute(f"%%lean_batch -w 2 -t 1 -o mixed --progress none\n{commands}", "a", 60)
    assert run.status == "ok", run.plain
    words = list(OUTCOME_COMMANDS)
    summary = (
        "7 items: 1 ok, 1 sorry, 1 error, 1 out of heartbeats, 1 timeout, 1 crashed, "
        "1 out of memory;"
    )
    assert summary in run.plain
    assert outcome_rows(run.plain) == list(enumerate(words)), run.plain

    again = kernel.execute("%batch mixed", "b")
    assert outcome_rows(again.plain) == list(enumerate(words))
    listing = kernel.execute("%batch", "c").plain.splitlines()
    title = listing.index("Batches")  # then the header, a rule, and one row per batch
    head, row = listing[title + 1], listing[title + 3]
    assert head.split()[:5] == ["results", "done", "ok", "sorry", "failed"]
    assert row.split()[:5] == ["mixed", "7/7", "1", "1", "5"]
    assert "1 error, 1 out of heartbeats, 1 timeout, 1 crashed, 1 out of memory" in row
    assert "mixed #6: crashed (out of memory)" in kernel.execute("%batch mixed 6", "d").plain
    assert "mixed #3: error (out of heartbeats)" in kernel.execute("%batch mixed 3", "e").plain


# -- a saved Lean notebook keeps the final progress (nbconvert --execute, nbclient) -------------


def tour_with_a_batch():
    """The tour with a ``%%lean_batch`` cell before its deliberate error (the tour as shipped has
    no batch, so its saved progress would prove nothing)."""
    import nbformat
    from test_tour import TOUR

    notebook = nbformat.read(TOUR, as_version=4)
    commands = [f"#fake_sleep 0.2\ntheorem t{i} : {i} = {i} := rfl" for i in range(8)]
    commands += ["theorem s : 1 = 1 := by sorry", "theorem bad : 1 = 2 := oops_unknown"]
    cell = nbformat.v4.new_code_cell("%%lean_batch -w 2 -o checks\n" + "\n----\n".join(commands))
    cell.id = "batch-check"
    at = [c.id for c in notebook.cells].index("deliberate-error")
    notebook.cells.insert(at, cell)
    return notebook


@pytest.mark.parametrize("frontend", ["nbconvert", "JupyterLab"])
def test_saved_lean_notebook_keeps_the_final_progress(
    jupyter_path,  # noqa: F811 - the fixture imported above
    tmp_path,
    frontend,
):
    """nbclient as nbconvert runs it (no cell ids: the text line), and sending cell ids as
    JupyterLab does (the widget): either way the notebook saves how the batch ended."""
    from nbclient import NotebookClient
    from test_tour import CellIdClient

    notebook = tour_with_a_batch()
    client_class = NotebookClient if frontend == "nbconvert" else CellIdClient
    client_class(
        notebook, timeout=60, kernel_name="lean4", resources={"metadata": {"path": tmp_path}}
    ).execute()
    (cell,) = [c for c in notebook.cells if c.id == "batch-check"]
    shown = [o.data["text/plain"] for o in cell.outputs if o.output_type == "display_data"]
    progress = [text for text in shown if re.match(r"checks: \d+/\d+ \(", text)]
    assert len(progress) == 1, shown
    assert progress[0].startswith("checks: 10/10 (100%) done ok 8, sorry 1, error 1; ")
    assert "checks: 10 items: 8 ok, 1 sorry, 1 error;" in shown[-1]  # then the table
    key = "application/vnd.jupyter.widget-state+json"
    models = notebook.metadata.get("widgets", {}).get(key, {}).get("state", {})
    bars = [m["state"] for m in models.values() if m["model_name"] == "IntProgressModel"]
    if frontend == "JupyterLab":
        assert [(b["value"], b["max"], b["description"]) for b in bars] == [(10, 10, "10/10")]
        assert bars[0]["bar_style"] == "danger"
    else:
        assert bars == []

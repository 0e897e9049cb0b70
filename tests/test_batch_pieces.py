"""The reusable batch pieces, without REPLs: header splitting, %%lean_batch arguments, the results
object, and the progress views (through a kernel-style ``send``)."""

from __future__ import annotations

import io
import pickle
import sys
from types import SimpleNamespace

import pytest

from lean_kernel.batch.args import (
    BatchArgsError,
    commands_from_value,
    parse_batch_args,
    split_commands,
)
from lean_kernel.batch.headers import shift_response, split_header, split_imports
from lean_kernel.batch.keeper import BatchRun
from lean_kernel.batch.results import BatchResults, ItemResult
from lean_kernel.display import render_table
from lean_kernel.display.progress import (
    DisplayProgress,
    ProgressState,
    StreamProgress,
    WidgetProgress,
    make_progress,
)
from lean_kernel.engine.outcome import (
    FAILED,
    OUTCOMES,
    outcome_of,
    status_of,
    status_of_exception,
)
from lean_kernel.engine.protocol import CommandResponse, Message, Pos
from lean_kernel.errors import (
    ReplCancelledError,
    ReplCrashedError,
    ReplMemoryError,
    ReplTimeoutError,
)

# -- headers -------------------------------------------------------------------------------------


def test_header_is_the_leading_imports_and_settings():
    command = (
        "import Mathlib\nimport Aesop\n-- a comment\n\nopen Real Nat\nset_option maxHeartbeats 0\n"
        "variable {α : Type}\n  [inst : Inhabited α]\nuniverse u\n\ntheorem t : True := trivial\n"
    )
    split = split_header(command)
    assert split.header + split.body == command
    assert split.body.startswith("\ntheorem t")
    assert split.line_offset == 9


@pytest.mark.parametrize(
    "command",
    [
        "theorem t : True := trivial",
        "open Real in\ntheorem t : True := trivial",
        "set_option maxHeartbeats 0 in\ntheorem t : True := trivial",
        "/-- doc -/\ntheorem t : True := trivial",
    ],
)
def test_scoped_settings_and_docstrings_stay_with_the_declaration(command):
    split = split_header(command)
    assert split.header == "" and split.body == command and split.line_offset == 0


def test_scoped_open_after_a_header_ends_it():
    split = split_header("import Mathlib\nopen Real in\ntheorem t : True := trivial")
    assert split.header == "import Mathlib\n" and split.body.startswith("open Real in")


def test_a_command_that_is_all_header():
    split = split_header("import Mathlib\nopen Real")
    assert split.header == "import Mathlib\nopen Real" and split.body == ""


def test_block_comments_inside_the_header():
    split = split_header(
        "import Mathlib\n/- a\n   comment -/\nopen Nat\ntheorem t : True := trivial"
    )
    assert split.header.endswith("open Nat\n") and split.line_offset == 4


def test_imports_are_cut_from_the_settings_after_them():
    split = split_imports("import Mathlib\n-- note\nimport Aesop\nopen Real\nset_option x 1\n")
    assert split.header == "import Mathlib\n-- note\nimport Aesop\n"
    assert split.body == "open Real\nset_option x 1\n" and split.line_offset == 3
    assert split_imports("open Real\n").header == ""
    assert split_imports("import Mathlib\n").body == ""


def test_shift_response_moves_positions_and_prepends_header_messages():
    def message(line: int, text: str) -> Message:
        return Message(
            pos=Pos(line=line, column=2),
            endPos=Pos(line=line, column=5),
            severity="error",
            data=text,
        )

    response = CommandResponse(env=3, messages=[message(1, "body")])
    shifted = shift_response(response, 4, [message(2, "header")])
    assert [(m.data, m.start_pos.line, m.end_pos.line) for m in shifted.messages] == [
        ("header", 2, 2),
        ("body", 5, 5),
    ]


# -- %%lean_batch arguments ----------------------------------------------------------------------


def test_batch_arguments_are_parsed():
    args = parse_batch_args("-w 3 -t 2.5 --header 'import Mathlib\\nopen Real' -o out --sep ===")
    assert (args.workers, args.timeout, args.output, args.separator) == (3, 2.5, "out", "===")
    assert args.header == "import Mathlib\nopen Real\n"
    assert parse_batch_args("").output == "lean_results"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-w 0", "at least 1 worker"),
        ("-t -1", "positive"),
        ("-o 'not a name'", "variable name"),
        ("--bogus", "unrecognized"),
        ("--header 'unclosed", "cannot read"),
    ],
)
def test_bad_batch_arguments_say_what_to_fix(line, message):
    with pytest.raises(BatchArgsError, match=message):
        parse_batch_args(line)


def test_body_is_cut_at_separator_lines():
    body = "#eval 1\n----\n\n#eval 2\n  ----  \n#eval 3\n----\n\n"
    assert split_commands(body) == ["#eval 1", "#eval 2", "#eval 3"]
    assert split_commands("a\n===\nb", "===") == ["a", "b"]


def test_commands_from_a_python_value():
    assert commands_from_value(("a", "b"), "x") == ["a", "b"]
    with pytest.raises(BatchArgsError, match="one string"):
        commands_from_value("a", "x")
    with pytest.raises(BatchArgsError, match="item 1 is a int"):
        commands_from_value(["a", 1], "x")


# -- results -------------------------------------------------------------------------------------


def finished_results() -> BatchResults:
    results = BatchResults(["#eval 1", "bad", "slow"], label="res")
    ok = CommandResponse(env=0, messages=[])
    bad = CommandResponse(
        env=0, messages=[Message(pos=Pos(line=1, column=0), severity="error", data="boom\nmore")]
    )
    results.record(ItemResult(1, "bad", status_of(bad), bad, time=0.2))
    results.record(ItemResult(0, "#eval 1", status_of(ok), ok, time=0.1))
    assert not results.complete
    error = ReplTimeoutError("too slow")
    results.record(ItemResult(2, "slow", "timeout", error=error, time=1.0))
    return results


def test_results_are_in_input_order_with_status_messages_and_time():
    results = finished_results()
    assert results.complete and results.wait(0)
    assert results.statuses == ["ok", "error", "timeout"]
    assert results.times == [0.1, 0.2, 1.0]
    assert results[1].first_message() == "1:0: boom"
    assert "TimeoutError: too slow" in results[2].messages[0].data
    assert results.summary()["error"] == 1 and results.summary()["timeout"] == 1
    assert [type(v).__name__ for v in results.responses()] == [
        "CommandResponse",
        "CommandResponse",
        "ReplTimeoutError",
    ]


def test_first_answer_wins():
    results = BatchResults(["x"])
    assert results.record(ItemResult(0, "x", "ok"))
    assert not results.record(ItemResult(0, "x", "cancelled"))
    assert results.statuses == ["ok"]


def test_results_show_failures_first_and_convert_to_pandas():
    results = finished_results()
    bundle = results._repr_mimebundle_()
    assert "res: 3 items: 1 ok, 1 error, 1 timeout" in bundle["text/plain"]
    assert "lk-table" in bundle["text/html"] and "boom" in bundle["text/html"]
    frame = results.to_pandas()
    assert list(frame.columns[:3]) == ["status", "time", "header_time"]
    assert frame.loc[2, "status"] == "timeout"


def test_results_pickle_without_their_locks():
    results = pickle.loads(pickle.dumps(finished_results()))
    assert results.statuses == ["ok", "error", "timeout"] and results.wait(0)


# -- progress ------------------------------------------------------------------------------------


def state(done: int, total: int = 4, finished: bool = False) -> ProgressState:
    return ProgressState(
        label="res",
        total=total,
        done=done,
        ok=done,
        sorry=0,
        failed=0,
        elapsed=2.0,
        eta=2.0 if not finished else None,
        finished=finished,
    )


def test_progress_line_reads_done_counts_elapsed_and_eta():
    assert state(2).text() == "res: 2/4 (50%) ok 2, failed 0; 2.0 s elapsed, ETA 2.0 s"
    assert state(4, finished=True).text().startswith("res: 4/4 (100%) done")


def test_text_progress_through_a_kernel_send_is_one_display_updated_in_place():
    sent: list[tuple[str, dict]] = []
    view = DisplayProgress(lambda msg_type, content: sent.append((msg_type, content)))
    view.update(state(1))
    view.update(state(4, finished=True))
    assert [msg_type for msg_type, _ in sent] == ["display_data", "update_display_data"]
    ids = {content["transient"]["display_id"] for _, content in sent}
    assert len(ids) == 1
    assert (
        "4/4" in sent[-1][1]["data"]["text/plain"]
        and "<progress" in sent[-1][1]["data"]["text/html"]
    )


def test_widget_progress_through_a_kernel_send_has_a_cancel_button():
    sent: list[tuple[str, dict]] = []
    cancelled: list[bool] = []
    view = WidgetProgress(
        lambda t, c: sent.append((t, c)), on_cancel=lambda: cancelled.append(True)
    )
    view.update(state(1))
    assert sent[0][0] == "display_data"
    assert "application/vnd.jupyter.widget-view+json" in sent[0][1]["data"]
    view.cancel_button.click()
    assert cancelled == [True]
    view.update(state(4, finished=True))
    assert view.bar.value == 4 and view.cancel_button.disabled
    assert sent[-1][0] == "update_display_data" and "4/4" in sent[-1][1]["data"]["text/plain"]


def test_progress_outside_jupyter_is_a_line_on_a_stream():
    stream = io.StringIO()
    view = make_progress("auto", stream=stream)
    assert isinstance(view, StreamProgress)
    view.update(state(1))
    view.update(state(4, finished=True))
    assert stream.getvalue().endswith("\n") and "\r" in stream.getvalue()
    assert make_progress("none") is None


# -- outcomes: each under its own name, never a sorry or a failure as ok --------------------------

HEARTBEAT_STOP = (
    "(deterministic) timeout at `whnf`, maximum number of heartbeats (500) has been reached\n\n"
    "Note: Use `set_option maxHeartbeats <num>` to set the limit.\n\n"
    "Hint: Additional diagnostic information may be available using the `set_option "
    "diagnostics true` command."
)
EVERY_OUTCOME = [
    "ok",
    "sorry",
    "error",
    "out of heartbeats",
    "timeout",
    "crashed",
    "out of memory",
    "cancelled",
]


def error_response(*texts: str) -> CommandResponse:
    return CommandResponse(
        env=0,
        messages=[Message(pos=Pos(line=1, column=0), severity="error", data=t) for t in texts],
    )


def every_outcome_results() -> BatchResults:
    """One item of each outcome, made the way a worker makes them."""
    results = BatchResults([f"cmd{i}" for i in range(len(EVERY_OUTCOME))], label="mixed")
    sorry = CommandResponse(
        env=0,
        messages=[
            Message(pos=Pos(line=1, column=8), severity="warning", data="declaration uses 'sorry'")
        ],
    )
    memory = ReplMemoryError(
        "The REPL ran out of memory", reason="the REPL used 900 MB > max_process_memory=300"
    )
    answers = [
        CommandResponse(env=0, messages=[]),
        sorry,
        error_response("unknown identifier 'oops'"),
        error_response(HEARTBEAT_STOP),
    ]
    errors = [
        ReplTimeoutError("too slow", timeout=1.0),
        ReplCrashedError("the REPL died", exit_code=3),
        memory,
        ReplCancelledError("cancelled", started=False),
    ]
    for index, response in enumerate(answers):
        results.record(ItemResult(index, f"cmd{index}", status_of(response), response))
    for index, error in enumerate(errors, start=len(answers)):
        results.record(ItemResult(index, f"cmd{index}", status_of_exception(error), error=error))
    return results


def test_each_outcome_has_its_own_name_and_its_status_stays_the_kind_of_end():
    results = every_outcome_results()
    assert results.outcomes == EVERY_OUTCOME
    # `out of heartbeats` is an error Lean reported (the REPL kept its states); `out of memory` a
    # crash.
    assert results.statuses == [
        "ok",
        "sorry",
        "error",
        "error",
        "timeout",
        "crashed",
        "crashed",
        "cancelled",
    ]
    assert all(outcome in OUTCOMES for outcome in results.outcomes)
    assert set(results.outcomes) - {"ok", "sorry"} <= FAILED and not {"ok", "sorry"} & FAILED


def test_a_heartbeat_stop_beside_another_error_is_an_error():
    both = error_response(HEARTBEAT_STOP, "unknown identifier 'oops'")
    assert outcome_of(status_of(both), both) == "error"


def test_summary_and_table_show_each_outcome_once_and_never_a_sorry_as_ok():
    results = every_outcome_results()
    summary = results.summary()
    assert {outcome: summary[outcome] for outcome in EVERY_OUTCOME} == dict.fromkeys(
        EVERY_OUTCOME, 1
    )
    assert summary["ok"] == 1 and summary["sorry"] == 1 and summary["failed"] == 6
    assert summary["crashed"] == 1 and summary["error"] == 1, "each item is counted once"
    line = results.summary_line()
    assert line.startswith(
        "mixed: 8 items: 1 ok, 1 sorry, 1 error, 1 out of heartbeats, 1 timeout, 1 crashed, "
        "1 out of memory, 1 cancelled;"
    )
    plain = results.table_bundle()["text/plain"]
    rows = [line.split("  ")[0:2] for line in plain.splitlines()[3:]]
    shown = {int(index): word for index, word in ((r[0], r[1].strip()) for r in rows if r[0])}
    assert shown == dict(enumerate(EVERY_OUTCOME))
    html = results.table_bundle()["text/html"]
    assert '<td class="lk-error">out of memory</td>' in html
    assert '<td class="lk-warning">sorry</td>' in html and '<td class="lk-ok">ok</td>' in html


def test_dataframe_has_the_status_and_the_outcome_of_each_item():
    frame = every_outcome_results().to_pandas()
    assert list(frame["outcome"]) == EVERY_OUTCOME
    assert frame.loc[6, "status"] == "crashed" and frame.loc[3, "status"] == "error"
    assert (frame["outcome"] == "ok").sum() == 1


def test_to_pandas_without_pandas_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` raises ImportError
    with pytest.raises(ImportError) as caught:
        every_outcome_results().to_pandas()
    assert 'pip install "lean-kernel[pandas]"' in str(caught.value)
    assert "pip install pandas" in str(caught.value)


def test_batch_list_row_counts_ok_sorry_and_failures_by_kind():
    results = every_outcome_results()
    handle = SimpleNamespace(
        results=results,
        cancelled=False,
        done=lambda: True,
        done_count=len(results),
        total=len(results),
        elapsed=1.25,
    )
    row = BatchRun("mixed", handle).row()  # type: ignore[arg-type]
    assert (row["ok"], row["sorry"], row["failed"]) == (1, 1, 6)
    assert row["failures"] == (
        "1 error, 1 out of heartbeats, 1 timeout, 1 crashed, 1 out of memory, 1 cancelled"
    )
    table = render_table([row])["text/plain"]
    assert "sorry" in table.splitlines()[0] and "failures" in table.splitlines()[0]


# -- progress ends on the final state, before the batch counts as done ----------------------------


class StubControl:
    """The pool's side of a handle, for a batch whose items the test records itself."""

    def cancel_batch(self, handle) -> None:
        pass

    def batch_finished(self, handle) -> None:
        pass


class RecordingView:
    """Keeps every state it is shown; a little slow, as a display behind a socket is."""

    def __init__(self, delay: float = 0.005) -> None:
        self.states: list[ProgressState] = []
        self.delay = delay

    def update(self, state: ProgressState) -> None:
        import time

        time.sleep(self.delay)
        self.states.append(state)


MIXED = ["ok", "sorry", "ok", "error", "timeout", "ok", "crashed", "cancelled"]


def finish_from_worker_threads(handle, statuses: list[str]) -> None:
    """Record one item per thread, as the pool's workers do, in no particular order."""
    import threading

    threads = [
        threading.Thread(target=handle.record, args=([ItemResult(i, f"c{i}", status)],))
        for i, status in enumerate(statuses)
    ]
    for thread in threads:
        thread.start()


def waited(handle, how: str) -> None:
    import asyncio

    if how == "handle.wait":
        assert handle.wait(10)
    elif how == "handle.result":
        handle.result(10)
    elif how == "results.wait":
        assert handle.results.wait(10)
    else:  # how async_run_batch waits

        async def awaited() -> None:
            await asyncio.wait_for(asyncio.wrap_future(handle.future), 10)

        asyncio.run(awaited())


@pytest.mark.parametrize("how", ["handle.wait", "handle.result", "results.wait", "await future"])
def test_progress_shows_the_final_state_before_wait_returns(how):
    from lean_kernel.batch.handle import BatchHandle
    from lean_kernel.display.progress import ProgressDriver

    commands = [f"c{i}" for i in range(len(MIXED))]
    for _ in range(15):  # the last item and the waiter race: give the race its chances
        handle = BatchHandle(StubControl(), "b", BatchResults(commands, label="res"))
        view = RecordingView()
        driver = ProgressDriver(handle, view).start()
        finish_from_worker_threads(handle, MIXED)
        waited(handle, how)
        last = view.states[-1]
        assert driver.finished.is_set() and last.finished and last.done == last.total == 8
        assert last.text().startswith(
            "res: 8/8 (100%) done ok 3, sorry 1, error 1, timeout 1, crashed 1, cancelled 1; "
        )
        assert "ETA" not in last.text()


def test_progress_counts_every_outcome_and_never_a_sorry_as_ok(monkeypatch):
    from lean_kernel.engine import outcome

    statuses = [*outcome.STATUSES, "ok", "sorry", "evicted"]  # "evicted": not in the list yet
    results = BatchResults([f"c{i}" for i in range(len(statuses))], label="res")
    for i, status in enumerate(statuses):
        results.record(ItemResult(i, f"c{i}", status))  # type: ignore[arg-type]
    handle = SimpleNamespace(results=results, eta=lambda: None, cancelled=False)
    state = ProgressState.of(handle)
    assert (state.ok, state.sorry) == (2, 2)
    assert state.failed == len(statuses) - 4  # every status but ok and sorry, the new one too
    counts = dict(state.counts)
    assert all(counts[s] >= 1 for s in outcome.STATUSES) and counts["evicted"] == 1
    assert "ok 2, sorry 2, error 1" in state.text() and "evicted 1" in state.text()
    # The words come from outcome.OUTCOMES: a status added there is listed in its place.
    monkeypatch.setattr(outcome, "OUTCOMES", ("ok", "evicted", *outcome.OUTCOMES[1:]))
    assert ProgressState.of(handle).counts_text().startswith("ok 2, evicted 1, sorry 2")


def test_stream_view_last_line_is_the_final_one_and_ends_with_a_newline():
    from lean_kernel.batch.handle import BatchHandle
    from lean_kernel.display.progress import ProgressDriver

    stream = io.StringIO()
    commands = [f"c{i}" for i in range(len(MIXED))]
    handle = BatchHandle(StubControl(), "b", BatchResults(commands, label="res"))
    ProgressDriver(handle, StreamProgress(stream)).start()
    finish_from_worker_threads(handle, MIXED)
    handle.result(10)
    written = stream.getvalue()
    assert written.endswith("\n") and written.count("\n") == 1
    last = written.rsplit("\r", 1)[-1]
    assert last.rstrip().startswith("res: 8/8 (100%) done ok 3, sorry 1, error 1")


def test_terminal_view_keeps_off_the_prompt_and_says_once_how_the_batch_ended():
    from lean_kernel.display.progress import TerminalProgress

    stream, above = io.StringIO(), []
    view = TerminalProgress(stream, above_prompt=above.append)
    view.update(state(1))  # the cell that started the batch still runs: a live line
    assert stream.getvalue() == "\r" + state(1).text()
    view.prompt_shown()  # the cell ended: the live line is wiped before the prompt
    wiped = stream.getvalue()
    assert wiped.endswith("\r" + " " * len(state(1).text()) + "\r")
    view.update(state(2))
    view.update(state(3))
    assert stream.getvalue() == wiped and above == []  # nothing while the user types
    view.update(state(4, finished=True))
    assert above == [state(4, finished=True).text()] and stream.getvalue() == wiped
    view.update(state(4, finished=True))
    assert len(above) == 1


def test_terminal_view_is_live_again_while_a_cell_waits_for_the_batch():
    from IPython.core.events import EventManager, available_events

    from lean_kernel.display.progress import TerminalProgress
    from lean_kernel.display.terminal import follow_prompt

    shell = SimpleNamespace()
    shell.events = EventManager(shell, available_events)
    stream, above = io.StringIO(), []
    view = follow_prompt(TerminalProgress(stream, above_prompt=above.append), shell)
    shell.events.trigger("post_run_cell", None)  # the %%lean_batch cell ends
    view.update(state(1))
    assert stream.getvalue() == ""
    shell.events.trigger("pre_run_cell", None)  # e.g. `res.wait()`
    view.update(state(2))
    view.update(state(4, finished=True))
    last = stream.getvalue().rsplit("\r", 1)[-1]
    assert last.endswith("\n") and last.rstrip() == state(4, finished=True).text()
    assert above == []
    shell.events.trigger("post_run_cell", None)  # over: the view lets go of the shell
    assert shell.events.callbacks["pre_run_cell"] == []
    assert shell.events.callbacks["post_run_cell"] == []

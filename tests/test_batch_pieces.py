"""The reusable batch pieces, without REPLs: header splitting, %%lean_batch arguments, the results
object, and the progress views (through a kernel-style ``send``)."""

from __future__ import annotations

import io
import pickle

import pytest

from lean_kernel.batch.args import (
    BatchArgsError,
    commands_from_value,
    parse_batch_args,
    split_commands,
)
from lean_kernel.batch.headers import shift_response, split_header, split_imports
from lean_kernel.batch.results import BatchResults, ItemResult
from lean_kernel.display.progress import (
    DisplayProgress,
    ProgressState,
    StreamProgress,
    WidgetProgress,
    make_progress,
)
from lean_kernel.engine.outcome import status_of
from lean_kernel.engine.protocol import CommandResponse, Message, Pos
from lean_kernel.errors import ReplTimeoutError

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

"""What a user sees for a cell's result: codespan-style text and themed, self-contained HTML."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from lean_kernel.display import (
    eval_outputs,
    render_error_summary,
    render_html,
    render_plain,
    render_result,
    render_table,
)
from lean_kernel.engine.outcome import failed as is_error
from lean_kernel.engine.protocol import (
    CommandResponse,
    LeanError,
    Message,
    Pos,
    ProofStepResponse,
    Sorry,
    parse_request,
    parse_response,
)

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "repl-transcripts"


def msg(
    line: int, col: int, end_line: int, end_col: int, data: str, severity: str = "error"
) -> Message:
    return Message(
        start_pos=Pos(line=line, column=col),
        end_pos=Pos(line=end_line, column=end_col),
        severity=severity,
        data=data,
    )


def sorry(line: int, col: int, goal: str, proof_state: int) -> Sorry:
    return Sorry(
        start_pos=Pos(line=line, column=col),
        end_pos=Pos(line=line, column=col + 5),
        goal=goal,
        proof_state=proof_state,
    )


class _TagChecker(HTMLParser):
    """Records open/close tags, to check the HTML is well nested."""

    VOID = {"br", "hr", "img", "meta", "input", "link", "col", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.spans: list[tuple[dict[str, str | None], str]] = []
        self._span_text: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "span":
            self._span_text.append([])
            self.spans.append((dict(attrs), ""))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        for texts in self._span_text:
            texts.append(data)


def well_formed(document: str) -> _TagChecker:
    checker = _TagChecker()
    checker.feed(document)
    checker.close()
    assert not checker.errors, checker.errors
    assert not checker.stack, f"unclosed tags: {checker.stack}"
    return checker


def underlined(document: str, css_class: str) -> list[tuple[str, str]]:
    """(data-range, text) of the innermost underline spans of one class, in document order."""
    pattern = rf'<span class="lk-diag {css_class}[^"]*" data-range="([^"]+)"[^>]*>([^<]*)</span>'
    return re.findall(pattern, document)


# --- real REPL transcripts ------------------------------------------------------------------------


def _read_requests(path: Path) -> list[dict[str, Any]]:
    """Requests as the REPL reads them: lines up to a blank one, joined without newlines."""
    requests, lines = [], []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.strip():
            lines.append(line.rstrip())
            continue
        text, lines = "".join(lines), []
        if text and not text.startswith(("#", "--")):
            requests.append(json.loads(text))
    return requests


def _transcript_results() -> list[Any]:
    """(name, source, response) for every real exchange whose request carries Lean text."""
    if not TRANSCRIPTS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no {TRANSCRIPTS}"))]
    results = []
    for out in sorted(TRANSCRIPTS.glob("*.expected.out")):
        name = out.name.removesuffix(".expected.out")
        blocks = out.read_text(encoding="utf-8").split("\n\n")
        responses = [json.loads(block) for block in blocks if block.strip()]
        for i, (wire, data) in enumerate(
            zip(_read_requests(TRANSCRIPTS / f"{name}.in"), responses, strict=True)
        ):
            request = parse_request(wire)
            source = wire.get("cmd", wire.get("tactic"))
            if source is not None:
                response = parse_response(request, data)
                results.append(pytest.param((source, response), id=f"{name}-{i}"))
    return results


@pytest.mark.parametrize("case", _transcript_results())
def test_every_real_response_renders_its_messages_and_goals(case: Any) -> None:
    source, response = case
    bundle = render_result(source, response)
    if isinstance(response, LeanError):
        assert response.message.splitlines()[-1] in bundle["text/plain"]
        return
    goals = [s.goal for s in response.sorries]
    if isinstance(response, ProofStepResponse):
        goals += response.goals
    if not (response.messages or goals or isinstance(response, ProofStepResponse)):
        assert bundle == {}
        return
    plain, page = bundle["text/plain"], bundle["text/html"]
    well_formed(page)
    for message in response.messages:
        for line in message.data.splitlines():
            assert line.strip() in plain
        assert f'class="lk-msg lk-{message.severity}"' in page
    for goal in goals:
        assert "  " + goal.replace("\n", "\n  ") in plain
        assert goal.split("\n")[-1] in page  # the ⊢ line
    failed = any(m.severity == "error" for m in response.messages) or (
        isinstance(response, ProofStepResponse) and response.proof_status.startswith("Error")
    )
    assert is_error(response) == failed


def test_real_columns_count_code_points_not_bytes() -> None:
    """Every sorry of a real transcript spans exactly `sorry` when columns index code points.

    The lines checked include `∧`, `→` and `◾` before the sorry (3 UTF-8 bytes each), so byte
    offsets would land elsewhere.
    """
    if not TRANSCRIPTS.is_dir():
        pytest.skip(f"no {TRANSCRIPTS}")
    checked_unicode = 0
    for param in _transcript_results():
        source, response = param.values[0]
        if isinstance(response, LeanError):
            continue
        lines = source.split("\n")
        for s in response.sorries:
            if s.start_pos is None or s.end_pos is None or s.start_pos == s.end_pos:
                continue
            line = lines[s.start_pos.line - 1]
            assert line[s.start_pos.column : s.end_pos.column] == "sorry"
            checked_unicode += not line.isascii()
            assert underlined(render_html(source, [], [s]), "lk-sorry")[0][1] == "sorry"
    assert checked_unicode >= 3


# --- text/plain -----------------------------------------------------------------------------------


def test_caret_sits_under_the_exact_range() -> None:
    text = render_plain("#check g", [msg(1, 7, 1, 8, "Unknown identifier `g`")])
    assert text == ("1:7: error: Unknown identifier `g`\n 1 | #check g\n   |        ^\n")


def test_caret_lines_up_after_unicode_and_wide_characters() -> None:
    source = "example (h : p ∧ q) : 漢字 = ok"
    start = source.index("漢")
    text = render_plain(source, [msg(1, start, 1, start + 2, "odd", "warning")])
    code, carets = text.splitlines()[1:3]
    assert code.endswith(source)
    prefix = len(" 1 | ")
    # ∧ is one terminal column, each CJK character two.
    assert carets[prefix:] == " " * start + "^^^^"


def test_multi_line_range_underlines_each_line_to_its_end() -> None:
    source = "def f (x : Bool) : Nat := by\n  by_cases x\n  { apply Nat.succ }"
    text = render_plain(source, [msg(1, 26, 3, 20, "unsolved goals\ncase neg\n⊢ Nat")])
    assert text.splitlines() == [
        "1:26: error: unsolved goals",
        "  case neg",
        "  ⊢ Nat",
        " 1 | def f (x : Bool) : Nat := by",
        "   |                           ^^",
        " 2 |   by_cases x",
        "   |   ^^^^^^^^^^",
        " 3 |   { apply Nat.succ }",
        "   |   ^^^^^^^^^^^^^^^^^^",
    ]


def test_very_long_range_shows_its_first_and_last_lines() -> None:
    source = "\n".join(f"  step{i}" for i in range(1, 21))
    text = render_plain(source, [msg(1, 2, 20, 8, "too long")])
    assert " 1 |   step1" in text and "20 |   step20" in text
    assert "step10" not in text and "⋮" in text


def test_range_ending_at_a_line_start_stops_on_the_line_before() -> None:
    text = render_plain("abc\ndef", [msg(1, 0, 2, 0, "oops")])
    assert "^^^" in text and " 2 | def" not in text


def test_empty_range_gets_one_caret_even_past_the_line_end() -> None:
    text = render_plain("def f : Nat :=", [msg(1, 14, 1, 14, "unexpected end of input")])
    assert text.splitlines()[-1] == "   |               ^"


def test_tactic_mode_error_at_0_0_shows_no_source() -> None:
    text = render_plain("exact my_fake_premise", [msg(0, 0, 0, 0, "Unknown identifier `x`")])
    assert text == "error: Unknown identifier `x`\n"


def test_long_message_is_kept_whole_and_indented() -> None:
    data = "first line\n" + "word " * 100 + "\nlast line"
    text = render_plain("example := 0", [msg(1, 0, 1, 7, data)])
    assert "1:0: error: first line\n  " + "word " * 99 + "word \n  last line\n" in text


def test_sorries_show_as_labelled_goal_blocks() -> None:
    source = "theorem my_theorem (x : Nat) : x = x := by sorry"
    text = render_plain(source, [], [sorry(1, 43, "x : Nat\n⊢ x = x", -3)])
    assert text == "1:43: goal (proof state -3):\n  x : Nat\n  ⊢ x = x\n"


def test_proof_step_shows_status_then_numbered_goals() -> None:
    response = ProofStepResponse(
        proof_state=1,
        proof_status="Incomplete: open goals remain",
        goals=["case pos\nx : Int\n⊢ x = x", "case neg\nx : Int\n⊢ x = x"],
    )
    text = render_result("by_cases h : x < 0", response)["text/plain"]
    assert text.startswith("proof state 1: Incomplete: open goals remain\n\ngoal 1 of 2:\n")
    assert "goal 2 of 2:\n  case neg\n  x : Int\n  ⊢ x = x\n" in text


def test_completed_proof_says_no_goals() -> None:
    response = ProofStepResponse(proof_state=3, proof_status="Completed", goals=[])
    assert render_result("rfl", response)["text/plain"] == "proof state 3: Completed\nno goals\n"


def test_line_offset_maps_repl_lines_to_cell_lines() -> None:
    cell = "%timeout 10\n%%other\ndef f := 1\n#check g"
    text = render_plain(cell, [msg(2, 7, 2, 8, "Unknown identifier `g`")], line_offset=2)
    assert text.splitlines()[:3] == [
        "4:7: error: Unknown identifier `g`",
        " 4 | #check g",
        "   |        ^",
    ]
    page = render_html(cell, [msg(2, 7, 2, 8, "boom")], line_offset=2)
    assert underlined(page, "lk-error") == [("4:7-4:8", "g")]


def test_windows_line_endings_do_not_shift_or_leak() -> None:
    text = render_plain("def f := 1\r\n#check g\r\n", [msg(2, 7, 2, 8, "bad")])
    assert "\r" not in text and "   |        ^" in text


def test_ansi_colours_only_when_asked() -> None:
    message = [msg(1, 7, 1, 8, "bad")]
    assert "\x1b[" not in render_plain("#check g", message)
    assert "\x1b[1;31m" in render_plain("#check g", message, ansi=True)


# --- #eval output ---------------------------------------------------------------------------------

EVAL_SOURCE = 'def x := 1\n#eval s!"<{x}>"\n#check x\n  #eval! x + 1'
EVAL_MESSAGES = [
    msg(2, 0, 2, 5, "<1>", "info"),
    msg(3, 0, 3, 6, "x : Nat", "info"),
    msg(4, 2, 4, 8, "2\n", "info"),
]


def test_eval_output_reads_like_program_output() -> None:
    text = render_plain(EVAL_SOURCE, EVAL_MESSAGES)
    assert text.startswith("<1>\n2\n\n")
    assert "info: <1>" not in text and "#eval" not in text
    assert "3:0: info: x : Nat\n 3 | #check x\n   | ^^^^^^\n" in text
    page = render_html(EVAL_SOURCE, EVAL_MESSAGES)
    assert '<pre class="lk-output">&lt;1&gt;</pre><pre class="lk-output">2</pre>' in page
    assert [r for r, _ in underlined(page, "lk-info")] == ["3:0-3:6"]


def test_eval_output_can_go_to_a_stream_instead() -> None:
    assert eval_outputs(EVAL_SOURCE, EVAL_MESSAGES) == ["<1>\n", "2\n"]
    text = render_plain(EVAL_SOURCE, EVAL_MESSAGES, show_eval_output=False)
    assert "<1>" not in text and text.startswith("3:0: info: x : Nat")
    only_eval = CommandResponse(env=1, messages=[EVAL_MESSAGES[0]])
    assert render_result(EVAL_SOURCE, only_eval, show_eval_output=False) == {}


def test_eval_errors_stay_errors() -> None:
    source = '#eval (panic! "no" : Nat)'
    response = CommandResponse(env=0, messages=[msg(1, 0, 1, 5, "no", "error")])
    assert eval_outputs(source, response.messages) == []
    assert is_error(response)
    assert "1:0: error: no" in render_result(source, response)["text/plain"]


# --- text/html ------------------------------------------------------------------------------------


def test_html_underlines_exact_range_with_severity_and_range_attributes() -> None:
    page = render_html("#check g", [msg(1, 7, 1, 8, "Unknown identifier `g`")])
    well_formed(page)
    assert underlined(page, "lk-error") == [("1:7-1:8", "g")]
    assert '<div class="lk-msg lk-error" data-range="1:7-1:8">' in page
    assert page.startswith('<div class="lk-root"><style>')


def test_html_multi_line_and_overlapping_ranges_nest_cleanly() -> None:
    source = "def f (x : Bool) : Nat := by\n  by_cases x\n  { apply Nat.succ }"
    messages = [
        msg(3, 19, 3, 20, "unsolved goals\ncase pos\n⊢ Nat"),
        msg(1, 26, 3, 20, "unsolved goals\ncase neg\n⊢ Nat"),
        msg(1, 4, 1, 5, "unused", "warning"),
    ]
    page = render_html(source, messages)
    well_formed(page)
    errors = underlined(page, "lk-error")
    assert ("1:26-3:20", "by") in errors and ("1:26-3:20", "by_cases x") in errors
    # `}` is in both errors: the innermost span wins the colour.
    assert ("3:19-3:20", "}") in errors
    assert underlined(page, "lk-warning") == [("1:4-1:5", "f")]
    # Messages come under the last line of their range, in source order.
    assert page.index('<div class="lk-msg lk-warning"') < page.index("by_cases x</span>")
    assert page.index("{ apply Nat.succ") < page.index('<div class="lk-msg lk-error"')


def test_html_goals_are_open_collapsible_blocks() -> None:
    source = "theorem t (x : Nat) : x = x := by sorry"
    page = render_html(source, [], [sorry(1, 34, "x : Nat\n⊢ x = x", 0)])
    well_formed(page)
    assert '<details class="lk-goal" open data-range="1:34-1:39" data-proof-state="0">' in page
    assert '<span class="lk-turnstile">⊢ x = x</span>' in page
    assert underlined(page, "lk-sorry") == [("1:34-1:39", "sorry")]


def test_html_proof_step_goals_without_source() -> None:
    response = ProofStepResponse(proof_state=2, proof_status="Incomplete", goals=["⊢ Nat"])
    page = render_result("have t : Nat := 42", response)["text/html"]
    well_formed(page)
    assert 'class="lk-src"' not in page
    assert '<div class="lk-status" data-proof-state="2">' in page
    assert page.count('class="lk-goal"') == 1


def test_html_escapes_messages_source_and_goals() -> None:
    source = "def f := a < b <script>"
    page = render_html(
        source,
        [msg(1, 13, 1, 14, "bad <script>alert('x')</script> & \"q\"")],
        [sorry(1, 0, "h : a<b\n⊢ <b>", 0)],
    )
    well_formed(page)
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert" in page and "a &lt; <span" in page and "⊢ &lt;b&gt;" in page


def test_html_colours_come_only_from_jupyterlab_variables() -> None:
    page = render_html("#check g", [msg(1, 7, 1, 8, "bad"), msg(1, 0, 1, 6, "hm", "warning")])
    style = re.search(r"<style>(.*)</style>", page, re.S).group(1)
    for prop, value in re.findall(
        r"(?<![-\w])(color|background|border[-\w]*)\s*:\s*([^;}]+)", style
    ):
        if re.search(r"#|rgb", value):
            assert "var(--jp-" in value, f"{prop}:{value}"
    for variable in (
        "--jp-error-color1",
        "--jp-warn-color0",  # color1 (orange 700) is under 3:1 on JupyterLab Light's boxes
        "--jp-info-color0",
        "--jp-content-font-color1",
        "--jp-code-font-family",
        "--jp-cell-editor-background",
    ):
        assert f"var({variable}," in style


def test_html_is_self_contained() -> None:
    page = render_html("#check g", [msg(1, 7, 1, 8, "see https://example.com")])
    without_text = page.replace("see https://example.com", "")
    assert not re.search(r"https?://|url\(|@import|<link|<script", without_text)


def css_rules(page: str) -> dict[str, dict[str, str]]:
    """The declarations of the output's inline stylesheet, by selector (merged in order)."""
    style = re.search(r"<style>(.*)</style>", page, re.S).group(1)
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", style):
        declarations = dict(
            (name.strip(), value.strip())
            for name, _, value in (d.partition(":") for d in body.split(";") if d.strip())
        )
        for selector in selectors.split(","):
            rules.setdefault(selector.strip(), {}).update(declarations)
    return rules


def test_html_long_lines_wrap_or_scroll_instead_of_overflowing() -> None:
    rules = css_rules(render_html("x" * 500, [msg(1, 0, 1, 3, "y" * 2000)]))
    scope = ".lk-root.lk-root"
    # Messages, goals and #eval output wrap, even inside a long word.
    for part in (".lk-msg .lk-text", ".lk-status", ".lk-goal-text", ".lk-output"):
        rule = rules[f"{scope} {part}"]
        assert rule["white-space"] == "pre-wrap" and rule["overflow-wrap"] == "anywhere", part
    # Boxes stay inside the cell; source lines keep their layout and scroll sideways.
    for part in (".lk-msg", ".lk-status", ".lk-goal"):
        assert rules[f"{scope} {part}"]["max-width"] == "100%", part
    assert rules[f"{scope} .lk-src"]["white-space"] == "pre"
    assert rules[f"{scope} .lk-src"]["overflow-x"] == "auto"
    assert rules[".lk-root"]["max-width"] == "100%" and rules[".lk-root"]["overflow-x"] == "auto"


def test_html_multi_line_message_hangs_under_its_first_line() -> None:
    """The head (``1:29: error:``) is a column of its own: continuation lines of the message
    start under its first line, not under the head."""
    rules = css_rules(render_html("#check g", [msg(1, 7, 1, 8, "a\nb")]))
    box = rules[".lk-root.lk-root .lk-msg"]
    assert box["display"] == "grid"
    assert box["grid-template-columns"] == "max-content minmax(0,1fr)"
    # A grid keeps non-collapsible whitespace as an item: the box itself must not be pre-wrap.
    assert "white-space" not in box
    assert rules[".lk-root.lk-root .lk-head"]["white-space"] == "nowrap"


def test_html_rules_outrank_the_frontends_output_styles() -> None:
    """JupyterLab styles every output ``<pre>`` with ``.jp-ThemedContainer .jp-RenderedHTMLCommon
    pre`` (specificity 0,2,1: a background, no padding); nbconvert's lab template likewise. Every
    rule of ours but the root's is scoped ``.lk-root.lk-root`` and names our own classes, so it
    wins (0,3,0 or more) wherever the output is shown."""
    rules = css_rules(render_html("#check g", [msg(1, 7, 1, 8, "bad")], [sorry(1, 0, "⊢ p", 0)]))
    for selector in rules:
        if selector == ".lk-root":
            continue
        assert selector.startswith(".lk-root.lk-root "), selector
        classes = selector.count(".")
        elements = len(re.findall(r"(?:^|[ >])([a-z]+)", selector))
        assert (classes, elements) >= (2, 1), selector
        assert classes >= 3 or selector == ".lk-root.lk-root pre", selector
    assert rules[".lk-root.lk-root pre"]["background"] == "none"


def test_html_underlines_have_room_below_the_last_source_line() -> None:
    """A wavy underline is drawn below the text: the scrolling source block keeps space for it,
    or it is cut in half."""
    rules = css_rules(render_html("#check g", [msg(1, 7, 1, 8, "bad")]))
    padding = rules[".lk-root.lk-root .lk-src"]["padding"].split()
    assert float(padding[2].removesuffix("px")) >= 5


def test_html_table_headers_do_not_break_inside_words() -> None:
    rules = css_rules(render_table([{"cell": 1, "time (s)": 0.5}])["text/html"])
    assert rules[".lk-root.lk-root table.lk-table th"]["white-space"] == "nowrap"
    cell = rules[".lk-root.lk-root table.lk-table td"]
    assert cell["overflow-wrap"] == "break-word"  # not `anywhere`: "cell" never becomes "cel l"


def test_html_folds_source_far_from_any_diagnostic() -> None:
    source = "\n".join(f"def d{i} := {i}" for i in range(1, 41))
    page = render_html(source, [msg(20, 4, 20, 7, "bad")])
    well_formed(page)
    assert "d20</span>" in page and "def d22 :=" in page
    assert "def d1 :=" not in page and "def d17 :=" not in page and "def d23 :=" not in page
    assert "⋯ 17 lines" in page and "⋯ 18 lines" in page


def test_html_marks_empty_range_at_line_end() -> None:
    page = render_html("def f : Nat :=", [msg(1, 14, 1, 14, "unexpected end of input")])
    assert underlined(page, "lk-error") == [("1:14-1:14", " ")]


# --- responses ------------------------------------------------------------------------------------


def test_is_error_only_for_errors() -> None:
    warning = CommandResponse(
        env=0, messages=[msg(1, 0, 1, 7, "declaration uses `sorry`", "warning")]
    )
    assert not is_error(warning)
    assert is_error(CommandResponse(env=0, messages=[msg(1, 7, 1, 8, "bad")]))
    assert is_error(LeanError(message="Unknown environment."))
    kernel_rejects = ProofStepResponse(
        proof_state=3, proof_status="Error: kernel type check failed"
    )
    assert is_error(kernel_rejects)
    assert not is_error(ProofStepResponse(proof_state=3, proof_status="Completed"))


def test_nothing_to_show_gives_an_empty_bundle() -> None:
    assert render_result("def f := 1", CommandResponse(env=0)) == {}


def test_repl_refusal_is_shown_as_an_error() -> None:
    bundle = render_result("exact?", LeanError(message="Lean error:\n`exact?` failed"))
    assert bundle["text/plain"] == "error: `exact?` failed\n"
    assert 'class="lk-msg lk-error"' in bundle["text/html"]


def test_error_summary_is_a_complete_jupyter_error() -> None:
    source = "#check g\n#check h"
    response = CommandResponse(
        env=1,
        messages=[msg(1, 7, 1, 8, "Unknown identifier `g`"), msg(2, 7, 2, 8, "Unknown `h`")],
    )
    summary = render_error_summary(source, response)
    assert summary["ename"] == "LeanError"
    assert summary["evalue"] == "1:7: Unknown identifier `g` (and 1 more error)"
    traceback = "\n".join(summary["traceback"])
    assert "Unknown `h`" in traceback and "\x1b[1;31m" in traceback


# --- tables ---------------------------------------------------------------------------------------


def test_table_aligns_text_and_themes_html() -> None:
    rows = [
        {"cell": 1, "status": "ok", "time": 0.125, "first line": "def f := 1"},
        {"cell": 12, "status": "error: 2", "time": 3.5, "first line": "theorem <t>\n  := x"},
    ]
    bundle = render_table(rows, ["cell", "status", "time", "first line"])
    assert bundle["text/plain"].splitlines() == [
        "cell  status    time  first line",
        "----  --------  ----  --------------------",
        "   1  ok        0.12  def f := 1",
        "  12  error: 2  3.50  theorem <t> ⏎   := x",
    ]
    page = bundle["text/html"]
    well_formed(page)
    assert "<th>first line</th>" in page and "theorem &lt;t&gt;" in page
    assert '<td class="lk-num">12</td>' in page and '<td class="lk-error">error: 2</td>' in page
    assert "var(--jp-border-color2," in page


def test_table_columns_default_to_every_key() -> None:
    plain = render_table([{"a": 1}, {"b": None}])["text/plain"]
    assert plain.splitlines()[0].split() == ["a", "b"]

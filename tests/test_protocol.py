"""The protocol models read and write exactly what the Lean REPL reads and writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lean_kernel.engine.framing import decode_response, encode_request, read_response
from lean_kernel.engine.protocol import (
    BaseREPLQuery,
    BaseREPLResponse,
    Command,
    CommandResponse,
    FileCommand,
    LeanError,
    Message,
    PickleEnvironment,
    PickleProofState,
    Pos,
    ProofStep,
    ProofStepResponse,
    Sorry,
    UnpickleEnvironment,
    UnpickleProofState,
    parse_request,
    parse_response,
)
from lean_kernel.errors import ReplProtocolError

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "repl-transcripts"

SORRY_WARNING = {
    "severity": "warning",
    "pos": {"line": 1, "column": 4},
    "endPos": {"line": 1, "column": 5},
    "data": "declaration uses `sorry`",
}
SORRY = {
    "proofState": 0,
    "pos": {"line": 1, "column": 18},
    "goal": "⊢ Nat",
    "endPos": {"line": 1, "column": 23},
}
ERROR = {
    "severity": "error",
    "pos": {"line": 1, "column": 15},
    "endPos": {"line": 1, "column": 17},
    "data": "unsolved goals\n⊢ Nat",
}


# --- requests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "wire"),
    [
        (Command(cmd="def f := 1"), {"cmd": "def f := 1"}),
        (
            Command(cmd="#check f", env=3, all_tactics=True, root_goals=False, infotree="full"),
            {
                "cmd": "#check f",
                "env": 3,
                "allTactics": True,
                "rootGoals": False,
                "infotree": "full",
            },
        ),
        (
            Command(cmd="x", declarations=True, incrementality=True),
            {"cmd": "x", "declarations": True, "incrementality": True},
        ),
        (FileCommand(path="a.lean", env=0), {"path": "a.lean", "env": 0}),
        (ProofStep(tactic="rfl", proof_state=2), {"tactic": "rfl", "proofState": 2}),
        (PickleEnvironment(env=1, pickle_to="e.olean"), {"env": 1, "pickleTo": "e.olean"}),
        (UnpickleEnvironment(unpickle_env_from="e.olean"), {"unpickleEnvFrom": "e.olean"}),
        (
            PickleProofState(proof_state=4, pickle_to="p.olean"),
            {"proofState": 4, "pickleTo": "p.olean"},
        ),
        (
            UnpickleProofState(unpickle_proof_state_from="p.olean", env=0),
            {"unpickleProofStateFrom": "p.olean", "env": 0},
        ),
    ],
)
def test_request_to_wire_uses_repl_names_and_omits_unset_options(
    request_: BaseREPLQuery, wire: dict[str, Any]
) -> None:
    assert request_.to_wire() == wire
    assert type(request_).model_validate(wire) == request_
    assert parse_request(wire) == request_


def test_requests_accept_wire_names_as_keywords() -> None:
    assert ProofStep(tactic="rfl", proofState=1) == ProofStep(tactic="rfl", proof_state=1)
    assert Command(cmd="x", allTactics=True).all_tactics is True


def test_set_options_are_sent_as_json_arrays_and_stay_hashable() -> None:
    request = Command(cmd="#check 1", set_options=[[["pp", "numericTypes"], True]])
    assert request.to_wire() == {"cmd": "#check 1", "setOptions": [[["pp", "numericTypes"], True]]}
    assert json.loads(json.dumps(request.to_wire())) == request.to_wire()
    assert Command.model_validate(request.to_wire()) == request
    assert hash(request) == hash(
        Command(cmd="#check 1", set_options=((("pp", "numericTypes"), True),))
    )


def test_requests_are_frozen_and_usable_as_cache_keys() -> None:
    cache = {Command(cmd="def f := 1", env=0): "result"}
    assert cache[Command(cmd="def f := 1", env=0)] == "result"
    assert Command(cmd="def f := 1", env=1) not in cache
    with pytest.raises(ValidationError, match="frozen"):
        Command(cmd="x").env = 3  # type: ignore[misc]


def test_negative_ids_are_allowed_for_session_cache_ids() -> None:
    assert Command(cmd="x", env=-1).to_wire() == {"cmd": "x", "env": -1}


def test_path_objects_stand_for_paths() -> None:
    assert FileCommand(path=Path("dir/f.lean")).to_wire() == {"path": "dir/f.lean"}
    assert PickleEnvironment(env=0, pickle_to=Path("e.olean")).pickle_to == "e.olean"


@pytest.mark.parametrize(
    ("model", "kwargs", "field"),
    [
        (Command, {"cmd": 1}, "cmd"),
        (Command, {"cmd": None}, "cmd"),
        (Command, {}, "cmd"),
        (Command, {"cmd": "x", "env": "0"}, "env"),
        (Command, {"cmd": "x", "env": True}, "env"),
        (Command, {"cmd": "x", "env": 1.5}, "env"),
        (Command, {"cmd": "x", "all_tactics": "yes"}, "all_tactics"),
        (Command, {"cmd": "x", "set_options": [["pp.all", True]]}, "set_options"),
        (ProofStep, {"tactic": "rfl", "proof_state": "2"}, "proof_state"),
        (ProofStep, {"tactic": "", "proof_state": 0}, "tactic"),
        (FileCommand, {"path": ""}, "path"),
        (FileCommand, {"path": 3}, "path"),
        (PickleEnvironment, {"env": None, "pickle_to": "e.olean"}, "env"),
        (UnpickleProofState, {"unpickle_proof_state_from": "p", "env": "1"}, "env"),
    ],
)
def test_bad_request_values_are_rejected_naming_the_key_given(
    model: type[BaseREPLQuery], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        model(**kwargs)
    assert {error["loc"][0] for error in info.value.errors()} == {field}


def test_bad_wire_request_is_rejected_naming_the_wire_key() -> None:
    with pytest.raises(ValidationError) as info:
        parse_request({"tactic": "rfl", "proofState": "0"})
    assert [error["loc"] for error in info.value.errors()] == [("proofState",)]


@pytest.mark.parametrize(
    ("request_", "response_type"),
    [
        (Command(cmd="x"), CommandResponse),
        (FileCommand(path="f.lean"), CommandResponse),
        (PickleEnvironment(env=0, pickle_to="e"), CommandResponse),
        (UnpickleEnvironment(unpickle_env_from="e"), CommandResponse),
        (ProofStep(tactic="rfl", proof_state=0), ProofStepResponse),
        (PickleProofState(proof_state=0, pickle_to="p"), ProofStepResponse),
        (UnpickleProofState(unpickle_proof_state_from="p"), ProofStepResponse),
    ],
)
def test_each_request_names_its_response_model(
    request_: BaseREPLQuery, response_type: type[BaseREPLResponse]
) -> None:
    assert request_.response_type is response_type


def test_parse_request_decides_by_keys_like_the_repl() -> None:
    # The REPL tries ProofStep, then the pickle requests, then Command, then File.
    assert type(parse_request({"proofState": 0, "pickleTo": "p"})) is PickleProofState
    assert type(parse_request({"env": 0, "pickleTo": "e"})) is PickleEnvironment
    assert type(parse_request({"cmd": "x", "env": 0})) is Command
    first_match = parse_request({"tactic": "rfl", "proofState": 0, "cmd": "ignored"})
    assert type(first_match) is ProofStep
    assert first_match.to_wire() == {"tactic": "rfl", "proofState": 0, "cmd": "ignored"}
    with pytest.raises(ValueError, match="not a REPL request"):
        parse_request({"env": 0})


def test_unknown_request_fields_are_sent_along() -> None:
    request = Command(cmd="x", gcAfter=True)
    assert request.to_wire() == {"cmd": "x", "gcAfter": True}


# --- responses -----------------------------------------------------------------------------------


def test_message_alone_is_a_lean_error() -> None:
    response = parse_response(Command(cmd="x", env=5), {"message": "Unknown environment."})
    assert isinstance(response, LeanError)
    assert str(response) == "Unknown environment."
    assert response.to_wire() == {"message": "Unknown environment."}
    tactic_failure = {"message": "Lean error:\n<input>:1:1: unknown tactic"}
    assert isinstance(
        parse_response(ProofStep(tactic="exat 42", proof_state=0), tactic_failure), LeanError
    )


def test_message_next_to_an_id_is_not_an_error() -> None:
    response = parse_response(Command(cmd="x"), {"env": 0, "message": "a newer REPL's note"})
    assert isinstance(response, CommandResponse)
    assert response.to_wire() == {"env": 0, "message": "a newer REPL's note"}


def test_unknown_response_fields_are_kept_at_every_level() -> None:
    data = {
        "env": 7,
        "messages": [
            {**SORRY_WARNING, "fullRange": [1, 2], "pos": {"line": 1, "column": 4, "offset": 4}}
        ],
        "sorries": [{**SORRY, "kind": "term"}],
        "elapsedMs": 12,
    }
    response = parse_response(Command(cmd="x"), data)
    assert response.model_extra == {"elapsedMs": 12}
    assert response.to_wire() == data


def test_unknown_severity_is_kept() -> None:
    message = Message.model_validate({**SORRY_WARNING, "severity": "hint"})
    assert message.severity == "hint"
    assert str(message) == "1:4: hint: declaration uses `sorry`"


def test_message_str_reads_like_a_compiler_diagnostic() -> None:
    assert str(Message.model_validate(SORRY_WARNING)) == "1:4: warning: declaration uses `sorry`"


def test_message_without_end_position_parses() -> None:
    message = Message.model_validate(
        {"severity": "info", "pos": {"line": 2, "column": 0}, "data": "x"}
    )
    assert message.end_pos is None
    assert message.start_pos == Pos(line=2, column=0)


def test_tactic_mode_sorry_has_no_positions() -> None:
    sorry = Sorry.model_validate({"proofState": 1, "goal": "⊢ Nat"})
    assert sorry.start_pos is None and sorry.end_pos is None and sorry.proof_state == 1


def test_to_wire_leaves_out_empty_lists_like_the_repl() -> None:
    assert CommandResponse(env=0).to_wire() == {"env": 0}
    step = ProofStepResponse(proof_state=1, proof_status="Completed")
    assert step.to_wire() == {"proofState": 1, "goals": [], "proofStatus": "Completed"}


def test_error_and_warning_helpers() -> None:
    response = CommandResponse.model_validate({"env": 0, "messages": [ERROR, SORRY_WARNING]})
    assert response.has_errors()
    assert [m.data for m in response.get_errors()] == ["unsolved goals\n⊢ Nat"]
    assert [m.data for m in response.get_warnings()] == ["declaration uses `sorry`"]
    assert not response.lean_code_is_valid()


@pytest.mark.parametrize(
    ("data", "valid", "valid_without_sorry"),
    [
        ({"env": 0}, True, True),
        ({"env": 0, "messages": [{**ERROR, "severity": "info"}]}, True, True),
        ({"env": 0, "messages": [SORRY_WARNING], "sorries": [SORRY]}, True, False),
        (
            {"env": 0, "messages": [{**SORRY_WARNING, "data": "declaration uses 'sorry'"}]},
            True,
            False,
        ),
        ({"env": 0, "messages": [ERROR]}, False, False),
    ],
)
def test_lean_code_is_valid(data: dict[str, Any], valid: bool, valid_without_sorry: bool) -> None:
    response = CommandResponse.model_validate(data)
    assert response.lean_code_is_valid() is valid
    assert response.lean_code_is_valid(allow_sorry=False) is valid_without_sorry


def test_proof_rejected_by_the_kernel_is_not_valid() -> None:
    status = "Error: kernel type check failed: (kernel) declaration has free variables"
    rejected = ProofStepResponse.model_validate(
        {"proofState": 1, "goals": [], "proofStatus": status}
    )
    assert not rejected.has_errors()
    assert not rejected.lean_code_is_valid()
    done = ProofStepResponse.model_validate(
        {"proofState": 1, "goals": [], "proofStatus": "Completed"}
    )
    assert done.lean_code_is_valid(allow_sorry=False)


def test_responses_are_frozen() -> None:
    response = CommandResponse(env=0)
    with pytest.raises(ValidationError, match="frozen"):
        response.env = 1  # type: ignore[misc]
    assert response.model_copy(update={"env": -1}).env == -1


# --- conformance with real REPL transcripts ------------------------------------------------------


def _read_requests(path: Path) -> list[dict[str, Any]]:
    """Split a ``.in`` file the way the REPL reads stdin.

    Lines up to a blank one form a request; each line loses its trailing whitespace and they are
    joined with no newline (so a raw newline inside a JSON string disappears, as in the REPL).
    Requests starting with ``#`` or ``--`` get no response, so they are not requests here.
    """
    requests, lines = [], []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.strip():
            lines.append(line.rstrip())
            continue
        text = "".join(lines)
        lines = []
        if text and not text.startswith(("#", "--")):
            requests.append(json.loads(text))
    return requests


def _read_responses(path: Path) -> list[dict[str, Any]]:
    """Split a ``.expected.out`` file: pretty JSON objects, each ended by a blank line."""
    blocks = path.read_text(encoding="utf-8").split("\n\n")
    return [json.loads(block) for block in blocks if block.strip()]


def _transcripts(suffix: str) -> list[Any]:
    if not TRANSCRIPTS.is_dir():
        return [
            pytest.param(None, marks=pytest.mark.skip(reason=f"no transcripts at {TRANSCRIPTS}"))
        ]
    return sorted(p.name.removesuffix(suffix) for p in TRANSCRIPTS.glob(f"*{suffix}"))


# Which request model each key set must give (the REPL's dispatch, spelled out independently).
_MODEL_BY_KEYS = {
    frozenset({"cmd"}): Command,
    frozenset({"cmd", "env"}): Command,
    frozenset({"path"}): FileCommand,
    frozenset({"path", "env"}): FileCommand,
    frozenset({"tactic", "proofState"}): ProofStep,
    frozenset({"env", "pickleTo"}): PickleEnvironment,
    frozenset({"unpickleEnvFrom"}): UnpickleEnvironment,
    frozenset({"proofState", "pickleTo"}): PickleProofState,
    frozenset({"unpickleProofStateFrom"}): UnpickleProofState,
    frozenset({"unpickleProofStateFrom", "env"}): UnpickleProofState,
}
_OPTION_KEYS = {
    "allTactics",
    "rootGoals",
    "infotree",
    "declarations",
    "incrementality",
    "setOptions",
}


@pytest.mark.parametrize("name", _transcripts(".in"))
def test_transcript_requests_round_trip(name: str) -> None:
    for wire in _read_requests(TRANSCRIPTS / f"{name}.in"):
        request = parse_request(wire)
        assert type(request) is _MODEL_BY_KEYS[frozenset(wire.keys() - _OPTION_KEYS)]
        assert not request.model_extra, "every key of a real request is a known field"
        assert request.to_wire() == wire


@pytest.mark.parametrize("name", _transcripts(".expected.out"))
def test_transcript_responses_parse_and_round_trip(name: str) -> None:
    """Every real response parses into the model its request expects and re-serialises exactly.

    Compared: ``to_wire()`` equals the REPL's JSON object exactly; and ``model_dump(by_alias=True,
    exclude_none=True)`` equals it once the list fields the REPL leaves out when empty (and that
    default to ``[]`` here) are added as ``[]``.
    """
    requests = _read_requests(TRANSCRIPTS / f"{name}.in")
    responses = _read_responses(TRANSCRIPTS / f"{name}.expected.out")
    assert len(responses) == len(requests), "one response per request"
    for wire_request, data in zip(requests, responses, strict=True):
        response = parse_response(parse_request(wire_request), data)
        if data.keys() == {"message"}:
            assert isinstance(response, LeanError)
            assert response.to_wire() == data
            continue
        assert isinstance(response, parse_request(wire_request).response_type)
        assert not response.model_extra, "every key of a real response is a known field"
        assert response.to_wire() == data
        fields = type(response).model_fields.items()
        empty_lists = {f.alias or key: [] for key, f in fields if f.default_factory is list}
        dumped = response.model_dump(by_alias=True, exclude_none=True)
        assert dumped == {**empty_lists, **data}


def test_every_transcript_with_responses_has_requests() -> None:
    if not TRANSCRIPTS.is_dir():
        pytest.skip(f"no transcripts at {TRANSCRIPTS}")
    outs = {p.name.removesuffix(".expected.out") for p in TRANSCRIPTS.glob("*.expected.out")}
    ins = {p.name.removesuffix(".in") for p in TRANSCRIPTS.glob("*.in")}
    assert outs <= ins


# --- framing: one JSON object per line out, blank-line-ended answers in --------------------------


class _Output:
    """Stands for a REPL process in the framing tests: its stdout, in the chunks given."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.killed = False

    def read_chunk(self, wait_s: float | None) -> bytes | None:
        return self.chunks.pop(0) if self.chunks else b""

    def kill(self) -> None:
        self.killed = True

    def stderr_tail(self, limit: int = 4000) -> str:
        return ""


def _never_give_up() -> None:
    raise AssertionError("no wait should end empty: the output is all there")


def _read_answer(*chunks: bytes) -> dict[str, Any]:
    output = _Output(*chunks)
    return decode_response(output, read_response(output, None, None, _never_give_up))


def test_request_is_one_line_of_json_then_a_blank_line() -> None:
    payload = {"cmd": "théorème t : 1 = 1 := rfl\n-- ∀ é\t\u0007", "env": 3, "allTactics": True}
    message = encode_request(payload)
    assert message.endswith(b"\n\n") and b"\n" not in message[:-2], "newlines are escaped"
    assert "théorème".encode() in message and "∀ é".encode() in message, "UTF-8, not escapes"
    assert b"\\u0007" in message, "control characters are escaped"
    assert json.loads(message) == payload


def test_request_that_json_cannot_hold_is_refused_before_sending() -> None:
    with pytest.raises(ValueError):
        encode_request({"cmd": "\ud800"})  # a lone surrogate is not UTF-8


def test_answer_in_one_piece_or_many() -> None:
    assert _read_answer(b'{"env": 0}\n\n') == {"env": 0}
    pieces = (b"\n", b'{"env": 1,\n "messages":', b" []}\n", b"\n")
    assert _read_answer(*pieces) == {"env": 1, "messages": []}, "blank line split across reads"


def test_invalid_utf8_in_an_answer_is_replaced_not_fatal() -> None:
    assert _read_answer(b'{"message": "bad \xff byte"}\n\n') == {"message": "bad \ufffd byte"}


def test_output_that_ends_before_the_blank_line_is_eof() -> None:
    with pytest.raises(EOFError):
        _read_answer(b'{"env": 0}\n')


def test_two_answers_to_one_request_kill_the_repl() -> None:
    output = _Output(b'{"env": 0}\n\n{"env": 1}\n\n')
    with pytest.raises(ReplProtocolError, match="more than one answer"):
        read_response(output, None, None, _never_give_up)
    assert output.killed


@pytest.mark.parametrize("text", ["[1, 2]", '{"env": 0', "uncaught exception"])
def test_answer_that_is_not_a_json_object_kills_the_repl(text: str) -> None:
    output = _Output()
    with pytest.raises(ReplProtocolError, match="not a JSON object"):
        decode_response(output, text)
    assert output.killed


@pytest.mark.parametrize("name", _transcripts(".expected.out"))
def test_real_repl_answers_read_back_whatever_the_chunks(name: str) -> None:
    raw = (TRANSCRIPTS / f"{name}.expected.out").read_bytes()
    answers = [block + b"\n\n" for block in raw.split(b"\n\n") if block.strip()]
    expected = _read_responses(TRANSCRIPTS / f"{name}.expected.out")
    for size in (7, 4096):
        read = [
            _read_answer(*(answer[i : i + size] for i in range(0, len(answer), size)))
            for answer in answers
        ]
        assert read == expected

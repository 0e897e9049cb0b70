"""The engine and the cell model against a real Lean REPL (skipped where no toolchain is found).

A user with elan (or with ``LEAN_KERNEL_REPL`` pointing at a built REPL) runs these with
``python -m pytest -m real_lean``; the first run builds the REPL into the cache (minutes, online).
The transcript replay compares the real REPL with what its authors recorded: id numbering, which
requests fail, and message severities (texts may differ between Lean versions).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import TRANSCRIPTS

from lean_kernel import AutoLeanServer, Command, LeanREPLConfig, Notebook, ProofStep
from lean_kernel.engine.protocol import parse_request, parse_response
from lean_kernel.errors import ReplSetupError

pytestmark = [pytest.mark.real_lean, pytest.mark.timeout(3600)]

# Transcripts that need files beside them (file mode, pickles) or a Lean-version-specific REPL.
_NEEDS_FILES = ("path", "pickleTo", "unpickleEnvFrom", "unpickleProofStateFrom")


@pytest.fixture(scope="module")
def real_config() -> LeanREPLConfig:
    if not os.environ.get("LEAN_KERNEL_REPL") and shutil.which("elan") is None:
        pytest.skip("no Lean toolchain: elan is not on PATH and LEAN_KERNEL_REPL is not set")
    config = LeanREPLConfig(verbose=True)
    try:
        config.resolve()
    except ReplSetupError as err:
        pytest.skip(f"the real REPL could not be set up here: {err}")
    return config


def _requests(path: Path) -> list[dict]:
    requests, lines = [], []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.strip():
            lines.append(line.rstrip())
        elif lines:
            text, lines = "".join(lines), []
            if not text.startswith(("#", "--")):
                requests.append(json.loads(text))
    return requests


def _responses(path: Path) -> list[dict]:
    return [json.loads(b) for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]


def _transcript_names() -> list[str]:
    if not TRANSCRIPTS.is_dir():
        return []
    names = []
    for source in sorted(TRANSCRIPTS.glob("*.in")):
        expected = source.with_name(source.name.removesuffix(".in") + ".expected.out")
        text = source.read_text(encoding="utf-8")
        if expected.exists() and not any(f'"{key}"' in text for key in _NEEDS_FILES):
            names.append(source.name.removesuffix(".in"))
    return names


@pytest.mark.parametrize("name", _transcript_names())
def test_real_repl_matches_recorded_transcript(real_config, name):
    requests = _requests(TRANSCRIPTS / f"{name}.in")
    expected = _responses(TRANSCRIPTS / f"{name}.expected.out")
    with AutoLeanServer(real_config) as server:
        for request, want in zip(requests, expected, strict=True):
            got = server.run_dict(request, timeout=600)
            parse_response(parse_request(request), got)
            for key in ("env", "proofState", "message"):
                assert (key in got) == (key in want), (request, got, want)
            assert got.get("env") == want.get("env")
            assert got.get("proofState") == want.get("proofState")
            severities = [m["severity"] for m in got.get("messages", [])]
            assert severities == [m["severity"] for m in want.get("messages", [])]


def test_real_edited_rerun_and_proof_mode(real_config):
    with Notebook(real_config) as notebook:
        assert not notebook.run("def f := 37", cell_id="a").error
        notebook.run("theorem t (x : Nat) : x = x := by sorry", cell_id="b")
        edited = notebook.run("def f := 42", cell_id="a")
        assert edited.response is not None and not edited.response.has_errors()
        answer = notebook.run("#eval f", cell_id="c").response
        assert [m.data for m in answer.messages] == ["42"]


def test_real_sorry_proof_state_survives_a_restart(real_config):
    with AutoLeanServer(real_config) as server:
        kept = server.run(
            Command(cmd="theorem t (x : Nat) : x = x := by sorry"), add_to_session_cache=True
        )
        server.kill()  # as if the REPL had died: the next request restarts it and replays
        step = server.run(ProofStep(proof_state=kept.sorries[0].proof_state, tactic="rfl"))
        assert step.proof_status == "Completed"

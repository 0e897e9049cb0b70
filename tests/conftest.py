"""Shared test helpers: the project's fake REPL, and a check that no REPL outlives a test."""

from __future__ import annotations

import contextlib
import gc
import os
import shlex
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

TESTS = Path(__file__).resolve().parent
FAKE_REPL = TESTS / "fake_repl.py"
TRANSCRIPTS = TESTS.parents[1] / "shared" / "repl-transcripts"

# Every process started by this test run inherits this marker, so leaks can be told apart from
# processes of other runs on the same machine.
RUN_MARKER = f"LEAN_KERNEL_TEST_RUN={uuid.uuid4().hex}"
os.environ["LEAN_KERNEL_TEST_RUN"] = RUN_MARKER.split("=", 1)[1]


def fake_repl_command(*flags: str) -> str:
    """A shell-quoted command line that starts the fake REPL with ``flags``."""
    return shlex.join([sys.executable, str(FAKE_REPL), *flags])


def our_repl_processes() -> list[psutil.Process]:
    """Fake REPL processes started by this test run that are still running."""
    found = []
    marker = RUN_MARKER.split("=", 1)[1]
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = proc.info["cmdline"] or []
            if (
                any(arg.endswith("fake_repl.py") for arg in cmdline)
                and proc.environ().get("LEAN_KERNEL_TEST_RUN") == marker
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
    return found


def wait_no_repl_processes(timeout: float = 5.0) -> list[psutil.Process]:
    """Wait until no fake REPL of this run is left; return the ones still there."""
    deadline = time.monotonic() + timeout
    while (left := our_repl_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture(scope="session", autouse=True)
def result_cache_of_the_run(tmp_path_factory):
    """Batches and cells keep Lean's answers in a result cache (``engine/resultstore.py``): the
    suite's lives in a temporary folder, never in the user's ``~/.cache``. Kernels and worker
    processes started by the run inherit the variable."""
    previous = os.environ.get("LEAN_KERNEL_RESULT_CACHE")
    path = tmp_path_factory.mktemp("result-cache") / "results.sqlite3"
    os.environ["LEAN_KERNEL_RESULT_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("LEAN_KERNEL_RESULT_CACHE", None)
    else:
        os.environ["LEAN_KERNEL_RESULT_CACHE"] = previous


@pytest.fixture(scope="module", autouse=True)
def result_cache_of_the_module(result_cache_of_the_run, tmp_path_factory):
    """Module-wide kernels and notebooks (module fixtures, made before any test's own cache is
    set) get their module's own result cache: a notebook one module ran never answers
    another module's run of it from the cache."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("result-cache") / "results.sqlite3"
        patch.setenv("LEAN_KERNEL_RESULT_CACHE", str(path))
        yield path


@pytest.fixture(autouse=True)
def result_cache_of_the_test(result_cache_of_the_module, tmp_path_factory, monkeypatch):
    """Each test its own result cache, so an answer one test kept never answers another's
    command (module-wide kernels share the run's)."""
    path = tmp_path_factory.mktemp("result-cache") / "results.sqlite3"
    monkeypatch.setenv("LEAN_KERNEL_RESULT_CACHE", str(path))
    return path


@pytest.fixture
def no_repl_left_behind():
    """Fail the test if a REPL it started is still running once it is over (GC included)."""
    yield
    gc.collect()
    assert wait_no_repl_processes() == []


@pytest.fixture
def request_log(tmp_path: Path) -> Path:
    """Where the fake REPL logs every request it receives (one JSON line each)."""
    return tmp_path / "requests.jsonl"


@pytest.fixture
def fake_config(request_log: Path):
    """A LeanREPLConfig that runs the fake REPL with a request log."""
    from lean_kernel.engine.config import LeanREPLConfig

    return LeanREPLConfig(repl_command=fake_repl_command("--log", str(request_log)))


def read_log(path: Path) -> list[dict]:
    """The requests the fake REPL received, in order."""
    import json

    if not path.exists():
        return []
    return [json.loads(line)["request"] for line in path.read_text().splitlines() if line]


def stable_rows(results) -> list[dict]:
    """Batch results as rows without what varies from run to run (times, the worker's name):
    what two runs of one batch, on any engine or from the cache, must agree on."""
    rows = []
    for item in results:
        row = item.row()
        for key in ("time", "header_time", "worker"):
            row.pop(key)
        rows.append(row)
    return rows

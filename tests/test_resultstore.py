"""The persistent result store (engine/resultstore.py): keys, what is stored, files that are not
ours set aside, a store that cannot be written, threads and processes writing at once."""

from __future__ import annotations

import multiprocessing
import pickle
import sqlite3
import threading
import warnings
from pathlib import Path

import pytest
from conftest import fake_repl_command

from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.protocol import CommandResponse, LeanError, ProofStepResponse
from lean_kernel.engine.resultstore import (
    STORE_ENV_VAR,
    ResultStore,
    StoredResult,
    default_store_path,
    namespace_of,
    open_store,
    result_key,
    stored_result,
)

HEARTBEAT_STOP = (
    "(deterministic) timeout at `whnf`, maximum number of heartbeats (200000) has been reached"
    "\n\nNote: Use `set_option maxHeartbeats <num>` to set the limit."
)


def response(*messages: tuple[str, str], env: int | None = 3, **fields) -> CommandResponse:
    data = {
        "env": 0 if env is None else env,
        "messages": [
            {"severity": severity, "pos": {"line": 2, "column": 0}, "data": text}
            for severity, text in messages
        ],
        **fields,
    }
    model = CommandResponse.model_validate(data)
    # As a batch gives a body's answer: its ids hidden (batch/jobs.py `_detached`).
    return model if env is not None else model.model_copy(update={"env": None})


def entry(text: str = "4") -> StoredResult:
    stored = stored_result("ok", response(("info", text)), 0.25)
    assert stored is not None
    return stored


@pytest.fixture
def store(tmp_path):
    opened = ResultStore(tmp_path / "results.sqlite3")
    yield opened
    opened.close()


# -- what is stored, and under which key ----------------------------------------------------


def test_an_answer_comes_back_by_its_key_as_the_same_response(store):
    detached = response(
        ("warning", "declaration uses 'sorry'"),
        env=None,
        sorries=[
            {"pos": {"line": 2, "column": 9}, "endPos": {"line": 2, "column": 14}, "goal": "⊢ p"}
        ],
    )
    kept = response(("info", "α → β"))
    store.put("a", stored_result("sorry", detached, 1.5))
    store.put_many([("b", stored_result("ok", kept, 0.5))])
    found = store.get_many(["a", "b", "missing"])
    assert set(found) == {"a", "b"}
    assert found["a"].status == "sorry" and found["a"].seconds == 1.5
    assert found["a"].to_response() == detached and found["a"].to_response().env is None
    assert found["b"].to_response() == kept and found["b"].to_response().env == 3
    assert "env" not in found["a"].response  # the wire format: no nulls
    assert store.get("missing") is None


def test_only_lean_verdicts_are_stored():
    error = response(("error", "unknown identifier 'x'"))
    assert stored_result("error", error, 1.0).status == "error"
    for status in ("timeout", "crashed", "cancelled", "exception", "pending"):
        assert stored_result(status, error, 1.0) is None
    assert stored_result("ok", None, 1.0) is None
    # Lean stopped it at its heartbeat limit: the answer depends on the limit, not the text.
    assert stored_result("error", response(("error", HEARTBEAT_STOP)), 1.0) is None
    # A refused request speaks of the REPL's state; a proof step's answer of one process.
    assert stored_result("error", LeanError(message="Unknown environment."), 0.0) is None
    step = ProofStepResponse.model_validate(
        {"proofState": 1, "goals": [], "proofStatus": "Completed"}
    )
    assert stored_result("ok", step, 0.0) is None


def test_keys_differ_with_each_part_and_parts_cannot_run_together():
    base = result_key("ns", "import A\n", "theorem t", '{"allTactics":true}', "200000")
    assert base == result_key("ns", "import A\n", "theorem t", '{"allTactics":true}', "200000")
    assert len(base) == 64 and int(base, 16) >= 0
    changed = [
        result_key("other", "import A\n", "theorem t", '{"allTactics":true}', "200000"),
        result_key("ns", "import A\n", "theorem t", "{}", "200000"),
        result_key("ns", "import A\n", "theorem t", '{"allTactics":true}', "none"),
        result_key("ns", "import B\n", "theorem t", '{"allTactics":true}', "200000"),
    ]
    assert base not in changed and len(set(changed)) == 4
    assert result_key("ns", "ab", "c") != result_key("ns", "a", "bc")


def test_namespace_follows_the_repl_and_the_project_files(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.19.0\n")
    config = LeanREPLConfig(repl_command=fake_repl_command(), working_dir=project)
    first = namespace_of(config)
    assert first == namespace_of(
        LeanREPLConfig(repl_command=fake_repl_command(), working_dir=project)
    )
    assert first != namespace_of(
        LeanREPLConfig(repl_command=fake_repl_command("--flavor", "upstream"), working_dir=project)
    )
    (project / "lake-manifest.json").write_text('{"packages": []}')
    with_manifest = namespace_of(
        LeanREPLConfig(repl_command=fake_repl_command(), working_dir=project)
    )
    assert with_manifest != first
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.20.0\n")
    assert namespace_of(
        LeanREPLConfig(repl_command=fake_repl_command(), working_dir=project)
    ) not in (
        first,
        with_manifest,
    )


# -- files that are not ours ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (pickle.dumps({"__reduce__": "not run"}), "foreign"),
        (b"just some text that is no database\n", "foreign"),
        (b"SQLite format 3\x00" + b"\x13" * 4000, "corrupt"),
    ],
    ids=["pickle", "text", "corrupt-sqlite"],
)
def test_a_file_that_is_not_a_store_is_set_aside_and_a_fresh_one_works(tmp_path, content, kind):
    path = tmp_path / "results.sqlite3"
    path.write_bytes(content)
    store = ResultStore(path)
    with pytest.warns(RuntimeWarning, match="moved to") as caught:
        assert store.get("k") is None
    aside = store.info().set_aside
    assert len(aside) == 1 and aside[0].name.startswith(f"results.sqlite3.{kind}-")
    assert aside[0].read_bytes() == content  # kept as it was, for whoever wants to look
    message = str(caught[0].message)
    assert str(path) in message and str(aside[0]) in message
    store.put("k", entry())
    assert store.get("k") == entry()
    store.close()


def test_a_store_found_corrupt_in_use_is_set_aside_and_started_afresh(tmp_path):
    path = tmp_path / "results.sqlite3"
    writer = ResultStore(path)
    writer.put_many([(f"k{i}", entry("x" * 500)) for i in range(400)])
    writer.close()  # the last connection: the journal is folded into the file
    data = bytearray(path.read_bytes())
    for offset in range(4 * 4096, len(data), 4096):  # the first pages (schema) stay readable
        data[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    store = ResultStore(path)
    with pytest.warns(RuntimeWarning, match="is corrupt"):
        assert store.get_many([f"k{i}" for i in range(400)]) == {}
    assert store.info().set_aside[0].name.startswith("results.sqlite3.corrupt-")
    store.put("k", entry())
    assert store.get("k") == entry() and store.info().entries == 1
    store.close()


def test_an_sqlite_file_of_another_schema_is_set_aside(tmp_path):
    path = tmp_path / "results.sqlite3"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE results (key TEXT, payload BLOB)")
        other.execute("INSERT INTO results VALUES ('k', ?)", (pickle.dumps(object),))
    other.close()
    store = ResultStore(path)
    with pytest.warns(RuntimeWarning, match="is not a lean_kernel result cache"):
        assert store.get("k") is None
    assert [p.name.split("-")[0] for p in store.info().set_aside] == ["results.sqlite3.foreign"]
    store.close()


def test_a_store_of_another_format_version_is_set_aside(tmp_path):
    path = tmp_path / "results.sqlite3"
    ResultStore(path).put("k", entry())
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE lean_kernel_meta SET value = 'lean_kernel.resultstore/99'")
    connection.close()
    store = ResultStore(path)
    with pytest.warns(RuntimeWarning, match="not a lean_kernel result cache"):
        assert store.get("k") is None
    store.close()


def test_a_row_that_is_no_answer_is_a_miss(store):
    store.put("k", entry())
    with sqlite3.connect(store.path) as connection:
        connection.execute("INSERT INTO results VALUES ('bad-json', 'ok', '{oops', 0, 0, NULL)")
        connection.execute("INSERT INTO results VALUES ('bad-status', 'exec', '{}', 0, 0, NULL)")
        connection.execute(
            """INSERT INTO results VALUES ('bad-model', 'ok', '{"messages": 5}', 0, 0, NULL)"""
        )
        connection.execute(
            """INSERT INTO results VALUES ('bad-verdict', 'ok', '{"env": 1}', 0, 0, '[1]')"""
        )
    connection.close()
    keys = ["k", "bad-json", "bad-status", "bad-model", "bad-verdict"]
    assert store.get_many(keys) == {"k": entry()}


def test_a_store_that_cannot_be_written_warns_once_and_misses(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("the store's folder would have to be here")
    store = ResultStore(blocker / "results.sqlite3")
    with pytest.warns(RuntimeWarning, match="cannot be used") as caught:
        store.put("k", entry())
        assert store.get("k") is None
        assert store.clear() == 0
    assert len(caught) == 1
    info = store.info()
    assert info.entries == 0 and info.problem is not None
    assert "not in use" in info.describe()


# -- sharing ------------------------------------------------------------------------------------


def _write_entries(path: str, prefix: str, count: int) -> None:
    store = ResultStore(path)
    for index in range(count):
        store.put(f"{prefix}{index}", entry(f"{prefix}{index}"))
    store.close()


def test_two_processes_writing_at_once_both_land(tmp_path):
    path = str(tmp_path / "results.sqlite3")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_entries, args=(path, prefix, 50)) for prefix in "ab"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert [writer.exitcode for writer in writers] == [0, 0]
    store = ResultStore(path)
    keys = [f"{prefix}{i}" for prefix in "ab" for i in range(50)]
    found = store.get_many(keys)
    assert set(found) == set(keys)
    assert found["b7"].to_response().messages[0].data == "b7"
    assert store.info().entries == 100 and store.info().set_aside == []
    store.close()


def test_a_forked_child_opens_its_own_connection(store):
    store.put("parent", entry())  # the parent's connection is open when the child is forked
    child = multiprocessing.get_context("fork").Process(
        target=lambda: store.put("child", entry("child"))
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert set(store.get_many(["parent", "child"])) == {"parent", "child"}


def test_threads_share_one_store(store):
    threads = [
        threading.Thread(target=lambda p=prefix: [store.put(f"{p}{i}", entry()) for i in range(40)])
        for prefix in "abcd"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert store.info().entries == 160


def test_info_and_clear(store):
    assert store.info().entries == 0
    store.put_many([(f"k{i}", entry()) for i in range(3)])
    info = store.info()
    assert (info.path, info.entries, info.set_aside, info.problem) == (store.path, 3, [], None)
    assert info.size_bytes > 0 and "entries: 3" in info.describe()
    assert store.clear() == 3
    assert store.info().entries == 0 and store.get("k0") is None


def test_a_store_travels_as_its_path(store):
    store.put("k", entry())
    copy = pickle.loads(pickle.dumps(store))
    assert copy.path == store.path and copy.get("k") == entry()
    copy.close()


# -- which store a `cache=` means --------------------------------------------------------------


def test_open_store_reads_its_argument_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAN_KERNEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(STORE_ENV_VAR)
    assert default_store_path() == tmp_path / "cache" / "results.sqlite3"
    assert open_store(True).path == default_store_path()
    assert open_store(None).path == default_store_path()
    assert open_store(False) is None
    for word in ("off", "OFF", "false", "0", "none", "no"):
        monkeypatch.setenv(STORE_ENV_VAR, word)
        assert open_store(True) is None
        assert open_store(word) is None
    monkeypatch.setenv(STORE_ENV_VAR, str(tmp_path / "elsewhere.sqlite3"))
    assert open_store().path == tmp_path / "elsewhere.sqlite3"
    monkeypatch.setenv(STORE_ENV_VAR, "on")
    assert open_store().path == default_store_path()
    assert open_store(tmp_path / "mine.db").path == tmp_path / "mine.db"
    assert open_store(str(tmp_path)).path == tmp_path / "results.sqlite3"  # a folder
    given = ResultStore(tmp_path / "given.db")
    assert open_store(given) is given
    for bad in (3, "", "  ", 1.5, ["a"]):
        with pytest.raises(ValueError, match="is not a result cache: give True"):
            open_store(bad)  # type: ignore[arg-type]


def test_opening_a_store_touches_no_file(tmp_path):
    store = ResultStore(tmp_path / "deep" / "results.sqlite3")
    assert not (tmp_path / "deep").exists()
    store.put("k", entry())
    assert Path(store.path).exists()
    store.close()

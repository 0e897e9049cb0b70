"""Verdicts in batches, on the fake REPL: the corpus of look-clean-but-are-not proofs
(tests/verdict_corpus.py) with the verdict each item gets, ``require="proved"``, reference
statements, the result cache, the records cluster workers send, the table, ``%%lean_batch``."""

from __future__ import annotations

import json
import pickle
import sqlite3
from dataclasses import replace

import pytest
from conftest import fake_repl_command, stable_rows, wait_no_repl_processes
from kernel_harness import KernelSession
from test_kernel import jupyter_path  # noqa: F401 - a fixture
from verdict_corpus import CORPUS, case

from lean_kernel import LeanREPLConfig, LeanServerPool
from lean_kernel.batch.args import BatchArgsError, parse_batch_args
from lean_kernel.batch.items import reference_statement
from lean_kernel.batch.records import item_from_record, item_to_record
from lean_kernel.batch.results import BatchResults, ItemResult
from lean_kernel.engine.resultstore import ResultStore
from lean_kernel.engine.verdict import UnprovedError

NORMAL = [c for c in CORPUS if c.timeout is None and not c.allow]


def config(log) -> LeanREPLConfig:
    return LeanREPLConfig(repl_command=fake_repl_command("--log", str(log)))


def requests(log) -> list[dict]:
    return [json.loads(line)["request"] for line in log.read_text().splitlines()]


def axiom_requests(log) -> list[dict]:
    return [r for r in requests(log) if r.get("cmd", "").startswith("#print axioms")]


@pytest.fixture(scope="module")
def corpus_log(tmp_path_factory):
    return tmp_path_factory.mktemp("verdicts") / "requests.jsonl"


@pytest.fixture(scope="module")
def pool(corpus_log):
    with LeanServerPool(config(corpus_log), num_workers=2, cache=False) as made:
        yield made
    assert wait_no_repl_processes() == []


@pytest.fixture(scope="module")
def corpus_results(pool) -> dict[str, ItemResult]:
    """Every corpus case's item, run in batches as a user would (its options per batch)."""
    found: dict[str, ItemResult] = {}
    normal = pool.submit_batch(
        [c.text for c in NORMAL], statements=[c.statement for c in NORMAL], timeout_per_cmd=30
    ).result(120)
    found.update(zip((c.name for c in NORMAL), normal, strict=True))
    for c in CORPUS:
        if c.timeout is not None or c.allow:
            [found[c.name]] = pool.submit_batch(
                [c.text], allow=c.allow, timeout_per_cmd=c.timeout or 30
            ).result(120)
    return found


@pytest.mark.parametrize("corpus_case", CORPUS, ids=lambda c: c.name)
def test_each_corpus_proof_gets_its_verdict_in_a_batch(corpus_results, corpus_case):
    item = corpus_results[corpus_case.name]
    assert item.verdict == corpus_case.verdict, (item.verdict_reason, item.declarations)
    assert corpus_case.mentions in item.verdict_reason
    assert item.row()["verdict"] == corpus_case.verdict


def test_a_weakened_statement_names_the_difference_per_declaration(corpus_results):
    [weak] = corpus_results["weakened statement"].declarations
    assert (weak.name, weak.verdict, weak.statement_ok) == (
        "add_comm_ref",
        "statement changed",
        False,
    )


def test_an_axiom_reached_through_a_lemma_is_named_on_every_declaration(corpus_results):
    declarations = corpus_results["axiom cheat through a lemma"].declarations
    assert [(d.name, d.verdict) for d in declarations] == [
        ("cheat", "axioms"),
        ("helper", "axioms"),
        ("two_eq_three", "axioms"),
    ]
    assert all("cheat" in d.axioms for d in declarations)


def test_an_escape_keeps_its_place(corpus_results):
    item = corpus_results["implemented_by"]
    escapes = {e for d in item.declarations for e in d.escapes}
    assert [(e.kind, e.line, e.column) for e in escapes] == [("implemented_by", 2, 2)]


def test_one_verdict_request_per_item_on_its_own_env_and_none_for_a_failure(tmp_path):
    log = tmp_path / "requests.jsonl"
    commands = [
        "import Mathlib\n" + case("clean proof").text,
        "import Mathlib\n" + case("error").text,
    ]
    with LeanServerPool(config(log), num_workers=1, cache=False) as pool:
        results = pool.submit_batch(commands).result(60)
    assert results.verdicts == ["proved", "error"]
    sent = requests(log)
    [asked] = axiom_requests(log)
    assert asked["cmd"] == "#print axioms add_comm'"
    body = next(r for r in sent if r.get("cmd", "").startswith("theorem add_comm'"))
    # On the env the body built (a side env: the header's is never touched by the check).
    assert asked["env"] not in (None, body["env"])
    assert sent.index(asked) == sent.index(body) + 1


def test_an_escape_in_an_explicit_header_concerns_every_item(pool):
    header = "import Mathlib\nset_option debug.skipKernelTC true\n"
    results = pool.submit_batch([case("clean proof").text], header=header).result(60)
    assert results.verdicts == ["escape"] and "debug.skipKernelTC" in results[0].verdict_reason


def test_require_proved_turns_other_verdicts_into_errors_and_keeps_lean_s_answer(pool):
    names = ["clean proof", "sorry in a have", "axiom cheat used directly", "error"]
    responses = pool.run_batch([case(n).text for n in names], require="proved", timeout_per_cmd=30)
    items = list(responses.results)
    assert [i.status for i in items] == ["ok", "error", "error", "error"]
    assert [i.outcome for i in items] == ["ok", "error", "error", "error"]
    assert [i.verdict for i in items] == ["proved", "sorry", "axioms", "error"]
    sorry = items[1]
    assert isinstance(sorry.error, UnprovedError) and sorry.error.verdict == "sorry"
    assert sorry.response is not None and sorry.sorries, "Lean's answer is kept"
    assert responses[1] is sorry.error, "run_batch gives the exception in the item's place"
    assert "requires proved, and the verdict is sorry" in sorry.first_message()
    assert "`cheat`" in items[2].messages[-1].data
    assert not isinstance(items[3].error, UnprovedError), "a failure stays what it was"
    assert responses.results.summary()["failed"] == 3


def test_require_and_allow_are_checked_before_anything_runs(pool):
    with pytest.raises(ValueError, match="require takes proved"):
        pool.submit_batch(["theorem t : True := trivial"], require="sorry")
    with pytest.raises(ValueError, match="allow takes native_decide"):
        pool.submit_batch(["theorem t : True := trivial"], allow=["everything"])
    with pytest.raises(ValueError, match="one entry per command"):
        pool.submit_batch(["theorem t : True := trivial"], statements=[None, None])


def test_a_statement_that_is_no_theorem_refuses_its_item_only(pool):
    results = pool.submit_batch(
        ["theorem t : True := trivial", "theorem u : True := trivial"],
        statements=["1 + 1 = 2", None],
    ).result(60)
    assert results.statuses == ["exception", "ok"] and results.verdicts == ["error", "proved"]
    assert "a reference statement is a theorem without its proof" in results[0].first_message()


def test_reference_statements_are_read_as_lean_writes_them():
    assert reference_statement("theorem foo (a b : Nat) : a + b = b + a := by sorry") == (
        "foo",
        "∀ (a b : Nat)\n  , a + b = b + a",
    )
    assert reference_statement("/-- doc -/\ntheorem bar : (fun x : Nat => x) 1 = 1") == (
        "bar",
        "(fun x : Nat => x) 1 = 1",
    )
    name, statement = reference_statement(
        "theorem baz {α : Type} [Inhabited α] (x : α) -- the point\n : x = x := rfl"
    )
    assert name == "baz" and statement.startswith("∀ {α : Type} [Inhabited α] (x : α) --")
    assert statement.endswith("\n  , x = x")
    for bad in ("1 + 1 = 2", "theorem : True", "theorem t (x : Nat)"):
        with pytest.raises(ValueError):
            reference_statement(bad)


# -- the result cache --------------------------------------------------------------------------


def test_verdicts_survive_the_result_cache_and_follow_today_s_allowance(tmp_path):
    log = tmp_path / "requests.jsonl"
    names = ["clean proof", "native_decide", "sorry in a have", "implemented_by"]
    commands = [case(n).text for n in names]
    store = ResultStore(tmp_path / "results.sqlite3")
    with LeanServerPool(config(log), num_workers=1, cache=store) as pool:
        fresh = pool.submit_batch(commands).result(60)
        asked = len(requests(log))
        again = pool.submit_batch(commands).result(60)
        allowed = pool.submit_batch(commands, allow=["native_decide"]).result(60)
        assert len(requests(log)) == asked, "the second and third batch ran nothing"
        required = pool.submit_batch(commands, require="proved").result(60)
    store.close()
    assert fresh.verdicts == ["proved", "axioms", "sorry", "escape"]
    assert {item.worker for item in again} == {"cache"} and stable_rows(again) == stable_rows(fresh)
    assert [i.declarations for i in again] == [i.declarations for i in fresh]
    assert allowed.verdicts == ["proved", "proved", "sorry", "escape"]
    assert required.statuses == ["ok", "error", "error", "error"]


def test_a_reference_statement_is_part_of_the_cache_key(tmp_path):
    log = tmp_path / "requests.jsonl"
    proof = case("the reference statement, proved")
    store = ResultStore(tmp_path / "results.sqlite3")
    with LeanServerPool(config(log), num_workers=1, cache=store) as pool:
        [first] = pool.submit_batch([proof.text], statements=[proof.statement]).result(60)
        [plain] = pool.submit_batch([proof.text]).result(60)
        [again] = pool.submit_batch([proof.text], statements=[proof.statement]).result(60)
    store.close()
    assert first.worker != "cache" and plain.worker != "cache" and again.worker == "cache"
    assert [d.statement_ok for d in again.declarations] == [True]
    assert [d.statement_ok for d in plain.declarations] == [None]


def test_a_store_of_the_format_before_verdicts_is_set_aside(tmp_path):
    path = tmp_path / "results.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE lean_kernel_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        old.execute(
            "CREATE TABLE results (key TEXT PRIMARY KEY, status TEXT NOT NULL, response TEXT "
            "NOT NULL, seconds REAL NOT NULL, stored_at REAL NOT NULL)"
        )
        old.execute("INSERT INTO lean_kernel_meta VALUES ('format', 'lean_kernel.resultstore/1')")
        old.execute("INSERT INTO results VALUES ('k', 'ok', '{\"env\": 0}', 0, 0)")
    old.close()
    store = ResultStore(path)
    with pytest.warns(RuntimeWarning, match="not a lean_kernel result cache"):
        assert store.get("k") is None
    assert len(store.info().set_aside) == 1
    store.close()


# -- what carries a verdict: records, pickles, tables ------------------------------------------


def test_records_and_pickles_carry_the_verdict(corpus_results):
    for name in ("implemented_by", "axiom cheat through a lemma", "timeout", "sorry in a have"):
        item = corpus_results[name]
        for copy in (item_from_record(item_to_record(item)), pickle.loads(pickle.dumps(item))):
            assert (copy.verdict, copy.verdict_reason, copy.declarations) == (
                item.verdict,
                item.verdict_reason,
                item.declarations,
            )
    required = BatchResults(["x"], require="proved")
    required.record(replace(corpus_results["sorry in a have"], index=0))
    copy = item_from_record(item_to_record(required[0]))
    assert isinstance(copy.error, UnprovedError) and copy.error.verdict == "sorry"


def test_the_table_and_the_dataframe_have_a_verdict_column(corpus_results):
    results = BatchResults([c.text for c in CORPUS], label="corpus")
    for index, corpus_case in enumerate(CORPUS):
        item = corpus_results[corpus_case.name]
        results.record(replace(item, index=index))
    frame = results.to_pandas()
    assert list(frame["verdict"]) == [c.verdict for c in CORPUS]
    bundle = results.table_bundle(limit=None)
    assert bundle["text/plain"].splitlines()[1].split()[:3] == ["#", "outcome", "verdict"]
    assert '<td class="lk-ok">proved</td>' in bundle["text/html"]
    assert '<td class="lk-error">statement changed</td>' in bundle["text/html"]
    assert results.verdict_counts()["proved"] == 3


def test_a_pending_item_has_no_verdict_yet():
    results = BatchResults(["theorem t : True := trivial"])
    assert results[0].verdict == "unknown" and results[0].row()["verdict"] == "pending"
    assert results.verdict_counts() == {}


def test_an_item_refused_or_cancelled_has_its_failure_as_verdict():
    refused = ItemResult(0, "x", "exception", error=TypeError("not a command"))
    assert (refused.verdict, refused.verdict_reason) == ("error", "checking it raised an exception")
    assert ItemResult(0, "x", "cancelled").verdict == "cancelled"


# -- %%lean_batch ------------------------------------------------------------------------------


def test_the_magic_line_takes_require_and_allow():
    args = parse_batch_args("--require proved --allow native_decide -o out")
    assert (args.require, args.allow) == ("proved", ("native_decide",))
    assert parse_batch_args("").require is None and parse_batch_args("").allow == ()
    with pytest.raises(BatchArgsError, match="invalid choice: 'sorry'"):
        parse_batch_args("--require sorry")
    with pytest.raises(BatchArgsError, match="invalid choice: 'cheat'"):
        parse_batch_args("--allow cheat")


def test_the_kernel_s_batch_requires_proved_and_shows_each_verdict(jupyter_path, tmp_path):  # noqa: F811
    kernel = KernelSession(fake_args=["--log", str(tmp_path / "requests.jsonl")])
    try:
        texts = [case("clean proof").text, case("sorry in a have").text, case("native_decide").text]
        body = "\n----\n".join(texts)
        run = kernel.cell(f"%%lean_batch --require proved -o req --progress none\n{body}", 60)
        table = next(d for d in reversed(run.displays) if "items:" in d.get("text/plain", ""))
        lines = table["text/plain"].splitlines()
        assert [line.split()[:3] for line in lines[3:6]] == [
            ["0", "ok", "proved"],
            ["1", "error", "sorry"],
            ["2", "error", "axioms"],
        ]
        item = kernel.cell("%batch req 1")
        assert "verdict: sorry (`have_sorry`: this proof still uses sorry)" in item.plain
        allowed = kernel.cell(
            f"%%lean_batch --require proved --allow native_decide -o ok --progress none\n"
            f"{texts[2]}",
            60,
        )
        assert "1 ok" in allowed.plain
    finally:
        kernel.close()

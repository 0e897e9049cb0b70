"""The result cache as batches and the hosts use it: BatchCache (batch/caching.py) on items built
as the pool builds them, `%%lean_batch --no-cache / --cluster`, and `%lean_cache info|clear` in
the IPython extension and the Lean kernel."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest
from conftest import fake_repl_command, wait_no_repl_processes
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from kernel_harness import KernelSession, kernelspecs_on_jupyter_path

from lean_kernel import Command, LeanREPLConfig, LeanServerPool
from lean_kernel.batch.args import USAGE, BatchArgsError, parse_batch_args
from lean_kernel.batch.caching import CACHE_WORKER, BatchCache, cache_command
from lean_kernel.batch.items import batch_item as _item
from lean_kernel.batch.items import command_texts as _texts
from lean_kernel.batch.jobs import BatchItem
from lean_kernel.batch.results import ItemResult
from lean_kernel.engine.protocol import CommandResponse
from lean_kernel.engine.resultstore import STORE_ENV_VAR, ResultStore, namespace_of, stored_result

COMMANDS = [
    "import Mathlib\nopen Nat\ntheorem t0 : 0 + 0 = 0 := rfl\n#eval 0",
    "import Mathlib\n\n\ntheorem s : 1 = 1 := sorry",
    "import Mathlib\ntheorem bad : 1 = 2 := oops_unknown",
    "#eval 1 + 1",
    Command(cmd="import Mathlib\ntheorem t : True := by\n  trivial", all_tactics=True),
    "import Mathlib\nopen Nat\n",
    "import Mathlib\n#fake_hang",
]


def built(commands, header: str | None = None) -> list[tuple[str | None, BatchItem]]:
    """(group key, item) per command, exactly as ``LeanServerPool.submit_batch`` makes them."""
    texts = _texts(commands)
    return [_item(i, command, texts[i], header, False) for i, command in enumerate(commands)]


def without_run_details(result: ItemResult) -> dict:
    row = result.row()
    for name in ("time", "header_time", "worker"):
        row.pop(name)
    return row


@pytest.fixture
def store(tmp_path):
    opened = ResultStore(tmp_path / "results.sqlite3")
    yield opened
    opened.close()


@pytest.fixture
def fresh(request_log):
    """The batch run for real on the fake REPL: (config, items, results)."""
    config = LeanREPLConfig(repl_command=fake_repl_command("--log", str(request_log)))
    with LeanServerPool(config, num_workers=2) as pool:
        results = pool.run_batch(COMMANDS, timeout_per_cmd=2.0).results
    assert wait_no_repl_processes() == []
    return config, built(COMMANDS), results


# -- BatchCache ----------------------------------------------------------------------------------


def test_a_hit_is_the_result_a_fresh_run_gives_item_by_item(store, fresh):
    config, items, results = fresh
    assert results.statuses == ["ok", "sorry", "error", "ok", "ok", "ok", "timeout"]
    cache = BatchCache(store, namespace_of(config), heartbeats=None)
    for (key, item), result in zip(items, results, strict=True):
        cache.remember(key, item, result)
    cache.flush()
    assert cache.stored == 6 and store.info().entries == 6  # not the timeout

    again = BatchCache(store, namespace_of(config), heartbeats=None)
    hits: dict[int, ItemResult] = {}
    for key in dict.fromkeys(key for key, _ in items):
        hits.update(again.lookup(key, [item for k, item in items if k == key]))
    assert sorted(hits) == [0, 1, 2, 3, 4, 5] and again.hits == 6
    for index, hit in hits.items():
        assert without_run_details(hit) == without_run_details(results[index])
        assert hit.response == results[index].response
        assert (hit.worker, hit.time, hit.header_time) == (CACHE_WORKER, 0.0, 0.0)
    # Positions are those of the command as written (blank lines before the body included).
    assert hits[1].sorries[0].start_pos.line == 4
    assert hits[4].response.tactics and hits[1].env is None


def test_options_heartbeats_header_and_text_make_different_keys(store):
    (key, plain), (_, with_tactics) = built(
        [
            "import Mathlib\ntheorem t : True := trivial",
            Command(cmd="import Mathlib\ntheorem t : True := trivial", all_tactics=True),
        ]
    )
    ((_, spaced),) = built(["import Mathlib\n\ntheorem t : True := trivial"])
    cache = BatchCache(store, "ns", heartbeats=200000)
    keys = {
        cache.key(key, plain),
        cache.key(key, with_tactics),
        cache.key(key, spaced),
        BatchCache(store, "ns", heartbeats=None).key(key, plain),
        BatchCache(store, "ns2", heartbeats=200000).key(key, plain),
        cache.key("import Other\n", plain),
    }
    assert len(keys) == 6
    # The same request, as text or as a Command without options: one key.
    ((_, as_command),) = built([Command(cmd="import Mathlib\ntheorem t : True := trivial")])
    assert cache.key(key, as_command) == cache.key(key, plain)


def test_direct_items_failures_and_hits_are_never_stored(store):
    cache = BatchCache(store, "ns")
    response = CommandResponse.model_validate({"env": 1})
    ((key, direct),) = [_item(0, "theorem t : True := trivial", "t", None, True)]
    assert direct.direct and cache.key(key, direct) is None
    cache.remember(key, direct, ItemResult(0, "t", status="ok", response=response))
    ((key, item),) = built(["#eval 1"])
    cache.remember(key, item, ItemResult(0, "#eval 1", status="timeout"))
    cache.remember(key, item, ItemResult(0, "#eval 1", "ok", response, worker=CACHE_WORKER))
    cache.flush()
    assert store.info().entries == 0
    assert cache.lookup(key, [direct]) == {}


def test_remember_writes_in_groups_and_flush_writes_the_rest(store):
    cache = BatchCache(store, "ns")
    response = CommandResponse.model_validate(
        {"env": 1, "messages": [{"severity": "info", "pos": {"line": 1, "column": 0}, "data": "1"}]}
    )
    items = built([f"#eval {i}\n-- {i}" for i in range(70)])
    for key, item in items:
        cache.remember(key, item, ItemResult(item.index, item.text, "ok", response))
    assert store.info().entries == 64  # a group went at once; the rest waits for flush
    cache.flush()
    assert store.info().entries == 70


def test_a_stored_entry_whose_status_disagrees_is_run_again(store):
    cache = BatchCache(store, "ns")
    ((key, item),) = built(["theorem bad : 1 = 2 := x"])
    error = CommandResponse.model_validate(
        {
            "env": 1,
            "messages": [{"severity": "error", "pos": {"line": 1, "column": 0}, "data": "no"}],
        }
    )
    tampered = stored_result("error", error, 1.0)
    store.put(cache.key(key, item), type(tampered)("ok", tampered.response, 1.0))
    assert cache.lookup(key, [item]) == {}


# -- the batch line ------------------------------------------------------------------------------


def test_no_cache_and_cluster_are_read_from_the_batch_line():
    assert parse_batch_args("").cache is True and parse_batch_args("").cluster is None
    args = parse_batch_args("--no-cache --cluster tcp://scheduler:8786 -w 2")
    assert (args.cache, args.cluster, args.workers) == (False, "tcp://scheduler:8786", 2)
    assert "--no-cache" in USAGE and "--cluster ADDRESS" in USAGE
    with pytest.raises(BatchArgsError, match="--cluster needs an address"):
        parse_batch_args("--cluster ''")
    with pytest.raises(BatchArgsError, match="expected one argument"):
        parse_batch_args("--cluster")


def test_cache_command_says_what_the_store_holds_and_what_clear_removed(store):
    store.put("k", stored_result("ok", CommandResponse.model_validate({"env": 1}), 1.0))
    info = cache_command(store, "info")
    assert str(store.path) in info and "entries: 1" in info
    assert cache_command(store, " clear ") == f"Removed 1 entry from the result cache {store.path}."
    assert "Removed 0 entries" in cache_command(store, "clear")
    assert "is off" in cache_command(None, "info")
    with pytest.raises(ValueError, match="info .* or clear"):
        cache_command(store, "wipe")


# -- IPython ---------------------------------------------------------------------------------------


@pytest.fixture
def shell(monkeypatch, request_log):
    monkeypatch.setenv("LEAN_KERNEL_REPL", fake_repl_command("--log", str(request_log)))
    ipython = InteractiveShell.instance()
    ipython.run_cell("%load_ext lean_kernel")
    yield ipython
    ipython.run_cell("%unload_ext lean_kernel")
    gc.collect()
    assert wait_no_repl_processes() == []


def run(shell: InteractiveShell, code: str) -> None:
    result = shell.run_cell(code)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec


def test_lean_cache_magic_in_ipython(shell, capsys, result_cache_of_the_test):
    seeded = ResultStore(result_cache_of_the_test)
    seeded.put("k", stored_result("ok", CommandResponse.model_validate({"env": 1}), 1.0))
    seeded.close()
    run(shell, "%lean_cache info")
    shown = capsys.readouterr().out
    assert f"result cache: {result_cache_of_the_test}" in shown and "entries: 1" in shown
    run(shell, "%lean_cache clear")
    assert "Removed 1 entry" in capsys.readouterr().out
    with pytest.raises(UsageError, match="info .* or clear"):
        run(shell, "%lean_cache")


def test_lean_cache_magic_when_the_variable_turns_it_off(monkeypatch, shell, capsys):
    monkeypatch.setenv(STORE_ENV_VAR, "off")
    run(shell, "%lean_cache info")
    assert "The result cache is off" in capsys.readouterr().out


def test_no_cache_reaches_the_pool(shell, monkeypatch):
    asked: list[bool] = []
    submit = LeanServerPool.submit_batch

    def recording(pool, commands, **options):
        asked.append(options["cache"])
        return submit(pool, commands, **options)

    monkeypatch.setattr(LeanServerPool, "submit_batch", recording)
    run(shell, "%%lean_batch -o plain\n#eval 1")
    run(shell, "%%lean_batch --no-cache -o fresh\n#eval 1")
    shell.user_ns["fresh"].wait()
    shell.user_ns["plain"].wait()
    assert asked == [True, False]


# -- the Lean kernel -------------------------------------------------------------------------------


@pytest.fixture
def kernel(tmp_path_factory, result_cache_of_the_test):
    with kernelspecs_on_jupyter_path(tmp_path_factory.mktemp("jupyter")):
        session = KernelSession(env={STORE_ENV_VAR: str(result_cache_of_the_test)})
        yield session
        session.close()
    assert wait_no_repl_processes() == []


def test_lean_cache_magic_in_the_kernel(kernel, result_cache_of_the_test):
    path: Path = result_cache_of_the_test
    seeded = ResultStore(path)
    seeded.put_many(
        [
            (f"k{i}", stored_result("ok", CommandResponse.model_validate({"env": 1}), 1.0))
            for i in range(2)
        ]
    )
    seeded.close()
    info = kernel.execute("%lean_cache info", "a")
    assert info.status == "ok" and f"result cache: {path}" in info.stdout
    assert "entries: 2" in info.stdout
    cleared = kernel.execute("%lean_cache clear", "b")
    assert cleared.status == "ok" and "Removed 2 entries" in cleared.stdout
    wrong = kernel.execute("%lean_cache everything", "c")
    assert wrong.status == "error" and wrong.reply["ename"] == "UsageError"
    assert "%lean_cache" in kernel.execute("%help", "d").stdout
    batch = kernel.execute("%%lean_batch --no-cache -o fresh\n#eval 1\n----\n#eval 2", "e", 60)
    assert batch.status == "ok"
    assert os.environ[STORE_ENV_VAR] == str(path)

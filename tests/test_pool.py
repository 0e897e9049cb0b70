"""LeanServerPool against the fake REPL: order, captured failures, header reuse, scheduling,
memory-aware sizing, pluggable executors, cancellation, and no process left behind."""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from types import SimpleNamespace

import psutil
import pytest
from conftest import fake_repl_command, our_repl_processes, read_log, wait_no_repl_processes

import lean_kernel.batch.capacity as capacity_module
from lean_kernel import (
    Command,
    CommandResponse,
    LeanREPLConfig,
    LeanServerPool,
    ProofStep,
    ReplCancelledError,
    ReplCrashedError,
    ReplTimeoutError,
)
from lean_kernel.batch.jobs import BatchItem, BatchJob, run_job
from lean_kernel.batch.scheduler import Scheduler

HEADER = "import Mathlib\nopen Nat\n"


pytestmark = pytest.mark.usefixtures("no_repl_left_behind")


def config(log, *flags: str, **options) -> LeanREPLConfig:
    return LeanREPLConfig(repl_command=fake_repl_command("--log", str(log), *flags), **options)


def theorems(count: int, header: str = HEADER) -> list[str]:
    return [f"{header}theorem t{i} : {i} + 0 = {i} := rfl\n#eval {i}" for i in range(count)]


def requests_for(log, text: str) -> list[dict]:
    """Requests that elaborated exactly ``text`` (imports are sent without env, settings on one)."""
    return [r for r in read_log(log) if r.get("cmd") == text]


# -- results -------------------------------------------------------------------------------------


def test_results_come_back_in_input_order_with_per_item_time(request_log):
    commands = [f"#fake_sleep {0.05 if i % 3 == 0 else 0}\n#eval {i}" for i in range(12)]
    with LeanServerPool(config(request_log), num_workers=3) as pool:
        responses = pool.run_batch(commands)
    assert [r.messages[-1].data for r in responses] == [str(i) for i in range(12)]
    results = responses.results
    assert [item.index for item in results] == list(range(12))
    assert results.statuses == ["ok"] * 12
    assert all(t >= 0.05 for t in results.times[::3]) and all(t < 0.05 for t in results.times[1::3])


def test_exception_in_one_item_is_captured_in_its_place(request_log):
    commands = theorems(6)
    commands[1] = HEADER + "#fake_crash 3"
    commands[3] = HEADER + "#fake_hang"
    commands[4] = HEADER + "theorem bad : 1 = 2 := oops_unknown"
    with LeanServerPool(config(request_log), num_workers=2) as pool:
        responses = pool.run_batch(commands, timeout_per_cmd=1.0)
    assert isinstance(responses[1], ReplCrashedError) and "code 3" in str(responses[1])
    assert isinstance(responses[3], ReplTimeoutError)
    assert isinstance(responses[4], CommandResponse) and responses[4].has_errors()
    for i in (0, 2, 5):
        assert isinstance(responses[i], CommandResponse) and not responses[i].has_errors()
        assert responses[i].messages[-1].data == str(i)
    assert responses.results.statuses == ["ok", "crashed", "ok", "timeout", "error", "ok"]


def test_positions_are_those_of_the_command_as_written(request_log):
    command = HEADER + "\ntheorem bad : 1 = 1 := oops_unknown"
    with LeanServerPool(config(request_log), num_workers=1) as pool:
        (response,) = pool.run_batch([command])
    (error,) = response.get_errors()
    assert (error.start_pos.line, error.start_pos.column) == (4, 23)
    assert command.split("\n")[3][23:].startswith("oops_unknown")


def test_header_errors_reach_every_command_sharing_it(request_log):
    header = "open Nat\nopen NoSuchNamespace\n"
    with LeanServerPool(config(request_log), num_workers=1) as pool:
        responses = pool.run_batch(theorems(3, header))
    for response in responses:
        first = response.messages[0]
        assert first.severity == "error" and "NoSuchNamespace" in first.data
        assert first.start_pos.line == 2
    assert len(requests_for(request_log, header)) == 1


# -- headers and scheduling ----------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["fork", "upstream"])
def test_header_is_elaborated_once_per_worker(request_log, flavor):
    cfg = config(request_log, "--import-cost", "0.4", "--flavor", flavor)
    with LeanServerPool(cfg, num_workers=2) as pool:
        start = time.monotonic()
        responses = pool.run_batch(theorems(30))
        wall = time.monotonic() - start
    assert all(not r.has_errors() for r in responses)
    imports = [e for e in log_entries(request_log) if e["request"]["cmd"] == "import Mathlib\n"]
    assert len(imports) == 2 and len({e["pid"] for e in imports}) == 2
    assert all("env" not in e["request"] for e in imports)
    assert len(requests_for(request_log, "open Nat\n")) == 2  # the settings, on the import's env
    bodies = [r for r in read_log(request_log) if r.get("cmd", "").startswith("theorem")]
    assert len(bodies) == 30 and all(isinstance(r.get("env"), int) for r in bodies)
    assert wall < 2.0  # 30 imports would take 12 s


def log_entries(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def test_commands_differing_only_in_settings_share_their_imports(request_log):
    headers = ["import Mathlib\nopen Nat\n", "import Mathlib\nopen Real\n", "import Mathlib\n"]
    commands = [theorems(1, headers[i % 3])[0] for i in range(9)]
    with LeanServerPool(config(request_log), num_workers=1) as pool:
        responses = pool.run_batch(commands)
    assert all(not r.has_errors() for r in responses)
    assert len(requests_for(request_log, "import Mathlib\n")) == 1
    assert len(requests_for(request_log, "open Real\n")) == 1


def test_explicit_header_is_shared_by_plain_bodies(request_log):
    bodies = [f"theorem t{i} : {i} = {i} := rfl" for i in range(5)]
    with LeanServerPool(config(request_log), num_workers=1) as pool:
        responses = pool.run_batch(bodies, header="open Nat\n")
    assert all(not r.has_errors() for r in responses)
    assert len(requests_for(request_log, "open Nat\n")) == 1


def test_workers_holding_a_header_get_its_commands_first(request_log):
    small, big = "import Mathlib\n", "import Aesop\n"
    with LeanServerPool(config(request_log), num_workers=2) as pool:
        pool.run_batch(theorems(1, small))  # now one worker holds `small`
        pool.run_batch(theorems(3, small) + theorems(12, big))
    # Without affinity, the bigger group would go first to the first free worker, and `small`
    # would be elaborated a second time on the other one. (`big` may well be elaborated twice:
    # once `small` is done, its worker helps with the bigger group.)
    assert len(requests_for(request_log, small)) == 1
    assert 1 <= len(requests_for(request_log, big)) <= 2


def test_scheduler_gives_held_headers_first_then_spreads_new_ones():
    def items(n: int) -> list[BatchItem]:
        return [BatchItem(index=i, text="x") for i in range(n)]

    scheduler = Scheduler(num_slots=3, max_chunk=4)
    scheduler.add("batch", {"A": items(4), "B": items(40), "C": items(8)})
    scheduler.release(0, ("A",))  # worker 0 holds A's env
    first = [scheduler.next_for(slot) for slot in (0, 1, 2)]
    assert [a.header for a in first] == ["A", "B", "C"]  # held; then biggest untouched ones
    assert [len(a.items) for a in first] == [1, 4, 2]  # guided chunks, capped at 4
    while (a := scheduler.next_for(0)) is not None and a.header == "A":
        scheduler.release(0, ("A",))
    # A is drained: worker 0 pays for the header with the most work per worker on it.
    assert a.header == "B"


def test_memory_caps_worker_count_and_says_so(request_log, monkeypatch):
    mb = 1024 * 1024
    fake_memory = SimpleNamespace(total=16_000 * mb, available=10_000 * mb, percent=37.5)
    monkeypatch.setattr(capacity_module.psutil, "virtual_memory", lambda: fake_memory)
    cfg = config(request_log, memory_hard_limit_mb=3000)
    with pytest.warns(RuntimeWarning, match="2 workers instead of 8"):
        pool = LeanServerPool(cfg, num_workers=8)
    with pool:
        assert pool.num_workers == 2
        assert len(pool.status()["workers"]) == 2
        assert "3000 MB per REPL" in pool.capacity_note
    # 16 GB * 0.8 usable - 6 GB in use = 6.8 GB: two 3 GB workers fit, a third does not.


def test_memory_plan_without_a_limit_is_not_capped():
    plan = capacity_module.plan_workers(3, None)
    assert plan.num_workers == 3 and not plan.capped and "not capped" in plan.note


# -- executors -----------------------------------------------------------------------------------


def test_unit_of_work_is_a_picklable_function_of_config_and_commands(request_log):
    import pickle

    job = BatchJob(
        pool_id="standalone",
        batch_id="b1",
        config=config(request_log),
        header=HEADER,
        items=(BatchItem(index=0, text="x", body="#eval 40 + 2"),),
    )
    outcome = pickle.loads(pickle.dumps(run_job(pickle.loads(pickle.dumps(job)))))
    assert outcome.results[0].response.messages[0].data == "42"
    from lean_kernel.batch.registry import close_all_worker_sets

    close_all_worker_sets()


def test_batches_run_through_a_process_pool_executor(request_log):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as executor:
        with LeanServerPool(config(request_log), num_workers=2, executor=executor) as pool:
            responses = pool.run_batch(theorems(10))
            again = pool.run_batch(theorems(4))
        worker_pids = {p.pid for p in executor._processes.values()}
        assert [r.messages[-1].data for r in responses] == [str(i) for i in range(10)]
        assert not any(r.has_errors() for r in again)
        repl_parents = {p.ppid() for p in our_repl_processes()}
        assert repl_parents and repl_parents <= worker_pids  # the REPLs live in the workers
    # Headers were elaborated in the worker processes and reused by the second batch.
    assert len(requests_for(request_log, "import Mathlib\n")) <= 2


def test_user_thread_executor_is_used_and_left_open(request_log):
    executor = ThreadPoolExecutor(2)
    try:
        with LeanServerPool(config(request_log), num_workers=2, executor=executor) as pool:
            assert not any(r.has_errors() for r in pool.run_batch(theorems(4)))
        assert executor.submit(lambda: 7).result() == 7
    finally:
        executor.shutdown()


# -- single requests and states ------------------------------------------------------------------


def test_run_returns_states_usable_on_any_worker(request_log):
    with LeanServerPool(config(request_log), num_workers=3) as pool:
        made = pool.run(Command(cmd="theorem t (n : Nat) : n + 0 = n := by sorry"))
        assert made.env < 0 and made.sorries[0].proof_state < 0
        uses = pool.run_batch([Command(cmd=f"#check t\n#eval {i}", env=made.env) for i in range(6)])
        step = pool.run(ProofStep(proof_state=made.sorries[0].proof_state, tactic="rfl"))
    assert all(not r.has_errors() for r in uses)
    assert step.proof_status == "Completed"


def test_batch_states_are_hidden_unless_kept(request_log):
    command = "theorem s : 1 = 1 := by sorry"
    with LeanServerPool(config(request_log), num_workers=2) as pool:
        (plain,) = pool.run_batch([command])
        (kept,) = pool.run_batch([command], keep_states=True)
        step = pool.run(ProofStep(proof_state=kept.sorries[0].proof_state, tactic="rfl"))
    assert plain.env is None and plain.sorries[0].proof_state is None
    assert kept.env < 0 and step.proof_status == "Completed"


def test_async_run_batch(request_log):
    async def main(pool):
        return await asyncio.gather(
            pool.async_run_batch(theorems(4)), pool.async_run(Command(cmd="#eval 5"))
        )

    with LeanServerPool(config(request_log), num_workers=2) as pool:
        batch, single = asyncio.run(main(pool))
    assert [r.messages[-1].data for r in batch] == ["0", "1", "2", "3"]
    assert single.messages[0].data == "5"


def test_bad_items_are_captured_not_raised(request_log):
    with LeanServerPool(config(request_log), num_workers=1) as pool:
        responses = pool.run_batch(["#eval 1", 42, "#eval 2"])
    assert isinstance(responses[1], TypeError)
    assert [responses[0].messages[0].data, responses[2].messages[0].data] == ["1", "2"]


# -- cancel and processes ------------------------------------------------------------------------


def test_cancel_stops_pending_items_and_kills_running_repls(request_log):
    commands = [f"#fake_sleep 5\n#eval {i}" for i in range(20)]
    with LeanServerPool(config(request_log), num_workers=2) as pool:
        pids_before = {w["pid"] for w in pool.status()["workers"]}
        handle = pool.submit_batch(commands)
        time.sleep(0.5)  # both workers are in their first 5-second command
        cancelled_at = time.monotonic()
        handle.cancel()
        results = handle.result(timeout=5)
        assert time.monotonic() - cancelled_at < 2.0  # the running commands were killed
        assert results.statuses == ["cancelled"] * 20
        assert all(isinstance(item.error, ReplCancelledError) for item in results)
        # The two killed REPLs were replaced: only the pool's two new workers remain.
        assert len(wait_for_count(2)) == 2
        pids_after = {w["pid"] for w in pool.status()["workers"]}
        assert pids_after.isdisjoint(pids_before)
        assert not pool.run_batch(["#eval 3"])[0].has_errors()  # still usable


def wait_for_count(count: int, timeout: float = 5.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while len(procs := our_repl_processes()) != count and time.monotonic() < deadline:
        time.sleep(0.05)
    return procs


def test_pool_garbage_collected_leaves_no_process(request_log):
    pool = LeanServerPool(config(request_log), num_workers=2)
    pool.run_batch(["#eval 1"])
    assert len(our_repl_processes()) == 2
    del pool
    gc.collect()
    assert wait_no_repl_processes() == []


def test_closed_pool_refuses_work(request_log):
    pool = LeanServerPool(config(request_log), num_workers=1)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.run_batch(["#eval 1"])


# -- idle reaping --------------------------------------------------------------------------------


def gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether process ``pid`` has ended (or is a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def wait_until_reaped(pool: LeanServerPool, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = pool.status()["workers"]
        if all(w["repl"] == "reaped" for w in workers):
            return workers
        time.sleep(0.05)
    return pool.status()["workers"]


def test_idle_repls_are_reaped_and_restart_on_demand(request_log):
    # cache=False: the same batch again must run on fresh REPLs, not come from the cache
    pool = LeanServerPool(config(request_log), num_workers=2, idle_timeout=0.5, cache=False)
    with pool:
        assert pool.run_batch(theorems(6)).results.statuses == ["ok"] * 6
        first = {e["pid"] for e in log_entries(request_log)}
        assert len(first) == 2
        workers = wait_until_reaped(pool)
        assert [w["repl"] for w in workers] == ["reaped", "reaped"]
        assert all(gone(pid) for pid in first)  # the processes ended: their memory is free
        assert our_repl_processes() == []
        for worker in workers:
            assert worker["pid"] is None and worker["memory_mb"] == 0.0
            assert worker["headers"] == 0 and worker["idle_s"] >= 0.5 and not worker["busy"]
        assert pool.status()["idle_timeout"] == 0.5
        seen = len(log_entries(request_log))
        again = pool.run_batch(theorems(6))
        assert again.results.statuses == ["ok"] * 6
        assert [r.messages[-1].data for r in again] == [str(i) for i in range(6)]
        later = log_entries(request_log)[seen:]
        assert {e["pid"] for e in later}.isdisjoint(first)  # fresh REPLs...
        assert any(e["request"].get("cmd") == "import Mathlib\n" for e in later)  # ...warmed up
        assert all(w["repl"] in ("running", "reaped") for w in pool.status()["workers"])


def test_busy_worker_is_never_reaped_even_past_the_idle_limit(request_log):
    with LeanServerPool(config(request_log), num_workers=1, idle_timeout=0.3) as pool:
        batch = pool.submit_batch(["#fake_sleep 1.5\n#eval 1"])
        single = ThreadPoolExecutor(1).submit(
            pool.run, Command(cmd="#fake_sleep 1.5\n#eval 2"), add_to_session_cache=False
        )
        for _ in range(2):  # the batch's command, then the single request's
            time.sleep(1.0)  # well past the idle limit, mid-command
            (worker,) = pool.status()["workers"]
            assert worker["repl"] == "running" and worker["idle_s"] is None, worker
            assert worker["pid"] in {e["pid"] for e in log_entries(request_log)}
        results = batch.result(timeout=10)
        assert results.statuses == ["ok"] and results[0].response.messages[0].data == "1"
        assert single.result(timeout=10).messages[0].data == "2"
        assert len({e["pid"] for e in log_entries(request_log)}) == 1
        assert pool.status()["workers"][0]["restarts"] == 0


def test_reaping_racing_checkouts_never_fails_an_item(request_log):
    with LeanServerPool(config(request_log), num_workers=2, idle_timeout=0.05) as pool:
        kept = pool.run(Command(cmd="def k := 41"))
        for round_ in range(15):
            time.sleep((round_ % 4) * 0.03)  # around the limit: some checkouts meet the reaper
            results = pool.run_batch([*theorems(3), Command(cmd="#eval k + 1", env=kept.env)])
            assert results.results.statuses == ["ok"] * 4, results.results.statuses
            assert results[3].messages[0].data == "42"
        reaps = sum(w["reaps"] for w in wait_until_reaped(pool))
    assert reaps >= 2
    assert len({e["pid"] for e in log_entries(request_log)}) > 2


def test_process_pool_workers_reap_their_idle_repls(request_log):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as executor:
        cfg = config(request_log)
        with LeanServerPool(cfg, num_workers=1, executor=executor, idle_timeout=0.5) as pool:
            assert pool.run_batch(theorems(3)).results.statuses == ["ok"] * 3
            first = {e["pid"] for e in log_entries(request_log)}
            assert first and all(gone(pid) for pid in first)  # while the executor lives on
            assert our_repl_processes() == []
            seen = len(log_entries(request_log))
            assert pool.run_batch(theorems(3)).results.statuses == ["ok"] * 3
            assert {e["pid"] for e in log_entries(request_log)[seen:]}.isdisjoint(first)


def test_idle_limit_defaults_to_ten_minutes_and_refuses_nonsense(request_log):
    with LeanServerPool(config(request_log), num_workers=1) as pool:
        assert pool.idle_timeout == 600 and pool.status()["idle_timeout"] == 600
    with LeanServerPool(config(request_log), num_workers=1, idle_timeout=0) as pool:
        assert pool.idle_timeout is None
    with pytest.raises(ValueError, match="positive number of seconds"):
        LeanServerPool(config(request_log), num_workers=1, idle_timeout=-5)


# -- heartbeats: Lean's limit per command, before the wall clock ---------------------------------


def heartbeat_pool_config(log, *flags: str) -> LeanREPLConfig:
    """The fork, burning 1000 heartbeats a second, and a config that knows that rate."""
    return config(log, "--heartbeat-rate", "1000", *flags, repl_flavor="fork", heartbeat_rate=1000)


def test_item_over_its_heartbeat_limit_is_an_error_and_over_the_wall_clock_a_timeout(request_log):
    commands = theorems(4)
    commands[1] = HEADER + "theorem slow : True := by\n  #fake_hang\n  trivial"  # Lean stops it
    commands[2] = HEADER + "#fake_hang"  # outside any declaration: only the wall clock stops it
    cfg = heartbeat_pool_config(request_log, "--import-cost", "0.2")
    with LeanServerPool(cfg, num_workers=1) as pool:
        responses = pool.run_batch(commands, timeout_per_cmd=0.5)
    assert responses.results.statuses == ["ok", "error", "timeout", "ok"]
    assert (
        responses[1]
        .messages[0]
        .data.startswith(
            "(deterministic) timeout at `whnf`, maximum number of heartbeats (500) has been reached"
        )
    )
    assert isinstance(responses[2], ReplTimeoutError)
    # The header was elaborated again only after the wall-clock kill, not after Lean's stop.
    assert len(requests_for(request_log, "import Mathlib\n")) == 2


def test_batch_heartbeats_argument_sets_the_limit_per_command(request_log):
    slow = HEADER + "theorem slow : True := by\n  #fake_sleep 0.4\n  trivial"
    with LeanServerPool(heartbeat_pool_config(request_log), num_workers=1) as pool:
        cut = pool.run_batch([slow], heartbeats=100)
        passed = pool.run_batch([slow], heartbeats="off", timeout_per_cmd=30)
        with pytest.raises(ValueError, match="not a heartbeat limit"):
            pool.submit_batch([slow], heartbeats="many")
    assert cut.results.statuses == ["error"] and passed.results.statuses == ["ok"]
    assert "heartbeats (100)" in cut[0].messages[0].data


def test_a_script_that_ends_during_a_batch_exits_and_leaves_no_repl(request_log):
    """Python joins the pool's threads at exit; the pool closes first, so nothing hangs."""
    script = (
        "import sys, time\n"
        "from lean_kernel import LeanREPLConfig, LeanServerPool\n"
        f"pool = LeanServerPool(LeanREPLConfig(repl_command={fake_repl_command()!r}), "
        "num_workers=2)\n"
        "pool.submit_batch(['#fake_hang', '#fake_hang', '#eval 1'])\n"
        "time.sleep(0.5)\n"
        "print('leaving', flush=True)\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "leaving" in result.stdout
    assert time.monotonic() - started < 30
    assert wait_no_repl_processes() == []


def test_an_interrupted_batch_resumes_and_runs_only_what_was_left(request_log, tmp_path):
    """The result cache (on by default) keeps each answer as it comes: the same batch run again
    after a cancel sends Lean only the commands that had not been answered."""
    store = tmp_path / "results.sqlite3"
    commands = [
        f"{HEADER}theorem t{i} : {i} + 0 = {i} := rfl" + ("\n#eval oops" if i % 50 == 7 else "")
        for i in range(2000)
    ]
    with LeanServerPool(config(request_log), num_workers=2, cache=store) as pool:
        handle = pool.submit_batch(commands)
        while handle.done_count < 600:
            time.sleep(0.02)
        handle.cancel()
        first = handle.result(60)
    # Kept: Lean's answers with their verdict (an item whose verdict check the cancel cut off
    # reads `unknown` and is not kept: it runs again).
    answered = {
        r.index for r in first if r.status in ("ok", "sorry", "error") and r.verdict != "unknown"
    }
    assert 600 <= len(answered) < 2000 and "error" in first.statuses
    sent_before = len(bodies(request_log))
    with LeanServerPool(config(request_log), num_workers=2, cache=store) as pool:
        again = pool.run_batch(commands).results
    sent_again = bodies(request_log)[sent_before:]
    assert len(sent_again) == 2000 - len(answered)  # only what was left
    assert {int(b.split("theorem t")[1].split(" ")[0]) for b in sent_again} == (
        set(range(2000)) - answered
    )
    assert [r.status for r in again] == ["error" if i % 50 == 7 else "ok" for i in range(2000)]
    assert sum(r.worker == "cache" for r in again) == len(answered)


def bodies(log) -> list[str]:
    """The batch bodies the fake REPL received (commands on an env, not headers)."""
    return [r["cmd"] for r in read_log(log) if "theorem t" in r.get("cmd", "")]

"""LeanServer and AutoLeanServer against the project's fake REPL: protocol, faults, restarts."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
from conftest import fake_repl_command, read_log, wait_no_repl_processes

from lean_kernel import (
    AutoLeanServer,
    Command,
    CommandResponse,
    FileCommand,
    LeanError,
    LeanREPLConfig,
    LeanServer,
    ProofStep,
    ProofStepResponse,
    ReplaySessionCache,
    ReplCancelledError,
    ReplCrashedError,
    ReplMemoryError,
    ReplProtocolError,
    ReplTimeoutError,
    StaleStateError,
)
from lean_kernel.engine.heartbeats import (
    backstop,
    heartbeat_limit,
    heartbeat_stop,
    parse_heartbeats,
)
from lean_kernel.engine.memory import describe_memory
from lean_kernel.engine.outcome import status_of_exception

pytestmark = pytest.mark.usefixtures("no_repl_left_behind")


@pytest.fixture
def server(fake_config):
    with LeanServer(fake_config) as server:
        yield server


@pytest.fixture
def auto(fake_config):
    with AutoLeanServer(fake_config) as server:
        yield server


# -- the protocol ---------------------------------------------------------------------------


def test_command_returns_typed_response_with_env_numbering(server):
    first = server.run(Command(cmd="def f := 37"))
    second = server.run(Command(cmd="#eval f + 5", env=first.env))
    assert isinstance(first, CommandResponse) and first.env == 0
    assert second.env == 1
    assert [m.data for m in second.messages] == ["42"]


def test_sorry_gives_proof_state_and_tactic_mode_closes_it(server):
    response = server.run(Command(cmd="theorem t (x : Nat) : x = x := by sorry"))
    (sorry,) = response.sorries
    assert "⊢ x = x" in sorry.goal
    step = server.run(ProofStep(proof_state=sorry.proof_state, tactic="rfl"))
    assert isinstance(step, ProofStepResponse)
    assert step.proof_status == "Completed" and step.goals == []


def test_run_dict_sends_and_returns_raw_json(server):
    assert server.run_dict({"cmd": "def g := 1"}) == {"env": 0}


def test_async_run(server):
    async def main():
        return await asyncio.gather(
            server.async_run(Command(cmd="#eval 1 + 1")),
            server.async_run(Command(cmd="#eval 2 + 2")),
        )

    results = asyncio.run(main())
    assert sorted(r.messages[0].data for r in results) == ["2", "4"]


def test_concurrent_threads_get_their_own_answers(server):
    answers: dict[int, str] = {}

    def worker(base: int) -> None:
        for i in range(15):
            n = base * 100 + i
            answers[n] = server.run(Command(cmd=f"#eval {n}")).messages[0].data

    threads = [threading.Thread(target=worker, args=(b,)) for b in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {n: str(n) for n in answers} and len(answers) == 60


def test_incrementality_sent_when_enabled(fake_config, request_log):
    with LeanServer(fake_config) as server:
        server.run(Command(cmd="def a := 1"))
    assert read_log(request_log)[0].get("incrementality") is True


def test_incrementality_not_sent_when_disabled(request_log):
    config = LeanREPLConfig(
        repl_command=fake_repl_command("--log", str(request_log)),
        enable_incremental_optimization=False,
    )
    with LeanServer(config) as server:
        server.run(Command(cmd="def a := 1"))
    assert "incrementality" not in read_log(request_log)[0]


# -- bad input: clear errors, never a hang --------------------------------------------------


def test_empty_command_answers(server):
    response = server.run(Command(cmd=""), timeout=10)
    assert isinstance(response, CommandResponse | LeanError)


def test_unknown_env_is_a_lean_error(server):
    response = server.run(Command(cmd="#eval 1", env=99), timeout=10)
    assert isinstance(response, LeanError) and "Unknown environment" in response.message


def test_unknown_proof_state_is_a_lean_error(server):
    response = server.run(ProofStep(proof_state=7, tactic="rfl"), timeout=10)
    assert isinstance(response, LeanError) and "Unknown proof state" in response.message


def test_missing_file_is_a_lean_error(server, tmp_path):
    response = server.run(FileCommand(path=str(tmp_path / "nope.lean")), timeout=10)
    assert isinstance(response, LeanError)
    assert "nope.lean" in response.message or "no such file" in response.message.lower()


def test_invalid_option_is_a_lean_error_message(server):
    response = server.run(Command(cmd="set_option no.such.option true"), timeout=10)
    assert isinstance(response, CommandResponse) and response.has_errors()


def test_request_the_repl_does_not_know_is_refused_before_sending(server, request_log):
    with pytest.raises(ValueError, match="needs `cmd`"):
        server.run_dict({"frobnicate": 1}, timeout=10)
    assert server.is_alive() and read_log(request_log) == []


def test_run_rejects_what_is_not_a_request(server):
    with pytest.raises(TypeError, match="Command"):
        server.run({"cmd": "def f := 1"})  # type: ignore[arg-type]


# -- process failures ---------------------------------------------------------------------


def test_timeout_kills_the_process_and_raises_timeout_error(server):
    pid = server.pid
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="did not answer within"):
        server.run(Command(cmd="#fake_sleep 30"), timeout=0.5)
    assert time.monotonic() - start < 5
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_crash_reports_exit_code_and_stderr_tail(server):
    with pytest.raises(ReplCrashedError) as caught:
        server.run(Command(cmd="#fake_crash 3"))
    assert "code 3" in str(caught.value)
    assert "stderr" in str(caught.value)


def test_garbage_output_is_a_protocol_error(server):
    with pytest.raises(ReplProtocolError, match="not a JSON object"):
        server.run(Command(cmd="#fake_garbage"), timeout=10)


def test_repl_killed_between_requests_is_a_crash_with_its_exit_code(server):
    server.run(Command(cmd="def a := 1"))
    os.kill(server.pid, signal.SIGKILL)
    _wait_unreaped_death(server.pid)
    with pytest.raises(ReplCrashedError, match="exited") as caught:
        server.run(Command(cmd="#eval 1"))
    assert caught.value.exit_code == -signal.SIGKILL


def test_stderr_flood_does_not_block_the_answer(server):
    response = server.run(Command(cmd="#fake_stderr 524288\ndef big := 1"), timeout=20)
    assert isinstance(response, CommandResponse) and response.env == 0
    assert len(server.stderr_tail(10**6)) > 1000


def test_cancel_event_stops_a_long_command_within_a_second(server):
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(ReplCancelledError):
        server.run(Command(cmd="#fake_hang"), cancel=cancel)
    assert time.monotonic() - start < 1.5


def test_memory_hard_limit_stops_a_runaway_repl(request_log):
    config = LeanREPLConfig(
        repl_command=fake_repl_command("--log", str(request_log)), memory_hard_limit_mb=300
    )
    with LeanServer(config) as server, pytest.raises(ReplCrashedError):
        server.run(Command(cmd="#fake_memory 600"), timeout=30)


def test_kill_close_and_garbage_collection_leave_no_process(fake_config):
    killed = LeanServer(fake_config)
    killed.kill()
    assert not killed.is_alive()
    with LeanServer(fake_config):
        pass
    collected = LeanServer(fake_config)
    collected.run(Command(cmd="def x := 1"))
    del collected
    gc.collect()
    assert wait_no_repl_processes() == []


def test_repl_exits_when_its_parent_is_killed(tmp_path):
    script = (
        "import sys, time\n"
        "from lean_kernel import LeanServer, LeanREPLConfig, Command\n"
        f"s = LeanServer(LeanREPLConfig(repl_command={fake_repl_command()!r}))\n"
        "print(s.pid, flush=True)\n"
        "s.run(Command(cmd='#fake_hang'))\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as parent:  # closes its stdout pipe when done
        repl_pid = int(parent.stdout.readline())
        time.sleep(0.3)
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while psutil.pid_exists(repl_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(repl_pid)


# -- AutoLeanServer ---------------------------------------------------------------------------

FAULTS = {
    "crash": ("#fake_crash", ReplCrashedError, None),
    "hang": ("#fake_hang", ReplTimeoutError, 0.5),
    "garbage": ("#fake_garbage", ReplProtocolError, None),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_auto_server_recovers_and_cached_envs_still_resolve(auto, request_log, fault):
    text, error, timeout = FAULTS[fault]
    kept = auto.run(Command(cmd="def kept := 41"), add_to_session_cache=True)
    assert kept.env < 0
    old_pid = auto.pid
    with pytest.raises(error):
        auto.run(Command(cmd=text, env=kept.env), timeout=timeout)
    assert auto.is_alive() and auto.pid != old_pid, "restarted at once, before the next request"
    after = auto.run(Command(cmd="#eval kept + 1", env=kept.env))
    assert [m.data for m in after.messages] == ["42"]
    sent = [r.get("cmd") for r in read_log(request_log)]
    assert sent.count(text) == 1, "the failing request is reported, not retried"


def test_auto_server_recovers_from_memory_growth_during_a_command(fake_config):
    with AutoLeanServer(fake_config, max_process_memory=200) as auto:
        kept = auto.run(Command(cmd="def kept := 1"), add_to_session_cache=True)
        start = time.monotonic()
        with pytest.raises(ReplMemoryError, match="max_process_memory"):
            auto.run(Command(cmd="#fake_memory 1000 4"), timeout=60)
        assert time.monotonic() - start < 4, "killed while growing, not after"
        assert auto.run(Command(cmd="#eval kept", env=kept.env)).messages[0].data == "1"


def test_repl_over_its_memory_limit_at_rest_is_replaced_before_the_next_request(fake_config):
    # Commands are sampled once they have run 3 s: the growth happens in one shorter command
    # (even on a loaded machine), so only the check at rest can see it.
    with AutoLeanServer(fake_config, max_process_memory=200, memory_check_interval=3.0) as auto:
        kept = auto.run(Command(cmd="def kept := 1"), add_to_session_cache=True)
        bloated = auto.pid
        auto.run(Command(cmd="#fake_memory 300"), timeout=60)
        deadline = time.monotonic() + 30
        while auto._watchdog.over_limit is None:  # the watchdog samples the REPL at rest
            assert time.monotonic() < deadline, "a REPL at rest over its limit went unnoticed"
            time.sleep(0.05)
        assert auto.run(Command(cmd="#eval kept", env=kept.env)).messages[0].data == "1"
        assert auto.pid != bloated and auto.last_restart.kind == "memory"
        assert "max_process_memory" in auto.last_restart.memory_reason


def test_env_from_before_a_crash_is_refused_unless_cached(auto):
    plain = auto.run(Command(cmd="def plain := 1"))
    kept = auto.run(Command(cmd="def kept := 2"), add_to_session_cache=True)
    with pytest.raises(ReplCrashedError):
        auto.run(Command(cmd="#fake_crash"))
    with pytest.raises(StaleStateError, match="replaced") as caught:
        auto.run(Command(cmd="#eval plain", env=plain.env))
    assert "add_to_session_cache" in str(caught.value)
    assert auto.run(Command(cmd="#eval kept", env=kept.env)).messages[0].data == "2"
    fresh = auto.run(Command(cmd="def fresh := 3"))
    assert fresh.env > plain.env, "new ids never reuse an id handed out before the crash"


def test_cached_sorry_proof_states_survive_a_restart(auto):
    kept = auto.run(
        Command(cmd="theorem t (x : Nat) : x = x := by sorry"), add_to_session_cache=True
    )
    state = kept.sorries[0].proof_state
    assert state < 0
    with pytest.raises(ReplCrashedError):
        auto.run(Command(cmd="#fake_crash"))
    step = auto.run(ProofStep(proof_state=state, tactic="rfl"))
    assert step.proof_status == "Completed"


def test_removed_cache_entry_is_refused(auto):
    kept = auto.run(Command(cmd="def k := 1"), add_to_session_cache=True)
    auto.remove_from_session_cache(kept.env)
    with pytest.raises(StaleStateError, match="not in the session cache"):
        auto.run(Command(cmd="#eval k", env=kept.env))
    assert len(auto.session_cache) == 0


def test_session_cache_is_shared_between_servers(fake_config):
    cache = ReplaySessionCache()
    with (
        AutoLeanServer(fake_config, session_cache=cache) as first,
        AutoLeanServer(fake_config, session_cache=cache) as second,
    ):
        kept = first.run(Command(cmd="def shared := 5"), add_to_session_cache=True)
        answer = second.run(Command(cmd="#eval shared", env=kept.env))
        assert answer.messages[0].data == "5"


def test_process_that_died_between_requests_is_restarted(auto):
    auto.kill()
    assert auto.run(Command(cmd="#eval 3")).messages[0].data == "3"


def test_facade_runs_leaninteract_code_unchanged(monkeypatch):
    monkeypatch.setenv("LEAN_KERNEL_REPL", fake_repl_command())
    from lean_interact.interface import CommandResponse as LIResponse

    from lean_interact import Command as LICommand
    from lean_interact import LeanREPLConfig as LIConfig
    from lean_interact import LeanServer as LIServer

    server = LIServer(LIConfig())
    try:
        response = server.run(LICommand(cmd="def f := 37"))
        assert isinstance(response, LIResponse) and response.env == 0
    finally:
        server.close()


# -- restarts: why, kept states, out of memory -------------------------------------------------


def _kill_repl_after(server, seconds: float) -> threading.Timer:
    """SIGKILL the server's REPL from outside after ``seconds`` (as the OOM killer would)."""
    pid = server.pid
    timer = threading.Timer(seconds, os.kill, (pid, signal.SIGKILL))
    timer.start()
    return timer


def _wait_dead(server, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while server.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)


def _wait_unreaped_death(pid: int, timeout: float = 5.0) -> None:
    """Wait until ``pid`` is dead without reaping it (as a server finds a REPL that died while
    nothing looked at it): a zombie, which only its parent's wait would clear."""
    deadline = time.monotonic() + timeout
    while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"process {pid} did not die"
        time.sleep(0.02)


def test_last_restart_says_why_and_which_process_it_started(auto):
    assert auto.last_restart is None
    with pytest.raises(ReplCrashedError):
        auto.run(Command(cmd="#fake_crash 3"))
    crash = auto.last_restart
    assert crash.kind == "request" and crash.exit_code == 3
    assert isinstance(crash.error, ReplCrashedError) and crash.generation == auto.generation
    os.kill(auto.pid, signal.SIGKILL)  # dies between requests
    _wait_dead(auto)
    assert auto.run(Command(cmd="#eval 1")).messages[0].data == "1"
    died = auto.last_restart
    assert died.kind == "exited" and died.exit_code == -signal.SIGKILL
    assert died.signal_name == "SIGKILL" and died.generation == auto.generation
    auto.restart()
    assert auto.last_restart.kind == "requested" and auto.restart_count == 3


def test_repl_that_died_unnoticed_is_replaced_before_the_next_request(auto, request_log):
    kept = auto.run(Command(cmd="def kept := 7"), add_to_session_cache=True)
    os.kill(auto.pid, signal.SIGKILL)
    _wait_unreaped_death(auto.pid)
    assert auto.run(Command(cmd="#eval kept", env=kept.env)).messages[0].data == "7"
    died = auto.last_restart
    assert died.kind == "exited" and died.exit_code == -signal.SIGKILL
    sent = [r.get("cmd") for r in read_log(request_log)]
    assert sent == ["def kept := 7", "def kept := 7", "#eval kept"], "replayed, then sent once"


def test_run_dict_resends_a_request_the_dead_repl_never_got(auto, request_log):
    os.kill(auto.pid, signal.SIGKILL)
    _wait_unreaped_death(auto.pid)
    assert auto.run_dict({"cmd": "#eval 5"})["messages"][0]["data"] == "5"
    assert auto.last_restart.kind == "exited" and auto.restart_count == 1
    assert [r.get("cmd") for r in read_log(request_log)] == ["#eval 5"], "sent once, to the new one"


def test_run_dict_on_auto_server_restarts_after_a_crash(auto):
    old_pid = auto.pid
    with pytest.raises(ReplCrashedError):
        auto.run_dict({"cmd": "#fake_crash 3"})
    assert auto.is_alive() and auto.pid != old_pid, "restarted at once, before the next request"
    assert auto.last_restart.kind == "request" and auto.last_restart.exit_code == 3
    assert "env" in auto.run_dict({"cmd": "def b := 2"})


def test_kept_states_survive_an_explicit_restart(auto, request_log):
    kept = auto.run(Command(cmd="def kept := 41"), add_to_session_cache=True)
    theorem = auto.run(
        Command(cmd="theorem t (x : Nat) : x = x := by sorry"), add_to_session_cache=True
    )
    plain = auto.run(Command(cmd="def plain := 1"))
    old_pid = auto.pid
    auto.restart()
    assert auto.pid != old_pid and auto.restart_count == 1
    sent = [r.get("cmd") for r in read_log(request_log)]
    assert sent.count("def kept := 41") == 2, "replayed by the restart, before any request"
    assert auto.run(Command(cmd="#eval kept + 1", env=kept.env)).messages[0].data == "42"
    step = auto.run(ProofStep(proof_state=theorem.sorries[0].proof_state, tactic="rfl"))
    assert step.proof_status == "Completed"
    with pytest.raises(StaleStateError, match="replaced"):
        auto.run(Command(cmd="#eval plain", env=plain.env))


def test_repl_killed_near_its_memory_limit_is_reported_out_of_memory(fake_config):
    with AutoLeanServer(fake_config, max_process_memory=300) as auto:
        auto.run(Command(cmd="#fake_memory 250 1"), timeout=30)  # sampled while it grows
        _kill_repl_after(auto, 0.5)
        with pytest.raises(ReplMemoryError) as caught:
            auto.run(Command(cmd="#fake_hang"), timeout=30)
        err = caught.value
        assert err.by_system and err.exit_code == -signal.SIGKILL
        assert err.last_seen_mb is not None and 200 < err.last_seen_mb < 300
        assert "out of memory" in str(err) and describe_memory(err.last_seen_mb) in str(err)
        assert "max_process_memory" in str(err), "names the ceiling it was near"
        assert status_of_exception(err) == "crashed"
        assert auto.last_restart.last_seen_mb == err.last_seen_mb
        assert auto.run(Command(cmd="#eval 2")).messages[0].data == "2"


def test_repl_killed_with_little_memory_is_still_a_crash(fake_config):
    with AutoLeanServer(fake_config, max_process_memory=300) as auto:
        auto.run(Command(cmd="#fake_sleep 0.5"))  # sampled, small
        _kill_repl_after(auto, 0.5)
        with pytest.raises(ReplCrashedError) as caught:
            auto.run(Command(cmd="#fake_hang"), timeout=30)
        assert not isinstance(caught.value, ReplMemoryError)
        assert caught.value.exit_code == -signal.SIGKILL
        assert "out of memory" not in str(caught.value)
        assert status_of_exception(caught.value) == "crashed"


# -- heartbeats: Lean's own limit before the wall clock ------------------------------------------

RUNAWAY = "theorem runaway : True := by\n  #fake_hang\n  trivial"


def heartbeat_config(request_log, flavor: str = "fork", **kwargs) -> LeanREPLConfig:
    """A REPL burning 1000 heartbeats a second, and a config that knows that rate."""
    command = fake_repl_command(
        "--log", str(request_log), "--heartbeat-rate", "1000", "--flavor", flavor
    )
    return LeanREPLConfig(repl_command=command, repl_flavor=flavor, heartbeat_rate=1000, **kwargs)


@pytest.mark.parametrize("flavor", ["fork", "upstream"])
def test_heartbeat_limit_stops_a_runaway_command_and_the_repl_keeps_its_envs(request_log, flavor):
    with AutoLeanServer(heartbeat_config(request_log, flavor)) as auto:
        base = auto.run(Command(cmd="def a := 1"))
        pid, generation = auto.pid, auto.generation
        response = auto.run(Command(cmd=RUNAWAY, env=base.env), timeout=30, heartbeats=500)
        assert [(m.severity, m.data.splitlines()[0]) for m in response.messages] == [
            (
                "error",
                "(deterministic) timeout at `whnf`, maximum number of heartbeats (500) has been "
                "reached",
            )
        ]
        assert heartbeat_stop(response) == 500
        assert (auto.pid, auto.generation, auto.restart_count) == (pid, generation, 0)
        assert [m.data for m in auto.run(Command(cmd="#eval a", env=base.env)).messages] == ["1"]


def test_auto_heartbeats_come_from_the_timeout_and_stop_the_command_before_it(request_log):
    with AutoLeanServer(heartbeat_config(request_log)) as auto:
        base = auto.run(Command(cmd="def a := 1"))
        response = auto.run(Command(cmd=RUNAWAY, env=base.env), timeout=1.0)
        assert heartbeat_stop(response) == 1000  # 1 s at 1000 per second
        assert auto.restart_count == 0
        limits = [r for r in read_log(request_log) if "maxHeartbeats" in r.get("cmd", "")]
        assert limits == [{"cmd": "set_option maxHeartbeats 1000", "env": 0}]


@pytest.mark.parametrize("setup", ["heartbeats off", "unknown flavour"])
def test_without_heartbeats_a_runaway_command_is_killed_and_replayed(request_log, setup):
    if setup == "heartbeats off":
        config = heartbeat_config(request_log, heartbeats="off")
    else:
        command = fake_repl_command("--log", str(request_log), "--heartbeat-rate", "1000")
        config = LeanREPLConfig(repl_command=command)
    with AutoLeanServer(config) as auto:
        base = auto.run(Command(cmd="def a := 1"), add_to_session_cache=True)
        generation = auto.generation
        with pytest.raises(ReplTimeoutError, match="did not answer within 0.5 s"):
            auto.run(Command(cmd=RUNAWAY, env=base.env), timeout=0.5)
        assert (auto.generation, auto.restart_count) == (generation + 1, 1)
        assert [m.data for m in auto.run(Command(cmd="#eval a", env=base.env)).messages] == ["1"]
    assert not any("maxHeartbeats" in r.get("cmd", "") for r in read_log(request_log))


def test_wall_clock_backstop_waits_a_little_longer_and_keeps_its_wording(request_log):
    with LeanServer(heartbeat_config(request_log)) as server:
        base = server.run(Command(cmd="def a := 1"))
        # Work outside any declaration burns no heartbeats: only the wall clock stops it.
        with pytest.raises(ReplTimeoutError, match="did not answer within 1.6 s") as caught:
            server.run(Command(cmd="#fake_hang", env=base.env), timeout=0.5)
        assert caught.value.timeout == pytest.approx(0.5 * 1.2 + 1)
        assert not server.is_alive()


def test_users_own_max_heartbeats_wins_over_the_limit(request_log):
    slow = "theorem slow : True := by\n  #fake_sleep 0.5\n  trivial"
    with LeanServer(heartbeat_config(request_log)) as server:
        base = server.run(Command(cmd="def a := 1"))
        cut = server.run(Command(cmd=slow, env=base.env), heartbeats=100)
        assert heartbeat_stop(cut) == 100
        raised_in = f"set_option maxHeartbeats 5000 in\n{slow}"  # for its declaration
        assert not server.run(Command(cmd=raised_in, env=base.env), heartbeats=100).messages
        # A top-level one holds for the rest of its command and every env built on it.
        own = server.run(Command(cmd="set_option maxHeartbeats 5000", env=base.env), heartbeats=100)
        later = server.run(Command(cmd=slow, env=own.env), heartbeats=100)
        assert not later.messages
        after = server.run(Command(cmd="#eval a", env=later.env), heartbeats=100)
        assert [m.data for m in after.messages] == ["1"]
    limited = [r["env"] for r in read_log(request_log) if "maxHeartbeats 100" in r.get("cmd", "")]
    assert limited == [base.env]  # made once for the parent, never on the user's own envs


def test_limited_env_is_made_once_per_parent_and_limit(request_log):
    with LeanServer(heartbeat_config(request_log)) as server:
        base = server.run(Command(cmd="def a := 1"))
        for text in ("#eval a", "#eval a + 1", "#eval a"):
            server.run(Command(cmd=text, env=base.env), heartbeats=400)
        server.run(Command(cmd="#eval a", env=base.env), heartbeats=800)
        server.run(Command(cmd="def b := 2"), heartbeats=400)  # no env: nothing to limit
        with pytest.raises(ValueError, match="not a heartbeat limit"):
            server.run(Command(cmd="#eval a", env=base.env), heartbeats="lots")
    limits = [r for r in read_log(request_log) if "maxHeartbeats" in r.get("cmd", "")]
    assert limits == [
        {"cmd": "set_option maxHeartbeats 400", "env": 0},
        {"cmd": "set_option maxHeartbeats 800", "env": 0},
    ]


def test_a_chain_of_commands_pays_one_limit_and_off_gets_leans_default_back(request_log):
    with LeanServer(heartbeat_config(request_log)) as server:
        env = server.run(Command(cmd="def a := 1")).env
        for i in range(3):  # each builds on the last: the limit is inherited, set once
            env = server.run(Command(cmd=f"def b{i} := a", env=env), heartbeats=400).env
        slow = "theorem slow : True := by\n  #fake_sleep 0.6\n  trivial"  # 600 heartbeats
        assert heartbeat_stop(server.run(Command(cmd=slow, env=env), heartbeats=400)) == 400
        assert not server.run(Command(cmd=slow, env=env), heartbeats="off").messages
    limits = [r["cmd"] for r in read_log(request_log) if "maxHeartbeats" in r.get("cmd", "")]
    assert limits == ["set_option maxHeartbeats 400", "set_option maxHeartbeats 200000"]


def test_heartbeat_settings_limits_and_which_limit_fired():
    assert [parse_heartbeats(v) for v in ("auto", "OFF", "none", " 400000 ", 7)] == [
        "auto",
        "off",
        "off",
        400000,
        7,
    ]
    for bad in ("0", "-3", "1.5", "lots", True):
        with pytest.raises(ValueError, match="not a heartbeat limit"):
            parse_heartbeats(bad)
    assert heartbeat_limit("auto", 60, 5000) == 300000
    assert heartbeat_limit("auto", None, 5000) is None and heartbeat_limit("off", 60, 5) is None
    assert heartbeat_limit(1234, None, 5000) == 1234
    assert backstop(10) == pytest.approx(13) and backstop(None) is None

    def answer(data: str) -> CommandResponse:
        message = {"severity": "error", "pos": {"line": 1, "column": 0}, "data": data}
        return CommandResponse.model_validate({"env": 0, "messages": [message]})

    note = "\n\nNote: Use `set_option maxHeartbeats <num>` to set the limit."
    stop = "(deterministic) timeout at `whnf`, maximum number of heartbeats (800) has been reached"
    assert heartbeat_stop(answer(stop + note)) == 800
    nested = "Tactic `simp` failed with a nested error:\n" + stop + note
    assert heartbeat_stop(answer(nested)) == 800
    typeclass = (
        stop.replace("800", "20000") + "\nUse `set_option synthInstance.maxHeartbeats <num>`"
    )
    assert heartbeat_stop(answer(typeclass)) is None  # another limit
    assert heartbeat_stop(answer("unknown identifier 'x'")) is None


def test_a_cancel_before_sending_leaves_the_repl_untouched(auto, request_log):
    """A command cancelled before it was written is not sent, and the REPL is not restarted
    (``started`` False: a batch item reads ``cancelled``, not ``stopped``)."""
    from lean_kernel import ReplCancelledError
    from lean_kernel.engine.outcome import outcome_of

    auto.run(Command(cmd="#eval 1"))
    pid, generation = auto.pid, auto.generation
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ReplCancelledError) as raised:
        auto.run(Command(cmd="#eval 2"), cancel=cancel)
    assert raised.value.started is False
    assert outcome_of("cancelled", None, raised.value) == "cancelled"
    assert (auto.pid, auto.generation) == (pid, generation)
    assert [r.get("cmd") for r in read_log(request_log)].count("#eval 2") == 0
    assert auto.run(Command(cmd="#eval 3")).messages[-1].data == "3"

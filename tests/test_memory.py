"""Which memory is a REPL's: PSS / USS of its whole process tree, not RSS (``engine/memory.py``).

Lean maps ``.olean`` files read-only, so REPLs importing the same Mathlib share those pages; RSS
counts them once per REPL, PSS splits them. These tests measure real process trees (a child
holding memory and a grandchild under it, two processes mapping one file), then drive the
watchdog's sampling and the pool's worker planning with scripted measurements.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

import lean_kernel.batch.capacity as capacity_module
import lean_kernel.engine.memory as memory_module
from lean_kernel import LeanServerPool
from lean_kernel.batch.capacity import plan_workers
from lean_kernel.engine.memory import (
    MemoryLimits,
    MemoryWatchdog,
    ReplMemory,
    measure_repl_memory,
)
from lean_kernel.engine.protocol import Command
from lean_kernel.errors import ReplCrashedError, ReplMemoryError

MB = 1024 * 1024
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="PSS is Linux's (USS elsewhere)")

# Holds argv[1] MB (written, so resident), starts itself again for the rest of argv (a
# grandchild, and so on), prints the pids of its tree, and lives until its stdin closes.
HOLDER = """\
import os, subprocess, sys
held = b"x" * (int(sys.argv[1]) * 2**20)
pids = [str(os.getpid())]
if len(sys.argv) > 2:
    child = subprocess.Popen([sys.executable, __file__, *sys.argv[2:]], stdout=subprocess.PIPE)
    pids += child.stdout.readline().decode().split()
print(" ".join(pids), flush=True)
sys.stdin.read()
"""

# Says "started", maps the file argv[1] read-only on a line from stdin and reads every page of
# it (as Lean maps an .olean), says "mapped", and lives until its stdin closes.
MAPPER = """\
import mmap, sys
with open(sys.argv[1], "rb") as file:
    print("started", flush=True)
    sys.stdin.readline()
    view = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    touched = sum(view[i] for i in range(0, len(view), mmap.PAGESIZE))
    print("mapped", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``python <script> args...`` with pipes; every tree started is ended afterwards."""
    started: list[subprocess.Popen] = []

    def start(source: str, *args: str) -> subprocess.Popen:
        script = tmp_path / f"script{len(started)}.py"
        script.write_text(source)
        popen = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(popen)
        return popen

    yield start
    for popen in started:
        popen.stdin.close()  # the tree's processes all read this pipe: each one exits
        popen.wait()
        popen.stdout.close()


# -- measuring a process tree --------------------------------------------------------------------


def test_a_tree_is_measured_whole_with_its_grandchild(spawn):
    tree = spawn(HOLDER, "50", "30")
    child, grandchild = map(int, tree.stdout.readline().split())
    whole = measure_repl_memory(child)
    alone = measure_repl_memory(grandchild)
    assert whole.processes == 2 and alone.processes == 1
    assert whole.own_mb >= 80 and whole.rss_mb >= whole.own_mb
    assert alone.own_mb >= 30
    assert whole.own_mb >= alone.own_mb + 50, "the grandchild's memory is in the tree's"
    expected = "pss" if sys.platform == "linux" else "uss"
    assert whole.basis == expected and whole.uss_mb is not None and whole.uss_mb >= 80


def test_rss_only_is_said_so_and_sees_the_same_resident_pages(spawn):
    tree = spawn(HOLDER, "50", "30")
    child, _ = map(int, tree.stdout.readline().split())
    cheap = measure_repl_memory(child, rss_only=True)
    assert cheap.basis == "rss" and cheap.pss_mb is None and cheap.uss_mb is None
    assert cheap.processes == 2 and cheap.own_mb == cheap.rss_mb >= 80


@linux_only
def test_pages_two_processes_map_from_one_file_are_split_by_pss(spawn, tmp_path):
    """The .olean case: RSS counts the shared file in each process, PSS sums to one copy."""
    file_mb = 64
    shared = tmp_path / "shared.olean"
    shared.write_bytes(b"\x01" * (file_mb * MB))
    mappers = [spawn(MAPPER, str(shared)) for _ in range(2)]
    for mapper in mappers:
        assert mapper.stdout.readline().strip() == "started"
    before = [measure_repl_memory(mapper.pid) for mapper in mappers]
    for mapper in mappers:
        mapper.stdin.write("go\n")
        mapper.stdin.flush()
    for mapper in mappers:
        assert mapper.stdout.readline().strip() == "mapped"
    after = [measure_repl_memory(mapper.pid) for mapper in mappers]
    rss_growth = [b.rss_mb - a.rss_mb for a, b in zip(before, after, strict=True)]
    pss_growth = [b.own_mb - a.own_mb for a, b in zip(before, after, strict=True)]
    assert all(growth >= 0.95 * file_mb for growth in rss_growth), rss_growth
    assert sum(pss_growth) == pytest.approx(file_mb, rel=0.1), pss_growth
    assert all(growth == pytest.approx(file_mb / 2, rel=0.2) for growth in pss_growth)


def test_a_gone_process_measures_nothing_and_does_not_raise():
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    # Exited, not reaped: a zombie, as a killed REPL is until its server reaps it.
    os.waitid(os.P_PID, exited.pid, os.WEXITED | os.WNOWAIT)
    zombie = measure_repl_memory(exited.pid)
    exited.wait()
    for memory in (zombie, measure_repl_memory(exited.pid), measure_repl_memory(None)):
        assert memory.processes == 0 and memory.own_mb == 0.0 and memory.rss_mb == 0.0


def test_a_process_that_vanishes_mid_measurement_counts_for_nothing(spawn, monkeypatch):
    tree = spawn(HOLDER, "10", "20")
    child, grandchild = map(int, tree.stdout.readline().split())
    full_info = psutil.Process.memory_full_info

    def vanishing(proc: psutil.Process):
        if proc.pid == grandchild:
            raise psutil.NoSuchProcess(grandchild)
        return full_info(proc)

    monkeypatch.setattr(psutil.Process, "memory_full_info", vanishing)
    memory = measure_repl_memory(child)
    assert memory.processes == 1 and 10 <= memory.own_mb < 30


def test_a_process_refusing_its_full_figures_leaves_the_tree_on_rss(spawn, monkeypatch):
    tree = spawn(HOLDER, "10", "20")
    child, grandchild = map(int, tree.stdout.readline().split())
    full_info = psutil.Process.memory_full_info

    def refusing(proc: psutil.Process):
        if proc.pid == grandchild:
            raise psutil.AccessDenied(grandchild)
        return full_info(proc)

    monkeypatch.setattr(psutil.Process, "memory_full_info", refusing)
    memory = measure_repl_memory(child)
    assert memory.processes == 2 and memory.basis == "rss"
    assert memory.pss_mb is None and memory.uss_mb is None and memory.rss_mb >= 30


# -- the watchdog: the soft limit goes by PSS, sampled sparingly ---------------------------------


class ScriptedMeasures:
    """Stands in for ``measure_repl_memory``: RSS samples and PSS measurements, in order."""

    def __init__(self, rss: list[float], pss: list[float]) -> None:
        self.rss, self.pss = list(rss), list(pss)
        self.full_measures = 0
        self.last_rss = 0.0

    def __call__(self, pid: int | None, *, rss_only: bool = False) -> ReplMemory:
        if rss_only:
            self.last_rss = self.rss.pop(0)
            return ReplMemory(rss_mb=self.last_rss, processes=1)
        self.full_measures += 1
        pss = self.pss.pop(0)
        return ReplMemory(rss_mb=self.last_rss, pss_mb=pss, uss_mb=pss - 10, processes=1)


@pytest.fixture
def watchdog() -> Iterator[MemoryWatchdog]:
    """A watchdog whose thread never wakes (``check`` is called by the test)."""
    dog = MemoryWatchdog(MemoryLimits(max_total_memory=1.0, max_process_memory=1000), 3600)
    dog.interval = 0.0
    yield dog
    dog.stop()


def test_rss_within_the_limit_clears_a_repl_without_measuring_pss(watchdog, monkeypatch):
    measures = ScriptedMeasures(rss=[800, 1000], pss=[])
    monkeypatch.setattr(memory_module, "measure_repl_memory", measures)
    repl = SimpleNamespace(pid=1)
    for _ in range(2):
        sample = watchdog.sample(repl)
        assert sample.basis == "rss" and watchdog.limits.exceeded(repl, sample) is None
    assert measures.full_measures == 0


def test_over_the_limit_in_rss_only_pss_decides_and_is_not_remeasured_every_sample(
    watchdog, monkeypatch
):
    monkeypatch.setattr(memory_module, "PSS_REFRESH_S", 3600.0)
    measures = ScriptedMeasures(rss=[3000, 3300, 3500], pss=[600, 1100])
    monkeypatch.setattr(memory_module, "measure_repl_memory", measures)
    repl = SimpleNamespace(pid=1)
    first = watchdog.sample(repl)  # Mathlib's shared pages: 3 GB RSS, 600 MB its own
    assert first.basis == "pss" and watchdog.limits.exceeded(repl, first) is None
    # 300 MB more RSS: 600 + 300 is still within 1000, so the PSS figure stands.
    assert watchdog.sample(repl) is first and measures.full_measures == 1
    # 500 MB more: it might be over now, so PSS is measured again, and it is over.
    over = watchdog.sample(repl)
    assert measures.full_measures == 2 and over.own_mb == 1100
    reason = watchdog.limits.exceeded(repl, over)
    assert reason == "the REPL used 1100 MB of its own (PSS) > max_process_memory=1000"
    assert watchdog.last_seen_mb(repl) == 3500, "the out-of-memory rule keeps RSS"


def test_pss_is_measured_again_once_the_last_figure_is_old(watchdog, monkeypatch):
    monkeypatch.setattr(memory_module, "PSS_REFRESH_S", 0.0)
    measures = ScriptedMeasures(rss=[3000, 3000], pss=[600, 650])
    monkeypatch.setattr(memory_module, "measure_repl_memory", measures)
    repl = SimpleNamespace(pid=1)
    assert [watchdog.sample(repl).own_mb for _ in range(2)] == [600, 650]


def test_the_watchdog_kills_over_the_limit_in_pss_and_says_by_how_much(watchdog, monkeypatch):
    measures = ScriptedMeasures(rss=[3000], pss=[1200])
    monkeypatch.setattr(memory_module, "measure_repl_memory", measures)
    kills: list[int] = []
    repl = SimpleNamespace(pid=1, send_kill=lambda: kills.append(1))
    with watchdog.watching(repl):
        watchdog.check()
    assert kills == [1]
    error = watchdog.explain(repl, ReplCrashedError("died", exit_code=-9))
    assert isinstance(error, ReplMemoryError) and error.last_seen_mb == 1200
    assert "1200 MB of its own (PSS) > max_process_memory=1000" in str(error)


def test_a_gone_repl_keeps_its_last_seen_figure(watchdog, monkeypatch):
    monkeypatch.setattr(memory_module, "measure_repl_memory", ScriptedMeasures([700], []))
    repl = SimpleNamespace(pid=1)
    watchdog.sample(repl)
    monkeypatch.setattr(
        memory_module, "measure_repl_memory", lambda pid, rss_only=False: ReplMemory(0.0)
    )
    assert watchdog.sample(repl).processes == 0 and watchdog.last_seen_mb(repl) == 700


# -- planning workers, and what status shows ----------------------------------------------------


@pytest.fixture
def machine(monkeypatch) -> None:
    """16 GB, 10 GB available: 16 * 0.8 usable - 6 in use = 6800 MB for workers."""
    memory = SimpleNamespace(total=16_000 * MB, available=10_000 * MB, percent=37.5)
    monkeypatch.setattr(capacity_module.psutil, "virtual_memory", lambda: memory)


def repls(*pss_mb: float) -> list[ReplMemory]:
    """Measurements of running Mathlib REPLs: 4.5 GB of shared .olean pages in their RSS."""
    return [
        ReplMemory(rss_mb=pss + 4500, pss_mb=pss, uss_mb=pss - 300, processes=2) for pss in pss_mb
    ]


def test_running_repls_plan_workers_at_their_pss_not_the_limit(machine):
    assert plan_workers(4, 3000).num_workers == 2  # at the limit: 6800 // 3000
    plan = plan_workers(4, 3000, running=repls(1200, 1500))
    assert plan.num_workers == 4 and not plan.capped
    assert plan.note == (
        "4 workers; memory allows 4 at 1500 MB per REPL (the largest PSS of 2 running REPLs, "
        "pages they share split among them) (6800 MB usable)"
    )


def test_running_repls_cap_workers_even_without_a_limit(machine):
    plan = plan_workers(8, None, running=repls(3000))
    assert (plan.num_workers, plan.requested) == (2, 8)
    assert "2 workers instead of 8: at 3000 MB per REPL (the largest PSS of 1 running REPL" in (
        plan.note
    )
    assert plan.note.endswith("Free memory (close other REPLs or programs) to get more.")


def test_the_limit_still_bounds_what_running_repls_use(machine):
    plan = plan_workers(8, 2000, running=repls(4000))
    assert plan.num_workers == 3
    assert "at 2000 MB per REPL (the per-process limit, below 4000 MB, the largest PSS" in (
        plan.note
    )


def test_a_measured_tree_plans_workers_and_gone_ones_leave_the_plan_at_the_limit(machine, spawn):
    tree = spawn(HOLDER, "50", "30")
    child, _ = map(int, tree.stdout.readline().split())
    live = measure_repl_memory(child)
    plan = plan_workers(200, 3000, running=[live])
    assert plan.num_workers == int(6800 // live.own_mb) and "1 running REPL" in plan.note
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    nothing = [measure_repl_memory(gone.pid)]
    plan = plan_workers(8, 3000, running=nothing)
    assert plan.num_workers == 2 and "at 3000 MB per REPL, only 6800 MB" in plan.note
    assert plan_workers(3, None, running=nothing).note.startswith("3 workers; not capped by memory")


def test_pool_status_shows_each_repls_own_memory(fake_config):
    with LeanServerPool(fake_config, num_workers=1) as pool:
        pool.run(Command(cmd="#eval 1"))
        (worker,) = pool.status()["workers"]
        measured = measure_repl_memory(worker["pid"])
        assert worker["memory_mb"] == pytest.approx(measured.own_mb, rel=0.2)
        assert worker["memory_mb"] < measured.rss_mb, "pages shared with other Pythons split"

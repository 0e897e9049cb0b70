"""Soak: a long kernel session with faults, a big batch with faulty items, and timeout recovery.

Run: ``python bench/soak.py [--cells 600] [--fault-every 25] [--items 2000] [--fault-rate 0.02]``.
Everything runs on the project's fake REPL (tests/fake_repl.py), through the real kernel process
(jupyter_client) and the real pool. Three parts:

1. Kernel session: ``--cells`` cells (each defines a value and evaluates it against the first
   cell's ``secret``), with a fault every ``--fault-every`` cells, in turn: a crash, a hang past
   ``%timeout``, garbage on stdout, 1 MB on stderr, memory over the limit, the REPL SIGKILLed
   between cells from outside, and an interrupt. Every normal cell must answer its own value
   (else it is *lost*); the kernel must never die; after shutdown no REPL may remain.
2. Batch: ``--items`` commands on a 4-worker ``LeanServerPool``, ``--fault-rate`` of them
   faulty (crash, hang past the per-command timeout, garbage). Every item must finish, every
   normal item must be ``ok`` and no faulty one may be; after close no REPL may remain.
3. Timeout recovery on a document with an expensive header (fake ``import`` cost): how long from
   a runaway cell to the next answer, with the heartbeat limit (Lean stops the command, the REPL
   keeps its state) and with kill-and-replay (the REPL is killed, restarted, the import paid
   again).

The table: deaths, lost cells/items, orphans, kernel and REPL RSS first vs last, recovery times.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
from kernel import Client  # bench/kernel.py: a kernel and a blocking client
from machine import describe_machine  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lean_kernel import LeanREPLConfig, LeanServerPool, Notebook  # noqa: E402
from lean_kernel.cli import install  # noqa: E402
from lean_kernel.engine.resultstore import STORE_ENV_VAR  # noqa: E402

FAKE_REPL = [sys.executable, str(ROOT / "tests" / "fake_repl.py")]
#: The kernel's result cache off: this measures Lean's path (bench/scale.py measures the cache).
NO_CACHE = {STORE_ENV_VAR: "off"}
MEMORY_LIMIT_MB = 400
KERNEL_FAULTS = ("crash", "hang", "garbage", "stderr", "memory", "sigkill", "interrupt")
# What a fault takes by itself (the time limit, the memory growth, the wait before the interrupt):
# not recovery.
INHERENT_S = {"hang": 0.5, "memory": 0.5, "interrupt": 0.3}
BATCH_FAULTS = ("crash", "hang", "garbage")


def repls(marker: str) -> list[psutil.Process]:
    """Live fake REPL processes of this run (their argv or environment carries ``marker``)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        words = [*(proc.info.get("cmdline") or []), *(proc.info.get("environ") or {}).values()]
        is_repl = any("fake_repl.py" in word for word in proc.info.get("cmdline") or [])
        if is_repl and any(marker in word for word in words) and proc.pid != os.getpid():
            found.append(proc)
    return found


def rss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / 2**20


def orphans_after(marker: str, grace_s: float = 5.0) -> int:
    """REPLs of this run still alive ``grace_s`` after their owner closed."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not repls(marker):
            return 0
        time.sleep(0.1)
    return len(repls(marker))


# -- 1. the kernel session ------------------------------------------------------------------------


def fault_cell(kind: str, client: Client, marker: str) -> str:
    """The cell text of a fault (``sigkill`` kills the idle REPL first, then runs a cell)."""
    if kind == "crash":
        return "#fake_crash 3"
    if kind == "hang":
        return "%timeout 0.5\n#fake_hang"
    if kind == "garbage":
        return "#fake_garbage"
    if kind == "stderr":
        return "#fake_stderr 1000000\n#eval 0"
    if kind == "memory":
        return f"#fake_memory {MEMORY_LIMIT_MB * 2} 0.5"
    if kind == "sigkill":
        for proc in repls(marker):
            proc.kill()
        return "#eval 0"
    if kind == "interrupt":
        timer = threading.Timer(0.3, client.km.interrupt_kernel)
        timer.start()
        return "#fake_sleep 5"
    raise ValueError(kind)


def kernel_session(cells: int, fault_every: int) -> dict[str, float]:
    marker = f"soak-{uuid.uuid4().hex}"
    log = Path(tempfile.gettempdir()) / f"{marker}.log"
    env = {
        "FAKE_REPL_ARGS": f"--log {log}",
        "LEAN_KERNEL_MEMORY_LIMIT_MB": str(MEMORY_LIMIT_MB),
    }
    client = Client("lean4", env)
    kernel = psutil.Process(client.km.provisioner.process.pid)
    stats = {"deaths": 0, "lost": 0, "faults": 0, "cells": 0}
    normal: list[float] = []
    recovery: list[float] = []
    try:
        elapsed, reply = client.run("def secret := 1000", "cell-0")
        first_kernel, first_repl = kernel.memory_info().rss / 2**20, rss_mb(repls(marker))
        for k in range(1, cells + 1):
            if k % fault_every == 0:
                kind = KERNEL_FAULTS[(k // fault_every - 1) % len(KERNEL_FAULTS)]
                fault_s, reply = client.run(fault_cell(kind, client, marker), f"fault-{k}")
                stats["faults"] += 1
                # The next normal cell pays whatever recovery is left (a replay after a kill).
                after_s, reply = client.run(f"#eval secret + {k}", f"after-{k}")
                recovery.append(fault_s + after_s - INHERENT_S.get(kind, 0.0))
                if reply.get("status") != "ok":
                    stats["lost"] += 1
            else:
                elapsed, reply = client.run(f"def v{k} := {k}\n#eval v{k} + secret", f"cell-{k}")
                normal.append(elapsed)
                if reply.get("status") != "ok":
                    stats["lost"] += 1
            stats["cells"] += 1
            if not client.km.is_alive():
                stats["deaths"] += 1
                client.km.restart_kernel(now=True)
        last_kernel, last_repl = kernel.memory_info().rss / 2**20, rss_mb(repls(marker))
    finally:
        client.close()
    stats["orphans"] = orphans_after(marker)
    log.unlink(missing_ok=True)
    median = statistics.median(normal)
    stats.update(
        kernel_rss=(first_kernel, last_kernel),
        repl_rss=(first_repl, last_repl),
        normal_ms=median * 1000,
        # Each fault cell and the cell after it, beyond two normal cells and the fault's own wait.
        recovery_s=sum(max(0.0, r - 2 * median) for r in recovery),
    )
    return stats


# -- 2. the batch ---------------------------------------------------------------------------------


def batch_soak(items: int, fault_rate: float) -> dict[str, float]:
    marker = f"soak-{uuid.uuid4().hex}"
    log = Path(tempfile.gettempdir()) / f"{marker}.log"
    config = LeanREPLConfig(repl_command=[*FAKE_REPL, "--log", str(log)])
    every = max(1, round(1 / fault_rate)) if fault_rate > 0 else items + 1
    commands, faulty = [], set()
    for i in range(items):
        if i % every == every - 1:
            kind = BATCH_FAULTS[(i // every) % len(BATCH_FAULTS)]
            faulty.add(i)
            commands.append(
                {"crash": "#fake_crash 3", "hang": "#fake_hang"}.get(kind, "#fake_garbage")
            )
        else:
            commands.append(f"theorem t{i} : {i} + 1 = {i + 1} := rfl")
    started = time.perf_counter()
    with LeanServerPool(config, num_workers=4, cache=False) as pool:  # Lean's path, not the cache
        first_repl = rss_mb(repls(marker))
        handle = pool.submit_batch(commands, timeout_per_cmd=0.5)
        results = handle.result(timeout=1800)
        last_repl = rss_mb(repls(marker))
    wall = time.perf_counter() - started
    lost = sum(1 for item in results if item.status == "pending")
    wrong = sum(
        1
        for item in results
        if (item.index in faulty and item.ok) or (item.index not in faulty and not item.ok)
    )
    log.unlink(missing_ok=True)
    return {
        "items": len(results),
        "faulty": len(faulty),
        "lost": lost,
        "wrong": wrong,
        "orphans": orphans_after(marker),
        "repl_rss": (first_repl, last_repl),
        "wall_s": wall,
        "counts": dict(results.counts()),
    }


# -- 3. timeout recovery --------------------------------------------------------------------------


RUNAWAY = "theorem runaway : True := by\n  #fake_hang\n  trivial"
HEARTBEAT_RATE = 5000  # the fake REPL burns this many heartbeats a second, and the config knows it


def timeout_recovery(import_cost: float, heartbeats: bool, repeats: int) -> float:
    """Median seconds from running a runaway cell (1 s limit) to the next cell's answer, on a
    document whose first cell imports (``import_cost`` seconds): with Lean's heartbeat limit
    first, or with heartbeats off (the wall clock kills the REPL and the document is replayed)."""
    rate = str(HEARTBEAT_RATE)
    flags = ["--import-cost", str(import_cost), "--heartbeat-rate", rate]
    config = LeanREPLConfig(
        repl_command=[*FAKE_REPL, *flags], repl_flavor="fork", heartbeat_rate=HEARTBEAT_RATE
    )
    times = []
    with Notebook(config, timeout=1.0, heartbeats="auto" if heartbeats else "off") as notebook:
        header = notebook.run("import Mathlib", cell_id="header", timeout=60 + import_cost)
        assert not header.has_errors, header
        for k in range(5):
            notebook.run(f"def d{k} := {k}", cell_id=f"d{k}")
        for r in range(repeats):
            started = time.perf_counter()
            runaway = notebook.run(RUNAWAY, cell_id=f"runaway-{r}")
            after = notebook.run(f"#eval d4 + {r}", cell_id=f"after-{r}")
            times.append(time.perf_counter() - started)
            assert runaway.has_errors, runaway  # never ok, whichever limit fired
            assert after.response is not None and not after.has_errors, after
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=600)
    parser.add_argument("--fault-every", type=int, default=25)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--fault-rate", type=float, default=0.02)
    parser.add_argument("--import-cost", type=float, default=3.0, metavar="SECONDS")
    parser.add_argument("--repeats", type=int, default=3, help="runaway cells per recovery mode")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lean-kernel-soak-") as tmp:
        install(prefix=tmp, env={"LEAN_KERNEL_REPL": shlex.join(FAKE_REPL), **NO_CACHE})
        os.environ["JUPYTER_PATH"] = str(Path(tmp) / "share" / "jupyter")
        started = time.perf_counter()
        session = kernel_session(args.cells, args.fault_every)
        session_wall = time.perf_counter() - started
    batch = batch_soak(args.items, args.fault_rate)
    with_heartbeats = timeout_recovery(args.import_cost, True, args.repeats)
    with_kill = timeout_recovery(args.import_cost, False, args.repeats)

    print(f"machine: {describe_machine()}\n")
    k_first, k_last = session["kernel_rss"]
    r_first, r_last = session["repl_rss"]
    print(
        f"kernel session: {session['cells']} cells in {session_wall:.0f} s, "
        f"{session['faults']} faults (one every {args.fault_every}: {', '.join(KERNEL_FAULTS)})"
    )
    rows = [
        ("kernel deaths", f"{session['deaths']}"),
        ("lost cells (a normal cell not answering its value)", f"{session['lost']}"),
        ("REPLs left after shutdown (5 s grace)", f"{session['orphans']}"),
        ("kernel RSS first -> last", f"{k_first:.0f} MB -> {k_last:.0f} MB"),
        ("REPL RSS first -> last", f"{r_first:.0f} MB -> {r_last:.0f} MB"),
        ("median normal cell", f"{session['normal_ms']:.1f} ms"),
        (
            "total recovery time (fault cells and the next, beyond normal)",
            f"{session['recovery_s']:.1f} s",
        ),
    ]
    b_first, b_last = batch["repl_rss"]
    counts = ", ".join(f"{n} {s}" for s, n in sorted(batch["counts"].items()))
    rows += [
        (
            f"batch: {batch['items']} items, {batch['faulty']} faulty, 4 workers",
            f"{batch['wall_s']:.1f} s ({counts})",
        ),
        ("batch: lost items (never finished)", f"{batch['lost']}"),
        ("batch: wrong status (a faulty item ok, or a normal one not)", f"{batch['wrong']}"),
        ("batch: REPLs left after close (5 s grace)", f"{batch['orphans']}"),
        ("batch: REPL RSS first -> last", f"{b_first:.0f} MB -> {b_last:.0f} MB"),
        (
            f"timeout recovery, import {args.import_cost:g} s: heartbeats / kill-and-replay",
            f"{with_heartbeats:.2f} s / {with_kill:.2f} s ({with_kill / with_heartbeats:.1f}x)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()

"""Scale benchmark: one batch of 2000 items sharing a header on threads, Dask and Ray, then again
from the result cache.

Run: ``python bench/scale.py [--items 2000] [--rounds 3] [--engines threads,dask,ray]``
(``--import-cost`` and ``--item-cost`` change the fake REPL's costs). The defaults take 3-5
minutes on a 2-CPU machine, of which ``ray.init`` alone is 15-50 s.

Engines, 4 REPL slots each: the pool's own thread pool (``LeanServerPool(num_workers=4)``), a
Dask ``LocalCluster`` of 2 worker processes x 2 threads (``cluster=Client``), and a local Ray of
2 CPUs (``cluster="ray"``, 4 actors sharing them). Both clusters listen on 127.0.0.1 only.

The run has two parts:

1. The thread pool alone (row ``threads x4, alone``), before any cluster is started: its batch
   wall and its cached re-run on a machine nothing else of this run keeps busy. Idle, the two
   clusters still take CPU (heartbeats, monitors: about 0.14 CPU-seconds a second here, a
   third of it threads of this very process, which contend for its interpreter), and a cached
   re-run is a fraction of a second of CPU work: the thread pool's cached speed-up is the one
   measured here.
2. With the clusters up (started once, kept for the whole part), the rounds of every engine,
   the thread pool included: their background work weighs on every engine alike, so each
   cluster's batch wall is compared with the thread pool's of this part. With ``--engines
   threads`` there is no cluster and no second part.

The REPL is the project's fake (tests/fake_repl.py), given a cost so that the comparison measures
scheduling, not Python start-up: ``--import-cost`` (default 0.5 s) for the header
``import Mathlib``, and a ``#fake_sleep`` line in each item (``--item-cost``, default 20 ms), so
2000 items are about 10 s of work on 4 slots (a sleep costs no CPU: the 4 REPLs fit this 2-CPU
machine). Items are ``import Mathlib`` + one small theorem each; every one must check (``ok``).
Header elaborations are the requests whose ``cmd`` starts with ``import`` in the fake REPL's
``--log`` of the pool.

What is timed, per engine and round, on a new pool with a new (empty) result store in a temporary
folder:

- batch wall: from making the pool to ``run_batch`` returning. It counts starting the 4 REPLs and
  elaborating the header for every engine alike (the thread pool starts its REPLs in its
  constructor; the clusters' slots start theirs in their first job). Cluster start-up is NOT
  counted: the Dask ``LocalCluster`` (and its workers' first import of lean_kernel) and
  ``ray.init`` are started once before the rounds of part 2, and Ray's per-pool actors are
  waited for (``pool.status()`` answering from every actor) before the clock starts; those times
  are reported on their own lines.
- cached re-run: the same 2000 items again on the same pool, answered from the result store the
  first batch filled (``worker == "cache"``); its wall and speed-up over that engine's batch wall.
  It is a fraction of a second of CPU work, so a busy moment of the machine moves it a lot: it is
  run ``CACHED_REPEATS`` times per round, and the table gives the median of all those runs.

Before each timed section the garbage of the earlier ones is collected (``gc.collect()``): a
full collection walks every object of the process (Dask's and Ray's modules, the batches kept),
about 0.1 s here, and would otherwise land in whichever section crosses the collector's
threshold. The collections a section's own objects cause are counted in it.

Rounds alternate the order of the engines so machine noise hits all of them alike; the table
gives medians. Goals: each cluster's batch wall at most 1.15x the thread pool's (ratio of the
medians, part 2), the cached re-run at least 100x faster than the first run (each row: the
thread pool's from part 1, each cluster's from part 2; the thread pool's of part 2 is shown
too). A missed goal is a result (``MISSES`` in the verdicts, exit 0); an item that does not
check, or a cached re-run whose statuses differ from the first run's, makes the run invalid
(exit 1).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machine import describe_machine  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Never the user's ~/.cache: every pool below gets its own store file in a temporary folder.
os.environ["LEAN_KERNEL_RESULT_CACHE"] = "off"

from lean_kernel import LeanREPLConfig, LeanServerPool  # noqa: E402
from lean_kernel.batch.caching import CACHE_WORKER  # noqa: E402

FAKE_REPL = ROOT / "tests" / "fake_repl.py"
ENGINES = ("threads", "dask", "ray")
HEADER = "import Mathlib\n"
SLOTS = 4
#: A cluster's batch wall over the thread pool's, at most.
CLUSTER_GOAL = 1.15
#: The first run's wall over the cached re-run's, at least.
CACHE_GOAL = 100.0
#: Cached re-runs per round (each one the same items from the store); the median of all counts.
CACHED_REPEATS = 3
#: Seconds Ray's actors of a new pool get to come up before the run is abandoned.
ACTOR_START_LIMIT_S = 120.0


def make_commands(n: int, item_cost: float) -> list[str]:
    """``n`` distinct theorems on one header, each costing ``item_cost`` seconds in the fake."""
    return [
        f"{HEADER}theorem t{i} : {i} + 0 = {i} := by\n  #fake_sleep {item_cost}\n  rfl"
        for i in range(n)
    ]


def header_runs(log: Path) -> int:
    """Header elaborations the fake REPL logged: requests whose ``cmd`` starts with import."""
    import json

    if not log.exists():
        return 0
    requests = (json.loads(line)["request"] for line in log.read_text().splitlines() if line)
    return sum(1 for r in requests if r.get("cmd", "").startswith("import"))


# -- clusters ----------------------------------------------------------------------------------


@dataclass
class Clusters:
    """The clusters of the run, what ``cluster=`` is given for each engine, their start-up."""

    specs: dict[str, Any] = field(default_factory=dict)
    startup: list[tuple[str, float]] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def _import_lean_kernel_remote() -> None:
    """Runs on each Dask worker: what its first job would import (start-up, not batch work)."""
    import lean_kernel.batch.remote  # noqa: F401


def start_clusters(engines: list[str]) -> Clusters:
    clusters = Clusters()
    try:
        if "dask" in engines:
            import distributed

            # The scheduler's own HTTP server (health, metrics) binds 127.0.0.1 too; when another
            # cluster on this machine holds its usual port it takes a free one, which is fine.
            warnings.filterwarnings("ignore", message="Port 8787 is already in use")
            start = time.perf_counter()
            cluster = distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=2,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            clusters.closers.append(cluster.close)
            client = distributed.Client(cluster, set_as_default=False)
            clusters.closers.append(client.close)
            clusters.startup.append(
                ("Dask LocalCluster(2x2) + client", time.perf_counter() - start)
            )
            start = time.perf_counter()
            client.run(_import_lean_kernel_remote)
            clusters.startup.append(
                ("Dask workers import lean_kernel", time.perf_counter() - start)
            )
            clusters.specs["dask"] = client
        if "ray" in engines:
            # Before anything imports ray: it binds loopback only when started this way.
            from lean_kernel.batch.engines.ray import start_local_ray

            start = time.perf_counter()
            start_local_ray(num_cpus=2)
            import ray

            clusters.closers.append(ray.shutdown)
            clusters.startup.append(("ray.init (2 CPUs)", time.perf_counter() - start))
            clusters.specs["ray"] = "ray"
    except BaseException:
        clusters.close()
        raise
    return clusters


def wait_for_actors(pool: LeanServerPool) -> None:
    """Until every slot's Ray actor answers (each status call waits for its actor to start)."""
    deadline = time.monotonic() + ACTOR_START_LIMIT_S
    while True:
        rows = pool.status()["remote_workers"]
        errors = [row["error"] for row in rows if row["error"] is not None]
        if not errors:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ray actors not up after {ACTOR_START_LIMIT_S:.0f} s: {errors}")


# -- one round of one engine -------------------------------------------------------------------


@dataclass
class Round:
    """What one engine did in one round."""

    wall: float
    cached_walls: list[float]
    cache_hits: int
    headers: int
    headers_cached: int
    actor_start: float | None
    bad: list[str]


def run_round(
    engine: str, spec: Any, commands: list[str], flags: list[str], folder: Path, tag: str
) -> Round:
    log = folder / f"{engine}-{tag}.log"
    store = folder / f"{engine}-{tag}.sqlite3"
    config = LeanREPLConfig(
        repl_command=[sys.executable, str(FAKE_REPL), *flags, "--log", str(log)]
    )
    actor_start = None
    gc.collect()  # the garbage of earlier sections is theirs (see the docstring)
    start = time.perf_counter()
    pool = LeanServerPool(config, num_workers=SLOTS, cluster=spec, cache=store)
    try:
        if engine == "ray":
            wait_for_actors(pool)
            actor_start = time.perf_counter() - start
            gc.collect()
            start = time.perf_counter()
        first = pool.run_batch(commands).results
        wall = time.perf_counter() - start
        headers = header_runs(log)
        cached_walls: list[float] = []
        reruns = []
        for _ in range(CACHED_REPEATS):
            gc.collect()
            start = time.perf_counter()
            reruns.append(pool.run_batch(commands).results)
            cached_walls.append(time.perf_counter() - start)
        headers_cached = header_runs(log) - headers
    finally:
        pool.close()
    bad = [f"item {r.index}: {r.status} {r.first_message()}" for r in first if r.status != "ok"]
    if any(again.statuses != first.statuses for again in reruns):
        bad.append("a cached re-run's statuses differ from the first run's")
    return Round(
        wall=wall,
        cached_walls=cached_walls,
        cache_hits=min(sum(1 for r in again if r.worker == CACHE_WORKER) for again in reruns),
        headers=headers,
        headers_cached=headers_cached,
        actor_start=actor_start,
        bad=bad,
    )


# -- the table ---------------------------------------------------------------------------------

LABELS = {"threads": "threads x4", "dask": "Dask 2x2", "ray": "Ray 2 CPUs x4"}
#: The row of the thread pool measured before any cluster started (part 1).
ALONE = "threads x4, alone"


def print_table(rows: dict[str, list[Round]], n: int) -> list[str]:
    """The table of medians, one row per label (``ALONE`` and the engines' `LABELS`); returns
    the verdict lines."""
    wall = {row: statistics.median(r.wall for r in rs) for row, rs in rows.items()}
    cached = {
        row: statistics.median(w for r in rs for w in r.cached_walls) for row, rs in rows.items()
    }
    threads = LABELS["threads"]
    base = wall.get(threads)
    head = (
        f"{'engine':<19}{'wall s':>8}{'vs thr.':>9}{'headers':>9}{'items/s':>9}"
        f"{'| cached s':>11}{'speed-up':>10}{'hits':>7}{'headers':>9}"
    )
    print(head)
    print("-" * len(head))
    for row, rs in rows.items():
        ratio = f"{wall[row] / base:.3f}x" if base and row != ALONE else "-"
        headers = "/".join(str(r.headers) for r in rs)
        hits = min(r.cache_hits for r in rs)
        headers_cached = max(r.headers_cached for r in rs)
        print(
            f"{row:<19}{wall[row]:>8.2f}{ratio:>9}{headers:>9}"
            f"{n / wall[row]:>9.0f}{'| ':>3}{cached[row]:>8.3f}"
            f"{wall[row] / cached[row]:>9.0f}x{hits:>7}{headers_cached:>9}"
        )
    print(
        "wall: median batch wall (pool made -> run_batch returned; REPL start and header "
        "included,\n  cluster and Ray actor start-up not); vs thr.: wall over the threads x4 "
        f"row's;\n  headers: header elaborations per round; cached: median of "
        f"{CACHED_REPEATS} re-runs a round of the same\n  items on the same pool from the "
        "result cache; hits: fewest items answered from it in a\n  re-run; headers: most "
        "elaborations the re-runs of a round added"
    )
    if ALONE in rows:
        print(f"{ALONE}: the thread pool before any cluster started")
    verdicts = []
    if base:
        for row in (LABELS[e] for e in ("dask", "ray") if LABELS[e] in rows):
            ratio = wall[row] / base
            verdict = "meets" if ratio <= CLUSTER_GOAL else "MISSES"
            over = "" if ratio <= CLUSTER_GOAL else f" by {ratio / CLUSTER_GOAL - 1:.1%}"
            verdicts.append(
                f"{row}: {ratio:.3f}x the thread pool's wall, {verdict} the "
                f"<= {CLUSTER_GOAL}x goal{over}"
            )
    # The thread pool's cached speed-up is judged alone (part 1); its part-2 row is in the table.
    judged = [row for row in rows if row != threads or ALONE not in rows]
    for row in judged:
        speedup = wall[row] / cached[row]
        verdict = "meets" if speedup >= CACHE_GOAL else "MISSES"
        short = "" if speedup >= CACHE_GOAL else f" (needs {wall[row] / CACHE_GOAL:.3f} s)"
        verdicts.append(
            f"{row} cached re-run: {speedup:.0f}x faster than the first run, "
            f"{verdict} the >= {CACHE_GOAL:.0f}x goal{short}"
        )
    return verdicts


def parse_engines(text: str) -> list[str]:
    engines = [word.strip() for word in text.split(",") if word.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise argparse.ArgumentTypeError(
            f"give a comma-separated list of {', '.join(ENGINES)} (got {text!r})"
        )
    return engines


def report_round(row: str, index: int, result: Round) -> None:
    """One line as a round ends, so a long run shows where it is."""
    actors = (
        f", actors up in {result.actor_start:.2f} s (not counted)"
        if result.actor_start is not None
        else ""
    )
    print(
        f"  round {index + 1} {row:<18} {result.wall:6.2f} s, "
        f"cached {statistics.median(result.cached_walls):.3f} s ({result.cache_hits} hits), "
        f"{result.headers} header elaborations{actors}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000, help="items in the batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES), type=parse_engines)
    parser.add_argument("--import-cost", type=float, default=0.5, help="seconds per header")
    parser.add_argument("--item-cost", type=float, default=0.02, help="seconds per item")
    args = parser.parse_args()
    if args.items < 1 or args.rounds < 1:
        parser.error("--items and --rounds must be at least 1")

    commands = make_commands(args.items, args.item_cost)
    flags = ["--import-cost", str(args.import_cost)]
    work = args.import_cost + args.items * args.item_cost / SLOTS
    print(f"machine: {describe_machine()}")
    print(
        f"{args.items} items sharing {HEADER.strip()!r} on {SLOTS} slots, {args.rounds} rounds; "
        f"fake REPL: header {args.import_cost:g} s, item {args.item_cost * 1000:g} ms "
        f"(sleep-only work: {work:.1f} s)"
    )
    clustered = [engine for engine in args.engines if engine != "threads"]
    rows: dict[str, list[Round]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        if "threads" in args.engines:
            # Part 1: no cluster exists yet (nor has Dask or Ray been imported).
            row = ALONE if clustered else LABELS["threads"]
            print("the thread pool, before any cluster starts:", flush=True)
            for index in range(args.rounds):
                result = run_round("threads", None, commands, flags, Path(tmp), f"alone{index}")
                rows.setdefault(row, []).append(result)
                report_round(row, index, result)
        if clustered:
            run_with_clusters(args.engines, args.rounds, commands, flags, Path(tmp), rows)

    print()
    verdicts = print_table(rows, args.items)
    actor_starts = [r.actor_start for r in rows.get(LABELS["ray"], []) if r.actor_start is not None]
    if actor_starts:
        print(
            f"Ray actors of a new pool up in {statistics.median(actor_starts):.2f} s "
            "(median, not counted)"
        )
    print()
    for line in verdicts:
        print(line)
    bad = [f"{row}: {b}" for row, rs in rows.items() for r in rs for b in r.bad]
    if bad:
        print(f"\nINVALID RUN: {len(bad)} problems, e.g.:")
        for line in bad[:10]:
            print(f"  {line}")
        return 1
    return 0


def run_with_clusters(
    engines: list[str],
    rounds: int,
    commands: list[str],
    flags: list[str],
    folder: Path,
    rows: dict[str, list[Round]],
) -> None:
    """Part 2: the clusters started once, then ``rounds`` rounds of every engine (rows by
    `LABELS`), the order rotated each round so no engine always runs first."""
    clusters = start_clusters(engines)
    try:
        print("with the clusters up:")
        for label, seconds in clusters.startup:
            print(f"  start-up (not counted): {label}: {seconds:.2f} s", flush=True)
        for index in range(rounds):
            shift = index % len(engines)
            for engine in engines[shift:] + engines[:shift]:
                spec = clusters.specs.get(engine)
                result = run_round(engine, spec, commands, flags, folder, str(index))
                rows.setdefault(LABELS[engine], []).append(result)
                report_round(LABELS[engine], index, result)
    finally:
        clusters.close()


if __name__ == "__main__":
    sys.exit(main())

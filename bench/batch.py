"""Batch benchmark: many commands sharing an ``import Mathlib`` header, against the ideal.

Run: ``python bench/batch.py [--n 200] [--workers 4] [--import-cost 1.0] [--char-cost 5e-5]``.

Every client checks the same commands (``import Mathlib`` + one theorem each) with the project's
fake REPL (tests/fake_repl.py), which sleeps by a cost model: ``--import-cost`` seconds for an
``import`` command, ``--char-cost`` seconds per character elaborated; on the ``fork`` flavour
with ``incrementality``, a prefix shared with an earlier command on the same env is free. The
ideal wall time from that model is what a perfect scheduler pays: every worker elaborates the
header once, in parallel, and the bodies are spread evenly::

    ideal = import_cost + char_cost * len(header) + char_cost * sum(len(body)) / workers

(On the fork with incrementality, bodies sharing a prefix such as ``theorem add_comm_`` cost a
little less than that, so ratios slightly under 1 are possible there.)

Rows: lean_kernel's ``LeanServerPool.run_batch`` on both REPL flavours, with incrementality on
and off, and LeanInteract's ``LeanServerPool.run_batch`` with the same settings. LeanInteract
runs in its own environment, never the project's: ``bench/.venv``, made on first use with
``python -m venv bench/.venv && bench/.venv/bin/pip install lean-interact==0.11.6`` (or pass
``--leaninteract-python PATH``; ``--skip-leaninteract`` leaves those rows out). It is pointed at
the fake REPL through ``local_repl_path`` (a folder whose ``.lake/build/bin/repl`` execs the fake)
and ``lake_path`` (a fake ``lake``: ``lake env CMD...`` execs CMD, ``lake build`` does nothing,
``lake --version`` prints one), which is how LeanInteract starts a REPL.

Timing starts once the pool's REPL processes have started (a one-second settle after the pool is
made, the same for every client) and ends when ``run_batch`` returns. lean_kernel's result cache
is off (bench/scale.py measures it). Goal: lean_kernel within 1.15x of the ideal on both flavours.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe_machine  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
FAKE_REPL = ROOT / "tests" / "fake_repl.py"
BENCH_VENV = ROOT / "bench" / ".venv"
LEANINTERACT_VERSION = "0.11.6"
HEADER = "import Mathlib\n"
GOAL = 1.15
SETTLE_S = 1.0


def make_commands(n: int) -> list[str]:
    statement = "theorem add_comm_{i} (a b c : Nat) : a + b + c + {i} = c + b + a + {i} := by omega"
    return [HEADER + statement.format(i=i) for i in range(n)]


def ideal_seconds(commands: list[str], workers: int, import_cost: float, char_cost: float) -> float:
    bodies = sum(len(c) - len(HEADER) for c in commands)
    return import_cost + char_cost * len(HEADER) + char_cost * bodies / workers


def fake_flags(flavor: str, import_cost: float, char_cost: float) -> list[str]:
    return ["--flavor", flavor, "--import-cost", str(import_cost), "--char-cost", str(char_cost)]


# -- lean_kernel -------------------------------------------------------------------------------


def run_lean_kernel(
    commands: list[str], workers: int, flags: list[str], incremental: bool
) -> tuple[float, int]:
    """(wall seconds of run_batch, number of items that did not check)."""
    sys.path.insert(0, str(ROOT))
    from lean_kernel import LeanREPLConfig, LeanServerPool

    config = LeanREPLConfig(
        repl_command=[sys.executable, str(FAKE_REPL), *flags],
        enable_incremental_optimization=incremental,
    )
    # cache=False: a second run would be answered from the first one's results
    with LeanServerPool(config, num_workers=workers, cache=False) as pool:
        time.sleep(SETTLE_S)
        start = time.perf_counter()
        responses = pool.run_batch(commands)
        wall = time.perf_counter() - start
    failed = sum(1 for r in responses if isinstance(r, Exception) or r.has_errors())
    return wall, failed


# -- LeanInteract, in its own environment ------------------------------------------------------


def fake_toolchain(folder: Path, flags: list[str]) -> tuple[Path, Path]:
    """A REPL checkout whose binary execs the fake REPL, and a fake ``lake``."""
    repl_dir = folder / "repl"
    binary = repl_dir / ".lake" / "build" / "bin" / "repl"
    binary.parent.mkdir(parents=True)
    (repl_dir / "lean-toolchain").write_text("leanprover/lean4:v4.19.0\n")
    command = shlex.join([sys.executable, str(FAKE_REPL), *flags])
    binary.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    lake = folder / "lake"
    lake.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  env) shift; exec "$@" ;;\n'
        "  build) exit 0 ;;\n"
        '  --version) echo "Lake version 5.0.0 (fake, for bench/batch.py)"; exit 0 ;;\n'
        '  *) echo "fake lake: unsupported: $*" >&2; exit 1 ;;\n'
        "esac\n"
    )
    for script in (binary, lake):
        script.chmod(0o755)
    return repl_dir, lake


def leaninteract_python(given: str | None) -> str | None:
    """The interpreter that has LeanInteract: given, or bench/.venv (made on first use)."""
    if given:
        return given
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        print(f"making {BENCH_VENV} with lean-interact=={LEANINTERACT_VERSION} ...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    f"lean-interact=={LEANINTERACT_VERSION}",
                ],
                check=True,
            )
        except (OSError, subprocess.CalledProcessError) as err:
            print(f"could not install lean-interact ({err}); skipping its rows")
            return None
    return str(python)


def run_leaninteract(
    python: str, commands: list[str], workers: int, flags: list[str], incremental: bool
) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="bench-li-") as tmp:
        repl_dir, lake = fake_toolchain(Path(tmp), flags)
        spec = {
            "repl_dir": str(repl_dir),
            "lake": str(lake),
            "commands": commands,
            "workers": workers,
            "incremental": incremental,
        }
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec))
        out = subprocess.run(
            [python, __file__, "--leaninteract-child", str(spec_file)],
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp,
        )
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    return answer["wall"], answer["failed"]


def leaninteract_child(spec_file: str) -> None:
    """Runs in LeanInteract's environment: one timed run_batch, printed as JSON."""
    from lean_interact import Command, LeanREPLConfig, LeanServerPool

    spec = json.loads(Path(spec_file).read_text())
    config = LeanREPLConfig(
        local_repl_path=spec["repl_dir"],
        lake_path=spec["lake"],
        enable_incremental_optimization=spec["incremental"],
        verbose=False,
    )
    pool = LeanServerPool(config, num_workers=spec["workers"])
    try:
        time.sleep(SETTLE_S)
        start = time.perf_counter()
        responses = pool.run_batch([Command(cmd=c) for c in spec["commands"]])
        wall = time.perf_counter() - start
    finally:
        pool.close()
    failed = sum(
        1 for r in responses if isinstance(r, Exception) or not hasattr(r, "env") or r.has_errors()
    )
    print(json.dumps({"wall": wall, "failed": failed}))


# -- the table ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--import-cost", type=float, default=1.0)
    parser.add_argument("--char-cost", type=float, default=5e-5)
    parser.add_argument("--leaninteract-python")
    parser.add_argument("--skip-leaninteract", action="store_true")
    parser.add_argument("--leaninteract-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.leaninteract_child:
        leaninteract_child(args.leaninteract_child)
        return 0

    commands = make_commands(args.n)
    ideal = ideal_seconds(commands, args.workers, args.import_cost, args.char_cost)
    body_ms = args.char_cost * (len(commands[0]) - len(HEADER)) * 1000
    print(f"machine: {describe_machine()}")
    print(
        f"{args.n} commands sharing {HEADER.strip()!r} on {args.workers} workers; fake REPL: "
        f"import {args.import_cost:g} s, {body_ms:.1f} ms per body; ideal {ideal:.2f} s\n"
    )
    python = None if args.skip_leaninteract else leaninteract_python(args.leaninteract_python)
    configurations = [("fork", True), ("fork", False), ("upstream", True)]
    rows = []
    ours: dict[tuple[str, bool], float] = {}
    for flavor, incremental in configurations:
        flags = fake_flags(flavor, args.import_cost, args.char_cost)
        wall, failed = run_lean_kernel(commands, args.workers, flags, incremental)
        ours[(flavor, incremental)] = wall
        rows.append(("lean_kernel", flavor, incremental, wall, failed))
        print(
            f"  lean_kernel  {flavor:8} incrementality {'on ' if incremental else 'off'}  "
            f"{wall:6.2f} s",
            flush=True,
        )
    if python is not None:
        for flavor, incremental in configurations:
            flags = fake_flags(flavor, args.import_cost, args.char_cost)
            wall, failed = run_leaninteract(python, commands, args.workers, flags, incremental)
            rows.append(("LeanInteract", flavor, incremental, wall, failed))
            print(
                f"  LeanInteract {flavor:8} incrementality {'on ' if incremental else 'off'}  "
                f"{wall:6.2f} s",
                flush=True,
            )

    print()
    head = f"{'client':13} {'REPL':9} {'incr.':5} {'wall s':>7} {'/ideal':>7} {'/ours':>6} failed"
    print(head)
    print("-" * len(head))
    for client, flavor, incremental, wall, failed in rows:
        vs_ours = wall / ours[(flavor, incremental)]
        print(
            f"{client:13} {flavor:9} {'on' if incremental else 'off':5} {wall:7.2f} "
            f"{wall / ideal:7.2f} {vs_ours:6.2f} {failed:6d}"
        )
    print("(the upstream REPL ignores incrementality; the fork reuses a shared prefix with it on)")
    worst = max(ours.values()) / ideal
    verdict = "meets" if worst <= GOAL else "MISSES"
    print(f"\nideal {ideal:.2f} s; lean_kernel's worst ratio {worst:.2f} {verdict} the goal {GOAL}")
    return 0 if worst <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())

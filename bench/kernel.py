"""Kernel benchmark: what the Lean kernel costs per cell, and what an edited re-run costs.

Run: ``python bench/kernel.py [--n 60] [--rounds 3]``. Everything goes through jupyter_client, as
a notebook frontend talks to a kernel; the Lean kernel runs the project's fake REPL
(tests/fake_repl.py), installed for the run in a temporary JUPYTER_PATH.

1. Per-cell overhead: the median round trip (execute_request until the kernel is idle again) of a
   trivial Lean cell (``#eval N``, a new cell each time), against a ``pass`` cell on the python3
   ipykernel, alternating rounds so machine noise hits both alike. Goal: at most 1.3x.
2. Edited re-run: a 30-cell notebook whose first cell imports Mathlib (fake ``--import-cost 1.0``,
   ``--char-cost`` so a cell costs about 50 ms, like a small Mathlib lemma). Cell 20 is edited and
   run again; its round trip is compared with that cell's own elaboration (the same text sent
   straight to a REPL, on the env of cell 19; goal: at most 1.2x) and with re-sending the whole
   document (goal: at least 10x faster).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from machine import describe_machine  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jupyter_client.manager import KernelManager  # noqa: E402

from lean_kernel import Command, LeanREPLConfig, LeanServer  # noqa: E402
from lean_kernel.cli import install  # noqa: E402
from lean_kernel.engine.resultstore import STORE_ENV_VAR  # noqa: E402

FAKE_REPL = [sys.executable, str(ROOT / "tests" / "fake_repl.py")]
#: The kernel's result cache off: this measures Lean's path (bench/scale.py measures the cache).
NO_CACHE = {STORE_ENV_VAR: "off"}
IMPORT_COST_S = 1.0
CHAR_COST_S = 2.5e-4  # a 200-character cell costs 50 ms, a small Mathlib lemma
EDITED = 20


class Client:
    """A started kernel and a blocking client; ``run`` times one cell until the kernel is idle."""

    def __init__(self, kernel_name: str, env: dict[str, str] | None = None) -> None:
        self.km = KernelManager(kernel_name=kernel_name)
        self.km.start_kernel(env={**os.environ, **(env or {})})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, cell_id: str | None = None) -> tuple[float, dict[str, Any]]:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.kc.session.msg("execute_request", content)
        if cell_id is not None:
            msg["metadata"]["cellId"] = cell_id
        msg_id = msg["header"]["msg_id"]
        start = time.perf_counter()
        self.kc.shell_channel.send(msg)
        while True:
            reply = self.kc.get_shell_msg(timeout=120)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        while True:
            status = self.kc.get_iopub_msg(timeout=120)
            if (
                status["parent_header"].get("msg_id") == msg_id
                and status["msg_type"] == "status"
                and status["content"]["execution_state"] == "idle"
            ):
                break
        return time.perf_counter() - start, reply["content"]

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.request_shutdown()
        self.km.finish_shutdown(waittime=10)
        self.km.cleanup_resources()


def overhead(n: int, rounds: int, fake_env: dict[str, str]) -> tuple[float, float]:
    """Median round trips (s) of a trivial Lean cell and of a python ``pass`` cell."""
    lean = Client("lean4", fake_env)
    python = Client("python3")
    lean_times: list[float] = []
    python_times: list[float] = []
    try:
        for _ in range(3):  # warm both up
            lean.run("#eval 0", uuid.uuid4().hex)
            python.run("pass")
        for round_ in range(rounds):
            for i in range(n):
                lean_times.append(lean.run(f"#eval {round_ * n + i}", uuid.uuid4().hex)[0])
                python_times.append(python.run("pass")[0])
    finally:
        lean.close()
        python.close()
    return statistics.median(lean_times), statistics.median(python_times)


def notebook_cells() -> list[str]:
    """A 30-cell notebook: Mathlib imported, then definitions, lemmas and evals of a few lines."""
    cells = ["import Mathlib\nopen Nat"]
    for k in range(1, 30):
        cells.append(
            f"/-- Step {k} of the development: a function and a fact about it. -/\n"
            f"def f{k} (n : Nat) : Nat := {k} * n + {k}\n\n"
            f"theorem f{k}_pos (n : Nat) : 0 < f{k} n := by\n"
            f"  unfold f{k}\n"
            f"  omega\n\n"
            f"#eval f{k} {k}"
        )
    return cells


def edit(cell: str, r: int) -> str:
    """Cell 20 with its last line changed (the typical edit); ``r`` makes each edit new."""
    return cell.replace(f"#eval f{EDITED - 1}", f"#eval {r} + f{EDITED - 1}")


def edited_rerun(fake_env: dict[str, str], repeats: int) -> dict[str, float]:
    """Round trips of an edited cell 20, against its own elaboration and the whole document.

    The kernel re-run and the REPL-alone elaboration alternate, so machine noise hits both.
    """
    cells = notebook_cells()
    ids = [f"cell-{i}" for i in range(len(cells))]
    flags = shlex.split(fake_env["FAKE_REPL_ARGS"])
    config = LeanREPLConfig(repl_command=[*FAKE_REPL, *flags])
    kernel = Client("lean4", fake_env)
    times: dict[str, list[float]] = {"rerun": [], "own": [], "recheck": [], "reuse": []}
    try:
        for cell_id, text in zip(ids, cells, strict=True):
            elapsed, _ = kernel.run(text, cell_id)
        first_run = [elapsed]
        with LeanServer(config) as server:
            env = None
            for text in cells[: EDITED - 1]:
                env = server.run(Command(cmd=text, env=env)).env
            for r in range(repeats):
                elapsed, reply = kernel.run(edit(cells[EDITED - 1], r), ids[EDITED - 1])
                assert reply["status"] == "ok", reply
                times["rerun"].append(elapsed)
                start = time.perf_counter()
                server.run(Command(cmd=edit(cells[EDITED - 1], r), env=env, incrementality=False))
                times["own"].append(time.perf_counter() - start)
                # What the edit costs later: cells 21..30 are re-checked before a new cell runs.
                times["recheck"].append(kernel.run(f"#eval {r}", uuid.uuid4().hex)[0])
            document = "\n\n".join(cells)
            server.run(Command(cmd=document))
            for r in range(3):
                edited = "\n\n".join(
                    [*cells[: EDITED - 1], edit(cells[EDITED - 1], r), *cells[EDITED:]]
                )
                start = time.perf_counter()
                server.run(Command(cmd=edited))  # the fork reuses the unchanged prefix
                times["reuse"].append(time.perf_counter() - start)
    finally:
        kernel.close()
    whole = []
    for _ in range(3):
        with LeanServer(config) as server:
            start = time.perf_counter()
            server.run(Command(cmd="\n\n".join(cells), incrementality=False))
            whole.append(time.perf_counter() - start)
    result = {name: statistics.median(values) for name, values in times.items()}
    result["whole"] = statistics.median(whole)
    result["first"] = first_run[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="cells per round (overhead)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20, help="edited re-runs of cell 20")
    parser.add_argument("--import-cost", type=float, default=IMPORT_COST_S, metavar="SECONDS")
    parser.add_argument("--char-cost", type=float, default=CHAR_COST_S, metavar="SECONDS")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lean-kernel-bench-") as tmp:
        install(prefix=tmp, env={"LEAN_KERNEL_REPL": shlex.join(FAKE_REPL), **NO_CACHE})
        os.environ["JUPYTER_PATH"] = str(Path(tmp) / "share" / "jupyter")
        lean, python = overhead(args.n, args.rounds, {"FAKE_REPL_ARGS": ""})
        costs = f"--import-cost {args.import_cost} --char-cost {args.char_cost}"
        edit = edited_rerun({"FAKE_REPL_ARGS": costs}, args.repeats)

    rows = [
        (
            "trivial Lean cell / python `pass` cell",
            f"{lean * 1000:.2f} ms / {python * 1000:.2f} ms",
            lean / python,
            "<= 1.3x",
        ),
        (
            f"edited re-run of cell {EDITED} / its own elaboration (REPL alone)",
            f"{edit['rerun'] * 1000:.2f} ms / {edit['own'] * 1000:.2f} ms",
            edit["rerun"] / edit["own"],
            "<= 1.2x",
        ),
        (
            f"whole document re-sent / edited re-run of cell {EDITED}",
            f"{edit['whole'] * 1000:.0f} ms / {edit['rerun'] * 1000:.2f} ms",
            edit["whole"] / edit["rerun"],
            ">= 10x",
        ),
        (
            f"(info) edited re-run / first run of cell {EDITED}, both via the kernel",
            f"{edit['rerun'] * 1000:.2f} ms / {edit['first'] * 1000:.2f} ms",
            edit["rerun"] / edit["first"],
            "",
        ),
        (
            "(info) whole edited document, fork reusing its prefix / re-run",
            f"{edit['reuse'] * 1000:.1f} ms / {edit['rerun'] * 1000:.2f} ms",
            edit["reuse"] / edit["rerun"],
            "",
        ),
        (
            f"(info) next new cell, re-checking cells {EDITED + 1}-30 / re-run",
            f"{edit['recheck'] * 1000:.1f} ms / {edit['rerun'] * 1000:.2f} ms",
            edit["recheck"] / edit["rerun"],
            "",
        ),
    ]
    cells = notebook_cells()
    print(f"machine: {describe_machine()}")
    print(
        f"fake REPL costs for the notebook: import {args.import_cost} s, "
        f"{args.char_cost * 1e6:.0f} us per character (cell {EDITED}: {len(cells[EDITED - 1])} "
        f"characters); {args.rounds} x {args.n} trivial cells; {args.repeats} edited re-runs\n"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'times':>26}  {'ratio':>8}  {'goal':>8}  met")
    for name, times, ratio, goal in rows:
        met = ""
        if goal:
            bound = float(goal[3:-1])
            met = "yes" if (ratio <= bound if goal.startswith("<=") else ratio >= bound) else "NO"
        print(f"{name:<{width}}  {times:>26}  {ratio:>7.2f}x  {goal:>8}  {met}")


if __name__ == "__main__":
    main()

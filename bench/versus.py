"""Run a benchmark on an earlier revision and on this tree, alternating, in one run.

Run: ``python bench/versus.py REV bench/engine.py [--rounds 3] [-- ARGS...]``. REV (a commit, tag
or branch) is checked out into a temporary git worktree; the benchmark script is then run
``--rounds`` times from each tree in turn (before, after, before, after ...), so machine noise
hits both alike, each with ``PYTHONPATH`` pointing at its own tree (kernels the benchmark starts
inherit it). Every run's output is printed under a heading; the benchmark's own table is the
measurement, this script only makes the two sides share one run and one machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import describe_machine  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]


def run(tree: Path, script: str, args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run(
        [sys.executable, str(tree / script), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    out = result.stdout + (f"\n[stderr]\n{result.stderr}" if result.returncode else "")
    return out.strip() + (f"\n[exit {result.returncode}]" if result.returncode else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the earlier revision, e.g. HEAD~3 or a commit")
    parser.add_argument("script", help="the benchmark, relative to the tree, e.g. bench/engine.py")
    parser.add_argument("--rounds", type=int, default=2)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    options = parser.parse_args(argv[:split])
    args = argv[split + 1 :]  # after --: the benchmark's own arguments
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory(prefix="lean-kernel-versus-") as tmp:
        before = Path(tmp) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(before), options.rev],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            for round_number in range(1, options.rounds + 1):
                for name, tree in (
                    (f"before ({options.rev})", before),
                    ("after (this tree)", ROOT),
                ):
                    print(f"\n=== round {round_number}: {name} ===", flush=True)
                    print(run(tree, options.script, args), flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False
            )


if __name__ == "__main__":
    main()

"""Engine round-trip benchmark: what LeanServer adds to one request, measured side by side.

Run: ``python bench/engine.py [--n 3000] [--rounds 5]``. Every client sends trivial commands,
one at a time, after one untimed request (so the REPL's start-up is not counted); rounds
alternate between the clients (each round starting with another) so machine noise hits all of
them alike, and the table gives the median requests per second and the ratios:

- line echo: a bare subprocess that echoes one line (the floor of any pipe round trip);
- minimal client: a competent hand-written protocol client (``json.dumps`` + blank line out,
  written and flushed; lines read from a buffered pipe up to the blank line; ``json.loads``);
- LeanServer / AutoLeanServer: the engine, typed requests and responses, started through the
  ordinary config (``LeanREPLConfig(repl_command=...)``); "timeout + cancel" is AutoLeanServer
  with both on every request, as batch workers send them (the REPL is then polled, not just read).

The headline REPL is bench/zero_repl.py, which answers without parsing anything, so the
ratios show the client's own cost; the rows on the project's fake REPL (tests/fake_repl.py,
which parses each request as the real one does) show how much of that a REPL with some work
of its own hides. Goal: AutoLeanServer on the zero-cost REPL takes at most 1.25x the minimal
client's time per request.

Reading it: a round trip between two processes runs in one of two regimes, and a run can land
in either: both on one CPU (about 15 µs here, the client's own cost counts fully), or on two,
each woken by an interrupt (60-100 µs on a small VM, where that cost is mostly hidden). So
compare rows of one table; run it several times before trusting a ratio near the goal.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from machine import describe_machine  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lean_kernel import AutoLeanServer, Command, LeanREPLConfig, LeanServer  # noqa: E402

ZERO_REPL = [sys.executable, str(ROOT / "bench" / "zero_repl.py")]
FAKE_REPL = [sys.executable, str(ROOT / "tests" / "fake_repl.py")]
ECHO = [
    sys.executable,
    "-c",
    "import sys\nread, out = sys.stdin.buffer.readline, sys.stdout.buffer\n"
    "while line := read():\n    out.write(line)\n    out.flush()",
]
#: The goal: AutoLeanServer's time per request over the minimal client's, on the zero-cost REPL.
GOAL = 1.25

#: A client: runs n requests against its REPL (started first, and sent one untimed request),
#: returns the seconds they took.
Client = Callable[[int], float]


def line_echo(n: int) -> float:
    """The floor: one line out, the same line back, through a buffered pipe."""
    proc = subprocess.Popen(ECHO, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    stdin, stdout = proc.stdin, proc.stdout
    stdin.write(b"warm-up\n")
    stdin.flush()
    stdout.readline()
    start = time.perf_counter()
    for i in range(n):
        stdin.write(b'{"cmd": "#eval %d"}\n' % i)
        stdin.flush()
        stdout.readline()
    elapsed = time.perf_counter() - start
    proc.kill()
    proc.wait()
    return elapsed


def minimal_client(repl: list[str]) -> Client:
    """The 1.00x: the least a competent client of the protocol does per request."""

    def run(n: int) -> float:
        proc = subprocess.Popen(repl, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        stdin, stdout = proc.stdin, proc.stdout

        def request(cmd: str) -> dict:
            stdin.write((json.dumps({"cmd": cmd}) + "\n\n").encode())
            stdin.flush()
            lines = []
            while (line := stdout.readline()) not in (b"\n", b""):
                lines.append(line)
            return json.loads(b"".join(lines))

        request("#eval 0")
        start = time.perf_counter()
        for i in range(n):
            request(f"#eval {i}")
        elapsed = time.perf_counter() - start
        proc.kill()
        proc.wait()
        return elapsed

    return run


def engine(server_type: type[LeanServer], repl: list[str], *, bounded: bool = False) -> Client:
    """LeanServer or AutoLeanServer, configured as a user would with an explicit command;
    ``bounded``: each request with a timeout and a cancel event, as a batch worker sends it."""

    def run(n: int) -> float:
        limits = {"timeout": 60.0, "cancel": threading.Event()} if bounded else {}
        with server_type(LeanREPLConfig(repl_command=repl)) as server:
            server.run(Command(cmd="#eval 0"))
            start = time.perf_counter()
            for i in range(n):
                server.run(Command(cmd=f"#eval {i}"), **limits)
            return time.perf_counter() - start

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    clients: dict[str, tuple[str, Client]] = {
        "line echo (floor)": ("echo", line_echo),
        "minimal client": ("zero", minimal_client(ZERO_REPL)),
        "LeanServer": ("zero", engine(LeanServer, ZERO_REPL)),
        "AutoLeanServer": ("zero", engine(AutoLeanServer, ZERO_REPL)),
        "  timeout + cancel": ("zero", engine(AutoLeanServer, ZERO_REPL, bounded=True)),
        "minimal client (fake)": ("fake", minimal_client(FAKE_REPL)),
        "LeanServer (fake)": ("fake", engine(LeanServer, FAKE_REPL)),
        "AutoLeanServer (fake)": ("fake", engine(AutoLeanServer, FAKE_REPL)),
    }
    times: dict[str, list[float]] = {name: [] for name in clients}
    names = list(clients)
    for round_ in range(args.rounds):
        shift = round_ % len(names)  # each round starts with another client: no fixed order
        for name in names[shift:] + names[:shift]:
            times[name].append(clients[name][1](args.n))
    per_request = {name: statistics.median(t) / args.n for name, t in times.items()}
    baseline = {
        "echo": per_request["minimal client"],
        "zero": per_request["minimal client"],
        "fake": per_request["minimal client (fake)"],
    }
    echo = per_request["line echo (floor)"]
    print(f"machine: {describe_machine()}; {args.n} requests x {args.rounds} rounds")
    print("REPL: zero = bench/zero_repl.py (answers without parsing), fake = tests/fake_repl.py")
    print(f"{'client':<24}{'REPL':>6}{'req/s':>10}{'µs/req':>10}{'vs minimal':>12}{'vs echo':>10}")
    for name, seconds in per_request.items():
        repl = clients[name][0]
        print(
            f"{name:<24}{repl:>6}{1 / seconds:>10.0f}{seconds * 1e6:>10.1f}"
            f"{seconds / baseline[repl]:>11.2f}x{seconds / echo:>9.2f}x"
        )
    ratio = per_request["AutoLeanServer"] / per_request["minimal client"]
    verdict = "meets" if ratio <= GOAL else "MISSES"
    print(
        f"AutoLeanServer on the zero-cost REPL: {ratio:.2f}x the minimal client per request "
        f"({verdict} the {GOAL:.2f}x goal)"
    )


if __name__ == "__main__":
    main()

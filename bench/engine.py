"""Engine round-trip benchmark: what LeanServer adds to one request, measured side by side.

Run: ``python bench/engine.py [--n 3000] [--rounds 5]``. Every client talks to the project's fake
REPL (tests/fake_repl.py) with trivial commands, alternating rounds so machine noise hits all of
them alike; the table gives the median requests per second and the ratios:

- line echo: a bare subprocess that echoes one line (the floor of any pipe round trip);
- minimal client: a hand-written protocol client (JSON out, read to the blank line, json.loads);
- LeanServer / AutoLeanServer: the engine, typed requests and responses.

Goal: the engine adds at most 25% over the minimal client.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from machine import describe_machine  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lean_kernel import AutoLeanServer, Command, LeanREPLConfig, LeanServer  # noqa: E402

FAKE_REPL = [sys.executable, str(ROOT / "tests" / "fake_repl.py")]
ECHO = [sys.executable, "-u", "-c", "import sys\nfor line in sys.stdin: sys.stdout.write(line)"]


def line_echo(n: int) -> float:
    proc = subprocess.Popen(ECHO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    stdin, stdout = proc.stdin, proc.stdout
    start = time.perf_counter()
    for i in range(n):
        stdin.write(b'{"cmd": "#eval %d"}\n' % i)
        stdout.readline()
    elapsed = time.perf_counter() - start
    proc.kill()
    proc.wait()
    return elapsed


def minimal_client(n: int) -> float:
    proc = subprocess.Popen(FAKE_REPL, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    stdin, stdout = proc.stdin, proc.stdout
    start = time.perf_counter()
    for i in range(n):
        stdin.write((json.dumps({"cmd": f"#eval {i}"}) + "\n\n").encode())
        lines = []
        while (line := stdout.readline()) not in (b"\n", b""):
            lines.append(line)
        json.loads(b"".join(lines))
    elapsed = time.perf_counter() - start
    proc.kill()
    proc.wait()
    return elapsed


def engine(server_type: type[LeanServer]) -> Callable[[int], float]:
    def run(n: int) -> float:
        config = LeanREPLConfig(repl_command=FAKE_REPL)
        with server_type(config) as server:
            start = time.perf_counter()
            for i in range(n):
                server.run(Command(cmd=f"#eval {i}"))
            return time.perf_counter() - start

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    clients = {
        "line echo (floor)": line_echo,
        "minimal protocol client": minimal_client,
        "LeanServer": engine(LeanServer),
        "AutoLeanServer": engine(AutoLeanServer),
    }
    times: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(args.rounds):
        for name, client in clients.items():
            times[name].append(client(args.n))
    rate = {name: args.n / statistics.median(t) for name, t in times.items()}
    minimal = rate["minimal protocol client"]
    echo = rate["line echo (floor)"]
    print(f"machine: {describe_machine()}; {args.n} requests x {args.rounds} rounds")
    print(f"{'client':<26}{'req/s':>10}{'µs/req':>10}{'vs minimal':>12}{'vs echo':>10}")
    for name, value in rate.items():
        print(
            f"{name:<26}{value:>10.0f}{1e6 / value:>10.1f}"
            f"{minimal / value:>11.2f}x{echo / value:>9.2f}x"
        )
    overhead = minimal / rate["AutoLeanServer"] - 1
    verdict = "meets" if overhead <= 0.25 else "MISSES"
    print(f"AutoLeanServer adds {overhead:.0%} over the minimal client ({verdict} the 25% goal)")


if __name__ == "__main__":
    main()

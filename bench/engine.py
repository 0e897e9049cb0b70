"""Engine round-trip benchmark: what LeanServer adds to one request, measured side by side.

Run: ``python bench/engine.py [--chunk 500] [--chunks 30]``. Every client sends trivial
commands, one at a time, to its own REPL, started (and sent one untimed request) before the
clock runs. All clients stay up together; the clock runs over chunks of ``--chunk`` requests,
each client's chunk in turn (each chunk round starting with another client), so a slow moment
of the machine hits every client alike; the table gives each client's median chunk.

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

Placement. A round trip between two processes costs very different times depending on where the
scheduler puts them: on one CPU (a context switch each way; the client's own work counts in
full) or on two (each side woken by an interrupt, 60-100 µs on a small VM, which hides most of
the client's work). Left to the scheduler, each client lands in either regime by chance and a
ratio means nothing (0.8x to 4x between runs here). So every client is measured in both,
pinned with ``sched_setaffinity``: "one CPU" (the benchmark and every REPL on one CPU) and
"two CPUs" (each REPL on another CPU than the benchmark). The goal is judged on one CPU, the
placement where the client's cost shows most; on a one-CPU machine only that one is run.
"""

from __future__ import annotations

import argparse
import json
import os
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


class Client:
    """One client and its REPL process, started at once; ``timed(n)`` is the seconds ``n``
    requests take; ``repl_pid`` is the REPL's process (for placing it on a CPU)."""

    repl_pid: int

    def timed(self, n: int) -> float:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class LineEcho(Client):
    """The floor: one line out, the same line back, through a buffered pipe."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(ECHO, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.repl_pid = self.proc.pid
        self.timed(1)

    def timed(self, n: int) -> float:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        start = time.perf_counter()
        for i in range(n):
            stdin.write(b'{"cmd": "#eval %d"}\n' % i)
            stdin.flush()
            stdout.readline()
        return time.perf_counter() - start

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class MinimalClient(Client):
    """The 1.00x: the least a competent client of the protocol does per request."""

    def __init__(self, repl: list[str]) -> None:
        self.proc = subprocess.Popen(repl, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.repl_pid = self.proc.pid
        self.timed(1)

    def timed(self, n: int) -> float:
        stdin, stdout = self.proc.stdin, self.proc.stdout

        def request(cmd: str) -> dict:
            stdin.write((json.dumps({"cmd": cmd}) + "\n\n").encode())
            stdin.flush()
            lines = []
            while (line := stdout.readline()) not in (b"\n", b""):
                lines.append(line)
            return json.loads(b"".join(lines))

        start = time.perf_counter()
        for i in range(n):
            request(f"#eval {i}")
        return time.perf_counter() - start

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class EngineClient(Client):
    """LeanServer or AutoLeanServer, configured as a user would with an explicit command;
    ``bounded``: each request with a timeout and a cancel event, as a batch worker sends it."""

    def __init__(self, server_type: type[LeanServer], repl: list[str], bounded: bool) -> None:
        self.server = server_type(LeanREPLConfig(repl_command=repl))
        self.limits = {"timeout": 60.0, "cancel": threading.Event()} if bounded else {}
        assert self.server.pid is not None
        self.repl_pid = self.server.pid
        self.timed(1)

    def timed(self, n: int) -> float:
        run, limits = self.server.run, self.limits
        start = time.perf_counter()
        for i in range(n):
            run(Command(cmd=f"#eval {i}"), **limits)
        return time.perf_counter() - start

    def close(self) -> None:
        self.server.close()


#: name -> (REPL label, how to start the client)
CLIENTS: dict[str, tuple[str, Callable[[], Client]]] = {
    "line echo (floor)": ("echo", LineEcho),
    "minimal client": ("zero", lambda: MinimalClient(ZERO_REPL)),
    "LeanServer": ("zero", lambda: EngineClient(LeanServer, ZERO_REPL, False)),
    "AutoLeanServer": ("zero", lambda: EngineClient(AutoLeanServer, ZERO_REPL, False)),
    "  timeout + cancel": ("zero", lambda: EngineClient(AutoLeanServer, ZERO_REPL, True)),
    "minimal client (fake)": ("fake", lambda: MinimalClient(FAKE_REPL)),
    "LeanServer (fake)": ("fake", lambda: EngineClient(LeanServer, FAKE_REPL, False)),
    "AutoLeanServer (fake)": ("fake", lambda: EngineClient(AutoLeanServer, FAKE_REPL, False)),
}
BASELINE = {"echo": "minimal client", "zero": "minimal client", "fake": "minimal client (fake)"}


def measure(here: int, repl_cpu: int, chunk: int, chunks: int) -> dict[str, float]:
    """Median seconds per request of each client, the benchmark on CPU ``here`` and every REPL
    on ``repl_cpu``."""
    os.sched_setaffinity(0, {here})  # REPLs started from here inherit it...
    clients = {name: start() for name, (_, start) in CLIENTS.items()}
    try:
        for client in clients.values():
            os.sched_setaffinity(client.repl_pid, {repl_cpu})  # ...unless placed elsewhere
        times: dict[str, list[float]] = {name: [] for name in clients}
        names = list(clients)
        for round_ in range(chunks):
            shift = round_ % len(names)  # each round starts with another client
            for name in names[shift:] + names[:shift]:
                times[name].append(clients[name].timed(chunk) / chunk)
        return {name: statistics.median(t) for name, t in times.items()}
    finally:
        for client in clients.values():
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=500, help="requests per timed chunk")
    parser.add_argument("--chunks", type=int, default=30, help="chunks per client and placement")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    placements = {"one CPU": (cpus[-1], cpus[-1])}
    if len(cpus) > 1:
        placements["two CPUs"] = (cpus[-1], cpus[-2])
    results = {
        label: measure(here, there, args.chunk, args.chunks)
        for label, (here, there) in placements.items()
    }
    print(f"machine: {describe_machine()}; {args.chunks} chunks x {args.chunk} requests")
    print("REPL: zero = bench/zero_repl.py (answers without parsing), fake = tests/fake_repl.py")
    header = f"{'client':<24}{'REPL':>6}"
    for label in results:
        header += f"{label + ' µs/req':>20}{'vs minimal':>12}"
    print(header)
    for name, (repl, _) in CLIENTS.items():
        row = f"{name:<24}{repl:>6}"
        for per_request in results.values():
            seconds = per_request[name]
            row += f"{seconds * 1e6:>20.1f}{seconds / per_request[BASELINE[repl]]:>11.2f}x"
        print(row)
    for label, per_request in results.items():
        ratio = per_request["AutoLeanServer"] / per_request["minimal client"]
        judged = ("meets" if ratio <= GOAL else "MISSES") + f" the {GOAL:.2f}x goal"
        print(
            f"AutoLeanServer on the zero-cost REPL, {label}: {ratio:.2f}x the minimal client "
            f"per request" + (f" ({judged})" if label == "one CPU" else "")
        )


if __name__ == "__main__":
    main()

"""A zero-cost stand-in for the Lean REPL: what a client's overhead is measured against.

It reads each request (lines up to a blank line) without parsing it and answers at once with
a canned, protocol-correct answer, ``{"env": N}`` and a blank line, N counting up from 0 as the
real REPL's env ids do. So a round trip through it costs the pipes and the client, nearly
nothing else. Benchmarks only (bench/engine.py): it elaborates nothing.
"""

import sys


def main() -> None:
    """Answer every request on stdin until EOF."""
    read_line = sys.stdin.buffer.readline
    stdout = sys.stdout.buffer
    env = 0
    pending = False  # a request has begun (a non-blank line came since the last answer)
    while line := read_line():
        if not line.isspace():
            pending = True
        elif pending:
            stdout.write(b'{"env": %d}\n\n' % env)
            stdout.flush()
            env += 1
            pending = False


if __name__ == "__main__":
    main()

"""The REPL's framing: one JSON object per request and per answer, each ended by a blank line.

A REPL that breaks the framing (two answers to one request, or text that is not a JSON object)
is out of step with its caller for good, so these functions kill it before raising
``ReplProtocolError``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from lean_kernel.engine.process import POLL_SLICE_S, ReplProcess
from lean_kernel.errors import ReplProtocolError


def encode_request(payload: dict[str, Any]) -> bytes:
    """One request as the REPL reads it: JSON, then a blank line."""
    return (json.dumps(payload, ensure_ascii=False) + "\n\n").encode()


def read_response(
    proc: ReplProcess,
    deadline: float | None,
    cancel: threading.Event | None,
    check: Callable[[], None],
) -> str:
    """The text of the next answer, without its blank line.

    Waits until ``deadline`` (a ``time.monotonic()`` instant) or forever; ``check`` runs
    whenever a wait ends empty (at least every ``POLL_SLICE_S`` when ``cancel`` is given) and
    raises to give up. EOFError when the REPL closes its output first.
    """
    buffer = bytearray()
    scanned = 0
    while True:
        if deadline is None and cancel is None:
            chunk = proc.read_chunk(None)
        else:
            wait = POLL_SLICE_S if cancel is not None else deadline - time.monotonic()
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            chunk = proc.read_chunk(wait)
            if chunk is None:
                check()
                continue
        if not chunk:
            raise EOFError
        buffer += chunk
        start = len(buffer) - len(buffer.lstrip())
        end = buffer.find(b"\n\n", max(scanned - 1, start))
        scanned = len(buffer)
        if end >= 0:
            if buffer[end + 2 :].strip():
                proc.kill()
                raise ReplProtocolError(
                    "The REPL wrote more than one answer to a single request; its process "
                    f"was killed. Output: {bytes(buffer[:500])!r}" + stderr_note(proc)
                )
            return buffer[start:end].decode("utf-8", "replace")


def decode_response(proc: ReplProcess, text: str) -> dict[str, Any]:
    """The JSON object an answer holds."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        proc.kill()
        raise ReplProtocolError(
            "The REPL wrote something that is not a JSON object; its process was killed. "
            f"Output: {text[:500]!r}" + stderr_note(proc)
        )
    return data


def stderr_note(proc: ReplProcess) -> str:
    """The end of the REPL's stderr, as a paragraph to append to an error message."""
    tail = proc.stderr_tail(2000).strip()
    return f"\nREPL stderr (last lines):\n{tail}" if tail else ""

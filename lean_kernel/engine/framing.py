"""The REPL's framing: one JSON object per request and per answer, each ended by a blank line.

A REPL that breaks the framing (two answers to one request, or text that is not a JSON object)
is out of step with its caller for good, so these functions kill it before raising
``ReplProtocolError``.

JSON goes through pydantic-core's codec (``to_json``, ``from_json``), which the protocol models
use anyway: it writes non-ASCII text as UTF-8 and escapes every control character (so a request
stays on one line), and it is several times faster than the ``json`` module, which matters for
the many tiny requests of a batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic_core import from_json, to_json

from lean_kernel.engine.process import POLL_SLICE_S, ReplProcess
from lean_kernel.engine.protocol import BaseREPLQuery
from lean_kernel.errors import ReplProtocolError

_END = b"\n\n"
_BLANK = frozenset(b" \t\r\n\x0b\x0c")  # what bytes.isspace() calls space


def encode_request(payload: dict[str, Any]) -> bytes:
    """One request as the REPL reads it: JSON on one line, then a blank line.

    Raises ``ValueError`` (pydantic-core's ``PydanticSerializationError``) for a value JSON
    cannot hold, before anything is sent.
    """
    return to_json(payload) + _END


def encode_query(request: BaseREPLQuery) -> bytes:
    """``encode_request(request.to_wire())`` in one step (the model straight to JSON), for a
    request sent as it is."""
    return request.__pydantic_serializer__.to_json(request, by_alias=True, exclude_none=True) + _END


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
    chunk = _next_chunk(proc, deadline, cancel, check)
    # Usually the whole answer comes in one read, and nothing before it or after its end.
    end = chunk.find(_END)
    if end > 0 and end == len(chunk) - 2 and chunk[0] not in _BLANK:
        return chunk[:end].decode("utf-8", "replace")
    buffer = bytearray(chunk)
    scanned = 0
    while True:
        start = len(buffer) - len(buffer.lstrip())
        end = buffer.find(_END, max(scanned - 1, start))
        scanned = len(buffer)
        if end >= 0:
            if buffer[end + 2 :].strip():
                proc.kill()
                raise ReplProtocolError(
                    "The REPL wrote more than one answer to a single request; its process "
                    f"was killed. Output: {bytes(buffer[:500])!r}" + stderr_note(proc)
                )
            return buffer[start:end].decode("utf-8", "replace")
        buffer += _next_chunk(proc, deadline, cancel, check)


def _next_chunk(
    proc: ReplProcess,
    deadline: float | None,
    cancel: threading.Event | None,
    check: Callable[[], None],
) -> bytes:
    """The next bytes the REPL wrote (waiting as ``read_response`` says); EOFError at its end."""
    if deadline is None and cancel is None:
        chunk = proc.read_chunk(None)
    else:
        while True:
            wait = POLL_SLICE_S if cancel is not None else deadline - time.monotonic()
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            chunk = proc.read_chunk(wait)
            if chunk is not None:
                break
            check()
    if not chunk:
        raise EOFError
    return chunk


def decode_response(proc: ReplProcess, text: str) -> dict[str, Any]:
    """The JSON object an answer holds."""
    try:
        data = from_json(text)
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

"""One answer as the result store keeps it (`StoredResult`), and as it is read back from a row.

What may be kept (`stored_result`) is an answer Lean gave to the text: ``ok``, ``sorry`` or
``error``; never a timeout, crash, cancel, exception, heartbeat stop, proof step or refused
request. It is kept as data, the REPL's JSON wire format. Read back (`read_entry`), a row is
parsed with pydantic-core's JSON parser (the one the REPL's answers come through,
``engine.framing``; several times faster than ``json.loads`` on small texts) and validated
into the protocol models; a row that is not an answer is None, never trusted beyond that.
Rows read together that hold the same answer text (every proof Lean accepted without a word
is ``{}``) share one parsed and validated answer: the models are frozen, and a batch of a
million such hits holds one answer, not a million.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import from_json

from lean_kernel.engine.heartbeats import heartbeat_stop
from lean_kernel.engine.protocol import CommandResponse, LeanError, Response

__all__ = ["STORED_STATUSES", "StoredResult", "entry_json", "read_entry", "stored_result"]

#: Statuses whose answer is Lean's verdict on the text (the rest are the run's accidents).
STORED_STATUSES = frozenset({"ok", "sorry", "error"})


@dataclass(frozen=True)
class StoredResult:
    """A result worth remembering: Lean's answer to a command (deterministic ends only).

    ``status`` is ``ok``, ``sorry`` or ``error``; ``response`` the REPL's JSON wire format of the
    answer (by alias, as the REPL sent it; a batch body's has no ``env``: its ids are hidden);
    ``seconds`` how long Lean took the first time; ``verdict`` what the verdict's checks found
    (JSON data, ``engine.verdict``), None where none were made; ``answer`` the response as the
    protocol model once validated (`to_response`), or given by a reader that has it already.
    """

    status: str
    response: dict[str, Any]
    seconds: float
    verdict: dict[str, Any] | None = None
    answer: CommandResponse | LeanError | None = field(default=None, repr=False, compare=False)

    def to_response(self) -> CommandResponse | LeanError:
        """The answer validated back into the protocol model (``env`` None where none was
        stored, as a batch gives a body's answer). A pydantic ``ValidationError`` if it is not
        one (the store only hands out entries that are). Validated once."""
        answer = self.answer
        if answer is None:
            answer = _validated(self.response)
            object.__setattr__(self, "answer", answer)  # frozen: kept once made
        return answer


def _validated(data: dict[str, Any]) -> CommandResponse | LeanError:
    if "message" in data and "env" not in data:
        return LeanError.model_validate(data)
    if "env" in data:
        return CommandResponse.model_validate(data)
    # A detached answer: validated whole with a placeholder id, taken out again (in place: no
    # one else holds this object yet; a copy would cost as much as the validation).
    answer = CommandResponse.model_validate({**data, "env": 0})
    object.__setattr__(answer, "env", None)
    return answer


def stored_result(
    status: str, response: Response | None, seconds: float, verdict: dict[str, Any] | None = None
) -> StoredResult | None:
    """The StoredResult for a finished command, or None when it must not be stored: any status
    but ``ok``/``sorry``/``error`` (timeouts, crashes, cancels, exceptions), no response, a
    heartbeat stop (it depends on the limit, not on the text), a proof step's answer (its proof
    state lives in one process), and a refused request (``LeanError``: it speaks of the REPL's
    state, e.g. an unknown env, not of the text)."""
    if status not in STORED_STATUSES or not isinstance(response, CommandResponse):
        return None
    if heartbeat_stop(response) is not None:
        return None
    return StoredResult(status, response.to_wire(), float(seconds), verdict)


def read_entry(
    status: object,
    response: object,
    seconds: object,
    verdict: object,
    earlier: dict[str, StoredResult],
) -> StoredResult | None:
    """A row's columns (status, response JSON, seconds, verdict JSON or NULL) as a validated
    StoredResult, or None if they are not one. ``earlier``: the entries read before this one
    (by response text; this one is added), whose answer an equal text shares."""
    if status not in STORED_STATUSES or not isinstance(response, str):
        return None
    try:
        found = from_json(verdict) if isinstance(verdict, str) else None
        if not isinstance(found, dict | None):
            return None
        same = earlier.get(response)
        if same is not None:
            return StoredResult(str(status), same.response, float(seconds), found, same.answer)
        entry = StoredResult(str(status), from_json(response), float(seconds), found)  # type: ignore[arg-type]
        entry.to_response()
    except (ValueError, TypeError, AttributeError):  # ValidationError is a ValueError
        return None
    earlier[response] = entry
    return entry


def entry_json(data: dict[str, Any]) -> str:
    """``data`` (an answer, or the verdict's evidence) as the store writes it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

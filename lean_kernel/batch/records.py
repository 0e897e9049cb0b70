"""Item results as plain data: what travels from a cluster worker to the pool item by item.

A cluster's event channels (Dask's ``log_event``) carry only plain data (msgpack), and plain data
cannot run code when read back, unlike a pickle. So a finished item goes out as a record: its
status and times, Lean's answer in the REPL's own JSON wire format, and an exception as its type
name, message and typed fields, its verdict with each declaration's; ``item_from_record``
rebuilds the same ``ItemResult``.
"""

from __future__ import annotations

import builtins
from dataclasses import asdict
from typing import Any

from lean_kernel import errors
from lean_kernel.batch.results import ItemResult
from lean_kernel.engine.protocol import (
    CommandResponse,
    LeanError,
    ProofStepResponse,
    Response,
)
from lean_kernel.engine.verdict import DeclVerdict, Escape, UnprovedError

__all__ = ["error_from_record", "error_to_record", "item_from_record", "item_to_record"]

_RESPONSE_KINDS: dict[str, type] = {
    "command": CommandResponse,
    "proof_step": ProofStepResponse,
    "lean_error": LeanError,
}
_PLAIN = (str, int, float, bool, type(None))


def item_to_record(item: ItemResult) -> dict[str, Any]:
    """``item`` as JSON-able data (no objects, nothing that runs code when read)."""
    return {
        "index": item.index,
        "command": item.command,
        "status": item.status,
        "response": _response_to_record(item.response),
        "error": error_to_record(item.error) if item.error is not None else None,
        "time": item.time,
        "header_time": item.header_time,
        "worker": item.worker,
        "verdict": item.verdict,
        "verdict_reason": item.verdict_reason,
        "declarations": [asdict(declaration) for declaration in item.declarations],
    }


def item_from_record(record: dict[str, Any]) -> ItemResult:
    """The ``ItemResult`` a record stands for."""
    error = record.get("error")
    return ItemResult(
        index=int(record["index"]),
        command=str(record["command"]),
        status=record["status"],
        response=_response_from_record(record.get("response")),
        error=error_from_record(error) if error is not None else None,
        time=float(record.get("time", 0.0)),
        header_time=float(record.get("header_time", 0.0)),
        worker=str(record.get("worker", "")),
        verdict=record.get("verdict", "unknown"),
        verdict_reason=str(record.get("verdict_reason", "")),
        declarations=tuple(_declaration(d) for d in record.get("declarations") or ()),
    )


def _declaration(record: dict[str, Any]) -> DeclVerdict:
    escapes = tuple(Escape(**escape) for escape in record.get("escapes") or ())
    return DeclVerdict(
        **{**record, "axioms": tuple(record.get("axioms") or ()), "escapes": escapes}
    )


def _response_to_record(response: Response | None) -> dict[str, Any] | None:
    if response is None:
        return None
    kind = next(k for k, model in _RESPONSE_KINDS.items() if isinstance(response, model))
    wire = response.model_dump(by_alias=True, exclude_none=True)
    # A batch hides the env of a body (it names a state of one worker's process): say so, as
    # the wire format has no "no env".
    detached = isinstance(response, CommandResponse) and response.env is None
    return {"kind": kind, "wire": wire, "detached": detached}


def _response_from_record(record: dict[str, Any] | None) -> Response | None:
    if record is None:
        return None
    model = _RESPONSE_KINDS[record["kind"]]
    if not record.get("detached"):
        return model.model_validate(record["wire"])
    response = model.model_validate({**record["wire"], "env": 0})
    return response.model_copy(update={"env": None})


def error_to_record(error: BaseException) -> dict[str, Any]:
    """An exception as its type name, message and plain fields (``timeout``, ``started``...)."""
    fields = {k: v for k, v in vars(error).items() if isinstance(v, _PLAIN)}
    return {"type": type(error).__name__, "message": str(error), "fields": fields}


def error_from_record(record: dict[str, Any]) -> BaseException:
    """The exception a record stands for: lean_kernel's own errors and Python's builtin ones
    come back as themselves, with their fields; any other as a ``LeanKernelError`` naming it."""
    name, message = str(record["type"]), str(record.get("message", ""))
    cls = UnprovedError if name == UnprovedError.__name__ else getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.LeanKernelError)):
        cls = getattr(builtins, name, None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            return errors.LeanKernelError(f"{name}: {message}")
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    for key, value in dict(record.get("fields") or {}).items():
        if isinstance(value, _PLAIN):
            setattr(error, key, value)
    return error

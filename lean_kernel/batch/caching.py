"""What a batch needs of the result store: hits before it runs, and its answers remembered.

Before a batch's items go to the workers, ``BatchCache.lookup`` answers the ones the store
already holds; as each item finishes, ``BatchCache.remember`` keeps its answer if it is a
deterministic one (``engine.resultstore.stored_result``), so a batch interrupted half way runs
only what it had not finished when it is run again.

A key is everything the answer depends on: the namespace (Lean, REPL, project:
``engine.resultstore.namespace_of``), the header (imports) the item runs on, its settings lines
and body with the lines they start at (positions in the answer are those of the command as
written), the options of its request template (``all_tactics``, ``infotree``...), the
heartbeat limit and the item's reference statement. What is stored is the item's answer exactly
as the batch returns it (shifted to the command's positions, ids hidden), with what its verdict's
checks found (``#print axioms`` of each declaration, the statement check); a hit is judged again
from them under this batch's rules (allowed axioms, the escape scan), so it is the same
``ItemResult`` a fresh run gives, except for ``time`` and ``header_time`` (0.0: nothing ran) and
``worker`` (`CACHE_WORKER`). An answer whose verdict check failed (``unknown``) is not kept.
Direct items (requests on kept states, proof steps) are never cached.

``%lean_cache info | clear`` is here too, once for both hosts (`cache_command`).
"""

from __future__ import annotations

import json
import threading
import time

from lean_kernel.batch.jobs import BatchItem
from lean_kernel.batch.results import ItemResult
from lean_kernel.engine.outcome import outcome_of, status_of
from lean_kernel.engine.protocol import BaseREPLQuery
from lean_kernel.engine.resultstore import (
    STORE_ENV_VAR,
    ResultStore,
    StoredResult,
    result_key,
    stored_result,
)
from lean_kernel.engine.verdict import (
    STANDARD_AXIOMS,
    command_verdict,
    failure_verdict,
    judge_evidence,
    scan_escapes,
)

__all__ = ["CACHE_USAGE", "CACHE_WORKER", "BatchCache", "CacheUsageError", "cache_command"]

#: The ``worker`` of an item answered from the store (no worker ran it).
CACHE_WORKER = "cache"
# Answers are written in groups: this many, or when the oldest waiting is this old (seconds).
_FLUSH_COUNT = 64
_FLUSH_AGE = 1.0
#: The ``%lean_cache`` line, as both hosts show it.
CACHE_USAGE = "%lean_cache info|clear"
# The key text of an item without a reference statement.
_NO_STATEMENT = json.dumps(None)


class BatchCache:
    """The store as one batch (or several, on the same Lean and limits) uses it.

    ``namespace`` says which Lean the answers come from (``namespace_of(config)``); ``heartbeats``
    names the ``maxHeartbeats`` limit the batch's commands run under (best the resolved limit,
    e.g. ``heartbeat_limit(setting, timeout, rate)``, so ``auto`` and the same number share
    entries; None for none); ``allowed`` the axioms a ``proved`` verdict may rest on. ``hits``
    and ``stored`` count what this object looked up and wrote.
    Thread-safe: the pool may call ``remember`` from any result path.
    """

    def __init__(
        self,
        store: ResultStore,
        namespace: str,
        heartbeats: object = None,
        allowed: frozenset[str] = STANDARD_AXIOMS,
    ) -> None:
        self.store = store
        self.allowed = allowed
        self.namespace = namespace
        self.heartbeats = "none" if heartbeats is None else str(heartbeats)
        self.hits = 0
        self.stored = 0
        self._lock = threading.Lock()
        self._pending: list[tuple[str, StoredResult]] = []
        self._oldest_pending = 0.0

    def key(self, header: str | None, item: BatchItem) -> str | None:
        """The store key of ``item`` run on ``header``; None for an item never cached (direct)."""
        if item.direct:
            return None
        return result_key(
            self.namespace,
            header or "",
            item.settings,
            str(item.settings_offset),
            item.body,
            str(item.line_offset),
            _options_text(item.request),
            self.heartbeats,
            _NO_STATEMENT if item.statement is None else json.dumps(item.statement),
        )

    def lookup(self, header: str | None, items: list[BatchItem]) -> dict[int, ItemResult]:
        """The items the store answers, by index, as finished results (worker `CACHE_WORKER`)."""
        keys = {item.index: self.key(header, item) for item in items}
        found = self.store.get_many(key for key in keys.values() if key is not None)
        hits: dict[int, ItemResult] = {}
        for item in items:
            entry = found.get(keys[item.index] or "")
            hit = None if entry is None else self._judged(item, entry)
            if hit is not None:
                hits[item.index] = hit
        with self._lock:
            self.hits += len(hits)
        return hits

    def _judged(self, item: BatchItem, entry: StoredResult) -> ItemResult | None:
        """``item``'s result from its stored ``entry``, its verdict judged under this batch's
        rules; None when the entry is not what this version would store (run it again)."""
        evidence = None if entry.verdict is None else entry.verdict.get("declarations")
        if not isinstance(evidence, list) or not all(isinstance(e, dict) for e in evidence):
            return None  # kept without what its verdict needs, or not as this version writes it
        response = entry.to_response()
        if status_of(response) != entry.status:
            return None  # not what this version would call it
        outcome = outcome_of(entry.status, response)
        text = item.judged_text
        escapes = scan_escapes(text)
        declarations = [judge_evidence(e, outcome, escapes, self.allowed) for e in evidence]
        verdict = command_verdict(outcome, text, declarations)
        return ItemResult(
            index=item.index,
            command=item.text,
            status=entry.status,  # type: ignore[arg-type]  # a stored status is a status
            response=response,
            worker=CACHE_WORKER,
            verdict=verdict.verdict,
            verdict_reason=verdict.reason,
            declarations=verdict.declarations,
        )

    def remember(self, header: str | None, item: BatchItem, result: ItemResult) -> None:
        """Keep ``result`` (the item's final result) if it is a deterministic answer; written
        with others (``flush``), at once when enough wait or the oldest has waited a while."""
        if result.worker == CACHE_WORKER:
            return
        key = self.key(header, item)
        if failure_verdict(result.outcome) is None and any(
            not declaration.listed for declaration in result.declarations
        ):
            return  # its verdict check failed (maybe for a passing reason): not an answer
        checks = {"declarations": [declaration.evidence() for declaration in result.declarations]}
        entry = stored_result(result.status, result.response, result.time, checks)
        if key is None or entry is None:
            return
        with self._lock:
            if not self._pending:
                self._oldest_pending = time.monotonic()
            self._pending.append((key, entry))
            due = (
                len(self._pending) >= _FLUSH_COUNT
                or time.monotonic() - self._oldest_pending >= _FLUSH_AGE
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the answers still waiting (call it when a batch ends, however it ends)."""
        with self._lock:
            pending, self._pending = self._pending, []
            self.stored += len(pending)
        if pending:
            self.store.put_many(pending)


def _options_text(template: BaseREPLQuery | None) -> str:
    """The options a request template adds to its item (``all_tactics``, ``infotree``...), as
    key text: its wire fields but the command and env, sorted."""
    if template is None:
        return "{}"
    options = template.to_wire()
    options.pop("cmd", None)
    options.pop("env", None)
    return json.dumps(options, sort_keys=True, separators=(",", ":"))


class CacheUsageError(ValueError):
    """``%lean_cache`` was given something else than ``info`` or ``clear``; says what to give."""


def cache_command(store: ResultStore | None, line: str) -> str:
    """``%lean_cache info`` (the file, its entries, its size, files set aside) or ``clear``
    (how many entries it removed), for either host; ``store`` is the host's (None: off)."""
    word = line.strip()
    if word not in ("info", "clear"):
        raise CacheUsageError(
            f"%lean_cache takes info (what the result cache holds) or clear (empty it), not "
            f"{word!r}. Usage: {CACHE_USAGE}"
        )
    if store is None:
        return (
            f"The result cache is off (${STORE_ENV_VAR} says so): batches and cells run every "
            f"command. Unset {STORE_ENV_VAR}, or set it to a file, to turn it on."
        )
    if word == "info":
        return store.info().describe()
    removed = store.clear()
    problem = store.info().problem
    if problem is not None:
        return f"The result cache {store.path} cannot be used ({problem}); nothing was removed."
    entries = "entry" if removed == 1 else "entries"
    return f"Removed {removed} {entries} from the result cache {store.path}."

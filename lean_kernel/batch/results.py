"""What a batch gives back: one ``ItemResult`` per command, in input order, and their summary.

``BatchResults`` is the object users keep (``%%lean_batch -o VAR``, the kernel's batch magic,
``LeanServerPool.submit_batch``): it fills in while the batch runs, lists per-item status,
messages and time, shows itself as a table, and turns into a pandas DataFrame. ``ResponseList`` is
what ``LeanServerPool.run_batch`` returns, for code written against LeanInteract: a plain list of
responses, with a captured exception in place of an item that failed.

Everything here is picklable: item results travel back from worker processes.
"""

from __future__ import annotations

import html
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, overload

from lean_kernel.display import render_table
from lean_kernel.engine.outcome import (
    ACCEPTED,
    FAILED,
    OUTCOMES,
    Outcome,
    ResponseReading,
    Status,
    describe_counts,
    error_message,
    outcome_of,
)
from lean_kernel.engine.protocol import (
    CommandResponse,
    Message,
    Response,
)
from lean_kernel.engine.verdict import (
    VERDICTS,
    DeclVerdict,
    UnprovedError,
    Verdict,
    command_verdict,
)

__all__ = ["BatchResults", "ItemResult", "ItemStatus", "ResponseList"]


ItemStatus = Status
"""An item's status: ``pending`` until it finishes, then one of ``lean_kernel.engine.outcome``'s."""

# Rows shown by the rich display; the rest is one `to_pandas()` away.
_SHOWN_ROWS = 30
_SHOWN_TEXT = 60


@dataclass(frozen=True)
class ItemResult(ResponseReading):
    """One command of a batch: what Lean said (``response``) or what went wrong (``error``).

    ``status`` is what kind of end it had (``ok``, ``sorry``, ``error``, ``timeout``,
    ``crashed``, ``cancelled``, ``exception``); ``outcome`` the word tables show, finer for
    three of them (``out of heartbeats``, ``out of memory``, ``stopped``: see
    ``lean_kernel.engine.outcome``). ``time`` is the seconds spent on the command itself;
    ``header_time`` the seconds this item spent elaborating its header (0 when the worker
    already had it).

    ``verdict`` says whether it is *proved* (``lean_kernel.engine.verdict``): ``proved``,
    ``sorry``, ``axioms``, ``escape``, ``statement changed``, ``unknown``, or the failure
    (``error``, ``timeout``...); ``verdict_reason`` says why in words, ``declarations`` has one
    verdict per declaration the command adds. A failed item's verdict is its failure; one not
    finished yet is ``unknown``. In a batch that requires ``proved``, an item whose verdict is
    another has status ``error``: Lean's ``response`` is kept as it was, and ``error`` is an
    ``UnprovedError`` saying why (so ``run_batch`` returns it in the item's place).
    """

    index: int
    command: str
    status: ItemStatus = "pending"
    response: Response | None = None
    error: BaseException | None = None
    time: float = 0.0
    header_time: float = 0.0
    worker: str = ""
    verdict: Verdict = "unknown"
    verdict_reason: str = ""
    declarations: tuple[DeclVerdict, ...] = ()

    def __post_init__(self) -> None:
        # An item that failed before anyone judged it (refused, cancelled...): its failure.
        if self.status in FAILED and self.verdict == "unknown" and not self.verdict_reason:
            judged = command_verdict(self.outcome, "")
            object.__setattr__(self, "verdict", judged.verdict)
            object.__setattr__(self, "verdict_reason", judged.reason)

    @property
    def ok(self) -> bool:
        """Whether Lean accepted the command (``sorry`` allowed: ``status`` tells them apart)."""
        return self.status in ACCEPTED

    @property
    def outcome(self) -> Outcome:
        """The word shown for the item: its status, or ``out of heartbeats`` (an error that is
        Lean's heartbeat limit), ``out of memory`` (a crash that was a memory kill) or
        ``stopped`` (cancelled while it ran: its REPL was killed)."""
        return outcome_of(self.status, self.response, self.error)

    @property
    def done(self) -> bool:
        """Whether the item has finished (in any way)."""
        return self.status != "pending"

    @property
    def messages(self) -> list[Message]:
        """Lean's messages; a refused request or an exception shows as one error message."""
        if self.error is not None:
            failure = error_message(f"{type(self.error).__name__}: {self.error}")
            # A response beside an error: Lean's answer to a command a requirement failed.
            return [*super().messages, failure] if self.response is not None else [failure]
        return super().messages

    @property
    def env(self) -> int | None:
        """The env the command built, when the batch kept states; else None."""
        response = self.response
        return response.env if isinstance(response, CommandResponse) else None

    @property
    def value(self) -> Response | BaseException | None:
        """The response, or the exception in its place (what ``run_batch`` returns per item)."""
        return self.error if self.error is not None else self.response

    def first_message(self) -> str:
        """The most useful single line: the first error, else the first warning, else ''."""
        for severity in ("error", "warning"):
            for message in self.messages:
                if message.severity == severity:
                    return _one_line(message)
        return ""

    def row(self) -> dict[str, Any]:
        """A flat record of the item (a table or DataFrame row)."""
        return {
            "index": self.index,
            "status": self.status,
            "time": round(self.time, 4),
            "header_time": round(self.header_time, 4),
            "outcome": self.outcome,
            "verdict": self.verdict if self.done else "pending",
            "errors": len(self.errors),
            "sorries": len(self.sorries),
            "first_message": self.first_message(),
            "command": self.command,
            "messages": [str(m) for m in self.messages],
            "worker": self.worker,
        }


def _one_line(message: Message) -> str:
    head = f"{message.start_pos.line}:{message.start_pos.column}: " if message.start_pos else ""
    if message.start_pos is not None and message.start_pos.line <= 0:
        head = ""
    return head + message.data.split("\n", 1)[0]


def _short(text: str, width: int = _SHOWN_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class BatchResults(Sequence[ItemResult]):
    """The items of a batch in input order; filled in live while the batch runs.

    Index it like a list (``results[3].status``, ``results[3].messages``, ``results[3].time``);
    ``summary()`` counts outcomes and times; ``to_pandas()`` gives one row per item.
    """

    def __init__(
        self, commands: Sequence[str], *, label: str = "batch", require: Verdict | None = None
    ) -> None:
        self.label = label
        #: the verdict every item must have (``proved``), or None
        self.require = require
        self._lock = threading.Lock()
        self._items = [ItemResult(index=i, command=c) for i, c in enumerate(commands)]
        self._done = 0
        self._complete = threading.Event()
        self._cancel: Callable[[], None] | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        if not commands:
            self._finish()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for transient in ("_lock", "_complete", "_cancel"):
            del state[transient]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._complete = threading.Event()
        self._cancel = None
        if self.complete:
            self._complete.set()

    def _finish(self) -> None:
        self.finished = time.monotonic()
        self._complete.set()

    # -- filling in (by the pool) ----------------------------------------------------------------

    def record(self, item: ItemResult) -> bool:
        """Store a finished item; False when it was already finished (the first answer wins).
        With ``require``, an item whose verdict is another is stored as an error (the caller's
        ``item`` stays Lean's answer: what the result cache keeps)."""
        if self.require is not None:
            item = _required(item, self.require)
        with self._lock:
            if self._items[item.index].done:
                return False
            self._items[item.index] = item
            self._done += 1
            if self._done == len(self._items):
                self._finish()
            return True

    def on_cancel(self, cancel: Callable[[], None] | None) -> None:
        """What ``cancel()`` calls (set by whoever runs the batch; None once it is over)."""
        self._cancel = cancel

    # -- control -------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every item has finished or ``timeout`` passes; True if finished.

        Then, briefly, until the batch that fills them has had its last word (it clears
        ``on_cancel`` after telling its listeners), so a progress display of the batch shows
        the final state, not the one before the last item, when this returns."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._complete.is_set():
            left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if left <= 0:
                return False
            self._complete.wait(left)
        settled = min(time.monotonic() + 5.0, deadline or float("inf"))  # it comes at once
        while self._cancel is not None and time.monotonic() < settled:
            time.sleep(0.005)
        return True

    def cancel(self) -> None:
        """Stop the batch these results belong to: pending items become ``cancelled``."""
        if self._cancel is not None:
            self._cancel()

    # -- reading -------------------------------------------------------------------------------

    @overload
    def __getitem__(self, index: int) -> ItemResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[ItemResult]: ...

    def __getitem__(self, index: int | slice) -> ItemResult | list[ItemResult]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[ItemResult]:
        return iter(list(self._items))

    @property
    def done(self) -> int:
        """How many items have finished."""
        return self._done

    @property
    def complete(self) -> bool:
        """Whether every item has finished."""
        return self._done == len(self._items)

    @property
    def elapsed(self) -> float:
        """Wall seconds since the batch started, up to its end once finished."""
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    def counts(self) -> Counter[str]:
        """Items per status (``pending`` for those not finished)."""
        return Counter(item.status for item in self._items)

    def outcome_counts(self) -> Counter[str]:
        """Items per outcome, the words tables show (``pending`` for those not finished)."""
        return Counter(item.outcome for item in self._items)

    @property
    def ok(self) -> list[ItemResult]:
        """Items Lean accepted (``sorry`` allowed)."""
        return [item for item in self._items if item.ok]

    @property
    def failed(self) -> list[ItemResult]:
        """Items with an error, a timeout, a crash, an exception, or cancelled."""
        return [item for item in self._items if item.status in FAILED]

    @property
    def statuses(self) -> list[str]:
        """The status of each item, in input order."""
        return [item.status for item in self._items]

    @property
    def outcomes(self) -> list[str]:
        """The outcome of each item (the word tables show), in input order."""
        return [item.outcome for item in self._items]

    @property
    def times(self) -> list[float]:
        """Seconds per item, in input order."""
        return [item.time for item in self._items]

    @property
    def verdicts(self) -> list[str]:
        """The verdict of each item (``proved``, ``sorry``, ``axioms``...), in input order."""
        return [item.verdict for item in self._items]

    def verdict_counts(self) -> Counter[str]:
        """Items per verdict, finished items only, in the order of ``VERDICTS``."""
        counts = Counter(item.verdict for item in self._items if item.done)
        return Counter({word: counts[word] for word in VERDICTS if counts[word]})

    def summary(self) -> dict[str, Any]:
        """Counts per outcome (each item counted once: an ``out of memory`` item is not also
        ``crashed``, an ``out of heartbeats`` one not also ``error``), ``failed`` (their total),
        wall time,
        and the sum of per-item and header times."""
        counts = self.outcome_counts()
        return {
            "total": len(self._items),
            "done": self._done,
            **{outcome: counts.get(outcome, 0) for outcome in OUTCOMES},
            "failed": sum(counts.get(outcome, 0) for outcome in FAILED),
            "wall_time": round(self.elapsed, 3),
            "item_time": round(sum(self.times), 3),
            "header_time": round(sum(item.header_time for item in self._items), 3),
        }

    def summary_line(self) -> str:
        """The summary in one line, e.g. ``200 items: 180 ok, 5 sorry, 10 error, 5 timeout;
        12.3 s`` (counts per outcome)."""
        parts = describe_counts(self.outcome_counts(), ("pending", *OUTCOMES))
        return f"{self.label}: {len(self._items)} items: {parts}; {self.elapsed:.1f} s"

    def responses(self) -> ResponseList:
        """The LeanInteract view: each item's response, or the exception raised in its place."""
        return ResponseList(self)

    def to_pandas(self):
        """One row per item (index, status, time, header_time, outcome, verdict, errors,
        sorries, first_message, command, messages, worker); needs pandas (the ``pandas``
        extra)."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "to_pandas() needs pandas, which lean-kernel does not install by default: "
                'pip install "lean-kernel[pandas]" (or pip install pandas), then restart the '
                "kernel; without it, .summary() and the items themselves have the same data"
            ) from None
        return pandas.DataFrame([item.row() for item in self._items]).set_index("index")

    # -- display ---------------------------------------------------------------------------------

    def table_rows(self, limit: int | None = _SHOWN_ROWS) -> tuple[list[dict[str, Any]], str]:
        """Rows to show and a note about the rest: every item in input order when they fit in
        ``limit`` rows (None: no limit), else failed items first."""
        items = list(self._items)
        if limit is not None and len(items) > limit:
            failed = [item for item in items if item.status in FAILED]
            items = failed + [item for item in items if item.status not in FAILED]
        shown = items if limit is None else items[:limit]
        rows = [
            {
                "#": item.index,
                "outcome": item.outcome,
                "verdict": item.verdict if item.done else "",
                "time (s)": round(item.time, 3),
                "message": _short(item.first_message()),
                "command": _short(item.command),
            }
            for item in shown
        ]
        note = ""
        if len(shown) < len(items):
            first = " (failed items first)" if any(i.status in FAILED for i in items) else ""
            note = f"showing {len(shown)} of {len(items)} items{first}"
        return rows, note

    def table_bundle(
        self, *, limit: int | None = _SHOWN_ROWS, more: str = ".to_pandas() has every item"
    ) -> dict[str, str]:
        """The summary line and the table of items (``text/plain`` and ``text/html``); ``more``
        says where the rest is when not every item is shown."""
        rows, note = self.table_rows(limit)
        bundle = render_table(rows, ["#", "outcome", "verdict", "time (s)", "message", "command"])
        head = self.summary_line()
        tail = f"{note}; {more}" if note else ""
        plain = "\n".join(filter(None, [head, bundle["text/plain"].rstrip("\n"), tail])) + "\n"
        html = f"<div><b>{_escape(head)}</b></div>{bundle['text/html']}"
        if tail:
            html += f"<div><i>{_escape(tail)}</i></div>"
        return {"text/plain": plain, "text/html": html}

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        return self.table_bundle()

    def __repr__(self) -> str:
        return f"<BatchResults {self.summary_line()}>"


def _required(item: ItemResult, require: Verdict) -> ItemResult:
    """``item`` as a batch requiring ``require`` keeps it: an error (``UnprovedError``, Lean's
    response kept) when its verdict is another; a failure stays the failure it is."""
    if item.verdict == require or item.status in FAILED or not item.done:
        return item
    why = f"this batch requires {require}, and the verdict is {item.verdict}: "
    why += item.verdict_reason
    error = UnprovedError(why, verdict=item.verdict, reason=item.verdict_reason)
    return replace(item, status="error", error=error)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


class ResponseList(list):
    """``run_batch``'s answer: responses in input order, an exception in place of a failed item.

    A plain list for LeanInteract code; ``.results`` keeps the per-item status and time.
    """

    def __init__(self, results: BatchResults) -> None:
        super().__init__(item.value for item in results)
        self.results = results

    @property
    def times(self) -> list[float]:
        """Seconds per item, in input order."""
        return self.results.times

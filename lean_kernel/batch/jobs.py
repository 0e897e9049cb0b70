"""The unit of batch work: ``run_job(job)``, a plain function of a picklable ``BatchJob``.

A job is a few commands that share one header, plus the config to start REPLs with. It runs
wherever an ``concurrent.futures.Executor`` sends it: on the pool's threads (the default), in a
``ProcessPoolExecutor``, or on a Dask / Ray cluster; it finds or starts its REPL servers in the
process it lands in (``lean_kernel.batch.workers``), so remote workers stay warm across jobs. It
returns one picklable ``ItemResult`` per command; nothing a single command does (an error, a
timeout, a crash) escapes as an exception.

In the pool's own process a job also reports each item as soon as it is done, and stops at once
when its batch is cancelled (the running REPL is killed through the server's cancel event). On a
cluster (``lean_kernel.batch.remote``) the worker passes its own cancel event and a listener
that streams each item back; in any other executor's process a job reports when it ends and
checks for cancellation between jobs only.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lean_kernel.batch.headers import shift_response
from lean_kernel.batch.registry import local_worker_set
from lean_kernel.batch.results import ItemResult
from lean_kernel.batch.workers import HeaderEnv, Worker
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.heartbeats import HeartbeatSetting
from lean_kernel.engine.outcome import outcome_of, status_of, status_of_exception
from lean_kernel.engine.protocol import (
    BaseREPLQuery,
    Command,
    CommandResponse,
    LeanError,
    Response,
)
from lean_kernel.engine.sessioncache import SessionEntry
from lean_kernel.engine.verdict import (
    STANDARD_AXIOMS,
    CommandVerdict,
    command_verdict,
    verdicts_for,
)
from lean_kernel.errors import LeanKernelError, ReplCancelledError, StaleStateError

__all__ = [
    "BatchItem",
    "BatchJob",
    "JobOutcome",
    "cancelled_result",
    "detached",
    "failed_result",
    "run_job",
]


@dataclass(frozen=True)
class BatchItem:
    """One command of a batch.

    Header-split items (``request`` is None or a ``Command`` template) send ``body`` on the env of
    the job's imports plus the item's ``settings`` (its ``open`` / ``set_option`` / ``variable``
    lines, which start at line ``settings_offset + 1``), with the template's options; positions
    of the body are shifted by ``line_offset``. A
    direct item (``direct=True``) sends ``request`` as is, e.g. a ``ProofStep`` or a command on a
    kept env; with ``keep_state`` its states go into the session cache. ``statement``: the
    reference statement its proof must prove, as ``(NAME, TYPE)`` (``items.reference_statement``),
    or None.
    """

    index: int
    text: str
    body: str = ""
    line_offset: int = 0
    settings: str = ""
    settings_offset: int = 0
    request: BaseREPLQuery | None = None
    direct: bool = False
    keep_state: bool = False
    statement: tuple[str, str] | None = None

    @property
    def judged_text(self) -> str:
        """What the verdict reads (declarations, escapes): the command, after the settings lines
        of an explicit header when it runs on one (its own settings are part of it)."""
        if self.settings.strip() and self.settings.strip() not in self.text:
            return f"{self.settings.rstrip()}\n{self.text}"
        return self.text


@dataclass(frozen=True)
class BatchJob:
    """Commands sharing the imports ``header`` (None for direct items), and how to run them.

    ``pool_id`` names the worker set in whatever process runs the job; ``worker_hint`` the
    pool's slot the scheduler chose. In the pool's own process that is the worker; on a cluster
    engine (``pinned``) each slot is a worker of its own in the process that hosts the slot, so
    the headers the scheduler thinks a slot holds are really there. ``session_entries`` are the
    pool's kept states, for a remote process to replay (items on a kept ``env`` or proof state).
    ``allowed``: the axioms a ``proved`` verdict may rest on (``engine.verdict.allowed_axioms``).
    """

    pool_id: str
    batch_id: str
    config: LeanREPLConfig
    items: tuple[BatchItem, ...]
    header: str | None = None
    timeout: float | None = None
    header_timeout: float | None = None
    #: Lean's maxHeartbeats per command (None: the config's); see ``engine.heartbeats``
    heartbeats: HeartbeatSetting | None = None
    worker_hint: int | None = None
    server_options: dict[str, Any] = field(default_factory=dict)
    pinned: bool = False
    session_entries: tuple[SessionEntry, ...] = ()
    allowed: frozenset[str] = STANDARD_AXIOMS


@dataclass(frozen=True)
class JobOutcome:
    """A job's item results, the headers its worker holds afterwards (for scheduling), and where
    it ran (a cluster worker's address; "" in the pool's own process)."""

    results: tuple[ItemResult, ...]
    held_headers: tuple[str, ...]
    where: str = ""


# -- what only the pool's own process knows: live reporting and cancellation ---------------------

_hooks_lock = threading.Lock()
_cancel_events: dict[str, threading.Event] = {}
_listeners: dict[str, Callable[[ItemResult], None]] = {}


def register_batch(
    batch_id: str, cancel: threading.Event, listener: Callable[[ItemResult], None]
) -> None:
    """Let jobs of ``batch_id`` running in this process see its cancel event and report items."""
    with _hooks_lock:
        _cancel_events[batch_id] = cancel
        _listeners[batch_id] = listener


def unregister_batch(batch_id: str) -> None:
    with _hooks_lock:
        _cancel_events.pop(batch_id, None)
        _listeners.pop(batch_id, None)


def _hooks(batch_id: str) -> tuple[threading.Event, Callable[[ItemResult], None] | None]:
    with _hooks_lock:
        return _cancel_events.get(batch_id) or threading.Event(), _listeners.get(batch_id)


# -- the unit of work -----------------------------------------------------------------------------


def run_job(
    job: BatchJob,
    cancel: threading.Event | None = None,
    listener: Callable[[ItemResult], None] | None = None,
    prepare: Callable[[Worker], None] | None = None,
) -> JobOutcome:
    """Run every item of ``job`` on one worker of this process; never raises for an item.

    ``cancel`` and ``listener`` (told each item as it ends) default to those the pool registered
    for the batch in this process (``register_batch``); a cluster worker passes its own, and a
    ``prepare`` called with the worker once it is checked out (making room in memory for it).
    """
    if cancel is None:
        cancel, listener = _hooks(job.batch_id)
    workers = local_worker_set(job.pool_id, job.config, job.server_options)
    results: list[ItemResult] = []

    def report(item: ItemResult) -> None:
        results.append(item)
        if listener is not None:
            listener(item)

    if cancel.is_set():
        for item in job.items:
            report(cancelled_result(item))
        return JobOutcome(tuple(results), ())
    try:
        worker = workers.checkout(job.worker_hint, job.header, cancel, pinned=job.pinned)
    except Exception as error:  # noqa: BLE001 - e.g. no REPL can be started: every item says so
        for item in job.items:
            report(failed_result(item, error, ""))
        return JobOutcome(tuple(results), ())
    try:
        if prepare is not None:
            try:
                prepare(worker)
            except Exception as error:  # noqa: BLE001 - e.g. its REPL cannot start
                for item in job.items:
                    report(failed_result(item, error, worker.label()))
                return JobOutcome(tuple(results), ())
        # What raised while elaborating a header, by settings ("imports" for the imports).
        header_failures: dict[str, BaseException] = {}
        for item in job.items:
            failure = header_failures.get("imports") or header_failures.get(item.settings)
            if cancel.is_set():
                report(cancelled_result(item, worker.label()))
            elif failure is not None:
                report(failed_result(item, failure, worker.label()))
            else:
                try:
                    report(_run_item(worker, job, item, cancel))
                except _HeaderFailed as failed:
                    header_failures[failed.scope] = failed.error
                    report(failed_result(item, failed.error, worker.label()))
        held = tuple(worker.held_headers()) if worker.started else ()
    finally:
        workers.checkin(worker)
    return JobOutcome(tuple(results), held)


class _HeaderFailed(Exception):
    """A header raised (timeout, crash...): the job's items sharing it fail the same way.

    ``scope`` is ``"imports"`` when the imports failed, else the settings text that did.
    """

    def __init__(self, error: BaseException, scope: str) -> None:
        super().__init__(str(error))
        self.error = _about_header(error)
        self.scope = scope


def _run_item(
    worker: Worker, job: BatchJob, item: BatchItem, cancel: threading.Event
) -> ItemResult:
    """One item, on the worker's REPL; raises ``_HeaderFailed`` only."""
    header_time = 0.0
    start = time.perf_counter()
    try:
        if item.direct:
            assert item.request is not None
            response = worker.server.run(
                item.request,
                timeout=job.timeout,
                cancel=cancel,
                add_to_session_cache=item.keep_state,
                heartbeats=job.heartbeats,
            )
            seconds = time.perf_counter() - start
            verdict = _verdict(worker, job, item, response, cancel)
            return _answered(item, response, seconds, 0.0, worker.label(), verdict)
        assert job.header is not None
        for attempt in range(2):
            try:
                held, paid = _header(worker, job, item, cancel)
            except StaleStateError as error:  # restarted under us (memory check): once more
                if attempt:
                    raise _HeaderFailed(error, item.settings) from None
                continue
            header_time += paid
            if held.env is None or not item.body.strip():
                # Lean refused the header (every command sharing it fails the same way), or the
                # command is all header.
                return _answered(item, held.response, 0.0, header_time, worker.label())
            start = time.perf_counter()
            try:
                response = worker.server.run(
                    _body_request(item, held.env),
                    timeout=job.timeout,
                    cancel=cancel,
                    heartbeats=job.heartbeats,
                )
            except StaleStateError:
                if attempt:
                    raise
                continue
            seconds = time.perf_counter() - start
            verdict = _verdict(worker, job, item, response, cancel)
            response = shift_response(response, item.line_offset, list(held.response.messages))
            return _answered(item, response, seconds, header_time, worker.label(), verdict)
        raise AssertionError("unreachable")
    except _HeaderFailed:
        raise
    except Exception as error:  # noqa: BLE001 - one item's failure is its result
        return failed_result(item, error, worker.label(), time.perf_counter() - start, header_time)


def _verdict(
    worker: Worker, job: BatchJob, item: BatchItem, response: Response, cancel: threading.Event
) -> CommandVerdict:
    """The item's verdict, asked of the REPL that just ran it, on the env its body built (one
    more round trip: ``#print axioms`` of each declaration, its reference statement checked)."""
    outcome = outcome_of(status_of(response), response)
    env = response.env if isinstance(response, CommandResponse) else None
    if env is None:  # nothing to ask about (a failure, a proof step): the outcome says it all
        return command_verdict(outcome, item.judged_text)
    statements = dict([item.statement]) if item.statement else None

    def run(command: Command) -> Response:
        return worker.server.run(
            command, timeout=job.timeout, cancel=cancel, heartbeats=job.heartbeats
        )

    text = item.judged_text
    declarations = verdicts_for(run, env, text, outcome, job.allowed, statements)
    return command_verdict(outcome, text, declarations)


def _header(
    worker: Worker, job: BatchJob, item: BatchItem, cancel: threading.Event
) -> tuple[HeaderEnv, float]:
    """The env to run ``item``'s body on: its imports', plus its settings when it has some."""
    assert job.header is not None
    try:
        base, paid = worker.header_env(job.header, job.header_timeout, cancel)
    except StaleStateError:
        raise
    except Exception as error:  # noqa: BLE001 - reported on every item sharing the imports
        raise _HeaderFailed(error, "imports") from None
    if base.env is None or not item.settings.strip():
        return base, paid
    try:
        held, more = worker.settings_env(
            base,
            job.header,
            item.settings,
            item.settings_offset,
            job.header_timeout,
            cancel,
        )
    except StaleStateError:
        raise
    except Exception as error:  # noqa: BLE001 - reported on every item sharing the settings
        raise _HeaderFailed(error, item.settings) from None
    return held, paid + more


def _about_header(error: BaseException) -> BaseException:
    """The same error (type and fields), saying it happened on the header."""
    if isinstance(error, LeanKernelError):
        return error.reworded(f"While elaborating the header: {error}")
    return error


def _body_request(item: BatchItem, env: int) -> Command:
    template = item.request
    if isinstance(template, Command):
        return template.model_copy(update={"cmd": item.body, "env": env})
    return Command(cmd=item.body, env=env)


def detached(response: Response) -> Response:
    """Env and proof-state ids of a body name states in one worker's process: hide them, so they
    cannot be mistaken for states of another worker (``keep_states`` gives usable ids)."""
    if isinstance(response, LeanError):
        return response
    sorries = [s.model_copy(update={"proof_state": None}) for s in response.sorries]
    update: dict[str, Any] = {"sorries": sorries}
    if isinstance(response, CommandResponse):
        update["env"] = None
        update["tactics"] = [t.model_copy(update={"proof_state": None}) for t in response.tactics]
    return response.model_copy(update=update)


def _answered(
    item: BatchItem,
    response: Response,
    seconds: float,
    header_time: float,
    worker: str,
    verdict: CommandVerdict | None = None,
) -> ItemResult:
    if not item.direct and not isinstance(response, LeanError):
        response = detached(response)
    return _result(item, response, None, worker, seconds, header_time, verdict)


def failed_result(
    item: BatchItem,
    error: BaseException,
    worker: str = "",
    seconds: float = 0.0,
    header_time: float = 0.0,
) -> ItemResult:
    """The result of an item that raised (in its place, so the batch goes on)."""
    return _result(item, None, _picklable(error), worker, seconds, header_time)


def cancelled_result(item: BatchItem, worker: str = "") -> ItemResult:
    """The result of an item a cancel stopped before it ran."""
    error = ReplCancelledError("The batch was cancelled before this command ran.", started=False)
    return _result(item, None, error, worker, 0.0, 0.0)


def _result(
    item: BatchItem,
    response: Response | None,
    error: BaseException | None,
    worker: str,
    seconds: float,
    header_time: float,
    verdict: CommandVerdict | None = None,
) -> ItemResult:
    """An item's result: Lean's ``response``, or the ``error`` raised in its place, with its
    ``verdict`` (None: from its outcome alone)."""
    status = status_of_exception(error) if error is not None else status_of(response)
    if verdict is None:
        verdict = command_verdict(outcome_of(status, response, error), item.judged_text)
    return ItemResult(
        index=item.index,
        command=item.text,
        status=status,
        response=response,
        error=error,
        time=seconds,
        header_time=header_time,
        worker=worker,
        verdict=verdict.verdict,
        verdict_reason=verdict.reason,
        declarations=verdict.declarations,
    )


def _picklable(error: BaseException) -> BaseException:
    """``error`` itself when it can travel back from a worker process, else a stand-in."""
    try:
        pickle.dumps(error)
    except Exception:  # noqa: BLE001 - any pickling failure
        wrapped = LeanKernelError(f"{type(error).__name__}: {error}")
        wrapped.__cause__ = None
        return wrapped
    return error

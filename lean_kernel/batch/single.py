"""One request on a pool (``LeanServerPool.run``): on a worker of this process, or on a cluster.

On a cluster the client holds no REPL: the request goes as a one-item job to a slot, with the
pool's kept states for that slot's process to replay when the request uses one. A state it asks
to keep is kept here, in the pool's session cache (the request that built it, and the negative
ids standing for its states), so it works on any slot afterwards, as locally.
"""

from __future__ import annotations

import concurrent.futures
import threading
import uuid

from lean_kernel.batch.dispatch import Dispatcher
from lean_kernel.batch.jobs import BatchItem, BatchJob, JobOutcome, detached
from lean_kernel.engine.heartbeats import HeartbeatSetting
from lean_kernel.engine.ids import KeptIds
from lean_kernel.engine.protocol import (
    BaseREPLQuery,
    CommandResponse,
    ProofStepResponse,
    Response,
)

__all__ = ["run_request"]

_WAIT_SLICE_S = 0.1


def run_request(
    dispatcher: Dispatcher,
    request: BaseREPLQuery,
    *,
    timeout: float | None,
    cancel: threading.Event | None,
    add_to_session_cache: bool,
    heartbeats: HeartbeatSetting | None,
) -> Response:
    """Run ``request`` on a free slot of the pool (one holding the state it uses, if any)."""
    slot = dispatcher.acquire_slot(request, cancel)
    try:
        if not dispatcher.engine.pins_slots:
            server = dispatcher.workers.workers[slot].server
            return server.run(
                request,
                timeout=timeout,
                cancel=cancel,
                add_to_session_cache=add_to_session_cache,
                heartbeats=heartbeats,
            )
        job = BatchJob(
            pool_id=dispatcher.pool_id,
            batch_id=uuid.uuid4().hex,
            config=dispatcher.config,
            items=(BatchItem(index=0, text=repr(request), request=request, direct=True),),
            timeout=timeout,
            heartbeats=heartbeats,
            worker_hint=slot,
            server_options=dispatcher.job_options,
            pinned=True,
            session_entries=tuple(dispatcher.workers.session_cache.entries()),
        )
        result = _await(dispatcher, job, cancel).results[0]
    finally:
        dispatcher.release_slot(slot)
    if result.error is not None:
        raise result.error
    response = result.response
    assert response is not None
    if not isinstance(response, (CommandResponse, ProofStepResponse)):
        return response
    if not add_to_session_cache:
        return detached(response)  # its ids name states of one remote process
    # The remote run kept nothing: keep the request here, with ids for its states.
    return KeptIds(dispatcher.workers.session_cache).keep(request, response)


def _await(dispatcher: Dispatcher, job: BatchJob, cancel: threading.Event | None) -> JobOutcome:
    """The job's outcome; a ``cancel`` on the way stops it where it runs (its REPL killed)."""
    future = dispatcher.engine.submit(job)
    while True:
        try:
            return future.result(timeout=_WAIT_SLICE_S)
        except concurrent.futures.TimeoutError:
            if cancel is not None and cancel.is_set():
                dispatcher.engine.cancel(job.batch_id, [future])
                cancel = None  # told once; its outcome says how it ended

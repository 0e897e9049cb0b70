"""``%%lean_batch``, once for both hosts: the Lean kernel and the IPython extension.

A host reads the magic's line and commands (``lean_kernel.batch.args``), then ``start_batch``
does the rest of what both do the same way: take the warm pool from the host's ``BatchKeeper``
(made for the number of workers asked), submit the commands, keep the ``BatchRun`` for status
tables, tell the user where the results go, and attach live progress. Only what truly differs
stays in the host, behind ``BatchHost``: its words, where progress is shown, and what happens
after the start (the kernel awaits the batch and shows its table; IPython returns at once with
the results bound to a variable).
"""

from __future__ import annotations

import warnings
from typing import Protocol

from lean_kernel.batch.args import BatchArgs
from lean_kernel.batch.keeper import BatchKeeper, BatchRun
from lean_kernel.display.progress import ProgressMode, Send, attach_progress
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.settings import Settings

__all__ = ["BatchHost", "start_batch"]


class BatchHost(Protocol):
    """What ``%%lean_batch`` needs of the host it runs in."""

    #: the defaults a batch line leaves out: timeout, workers, memory per REPL, progress mode;
    #: and how long an idle pool REPL lives
    settings: Settings
    #: the warm pool and the batches kept for status tables
    keeper: BatchKeeper

    def pool_config(self) -> LeanREPLConfig:
        """The config a new pool starts its REPLs from (called only when one is made)."""
        ...

    def note(self, text: str) -> None:
        """Tell the user something about the pool (e.g. that this batch joins a running one)."""

    def warn(self, text: str) -> None:
        """Warn the user (e.g. a pool capped by memory has fewer workers than asked)."""

    def announce(self, run: BatchRun, count: int) -> None:
        """Say that ``count`` commands started and where their results go."""

    def progress_target(self, mode: str) -> tuple[ProgressMode, Send | None]:
        """The progress view for ``mode`` here, and the ``send`` that shows it (None: a
        terminal line)."""
        ...


def start_batch(host: BatchHost, args: BatchArgs, commands: list[str]) -> BatchRun:
    """Submit ``commands`` to the host's warm pool as ``args`` ask; returns the kept run, with
    its progress view attached, at once (the batch runs in the background)."""
    settings = host.settings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        pool = host.keeper.pool_for(
            host.pool_config,
            args.workers or settings.workers,
            max_process_memory=settings.memory_mb,
            idle_timeout=settings.idle_timeout,
            note=host.note,
            cluster=args.cluster or settings.cluster,
        )
    for warning in caught:  # e.g. fewer workers than asked, for memory: the user's to see
        if issubclass(warning.category, RuntimeWarning):
            host.warn(str(warning.message))
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    timeout = args.timeout if args.timeout is not None else settings.timeout
    heartbeats = args.heartbeats if args.heartbeats is not None else settings.heartbeats
    handle = pool.submit_batch(
        commands,
        header=args.header,
        timeout_per_cmd=timeout,
        heartbeats=heartbeats,
        label=args.output,
        cache=args.cache,
        require=args.require,
        allow=args.allow,
    )
    run = BatchRun(args.output, handle, workers=pool.num_workers)
    host.keeper.add(run)
    host.announce(run, len(commands))
    mode, send = host.progress_target(args.progress or settings.progress)
    run.progress = attach_progress(handle, mode, send=send)
    return run

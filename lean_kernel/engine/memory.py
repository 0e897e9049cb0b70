"""Memory limits of a REPL process: checked before a command, and sampled during one.

A Lean command can allocate gigabytes in seconds, so waiting for it to finish before looking is
too late: a watchdog thread samples the running REPL and kills it when it goes over a limit.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

from lean_kernel.engine.process import ReplProcess


@dataclass
class MemoryLimits:
    """When a REPL uses too much memory: its process tree over ``max_process_memory`` MB, or
    the machine over ``max_total_memory`` (a fraction; 1.0 or more turns that check off)."""

    max_total_memory: float = 0.8
    max_process_memory: float | None = None

    def exceeded(self, proc: ReplProcess) -> str | None:
        """Why ``proc`` is over a limit, in words (for ``ReplMemoryError.reason``), or None."""
        if self.max_process_memory is not None:
            used = proc.memory_mb()
            if used > self.max_process_memory:
                return f"the REPL used {used:.0f} MB > max_process_memory={self.max_process_memory}"
        if self.max_total_memory < 1.0:
            fraction = psutil.virtual_memory().percent / 100
            if fraction > self.max_total_memory:
                return (
                    f"the machine's memory is {fraction:.0%} used "
                    f"> max_total_memory={self.max_total_memory:.0%}"
                )
        return None


class MemoryWatchdog:
    """A daemon thread that kills the REPL when a running command pushes it over its limits.

    The server marks the command with ``watching(proc)``; a command shorter than ``interval``
    is never sampled. After a kill, ``kill_reason(proc)`` tells the server why its REPL died.
    The thread holds the watchdog only weakly, so dropping the server stops it.
    """

    def __init__(self, limits: MemoryLimits, interval: float) -> None:
        self.limits = limits
        self.interval = interval
        self._watched: tuple[ReplProcess, float] | None = None
        self._killed: tuple[ReplProcess, str] | None = None
        self._stop = threading.Event()
        weakref.finalize(self, self._stop.set)
        threading.Thread(
            target=_sample,
            args=(weakref.ref(self), self._stop, interval),
            name="repl-memory-watchdog",
            daemon=True,
        ).start()

    @contextlib.contextmanager
    def watching(self, proc: ReplProcess | None) -> Iterator[None]:
        """Sample ``proc`` while the block (one command) runs."""
        self._watched = (proc, time.monotonic()) if proc is not None else None
        try:
            yield
        finally:
            self._watched = None

    def kill_reason(self, proc: ReplProcess) -> str | None:
        """Which limit ``proc`` went over if the watchdog killed it, else None."""
        killed = self._killed
        return killed[1] if killed is not None and killed[0] is proc else None

    def stop(self) -> None:
        """End the thread (at its next sample)."""
        self._stop.set()

    def check(self) -> None:
        """One sample: kill the watched REPL if its command has run a while and is over a limit."""
        watched = self._watched
        if watched is None:
            return
        proc, since = watched
        if time.monotonic() - since < self.interval:
            return
        over = self.limits.exceeded(proc)
        # Kill only what was measured, and only if that command still runs.
        if over and self._watched is watched:
            self._killed = (proc, over)
            proc.send_kill()


def _sample(ref: weakref.ref[MemoryWatchdog], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        watchdog = ref()
        if watchdog is None:
            return
        with contextlib.suppress(Exception):
            watchdog.check()
        del watchdog

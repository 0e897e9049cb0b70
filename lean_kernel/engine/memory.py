"""Memory limits of a REPL process: checked before a command, and sampled during one.

A Lean command can allocate gigabytes in seconds, so waiting for it to finish before looking is
too late: a watchdog thread samples the running REPL and kills it when it goes over a limit.

The last sample of each process is kept, so a REPL that the system killed (the out-of-memory
killer's SIGKILL, which nobody here sent) can be reported as out of memory, with the figure,
instead of as a mysterious crash (``MemoryLimits.near_ceiling`` has the rule).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

from lean_kernel.engine.process import ReplProcess
from lean_kernel.errors import LeanKernelError, ReplCrashedError, ReplMemoryError

_MB = 1024 * 1024
#: The out-of-memory rule: a REPL killed by SIGKILL that lean_kernel did not send counts as out
#: of memory when its last sampled memory was at least this fraction of its lowest ceiling (its
#: max_process_memory, the max_total_memory share of the machine, the machine's memory, the
#: container's memory limit). Samples lag a growing REPL by up to the watchdog's interval, and
#: the kill comes when the ceiling is reached, so "near" allows a quarter below it.
NEAR_CEILING = 0.75
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def describe_memory(mb: float) -> str:
    """A memory figure for people: ``270 MB``, ``3.2 GB``, ``12 GB``."""
    if mb < 1024:
        return f"{mb:.0f} MB"
    gb = mb / 1024
    return f"{gb:.1f} GB" if gb < 10 else f"{gb:.0f} GB"


@dataclass
class MemoryLimits:
    """When a REPL uses too much memory: its process tree over ``max_process_memory`` MB, or
    the machine over ``max_total_memory`` (a fraction; 1.0 or more turns that check off)."""

    max_total_memory: float = 0.8
    max_process_memory: float | None = None

    def exceeded(self, proc: ReplProcess, used_mb: float | None = None) -> str | None:
        """Why ``proc`` is over a limit, in words (for ``ReplMemoryError.reason``), or None.

        ``used_mb`` is its memory if just measured (else it is measured here when needed).
        """
        if self.max_process_memory is not None:
            used = proc.memory_mb() if used_mb is None else used_mb
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

    def near_ceiling(self, used_mb: float) -> str | None:
        """The ceiling a REPL last seen using ``used_mb`` MB was near (the out-of-memory rule,
        see ``NEAR_CEILING``), in words (``max_process_memory=8000 MB``), or None."""
        name, ceiling = min(self.ceilings(), key=lambda item: item[1])
        return name if used_mb >= NEAR_CEILING * ceiling else None

    def ceilings(self) -> list[tuple[str, float]]:
        """The memory a REPL can reach before it is killed, by us or by the system: (words, MB)."""
        total = psutil.virtual_memory().total / _MB
        found = [(f"the machine's {describe_memory(total)}", total)]
        if self.max_total_memory < 1.0:
            share = total * self.max_total_memory
            found.append((f"max_total_memory={self.max_total_memory:.0%} of the machine", share))
        if self.max_process_memory is not None:
            found.append(
                (f"max_process_memory={self.max_process_memory:g} MB", self.max_process_memory)
            )
        container = _container_limit_mb()
        if container is not None and container < total:
            found.append((f"the container's {describe_memory(container)} limit", container))
        return found


def out_of_memory(
    limits: MemoryLimits, crash: ReplCrashedError, last_seen_mb: float | None, note: str = ""
) -> ReplMemoryError | None:
    """``crash`` as what it most likely was, running out of memory, or None when it was not.

    The system's out-of-memory killer ends a process with SIGKILL, as nobody else here does
    unasked; so a REPL that exited by SIGKILL while last seen near a ceiling (see
    ``NEAR_CEILING``) ran out of memory. ``note`` (the stderr tail) goes at the end.
    """
    if crash.exit_code != -signal.SIGKILL or last_seen_mb is None:
        return None
    near = limits.near_ceiling(last_seen_mb)
    if near is None:
        return None
    seen = describe_memory(last_seen_mb)
    return ReplMemoryError(
        f"The REPL ran out of memory (last seen {seen}, near {near}): the system killed it "
        "(SIGKILL). Give Lean more memory (close other programs, or use a machine or container "
        "with more), or split the work into smaller commands." + note,
        reason=f"the system killed the REPL (SIGKILL), last seen using {seen}, near {near}",
        last_seen_mb=last_seen_mb,
        exit_code=crash.exit_code,
    )


def _container_limit_mb() -> float | None:
    """The memory limit of this process's container (cgroup v2, then v1), if it has one."""
    for path in _CGROUP_LIMITS:
        with contextlib.suppress(OSError, ValueError):
            with open(path, encoding="ascii") as file:
                text = file.read().strip()
            return None if text == "max" else int(text) / _MB
    return None


class MemoryWatchdog:
    """A daemon thread that kills the REPL when a running command pushes it over its limits.

    The server marks the command with ``watching(proc)``; a command shorter than ``interval``
    is never sampled. After a kill, ``kill_reason(proc)`` tells the server why its REPL died;
    ``last_seen_mb(proc)`` is its memory at the last sample, whoever killed it.
    The thread holds the watchdog only weakly, so dropping the server stops it.
    """

    def __init__(self, limits: MemoryLimits, interval: float) -> None:
        self.limits = limits
        self.interval = interval
        self._watched: tuple[ReplProcess, float] | None = None
        self._killed: tuple[ReplProcess, str] | None = None
        self._seen: tuple[ReplProcess, float] | None = None
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

    def explain(self, proc: ReplProcess, death: LeanKernelError, note: str = "") -> LeanKernelError:
        """What ``proc``'s end (``death``, as its server saw it) was: the watchdog's kill over a
        limit, the system running out of memory (`out_of_memory`), or ``death`` itself.
        ``note`` (the stderr tail) ends an out-of-memory message."""
        over = self.kill_reason(proc)
        last_seen = self.last_seen_mb(proc)
        if over is not None:
            return ReplMemoryError(
                f"The REPL went over its memory limit ({over}) and was killed. "
                "Raise max_process_memory / max_total_memory, or split the work.",
                reason=over,
                last_seen_mb=last_seen,
            )
        if isinstance(death, ReplCrashedError):
            return out_of_memory(self.limits, death, last_seen, note) or death
        return death

    def sample(self, proc: ReplProcess) -> float:
        """Measure ``proc``'s memory (MB) now, and keep it as its last seen figure."""
        used = proc.memory_mb()
        if used > 0:  # a process that is gone measures 0: keep what it was last seen using
            self._seen = (proc, used)
        return used

    def last_seen_mb(self, proc: ReplProcess) -> float | None:
        """``proc``'s memory at its last sample (MB), or None when it was never sampled."""
        seen = self._seen
        return seen[1] if seen is not None and seen[0] is proc else None

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
        over = self.limits.exceeded(proc, self.sample(proc))
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

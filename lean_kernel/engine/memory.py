"""Memory limits of a REPL process: checked before a command, and sampled during one.

A Lean command can allocate gigabytes in seconds, so waiting for it to finish before looking is
too late: a watchdog thread samples the running REPL and kills it when it goes over a limit.

The last sample of each process is kept, so a REPL that the system killed (the out-of-memory
killer's SIGKILL, which nobody here sent) can be reported as out of memory, with the figure,
instead of as a mysterious crash (``MemoryLimits.near_ceiling`` has the rule).

Which memory is the REPL's (``ReplMemory``): Lean maps ``.olean`` files read-only, so REPLs that
import the same Mathlib share those pages, and RSS counts them in full in every one of them. The
soft limit (``max_process_memory``) and the pool's status go by PSS instead, which splits each
shared page among the processes mapping it (so PSS summed over REPLs counts it once). The
out-of-memory rule keeps RSS, the figure the system's killer goes by; the hard limit
(``memory_hard_limit_mb``, an rlimit set at start) is the system's to enforce.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

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
#: The least time between two PSS measurements of one REPL by the watchdog while its RSS is over
#: max_process_memory. PSS reads /proc/PID/smaps_rollup, which walks the REPL's page tables: about
#: 15 ms for a 4 GB process, against microseconds for RSS. In between, RSS growth tells whether
#: the last PSS figure still clears the limit (see ``MemoryWatchdog.sample``).
PSS_REFRESH_S = 1.0
#: Seconds between samples of a REPL at rest (between commands), against its limits.
REST_CHECK_S = 1.0

MemoryBasis = Literal["pss", "uss", "rss"]


@dataclass(frozen=True)
class ReplMemory:
    """The memory of a REPL process tree (the process and all its descendants), in MB.

    ``rss_mb`` (resident set size) counts every resident page a process maps, shared ones in full.
    ``pss_mb`` (proportional set size, Linux) splits each shared page evenly among the processes
    mapping it, so summed over REPLs it counts their shared ``.olean`` pages once; ``uss_mb``
    (unique set size) counts only the pages no other process maps. Either is None when not
    measured: the system does not give it, a process of the tree refused it, or only RSS was
    asked for. ``processes`` is how many processes were measured (0: the tree is gone).
    """

    rss_mb: float
    pss_mb: float | None = None
    uss_mb: float | None = None
    processes: int = 0

    @property
    def basis(self) -> MemoryBasis:
        """Which figure ``own_mb`` is: PSS where there is one, else USS, else RSS."""
        if self.pss_mb is not None:
            return "pss"
        return "uss" if self.uss_mb is not None else "rss"

    @property
    def own_mb(self) -> float:
        """The memory that is really the REPL's (MB): PSS, else USS, else (neither measured) RSS."""
        if self.pss_mb is not None:
            return self.pss_mb
        return self.uss_mb if self.uss_mb is not None else self.rss_mb


def measure_repl_memory(pid: int | None, *, rss_only: bool = False) -> ReplMemory:
    """The memory of process ``pid`` and all its descendants (a ``lake env`` wrapper's REPL too).

    PSS and USS come from ``memory_full_info`` (PSS on Linux, USS on macOS and Windows), which is
    slow (``PSS_REFRESH_S``); ``rss_only`` measures RSS alone, which is cheap. A process that
    vanishes while measured, or has exited (a zombie), counts for nothing; one that refuses its
    full figures leaves PSS and USS unmeasured (None) for the whole tree. ``pid`` None, gone or
    exited measures 0 processes.
    """
    procs: list[psutil.Process] = []
    if pid is not None:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
            procs.extend(procs[0].children(recursive=True))
    rss = measured = 0
    pss: int | None = None if rss_only else 0
    uss: int | None = None if rss_only else 0
    for proc in procs:
        try:
            info = proc.memory_info() if rss_only else proc.memory_full_info()
        except psutil.AccessDenied:
            try:
                info = proc.memory_info()
            except psutil.Error:
                continue
        except psutil.Error:  # gone since the tree was listed: it holds nothing
            continue
        if info.rss == 0:  # a zombie (exited, not yet reaped) measures 0 without raising
            continue
        measured += 1
        rss += info.rss
        proc_pss, proc_uss = getattr(info, "pss", None), getattr(info, "uss", None)
        pss = None if pss is None or proc_pss is None else pss + proc_pss
        uss = None if uss is None or proc_uss is None else uss + proc_uss
    return ReplMemory(
        rss_mb=rss / _MB,
        pss_mb=None if pss is None else pss / _MB,
        uss_mb=None if uss is None else uss / _MB,
        processes=measured,
    )


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

    def exceeded(self, proc: ReplProcess, used: ReplMemory | None = None) -> str | None:
        """Why ``proc`` is over a limit, in words (for ``ReplMemoryError.reason``), or None.

        ``max_process_memory`` goes by the REPL's own memory (``ReplMemory.own_mb``, PSS), not
        its RSS. ``used`` is its memory if just measured (``MemoryWatchdog.sample``, which
        measures PSS whenever RSS alone does not clear the limit); else it is measured here.
        """
        if self.max_process_memory is not None:
            if used is None:
                used = measure_repl_memory(proc.pid)
            if used.own_mb > self.max_process_memory:
                return (
                    f"the REPL used {used.own_mb:.0f} MB of its own ({used.basis.upper()}) "
                    f"> max_process_memory={self.max_process_memory}"
                )
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
    """A daemon thread that kills the REPL when a running command pushes it over its limits,
    and notices when a REPL at rest is over them.

    The server marks each command with ``watch(proc)`` and ``unwatch()`` (``watching(proc)`` is
    the same as a block); a command shorter than ``interval`` is never sampled. After a kill,
    ``explain(proc, ...)`` tells the server why its REPL died;
    ``last_seen_mb(proc)`` is its memory (RSS) at the last sample, whoever killed it.
    Between commands, the last watched process is sampled every ``REST_CHECK_S``: over a limit,
    ``over_limit`` holds it and why, for the server to replace it before its next request (off
    the request's path: measuring a process tree reads every process of the machine).
    The thread holds the watchdog only weakly, so dropping the server stops it.
    """

    def __init__(self, limits: MemoryLimits, interval: float) -> None:
        self.limits = limits
        self.interval = interval
        self._watched: tuple[ReplProcess, float] | None = None
        self._resting: ReplProcess | None = None  # the last watched process, between commands
        self._rest_checked = 0.0
        #: A process found over a limit between commands, and why (see ``take_over_limit``).
        self.over_limit: tuple[ReplProcess, str] | None = None
        self._killed: tuple[ReplProcess, str, float] | None = None  # why, MB sampled
        self._seen: tuple[ReplProcess, float] | None = None  # RSS, for the out-of-memory rule
        self._pss: tuple[ReplProcess, ReplMemory, float] | None = None  # measured when
        self._stop = threading.Event()
        weakref.finalize(self, self._stop.set)
        threading.Thread(
            target=_sample,
            args=(weakref.ref(self), self._stop, interval),
            name="repl-memory-watchdog",
            daemon=True,
        ).start()

    def watch(self, proc: ReplProcess | None) -> None:
        """Sample ``proc`` from now until ``unwatch()``: one command. Plain calls, for the server
        marks every request (``watching`` is the same as a ``with`` block)."""
        self._watched = (proc, time.monotonic()) if proc is not None else None
        self._resting = proc

    def unwatch(self) -> None:
        """The watched command is over."""
        self._watched = None

    @contextlib.contextmanager
    def watching(self, proc: ReplProcess | None) -> Iterator[None]:
        """Sample ``proc`` while the block (one command) runs."""
        self.watch(proc)
        try:
            yield
        finally:
            self.unwatch()

    def explain(self, proc: ReplProcess, death: LeanKernelError, note: str = "") -> LeanKernelError:
        """What ``proc``'s end (``death``, as its server saw it) was: the watchdog's kill over a
        limit, the system running out of memory (`out_of_memory`), or ``death`` itself.
        ``note`` (the stderr tail) ends an out-of-memory message."""
        killed = self._killed
        if killed is not None and killed[0] is proc:
            # The figure the reason compares (own memory, for max_process_memory).
            return ReplMemoryError(
                f"The REPL went over its memory limit ({killed[1]}) and was killed. "
                "Raise max_process_memory / max_total_memory, or split the work.",
                reason=killed[1],
                last_seen_mb=killed[2],
            )
        last_seen = self.last_seen_mb(proc)
        if isinstance(death, ReplCrashedError):
            return out_of_memory(self.limits, death, last_seen, note) or death
        return death

    def sample(self, proc: ReplProcess) -> ReplMemory:
        """Measure ``proc``'s memory now, as far as ``MemoryLimits.exceeded`` needs, and keep its
        RSS as its last seen figure.

        RSS is cheap and never below PSS, so an RSS within ``max_process_memory`` clears the REPL
        and is all that is measured. Over it, PSS decides, measured at most every
        ``PSS_REFRESH_S``: in between, the last PSS figure stands while the RSS growth since
        (own memory grows no faster) cannot have taken it over the limit.
        """
        resident = measure_repl_memory(proc.pid, rss_only=True)
        if resident.processes == 0:  # gone: keep what it was last seen using
            return resident
        self._seen = (proc, resident.rss_mb)
        limit = self.limits.max_process_memory
        if limit is None or resident.rss_mb <= limit:
            return resident
        now = time.monotonic()
        last = self._pss
        if (
            last is not None
            and last[0] is proc
            and now - last[2] < PSS_REFRESH_S
            # A sharer exiting raises PSS with no RSS growth: that is seen at the next refresh.
            and last[1].own_mb + (resident.rss_mb - last[1].rss_mb) <= limit
        ):
            return last[1]
        measured = measure_repl_memory(proc.pid)
        self._pss = (proc, measured, now)
        return measured

    def last_seen_mb(self, proc: ReplProcess) -> float | None:
        """``proc``'s resident memory (RSS, MB) at its last sample, or None when never sampled:
        the figure of the out-of-memory rule, as the system's killer goes by RSS too."""
        seen = self._seen
        return seen[1] if seen is not None and seen[0] is proc else None

    def stop(self) -> None:
        """End the thread (at its next sample)."""
        self._stop.set()

    def take_over_limit(self, proc: ReplProcess) -> str:
        """Why ``proc`` was found over a limit between commands ("" if it was not); forgets it."""
        over = self.over_limit
        if over is None:
            return ""
        self.over_limit = None
        return over[1] if over[0] is proc else ""

    def check(self) -> None:
        """One sample: kill the watched REPL if its command has run a while and is over a limit;
        between commands, every ``REST_CHECK_S``, note a resting REPL over a limit."""
        watched = self._watched
        if watched is None:
            self._check_resting()
            return
        proc, since = watched
        if time.monotonic() - since < self.interval:
            return
        used = self.sample(proc)
        over = self.limits.exceeded(proc, used)
        # Kill only what was measured, and only if that command still runs.
        if over and self._watched is watched:
            self._killed = (proc, over, used.own_mb)
            proc.send_kill()

    def _check_resting(self) -> None:
        proc, now = self._resting, time.monotonic()
        if proc is None or now - self._rest_checked < REST_CHECK_S:
            return  # (a process gone measures nothing: no poll here, which would reap it)
        self._rest_checked = now
        over = self.limits.exceeded(proc, self.sample(proc))
        if over and self._watched is None and self._resting is proc:  # still at rest
            self.over_limit = (proc, over)


def _sample(ref: weakref.ref[MemoryWatchdog], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        watchdog = ref()
        if watchdog is None:
            return
        with contextlib.suppress(Exception):
            watchdog.check()
        del watchdog

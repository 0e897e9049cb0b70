"""The guardian: one small process per host process, which kills the host's REPLs when it dies.

Why it exists: a REPL busy with a command never reads its stdin, so it never sees the EOF its
host's death causes, and lives on (with Mathlib, GBs each). ``PR_SET_PDEATHSIG`` cannot cover
this: it fires when the *thread* that started the REPL exits (so not for REPLs started from a
thread pool), and never reaches the real REPL under a ``lake env`` wrapper.

So the first REPL a Python process starts also starts its guardian: a child in its own session
(signals to the host's process group do not reach it) whose stdin is a pipe only the host holds.
The host tells it the pid of each REPL it starts (a process-group leader) and of each it has
killed and reaped. When that pipe reaches EOF, because the host exited or was killed however
(SIGKILL included), or when the guardian finds it has been reparented, it SIGKILLs every REPL
process group still registered, and the descendants that left their group, then exits. A
normal exit of the host closes the pipe too: whatever is still registered then dies with it.

The host side survives ``fork`` (a forked child closes its copy of the pipe, so it cannot keep
its parent's guardian waiting, and starts a guardian of its own for the REPLs it starts) and the
guardian's death (a new one is started and told every REPL again). This file is also the
guardian's program: run as a script it imports only the standard library and psutil, so it
starts in a few tens of milliseconds and stays small.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
import warnings

import psutil

__all__ = ["close", "forget", "guardian_pid", "main", "watch"]

#: How often the guardian checks that its host is still its parent and drops registered REPLs
#: that are gone (so a reused pid is never mistaken for one of them).
CHECK_INTERVAL_S = 1.0
#: How many times a host restarts a guardian that died before giving up (with a warning).
MAX_RESTARTS = 10

# `python -c` with this, then the path of this file and the host's pid: runs the file as the
# guardian without importing lean_kernel (and without the working directory on sys.path).
_BOOT = (
    "import sys, runpy\n"
    "del sys.argv[0]\n"
    "if sys.path and sys.path[0] == '':\n"
    "    del sys.path[0]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


# -- the host's side -------------------------------------------------------------------------


class _HostSide:
    """What a host process knows of its guardian: the process, the pipe to it, the REPLs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inherited: list[subprocess.Popen] = []  # a parent's guardians, never waited on
        self._reset()

    def _reset(self) -> None:
        self._owner = os.getpid()
        self._popen: subprocess.Popen | None = None
        self._write_fd: int | None = None
        self._read_fd: int | None = None
        self._watched: set[int] = set()
        self._restarts = 0
        self._gave_up = False

    # -- what process.py calls ---------------------------------------------------------------

    def watch(self, pid: int) -> None:
        with self._lock:
            self._adopt_after_fork()
            self._watched.add(pid)
            if self._popen is None:
                self._start()
            else:
                self._send(b"+%d\n" % pid)

    def forget(self, pid: int) -> None:
        with self._lock:
            self._adopt_after_fork()
            if pid in self._watched:
                self._watched.discard(pid)
                self._send(b"-%d\n" % pid)

    def pid(self) -> int | None:
        with self._lock:
            self._adopt_after_fork()
            return self._popen.pid if self._popen is not None else None

    def close(self) -> None:
        with self._lock:
            if self._owner != os.getpid() or self._popen is None:
                return
            popen, self._popen = self._popen, None
            self._close_fd("_write_fd")  # EOF: the guardian kills what is still registered
            self._watched.clear()
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=2)

    # -- fork ----------------------------------------------------------------------------------

    def after_fork_in_child(self) -> None:
        """In a forked child: drop the parent's guardian (its REPLs are not this process's)."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._adopt_after_fork()

    def _adopt_after_fork(self) -> None:
        if self._owner == os.getpid():
            return
        if self._popen is not None:
            self._inherited.append(self._popen)  # not our child: never waited on, never warned
        self._close_fd("_write_fd")
        self._close_fd("_read_fd")
        self._reset()

    # -- starting, telling, restarting ---------------------------------------------------------

    def _start(self) -> None:
        """Start a guardian and tell it every REPL registered (called with the lock held)."""
        if self._gave_up:
            return
        if getattr(sys, "frozen", False) or not sys.executable:
            self._give_up("this program has no Python interpreter at sys.executable to run it")
            return
        fds: list[int] = []
        try:
            to_guardian, from_host = os.pipe()  # both close on exec: no REPL ever holds them
            fds += (to_guardian, from_host)
            from_guardian, to_host = os.pipe()
            fds += (from_guardian, to_host)
            popen = subprocess.Popen(
                [sys.executable, "-c", _BOOT, os.path.abspath(__file__), str(os.getpid())],
                stdin=to_guardian,
                stdout=to_host,
                stderr=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,
            )
        except OSError as err:
            for fd in fds:
                os.close(fd)
            self._give_up(f"it could not be started ({err})")
            return
        os.close(to_guardian)  # the guardian's ends: only it may hold them
        os.close(to_host)
        self._popen, self._write_fd, self._read_fd = popen, from_host, from_guardian
        with contextlib.suppress(RuntimeError):  # at interpreter exit: no restarts needed
            threading.Thread(
                target=self._wait_for_death,
                args=(popen, from_guardian),
                name=f"repl-guardian-{popen.pid}",
                daemon=True,
            ).start()
        self._send(b"".join(b"+%d\n" % pid for pid in sorted(self._watched)))

    def _send(self, message: bytes) -> None:
        """Write to the guardian (lock held); a guardian found dead is replaced."""
        view = memoryview(message)
        while view and self._write_fd is not None:
            try:
                view = view[os.write(self._write_fd, view) :]
            except OSError:  # EPIPE: the guardian died; the new one is told everything
                self._replace()
                return

    def _replace(self, exit_code: int | None = None) -> None:
        """Start a new guardian in place of a dead one (lock held)."""
        self._popen = None
        self._close_fd("_write_fd")
        self._restarts += 1
        if self._restarts > MAX_RESTARTS:
            self._give_up(f"it died {self._restarts} times (last exit code {exit_code})")
            return
        self._start()

    def _wait_for_death(self, popen: subprocess.Popen, read_fd: int) -> None:
        """Reap a guardian when it exits, and replace it if its host still needs it."""
        with contextlib.suppress(OSError):
            while os.read(read_fd, 512):  # the guardian writes nothing: this waits for EOF
                pass
        with contextlib.suppress(Exception):
            popen.wait()
        with self._lock:
            if self._read_fd == read_fd:
                self._read_fd = None
            with contextlib.suppress(OSError):
                os.close(read_fd)
            if self._popen is popen:  # not closed on purpose, not already replaced
                self._replace(popen.returncode)

    def _give_up(self, why: str) -> None:
        self._gave_up = True
        self._popen = None
        self._close_fd("_write_fd")
        warnings.warn(
            f"lean-kernel's guardian process is not running: {why}. REPLs still die when this "
            "process exits or closes them, but a busy REPL may outlive a hard kill of it.",
            RuntimeWarning,
            stacklevel=2,
        )

    def _close_fd(self, name: str) -> None:
        fd = getattr(self, name)
        setattr(self, name, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


_host = _HostSide()
atexit.register(_host.close)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_host.after_fork_in_child)


def watch(pid: int) -> None:
    """Have this process's guardian kill the process group of ``pid`` (and its descendants) if
    this process dies while it runs; starts the guardian on first use. Never raises."""
    _host.watch(pid)


def forget(pid: int) -> None:
    """``pid`` was killed and reaped: the guardian no longer needs to kill it (a no-op for a pid
    never watched)."""
    _host.forget(pid)


def guardian_pid() -> int | None:
    """The pid of this process's guardian, or None while it has none (for tests and doctors)."""
    return _host.pid()


def close() -> None:
    """Stop the guardian now; it kills the REPLs still registered. Runs at interpreter exit."""
    _host.close()


# -- the guardian's side ---------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """The guardian's program: ``argv[1]`` is the host's pid; stdin is the host's pipe.

    Reads ``+PID`` / ``-PID`` lines until EOF, or until the host is no longer its parent (the
    host died while something else, e.g. a process forked without exec, holds the pipe open);
    then kills every registered REPL process group and its descendants, and exits.
    """
    host = int(argv[1])
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)  # a terminal's or a host's signals are not for us
    watched: dict[int, psutil.Process | None] = {}
    pending = b""
    last_check = time.monotonic()
    while True:
        readable, _, _ = select.select([0], [], [], CHECK_INTERVAL_S)
        if readable:
            data = os.read(0, 1 << 16)
            if not data:
                break  # a line cut short by the host's death is dropped, never half-read
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                _apply(line, watched)
        if time.monotonic() - last_check >= CHECK_INTERVAL_S or not readable:
            last_check = time.monotonic()
            if os.getppid() != host:
                break
            _prune(watched)
    _kill(watched)
    return 0


def _apply(line: bytes, watched: dict[int, psutil.Process | None]) -> None:
    """One message from the host: ``+PID`` registers a REPL, ``-PID`` forgets it."""
    try:
        sign, pid = line[:1], int(line[1:])
    except ValueError:
        return
    if pid <= 1:
        return  # killpg(0) would be our own group, and 1 is init's
    if sign == b"+":
        try:
            watched[pid] = psutil.Process(pid)  # remembers its start time: no reused pid
        except psutil.Error:
            watched[pid] = None  # already gone; its group may not be
    elif sign == b"-":
        watched.pop(pid, None)


def _prune(watched: dict[int, psutil.Process | None]) -> None:
    """Forget REPLs whose process and group are both gone, before their pid can be reused."""
    for pid, proc in list(watched.items()):
        if not _running(proc) and not _group_exists(pid):
            del watched[pid]


def _kill(watched: dict[int, psutil.Process | None]) -> None:
    """SIGKILL every registered REPL's process group, and descendants that left the group."""
    doomed: list[psutil.Process] = []
    for proc in watched.values():
        if proc is not None and _running(proc):
            doomed.append(proc)
            with contextlib.suppress(psutil.Error):
                doomed.extend(proc.children(recursive=True))  # found before anything dies
    for pgid in watched:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    for proc in doomed:
        with contextlib.suppress(psutil.Error):
            proc.kill()  # psutil checks the start time: never a reused pid


def _running(proc: psutil.Process | None) -> bool:
    if proc is None:
        return False
    with contextlib.suppress(psutil.Error):
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    return False


def _group_exists(pgid: int) -> bool:
    """Whether a process group we may signal has that id (a REPL leads its own)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's group: never ours to kill
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""One REPL child process: started in its own session, its stderr drained, killed as a tree.

This module knows nothing of the protocol; it gives the server a process it can write bytes to,
read bytes from with a deadline, measure, and always get rid of: every REPL is registered with
this process's guardian (``guardian.py``) from its start until it is killed and reaped, so it
dies with its host however the host dies.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable

import psutil

from lean_kernel.engine import guardian

STDERR_TAIL_BYTES = 64 * 1024
POLL_SLICE_S = 0.05

_PR_SET_PDEATHSIG = 1


class InputClosed(EOFError):
    """The process closed its input (it exited) during a write; it took ``sent`` bytes first."""

    def __init__(self, sent: int) -> None:
        super().__init__(f"the REPL closed its input after {sent} bytes")
        self.sent = sent


class ReplProcess:
    """A started REPL process with non-blocking pipes.

    stderr is read continuously by a daemon thread into a bounded tail, so a REPL that writes a
    lot there can never block on a full pipe. The thread holds no reference to the owner, so the
    owner can be garbage-collected (and its finalizer kill the process) while the REPL runs.
    """

    def __init__(
        self,
        argv: list[str],
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        memory_hard_limit_mb: int | None = None,
    ) -> None:
        full_env = {**os.environ, **env} if env else None
        parent_is_main_thread = threading.current_thread() is threading.main_thread()
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=full_env,
            bufsize=0,
            start_new_session=True,
            preexec_fn=_child_setup(memory_hard_limit_mb, parent_is_main_thread),
        )
        self.pid = self.popen.pid
        guardian.watch(self.pid)  # from here on it dies with this process, SIGKILL included
        self._in_fd = self.popen.stdin.fileno()
        self._out_fd = self.popen.stdout.fileno()
        os.set_blocking(self._in_fd, False)
        self._poll_out = select.poll()
        self._poll_out.register(self._out_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._poll_in = select.poll()
        self._poll_in.register(self._in_fd, select.POLLOUT | select.POLLERR)
        self._stderr_tail: collections.deque[bytes] = collections.deque()
        self._stderr_thread = threading.Thread(
            target=_drain,
            args=(self.popen.stderr, self._stderr_tail),
            name=f"repl-stderr-{self.pid}",
            daemon=True,
        )
        self._stderr_thread.start()

    def write(self, data: bytes, check: Callable[[], None]) -> None:
        """Write all of ``data``; ``check`` runs between waits and raises to abort.
        ``InputClosed`` when the process closed its input (it exited) first."""
        sent = self._write_some(data, 0)
        while sent < len(data):  # the pipe was full: wait until the REPL reads
            check()
            self._poll_in.poll(POLL_SLICE_S * 1000)
            sent = self._write_some(data, sent)

    def _write_some(self, data: bytes, sent: int) -> int:
        """Write what the pipe takes of ``data[sent:]``; how much of ``data`` is now sent."""
        try:
            return sent + os.write(self._in_fd, memoryview(data)[sent:] if sent else data)
        except BlockingIOError:
            return sent
        except BrokenPipeError:
            raise InputClosed(sent) from None

    def read_chunk(self, wait_s: float | None) -> bytes | None:
        """Bytes from stdout, ``b""`` at EOF, or None when nothing came within ``wait_s``."""
        if wait_s is not None and not self._poll_out.poll(max(wait_s, 0) * 1000):
            return None
        return os.read(self._out_fd, 1 << 16)

    def is_alive(self) -> bool:
        """Whether the process has not exited."""
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has exited (negative: killed by that signal)."""
        return self.popen.poll()

    def stderr_tail(self, limit: int = 4000) -> str:
        """The last ``limit`` characters the process wrote to stderr."""
        text = b"".join(list(self._stderr_tail)).decode("utf-8", "replace")
        return text[-limit:]

    def send_kill(self) -> None:
        """SIGKILL the process group without reaping: safe from a thread other than the reader."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def kill(self) -> None:
        """Kill the whole process tree and reap it; safe to call twice."""
        kill_tree(self.popen)
        self._stderr_thread.join(timeout=1)


def kill_tree(popen: subprocess.Popen, *, close_pipes: bool = True) -> None:
    """SIGKILL ``popen``'s session and any descendant that left it, then reap and close pipes.

    ``close_pipes=False`` leaves stdin and stdout open, for a caller that still reads what the
    killed process wrote (``communicate()`` after a timeout).
    """
    descendants: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        descendants = psutil.Process(popen.pid).children(recursive=True)
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            popen.kill()
    for proc in descendants:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout=5)
    psutil.wait_procs(descendants, timeout=1)
    if popen.returncode is not None:
        guardian.forget(popen.pid)  # reaped: its pid may be reused, the guardian lets go of it
    if not close_pipes:
        return
    for pipe in (popen.stdin, popen.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _drain(pipe, tail: collections.deque[bytes]) -> None:
    size = 0
    read = getattr(pipe, "read1", pipe.read)  # unbuffered pipes (bufsize=0) are raw FileIO
    try:
        while chunk := read(1 << 16):
            tail.append(chunk)
            size += len(chunk)
            while size > STDERR_TAIL_BYTES and len(tail) > 1:
                size -= len(tail.popleft())
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _child_setup(memory_hard_limit_mb: int | None, parent_is_main_thread: bool):
    """The pre-exec hook: a memory cap, and death with the parent when that is safe to ask.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only set when the
    server is started from the main thread; it kills an idle or busy REPL at once, without
    waiting for the guardian (which covers every REPL, wrapped ones included, from any thread).
    """
    libc = _libc() if parent_is_main_thread else None

    def setup() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if memory_hard_limit_mb:
            import resource

            limit = memory_hard_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    if libc is None and not memory_hard_limit_mb:
        return None
    return setup


def _libc():
    if os.uname().sysname != "Linux":
        return None
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


def monotonic_deadline(timeout: float | None) -> float | None:
    """The ``time.monotonic()`` instant a timeout runs out, or None for no limit (None or inf)."""
    return None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout

"""No Lean (REPL) process outlives the kernel: shutdown, restart, or a SIGKILL of the kernel."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from conftest import our_repl_processes, wait_no_repl_processes
from kernel_harness import KernelSession, kernelspecs_on_jupyter_path


@pytest.fixture(scope="module", autouse=True)
def jupyter_path(tmp_path_factory):
    with kernelspecs_on_jupyter_path(tmp_path_factory.mktemp("jupyter")):
        yield


def repl_of(kernel_pid: int) -> list[psutil.Process]:
    """The REPL processes the kernel started (its children, in their own session)."""
    return [p for p in our_repl_processes() if p.ppid() == kernel_pid]


def started_kernel() -> tuple[KernelSession, list[psutil.Process]]:
    session = KernelSession()
    assert session.execute("def f := 1", "a").status == "ok"
    repls = repl_of(session.pid)
    assert len(repls) == 1
    return session, repls


def forget_killed(session: KernelSession) -> None:
    """After a SIGKILL of the kernel: reap it (no zombie, no running ``Popen`` left for the
    garbage collector to warn about) and free the client's resources."""
    session.kc.stop_channels()
    session.km.provisioner.process.wait(5)  # type: ignore[union-attr]
    session.km.cleanup_resources()


def test_no_repl_outlives_kernel_shutdown():
    session, _ = started_kernel()
    session.close()
    assert wait_no_repl_processes() == []


def test_no_repl_outlives_kernel_restart():
    session, (old_repl,) = started_kernel()
    session.km.restart_kernel(now=False)
    session.kc.wait_for_ready(timeout=60)
    psutil.wait_procs([old_repl], timeout=5)
    assert not old_repl.is_running() or old_repl.status() == psutil.STATUS_ZOMBIE
    assert session.execute("#eval 1", "b").stdout == "1\n"
    session.close()
    assert wait_no_repl_processes() == []


def test_no_repl_outlives_a_sigkilled_kernel():
    session, (repl,) = started_kernel()
    assert repl.ppid() == session.pid and os.getsid(repl.pid) != os.getsid(session.pid)
    os.kill(session.pid, signal.SIGKILL)
    started = time.monotonic()
    assert wait_no_repl_processes() == []
    assert time.monotonic() - started < 5
    forget_killed(session)


def test_a_repl_started_after_a_restart_also_dies_with_the_kernel():
    session, _ = started_kernel()
    assert session.execute("%restart", "b").status == "ok"
    (repl,) = repl_of(session.pid)
    os.kill(session.pid, signal.SIGKILL)
    psutil.wait_procs([repl], timeout=5)
    assert wait_no_repl_processes() == []
    forget_killed(session)

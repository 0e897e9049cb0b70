"""No REPL outlives its host, however the host dies: the Jupyter kernel, an IPython host, a plain
Python script using the pool; SIGKILL included; REPLs busy or idle; started directly or under a
``lake env``-like wrapper (whose child, the real REPL, must die too).

Every host is started with a marker of its own in its environment, which its REPLs, wrappers and
guardian inherit: the processes still carrying it after the host died are what it left behind.
Busy REPLs are found through the fake REPL's request log (written when a command arrives).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from conftest import FAKE_REPL
from kernel_harness import BARE_KERNEL_NAME, KERNEL_NAME, KernelSession, kernelspecs_on_jupyter_path

MARK = "LEAN_KERNEL_ORPHAN_TEST"

# Like `lake env repl`: starts the REPL as its child (same stdin and stdout) and waits for it,
# so the real REPL is a grandchild of the host. `--new-session`: the child also leaves the
# wrapper's process group, as a descendant that a kill of the group would miss.
WRAPPER = """\
import subprocess, sys
new_session = sys.argv[1] == "--new-session"
child = subprocess.Popen(sys.argv[2:], start_new_session=new_session)
sys.exit(child.wait())
"""


@pytest.fixture(scope="module", autouse=True)
def jupyter_path(tmp_path_factory):
    with kernelspecs_on_jupyter_path(tmp_path_factory.mktemp("jupyter")):
        yield


@pytest.fixture
def scenes(tmp_path):
    """Make scenes; whatever a failed test left running is killed afterwards (by pid)."""
    made: list[Scene] = []

    def make(wrapped: str = "") -> Scene:
        made.append(Scene(tmp_path / str(len(made)), wrapped))
        return made[-1]

    yield make
    for scene in made:
        for proc in scene.processes():
            with contextlib.suppress(psutil.Error):
                proc.kill()


@dataclass
class Scene:
    """One host's world: its marker, the REPL command it is given, the fake REPL's log."""

    tmp: Path
    wrapped: str = ""  # "", "same-group" or "new-session"

    def __post_init__(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.marker = uuid.uuid4().hex
        self.log = self.tmp / "requests.jsonl"
        fake = [sys.executable, str(FAKE_REPL)]
        if self.wrapped:
            wrapper = self.tmp / "lake_env_wrapper.py"
            wrapper.write_text(WRAPPER)
            flag = "--new-session" if self.wrapped == "new-session" else "--same-group"
            fake = [sys.executable, str(wrapper), flag, *fake]
        self.repl_command = shlex.join(fake)

    def env(self) -> dict[str, str]:
        """What a host is started with (its REPLs inherit it)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEAN_KERNEL_")}
        env.update(
            {
                MARK: self.marker,
                "LEAN_KERNEL_REPL": self.repl_command,
                "LEAN_KERNEL_TEST_RUN": os.environ["LEAN_KERNEL_TEST_RUN"],
                "FAKE_REPL_ARGS": shlex.join(["--log", str(self.log)]),
            }
        )
        return env

    def processes(self) -> list[psutil.Process]:
        """Running (not zombie) processes carrying this scene's marker."""
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if (
                    proc.environ().get(MARK) == self.marker
                    and proc.status() != psutil.STATUS_ZOMBIE
                ):
                    found.append(proc)
        return found

    def roles(self) -> dict[str, list[int]]:
        """The marked processes by what they are: repl, wrapper, guardian, host."""
        roles: dict[str, list[int]] = {}
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                roles.setdefault(role(proc.cmdline()), []).append(proc.pid)
        return roles

    def busy_repls(self, needle: str) -> set[int]:
        """Pids of the REPLs that received a command containing ``needle``."""
        if not self.log.exists():
            return set()
        pids = set()
        for line in self.log.read_text().splitlines():
            entry = json.loads(line)
            if needle in str((entry.get("request") or {}).get("cmd", "")):
                pids.add(entry["pid"])
        return pids

    def wait_busy(self, count: int, needle: str = "#fake_hang", host=None) -> set[int]:
        deadline = time.monotonic() + 30
        while len(pids := self.busy_repls(needle)) < count:
            if time.monotonic() > deadline or (host is not None and host.poll() is not None):
                pytest.fail(f"{count} REPLs never got busy; host said:\n{self.host_stderr()}")
            time.sleep(0.05)
        return pids

    def left_after(self, timeout: float = 5.0) -> list[str]:
        """What is still running ``timeout`` seconds from now (less if all is gone)."""
        deadline = time.monotonic() + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        described = []
        for proc in left:
            with contextlib.suppress(psutil.Error):
                described.append(f"{proc.pid} {role(proc.cmdline())}: {shlex.join(proc.cmdline())}")
        return described

    def host_stderr(self) -> str:
        path = self.tmp / "host.err"
        return path.read_text() if path.exists() else ""


def role(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "lake_env_wrapper.py" in text:
        return "wrapper"
    if "fake_repl.py" in text:
        return "repl"
    if "guardian.py" in text:
        return "guardian"
    return "host"


def start_host(scene: Scene, code: str) -> subprocess.Popen:
    """A Python process running ``code``, with the scene's environment; stderr kept in a file."""
    with open(scene.tmp / "host.err", "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=scene.env(),
            cwd=scene.tmp,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def assert_dies_with_host(scene: Scene, kill, repls: int) -> None:
    """The host's REPLs (wrappers, guardian) are there; after ``kill()`` none stays 5 s."""
    roles = scene.roles()
    assert len(roles.get("repl", [])) >= repls, roles
    assert len(roles.get("guardian", [])) == 1, roles
    if scene.wrapped:
        assert len(roles.get("wrapper", [])) >= repls, roles
    kill()
    assert scene.left_after(5.0) == [], scene.host_stderr()


def sigkill(host: subprocess.Popen):
    def kill() -> None:
        host.send_signal(signal.SIGKILL)
        host.wait(5)

    return kill


# -- the hosts -----------------------------------------------------------------------------------

POOL_HOST = """
    from lean_kernel import LeanServerPool
    pool = LeanServerPool(num_workers=2)
    handle = pool.submit_batch({commands!r})
    handle.wait()
"""

IPYTHON_HOST = """
    import time
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    for cell in ["%load_ext lean_kernel", {cell!r}]:
        result = shell.run_cell(cell)
        assert result.success, result
    time.sleep(600)
"""


@pytest.mark.parametrize("wrapped", ["", "same-group", "new-session"])
def test_busy_batch_repls_die_with_a_sigkilled_python_script_using_the_pool(scenes, wrapped):
    scene = scenes(wrapped)
    host = start_host(scene, POOL_HOST.format(commands=["#fake_hang", "#fake_sleep 600"]))
    scene.wait_busy(1, "#fake_hang", host)
    scene.wait_busy(1, "#fake_sleep 600", host)
    assert_dies_with_host(scene, sigkill(host), repls=2)


def test_busy_batch_repls_die_with_a_sigkilled_ipython_host(scenes):
    scene = scenes()
    cell = "%%lean_batch -w 2 --progress none\n#fake_hang\n----\n#fake_sleep 600"
    host = start_host(scene, IPYTHON_HOST.format(cell=cell))
    scene.wait_busy(1, "#fake_hang", host)
    scene.wait_busy(1, "#fake_sleep 600", host)
    assert_dies_with_host(scene, sigkill(host), repls=2)


@pytest.mark.parametrize("wrapped", ["", "same-group"])
def test_busy_batch_repls_die_with_a_sigkilled_lean_kernel(scenes, wrapped):
    scene = scenes(wrapped)
    env = scene.env()
    # The lean4 kernelspec names the fake REPL itself; the bare one takes LEAN_KERNEL_REPL.
    kernel = KernelSession(env=env, kernel_name=BARE_KERNEL_NAME if wrapped else KERNEL_NAME)
    try:
        assert kernel.cell("def f := 1").status == "ok"  # the kernel's own REPL, idle
        kernel.send("%%lean_batch -w 2\n#fake_hang\n----\n#fake_hang\n----\n#fake_hang")
        scene.wait_busy(2)

        def kill() -> None:
            os.kill(kernel.pid, signal.SIGKILL)

        assert_dies_with_host(scene, kill, repls=3)
    finally:
        kernel.kc.stop_channels()
        with contextlib.suppress(Exception):
            kernel.km.provisioner.process.wait(5)  # type: ignore[union-attr]
        kernel.km.cleanup_resources()


def test_busy_repls_die_with_a_sigkilled_executor_worker_process(scenes):
    """A process-pool worker (as a Dask or Ray worker) is the host of the REPLs it started."""
    scene = scenes("same-group")
    host = start_host(
        scene,
        """
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from lean_kernel import LeanServerPool
        context = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(2, mp_context=context)
        pool = LeanServerPool(num_workers=2, executor=executor)
        pool.run_batch(["#fake_hang", "#fake_hang"])
        """,
    )
    repls = [psutil.Process(pid) for pid in scene.wait_busy(2, "#fake_hang", host)]
    workers = {repl.parent().parent() for repl in repls}  # REPL <- wrapper <- worker
    assert host.pid not in {worker.pid for worker in workers}
    assert len(scene.roles()["guardian"]) == len(workers)  # one per worker, none in the host
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):  # a broken executor ends the others
            worker.kill()
    deadline = time.monotonic() + 5
    while {"repl", "wrapper", "guardian"} & set(scene.roles()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not {"repl", "wrapper", "guardian"} & set(scene.roles()), scene.roles()
    host.kill()  # its broken executor may leave it waiting: end and reap it here
    host.wait(5)


def test_idle_repls_started_from_threads_die_with_a_sigkilled_host(scenes):
    scene = scenes("new-session")
    host = start_host(
        scene,
        """
        import time
        from concurrent.futures import ThreadPoolExecutor
        from lean_kernel import LeanServer, Command
        def start(i):
            server = LeanServer()
            server.run(Command(cmd=f"#eval {i}"))
            return server
        with ThreadPoolExecutor(8) as threads:
            servers = list(threads.map(start, range(8)))
        time.sleep(600)
        """,
    )
    scene.wait_busy(8, "#eval", host)
    assert_dies_with_host(scene, sigkill(host), repls=8)


def test_many_busy_repls_started_at_once_from_threads_all_die(scenes):
    scene = scenes()
    host = start_host(
        scene,
        """
        import threading, time
        from lean_kernel import LeanServer, Command
        def hang():
            LeanServer().run(Command(cmd="#fake_hang"), timeout=600)
        for _ in range(8):
            threading.Thread(target=hang, daemon=True).start()
        time.sleep(600)
        """,
    )
    scene.wait_busy(8, "#fake_hang", host)
    assert_dies_with_host(scene, sigkill(host), repls=8)


def test_busy_repls_die_with_a_host_that_ends_with_os_exit(scenes):
    scene = scenes("same-group")
    host = start_host(
        scene,
        f"""
        import os, time
        from lean_kernel import LeanServerPool
        pool = LeanServerPool(num_workers=2)
        pool.submit_batch(["#fake_hang", "#fake_hang"])
        log = {str(scene.log)!r}
        while not os.path.exists(log) or open(log).read().count("#fake_hang") < 2:
            time.sleep(0.05)
        os._exit(3)  # no atexit, no finalizer: only the guardian can end the REPLs
        """,
    )
    assert host.wait(30) == 3, scene.host_stderr()
    assert scene.left_after(5.0) == [], scene.host_stderr()


# -- the guardian ----------------------------------------------------------------------------------


def test_a_closed_pool_leaves_nothing_and_the_guardian_exits_with_its_host(scenes):
    scene = scenes("same-group")
    host = start_host(
        scene,
        """
        import sys
        from lean_kernel import LeanServerPool
        from lean_kernel.engine import guardian
        with LeanServerPool(num_workers=2) as pool:
            responses = pool.run_batch(["#eval 1", "#eval 2"])
        assert [r.messages[-1].data for r in responses] == ["1", "2"]
        print(guardian.guardian_pid(), file=sys.stderr)
        """,
    )
    assert host.wait(60) == 0, scene.host_stderr()
    guardian_pid = int(scene.host_stderr().split()[-1])
    assert scene.left_after(5.0) == []
    assert not psutil.pid_exists(guardian_pid) or (
        psutil.Process(guardian_pid).status() == psutil.STATUS_ZOMBIE
    )


def test_a_killed_guardian_is_replaced_and_reaped_and_the_new_one_still_kills(scenes):
    scene = scenes()
    host = start_host(scene, POOL_HOST.format(commands=["#fake_hang", "#fake_hang"]))
    scene.wait_busy(2, "#fake_hang", host)
    (old,) = scene.roles()["guardian"]
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while scene.roles().get("guardian", [old]) == [old] and time.monotonic() < deadline:
        time.sleep(0.05)
    (new,) = scene.roles()["guardian"]
    assert new != old
    deadline = time.monotonic() + 5
    while psutil.pid_exists(old) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(old), "the dead guardian was left a zombie"
    assert_dies_with_host(scene, sigkill(host), repls=2)


def test_a_forked_child_has_its_own_guardian_and_does_not_keep_its_parents(scenes):
    scene = scenes()
    host = start_host(
        scene,
        """
        import multiprocessing, threading, time
        from lean_kernel import LeanServer, Command
        def hang(text):
            LeanServer().run(Command(cmd=text), timeout=600)
        idle = LeanServer()  # the parent has a guardian before it forks
        multiprocessing.get_context("fork").Process(target=hang, args=("#fake_hang child",)).start()
        threading.Thread(target=hang, args=("#fake_hang parent",)).start()
        time.sleep(600)
        """,
    )
    scene.wait_busy(1, "#fake_hang parent", host)
    (child_repl,) = scene.wait_busy(1, "#fake_hang child", host)
    (child,) = [p for p in psutil.Process(host.pid).children() if role(p.cmdline()) == "host"]
    assert len(scene.roles()["guardian"]) == 2  # the parent's and the child's
    host.send_signal(signal.SIGKILL)
    host.wait(5)
    # The parent's REPLs and guardian go, though its forked child still runs.
    deadline = time.monotonic() + 5
    while len(scene.processes()) > 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    roles = scene.roles()
    assert roles.pop("guardian") != [] and roles == {"host": [child.pid], "repl": [child_repl]}
    child.kill()
    assert scene.left_after(5.0) == []

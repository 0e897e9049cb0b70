"""Helpers to drive JupyterLab in headless Chromium with Playwright.

Reusable by every browser test:

- :func:`jupyter_lab` starts ``jupyter lab`` on 127.0.0.1, on a free port, with a
  token and private config/runtime/data/settings/workspace directories, waits
  until it answers, and on exit stops its whole process group (SIGTERM, then
  SIGKILL), even when the test failed.
- :func:`chromium_page` launches Debian's ``/usr/bin/chromium`` through
  Playwright with a fresh profile and yields a page; it closes everything on exit.
- :func:`lab_session` combines both.

Never run ``playwright install``: the browser comes from Debian's ``chromium``
package. Tests skip when it is missing (see :func:`chromium_available`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("LEAN_KERNEL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}


def chromium_available() -> bool:
    """Whether Chromium and Playwright for Python are both there."""
    if not Path(CHROMIUM).exists():
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    """A running JupyterLab server."""

    process: subprocess.Popen[bytes]
    port: int
    token: str
    root_dir: Path
    log_path: Path
    env: dict[str, str] = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "lab", **query: str | None) -> str:
        """URL of ``path`` with the token (and ``query``; a None value gives a bare key)."""
        parts = [k if v is None else f"{k}={v}" for k, v in query.items()]
        parts.append(f"token={self.token}")
        return f"{self.base_url}/{path.lstrip('/')}?{'&'.join(parts)}"

    def lab_url(self, file: str | None = None) -> str:
        """URL opening JupyterLab (on ``file``), with ``?reset`` so no old tabs come back."""
        path = "lab" if file is None else f"lab/tree/{file}"
        return self.url(path, reset=None)

    def log(self) -> str:
        """The server's output so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def api(self, path: str) -> Any:
        """GET a JSON document from the server's REST API."""
        import json

        with urllib.request.urlopen(self.url(f"api/{path.lstrip('/')}"), timeout=10) as r:
            return json.load(r)


def _stop_process_group(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``process``; SIGKILL it if it does not go."""
    if process.poll() is not None:
        # The leader is gone; children may remain in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    # Kernels started by the server are in its group too: make sure they are gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def jupyter_lab(
    root_dir: Path,
    *,
    python: str | os.PathLike[str] | None = None,
    extra_labextensions: Sequence[Path] = (),
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    private_data_dir: bool = False,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[LabServer]:
    """Run ``jupyter lab`` serving ``root_dir``; stop it (and its kernels) on exit.

    ``python`` is the interpreter whose JupyterLab runs (default: this one).
    ``extra_labextensions`` are prebuilt extension folders (each holding a
    ``package.json``) to load besides the installed ones; they are linked under
    their package name in a temporary folder passed as
    ``--LabApp.extra_labextensions_path``.
    Config, runtime, settings and workspaces dirs are private temporary folders;
    the data dir too when ``private_data_dir`` (then only the environment's
    ``share/jupyter`` is seen, not the user's kernels and extensions).
    ``env`` entries are added to the server's environment.
    ``settings`` maps plugin ids to user settings, e.g.
    ``{"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}``.
    """
    import json

    python = str(python or sys.executable)
    tmp = Path(tempfile.mkdtemp(prefix="lean-kernel-lab-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        dirs = {
            name: tmp / name
            for name in ("config", "runtime", "data", "settings", "workspaces", "labext")
        }
        for d in dirs.values():
            d.mkdir()
        server_env = dict(os.environ)
        server_env.update(
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
            JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
            PYTHONUNBUFFERED="1",
        )
        if private_data_dir:
            server_env["JUPYTER_DATA_DIR"] = str(dirs["data"])
            server_env.pop("JUPYTER_PATH", None)
        if env:
            server_env.update(env)

        # No "get notified about Jupyter news?" toast over the screenshots.
        user_settings: dict[str, Mapping[str, Any]] = {
            "@jupyterlab/apputils-extension:notification": {
                "fetchNews": "false",
                "checkForUpdates": False,
            }
        }
        user_settings.update(settings or {})
        for plugin_id, values in user_settings.items():
            package, _, plugin = plugin_id.partition(":")
            path = dirs["settings"] / package / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(dict(values)))

        args = list(extra_args)
        if extra_labextensions:
            for ext in extra_labextensions:
                meta = json.loads((Path(ext) / "package.json").read_text())
                link = dirs["labext"] / meta["name"]
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(Path(ext).resolve(), target_is_directory=True)
            # LabServerApp: both JupyterLab and Notebook 7 read it.
            args.append(f"--LabServerApp.extra_labextensions_path={dirs['labext']}")

        port = free_port()
        token = secrets.token_hex(16)
        log_path = tmp / "server.log"
        cmd = [
            python,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root_dir}",
            "--ServerApp.open_browser=False",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            *args,
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI and these machines run as root
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd,
                cwd=root_dir,
                env=server_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = LabServer(process, port, token, Path(root_dir), log_path, server_env)

        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited with {process.returncode}:\n{server.log()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(server.url("api/status"), timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"jupyter lab not ready after {startup_timeout} s:\n{server.log()[-4000:]}"
                )
            time.sleep(0.2)
        yield server
    finally:
        if process is not None:
            _stop_process_group(process)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class BrowserPage:
    """A Playwright page plus what it logged."""

    page: Any
    context: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def chromium_page(*, viewport: Mapping[str, int] = VIEWPORT) -> Iterator[BrowserPage]:
    """A page of headless Debian Chromium with a fresh profile, closed on exit."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="lean-kernel-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport=dict(viewport),
            )
            try:
                page = context.pages[0] if context.pages else context.new_page()
                result = BrowserPage(page, context)
                page.on("console", lambda m: result.console.append(f"{m.type}: {m.text}"))
                page.on("pageerror", lambda e: result.errors.append(str(e)))
                yield result
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class LabSession:
    server: LabServer
    browser: BrowserPage

    @property
    def page(self) -> Any:
        return self.browser.page

    def open(self, file: str | None = None, timeout: float = 60_000) -> None:
        """Open JupyterLab (on ``file``) and wait until the app is up."""
        self.page.goto(self.server.lab_url(file))
        self.page.wait_for_selector("#jp-main-dock-panel", timeout=timeout)
        if file is not None:
            self.page.wait_for_selector(
                "#jp-main-dock-panel .cm-content >> visible=true", timeout=timeout
            )

    def editor(self) -> Any:
        """The visible editor content (CodeMirror's ``.cm-content``) of the main area."""
        return self.page.locator("#jp-main-dock-panel .cm-content >> visible=true").first


@contextlib.contextmanager
def lab_session(root_dir: Path, **server_options: Any) -> Iterator[LabSession]:
    """JupyterLab (see :func:`jupyter_lab`) plus a Chromium page; all torn down on exit."""
    with jupyter_lab(root_dir, **server_options) as server, chromium_page() as browser:
        yield LabSession(server, browser)

"""Installing elan, the Lean toolchain manager, the way its own instructions do.

``python -m lean_kernel setup`` calls ``ensure_elan`` before anything needs Lean, so a newcomer's
one command works on a machine without Lean (LeanInteract does the same). The kernel's first
cell never installs elan: running an installer from the internet is something the user asks for.

With curl (and ``sh``) the official script ``elan-init.sh`` is downloaded to a temporary file and
run with ``-y --default-toolchain none``, exactly as elan's README says to. The script itself
needs curl, so without curl Python's urllib fetches what the script would fetch, the
``elan-init`` installer of elan's latest release for this platform, and runs it the same way.
Either way elan lands in ``$ELAN_HOME`` (default ``~/.elan``) and adds itself to the shell's
profile, as it always does.
"""

from __future__ import annotations

import os
import platform
import shutil
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

from lean_kernel.engine.install import SETUP_COMMAND, elan_bin, find_tool
from lean_kernel.engine.launch import REPL_ENV_VAR
from lean_kernel.engine.steps import SetupSteps, tail, without_network
from lean_kernel.errors import ReplSetupError

ELAN_INIT_URL = "https://raw.githubusercontent.com/leanprover/elan/master/elan-init.sh"
#: Where elan-init.sh downloads the installer from (``elan-<platform>.tar.gz``).
ELAN_RELEASES = "https://github.com/leanprover/elan/releases/latest/download"
#: Non-interactive; Lean itself is installed afterwards, at the version the REPL needs.
INSTALLER_ARGS = ["-y", "--default-toolchain", "none"]
DOWNLOAD_TIMEOUT = 300.0
INSTALLER_TIMEOUT = 600.0

_PLATFORMS = {
    ("Linux", "x86_64"): "x86_64-unknown-linux-gnu",
    ("Linux", "amd64"): "x86_64-unknown-linux-gnu",
    ("Linux", "aarch64"): "aarch64-unknown-linux-gnu",
    ("Linux", "arm64"): "aarch64-unknown-linux-gnu",
    ("Darwin", "x86_64"): "x86_64-apple-darwin",
    ("Darwin", "arm64"): "aarch64-apple-darwin",
}


def ensure_elan(steps: SetupSteps, allow_install: bool = True) -> str:
    """elan's path, installing elan first when it is missing (unless ``allow_install`` is off)."""
    found = find_tool("elan")
    if found is not None:
        steps.say(f"elan is installed: {found}")
        return found
    if not allow_install:
        raise ReplSetupError(
            f"Lean is not installed: `elan` was not found on PATH or in {elan_bin()}, and "
            "--no-elan forbids installing it.\n"
            f"Fix: install elan yourself (see https://github.com/leanprover/elan), then run "
            f"`{SETUP_COMMAND}` again; or set {REPL_ENV_VAR} to a REPL command."
        )
    with tempfile.TemporaryDirectory(prefix="lean_kernel-elan-") as tmp:
        curl, sh = find_tool("curl"), find_tool("sh")
        if curl is not None and sh is not None:
            script = Path(tmp) / "elan-init.sh"
            _curl(curl, ELAN_INIT_URL, script, steps, "elan's installer script")
            argv = [sh, str(script), *INSTALLER_ARGS]
        else:
            argv = [str(_download_installer(Path(tmp), steps)), *INSTALLER_ARGS]
        steps.say(
            f"Installing elan into {elan_bin().parent}: `elan-init {' '.join(INSTALLER_ARGS)}` "
            "(it downloads elan, a few MB, from github.com/leanprover/elan)"
        )
        code, out, err = steps.run(
            argv, Path(tmp), INSTALLER_TIMEOUT, None, "retry with network access", echo=True
        )
    found = find_tool("elan")
    if code != 0 or found is None:
        what = f"failed (exit {code})" if code != 0 else f"left no elan in {elan_bin()}"
        raise ReplSetupError(
            f"elan's installer {what}:\n{tail(out, err)}\n"
            + without_network("elan (the Lean toolchain manager)", "github.com/leanprover/elan")
        )
    steps.say(f"elan installed: {found}")
    return found


def _curl(curl: str, url: str, target: Path, steps: SetupSteps, what: str) -> None:
    steps.say(f"Downloading {what} with curl: {url}")
    argv = [curl, "--proto", "=https", "--tlsv1.2", "-sSfL", "-o", str(target), url]
    fix = "retry with network access"
    code, out, err = steps.run(argv, target.parent, DOWNLOAD_TIMEOUT, None, fix)
    if code != 0 or not target.is_file():
        raise ReplSetupError(
            f"Could not download {what}: `curl ... {url}` failed (exit {code}):\n"
            f"{tail(out, err)}\n" + without_network(what, url)
        )


def _download_installer(folder: Path, steps: SetupSteps) -> Path:
    """The ``elan-init`` executable of elan's latest release, fetched with urllib."""
    key = (platform.system(), platform.machine())
    name = _PLATFORMS.get(key)
    if name is None:
        raise ReplSetupError(
            f"lean_kernel cannot install elan on {key[0]} {key[1]} by itself (it knows Linux "
            "and macOS on x86_64 and arm64).\n"
            "Fix: install elan as https://github.com/leanprover/elan says, then run "
            f"`{SETUP_COMMAND}` again; or set {REPL_ENV_VAR} to a REPL command."
        )
    url = f"{ELAN_RELEASES}/elan-{name}.tar.gz"
    archive = folder / "elan-init.tar.gz"
    fetch(url, archive, steps, "elan's installer (curl is not installed, so with Python)")
    try:
        with tarfile.open(archive) as tar:
            member = tar.getmember("elan-init")
            source = tar.extractfile(member)
            if source is None:
                raise KeyError("elan-init")
            target = folder / "elan-init"
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
    except (OSError, KeyError, tarfile.TarError) as exc:
        raise ReplSetupError(
            f"The file downloaded from {url} is not elan's installer ({exc}).\n"
            + without_network("elan's installer", url)
        ) from None
    target.chmod(0o755)
    return target


def fetch(url: str, target: Path, steps: SetupSteps, what: str) -> None:
    """Download ``url`` to ``target`` with urllib, saying its size and the progress."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0)
            shown = f" ({_megabytes(size)})" if size else ""
            steps.say(f"Downloading {what}{shown}: {url}")
            done, said = 0, time.monotonic()
            deadline = said + DOWNLOAD_TIMEOUT
            while chunk := response.read(1 << 16):
                out.write(chunk)
                done += len(chunk)
                if time.monotonic() - said >= 1.0 and size:
                    steps.say(f"  {_megabytes(done)} of {_megabytes(size)} ({done * 100 // size}%)")
                    said = time.monotonic()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not finished after {DOWNLOAD_TIMEOUT:g} s")
    except (OSError, ValueError) as exc:  # URLError, HTTPError and timeouts are OSErrors
        target.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise ReplSetupError(
            f"Could not download {what}: {reason}.\n" + without_network(what, url)
        ) from None


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def elan_folder_on_path() -> bool:
    """Whether a shell finds elan's tools (elan adds its folder to the shell profile, which
    only new shells read)."""
    return str(elan_bin()) in os.environ.get("PATH", "").split(os.pathsep)

"""``python -m lean_kernel setup``: a newcomer's one command, from an empty HOME to a proven kernel.

curl, git, elan and lake are fakes on PATH (the approach of test_config.py), each logging its
argv: the fake curl "downloads" an elan-init.sh that installs the fake elan and lake into
``~/.elan/bin`` as the real one does, and the fake ``lake build`` leaves a REPL executable that
runs tests/fake_repl.py as the Lean version it was built for, so doctor's proof really runs.
Each command runs with the Python of a throwaway virtual environment (over this one's packages),
so the kernelspec it registers lands there, as it would in a newcomer's venv.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from conftest import FAKE_REPL

from lean_kernel.engine import elan as elan_module
from lean_kernel.engine.config import DEFAULT_REPL_REV, FORK_REPL_GIT, LeanREPLConfig
from lean_kernel.engine.launch import DEFAULT_LEAN_VERSION
from lean_kernel.engine.steps import SetupSteps
from lean_kernel.errors import ReplSetupError

pytestmark = pytest.mark.usefixtures("no_repl_left_behind")

ELAN_INIT_URL = "https://raw.githubusercontent.com/leanprover/elan/master/elan-init.sh"

FAKE_TOOLS = r"""
import json, os, sys, time
from pathlib import Path

tool, args = sys.argv[1], sys.argv[2:]
state = Path(os.environ["FAKE_TOOLS_DIR"])
settings_file = state / "settings.json"
settings = json.loads(settings_file.read_text()) if settings_file.exists() else {}
with open(state / "log.jsonl", "a") as f:
    f.write(json.dumps({"tool": tool, "args": args, "cwd": os.getcwd()}) + "\n")
elan_home = Path(os.environ.get("ELAN_HOME") or Path.home() / ".elan")

if tool == "curl":
    target, url = Path(args[args.index("-o") + 1]), args[-1]
    if settings.get("offline"):
        host = url.split("/")[2]
        print(f"curl: (6) Could not resolve host: {host}", file=sys.stderr)
        sys.exit(6)
    target.write_text(os.environ["FAKE_ELAN_INIT"])
elif tool == "elan-init":  # what elan-init.sh ends up running
    print("info: downloading installer", file=sys.stderr)
    assert args == ["-y", "--default-toolchain", "none"], args
    (elan_home / "bin").mkdir(parents=True, exist_ok=True)
    for name in ("elan", "lake"):
        shim = elan_home / "bin" / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{__file__}" {name} "$@"\n')
        shim.chmod(0o755)
    print("elan is installed now. Great!")
elif tool == "elan":
    installed = state / "toolchains"
    names = installed.read_text().split() if installed.exists() else []
    if args[:2] == ["toolchain", "list"]:
        print("\n".join(names) if names else "no installed toolchains")
    elif args[:2] == ["toolchain", "install"]:
        if settings.get("elan_offline"):
            print("error: failed to download: Could not resolve host: releases.lean-lang.org",
                  file=sys.stderr)
            sys.exit(1)
        print("info: downloading component 'lean'", file=sys.stderr)
        print("Total: 215.3 MiB Speed: 30.1 MiB/s", file=sys.stderr)
        print("info: installing component 'lean'", file=sys.stderr)
        with open(installed, "a") as f:
            f.write(args[2] + "\n")
elif tool == "git":
    tag, url, target = args[4], args[5], Path(args[6])
    if tag not in settings.get("tags", {}).get(url, []):
        print(f"fatal: Remote branch {tag} not found in upstream origin", file=sys.stderr)
        sys.exit(128)
    (target / "REPL").mkdir(parents=True)
    (target / "lakefile.toml").write_text('name = "REPL"\n')
    (target / "REPL" / "JSON.lean").write_text("incrementality : Option Bool\n")
elif tool == "lake":
    if args == ["build"]:
        version = Path("lean-toolchain").read_text().strip().split(":")[-1]
        print("✔ [1/2] Built REPL.JSON")
        print("✔ [2/2] Built repl")
        binary = Path(".lake/build/bin/repl")
        binary.parent.mkdir(parents=True, exist_ok=True)
        repl = os.environ["FAKE_REPL_SCRIPT"]
        binary.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{repl}" --lean-version {version} "$@"\n'
        )
        binary.chmod(0o755)
    elif args[:1] == ["env"]:
        os.execvp(args[1], args[1:])
"""

# The elan-init.sh the fake curl serves: like the real one, it fetches elan-init and runs it
# with the arguments it was given.
FAKE_ELAN_INIT = """#!/bin/sh
exec "{python}" "{tools}" elan-init "$@"
"""


class Newcomer:
    """An empty HOME, a fresh venv, fake tools on PATH; runs ``python -m lean_kernel ...``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir()
        self.work = root / "work"
        self.work.mkdir()
        self.venv = make_venv(root / "venv")
        self.python = self.venv / "bin" / "python"
        self.tools = root / "tools"
        self.bin = self.tools / "bin"
        self.bin.mkdir(parents=True)
        script = self.tools / "fake_tools.py"
        script.write_text(FAKE_TOOLS)
        self.script = script
        for tool in ("curl", "git"):
            shim = self.bin / tool
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" {tool} "$@"\n')
            shim.chmod(0o755)
        tag = f"{DEFAULT_REPL_REV}_lean-toolchain-{DEFAULT_LEAN_VERSION}"
        self.configure(tags={FORK_REPL_GIT: [tag]})

    def configure(self, **settings: object) -> None:
        path = self.tools / "settings.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**current, **settings}))

    def env(self) -> dict[str, str]:
        keep = {"LANG", "LC_ALL", "LEAN_KERNEL_TEST_RUN", "SYSTEMROOT", "TMPDIR"}
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            HOME=str(self.home),
            PATH=os.pathsep.join([str(self.bin), "/usr/bin", "/bin"]),
            FAKE_TOOLS_DIR=str(self.tools),
            FAKE_REPL_SCRIPT=str(FAKE_REPL),
            FAKE_ELAN_INIT=FAKE_ELAN_INIT.format(python=sys.executable, tools=self.script),
        )
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.python), "-m", "lean_kernel", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=self.work,
            timeout=180,
        )

    def calls(self) -> list[list[str]]:
        path = self.tools / "log.jsonl"
        if not path.exists():
            return []
        return [[e["tool"], *e["args"]] for e in map(json.loads, path.read_text().splitlines())]

    def clear_log(self) -> None:
        (self.tools / "log.jsonl").unlink(missing_ok=True)

    def venv_spec(self) -> dict:
        return json.loads((self.venv_kernels() / "lean4" / "kernel.json").read_text())

    def venv_kernels(self) -> Path:
        return self.venv / "share" / "jupyter" / "kernels"

    def spec_jupyter_uses(self) -> tuple[str, dict]:
        """(folder, env) of the lean4 spec, as the venv's jupyter_client finds it."""
        code = (
            "import json; from jupyter_client.kernelspec import KernelSpecManager as K\n"
            "spec = K().get_kernel_spec('lean4'); print(json.dumps([spec.resource_dir, spec.env]))"
        )
        out = subprocess.run(
            [str(self.python), "-c", code],
            capture_output=True,
            text=True,
            env=self.env(),
            check=True,
            timeout=60,
        ).stdout
        folder, env = json.loads(out)
        return folder, env


def make_venv(folder: Path) -> Path:
    """A virtual environment without pip that sees this environment's packages (lean_kernel
    included), so ``sys.prefix`` is its own, as in a newcomer's venv."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site_packages = folder / "lib" / version / "site-packages"
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site_packages / "outer.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in ours)
    )
    return folder


def pip_installed_spec(kernels: Path) -> None:
    """What ``pip install`` leaves in a venv: the wheel's kernelspec, ``python`` and no env."""
    from lean_kernel.cli import kernelspec_source

    folder = kernels / "lean4"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text((kernelspec_source() / "kernel.json").read_text())


@pytest.fixture
def newcomer(tmp_path) -> Newcomer:
    return Newcomer(tmp_path)


# -- the newcomer's path ------------------------------------------------------------------------


def test_setup_from_an_empty_home_installs_everything_and_proves_it(newcomer):
    result = newcomer.run("setup")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    elan = newcomer.home / ".elan" / "bin" / "elan"
    # every step says what it does, in order
    steps = [line for line in out.splitlines() if "/4 " in line]
    assert [s.split("] ", 1)[1][:3] for s in steps] == ["1/4", "2/4", "3/4", "4/4"]
    assert f"Downloading elan's installer script with curl: {ELAN_INIT_URL}" in out
    assert "Installing elan into" in out and f"elan installed: {elan}" in out
    assert f"elan toolchain install leanprover/lean4:{DEFAULT_LEAN_VERSION}" in out
    assert "Total: 215.3 MiB" in out  # elan's own download size and progress, passed on
    assert "Building the REPL" in out and "Built repl" in out
    spec_dir = newcomer.venv_kernels() / "lean4"
    assert f"Registered the lean4 kernelspec in {spec_dir}" in out
    assert "ok   #eval 2+2 answers 4" in out
    assert f"the REPL runs Lean {DEFAULT_LEAN_VERSION}" in out
    assert "Setup done" in out and "jupyter lab notebooks/tour.ipynb" in out
    # what ran: the official script, non-interactively, then elan, git, lake
    calls = newcomer.calls()
    assert calls[0][0] == "curl" and calls[0][-1] == ELAN_INIT_URL
    assert ["elan-init", "-y", "--default-toolchain", "none"] in calls
    assert [c[0] for c in calls if c[0] in ("elan", "git")] == ["elan", "elan", "git"]
    assert ["lake", "build"] in calls
    # the kernelspec Jupyter will start runs this venv's Python
    assert newcomer.venv_spec()["argv"][0] == str(newcomer.python)
    assert newcomer.spec_jupyter_uses()[0] == str(spec_dir)


def test_setup_run_again_changes_nothing_and_proves_it_again(newcomer):
    assert newcomer.run("setup").returncode == 0
    spec_before = newcomer.venv_spec()
    newcomer.clear_log()
    again = newcomer.run("setup")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1/4 elan and Lean: already installed" in again.stdout
    assert "Jupyter will start the lean4 kernelspec" in again.stdout
    assert "ok   #eval 2+2 answers 4" in again.stdout
    installs = [c for c in newcomer.calls() if c[0] in ("curl", "elan-init", "elan", "git")]
    assert installs == [] and ["lake", "build"] not in newcomer.calls()
    assert newcomer.venv_spec() == spec_before
    doctor = newcomer.run("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"kernelspec: {newcomer.venv_kernels() / 'lean4'}" in doctor.stdout


def test_setup_keeps_the_settings_of_the_kernelspec(newcomer):
    pip_installed_spec(newcomer.venv_kernels())
    installed = newcomer.run("install", "--env", "LEAN_KERNEL_TIMEOUT=120")
    assert installed.returncode == 0, installed.stderr
    assert newcomer.run("setup").returncode == 0
    assert newcomer.spec_jupyter_uses()[1] == {"LEAN_KERNEL_TIMEOUT": "120"}


def test_setup_offline_says_what_it_downloads_from_where_and_the_ways_forward(newcomer):
    newcomer.configure(offline=True)
    result = newcomer.run("setup")
    assert result.returncode == 1
    err = result.stderr
    assert err.count("Setup failed") == 1
    assert "Could not download elan's installer script" in err
    assert "Could not resolve host: raw.githubusercontent.com" in err
    assert f"from {ELAN_INIT_URL}, so it needs network access once" in err
    assert "HTTPS_PROXY" in err
    assert "LEAN_KERNEL_REPL: the command that starts it" in err
    assert "LEAN_KERNEL_PROJECT: a Lake project whose REPL is built" in err
    assert not (newcomer.home / ".elan").exists()
    assert not (newcomer.venv_kernels() / "lean4").exists()  # nothing half-done


def test_setup_offline_at_the_toolchain_names_it_and_the_ways_forward(newcomer):
    newcomer.configure(elan_offline=True)
    result = newcomer.run("setup")
    assert result.returncode == 1
    err = result.stderr
    assert f"elan toolchain install leanprover/lean4:{DEFAULT_LEAN_VERSION}` failed" in err
    assert "github.com/leanprover/lean4/releases, so it needs network access once" in err
    assert "LEAN_KERNEL_REPL" in err and "LEAN_KERNEL_PROJECT" in err


def test_setup_no_elan_refuses_to_install_it(newcomer):
    result = newcomer.run("setup", "--no-elan")
    assert result.returncode == 1
    assert "--no-elan forbids installing it" in result.stderr
    assert newcomer.calls() == []


def test_setup_without_git_stops_before_downloading_anything(newcomer):
    (newcomer.bin / "git").unlink()
    env = newcomer.env()
    env["PATH"] = str(newcomer.bin)  # no /usr/bin: no real git either
    result = subprocess.run(
        [str(newcomer.python), "-m", "lean_kernel", "setup"],
        capture_output=True,
        text=True,
        env=env,
        cwd=newcomer.work,
        timeout=120,
    )
    assert result.returncode == 1
    assert "`git`, which setup needs to download the REPL's sources" in result.stderr
    assert newcomer.calls() == []


# -- the kernelspec Jupyter uses ----------------------------------------------------------------


def test_install_env_with_user_in_a_venv_reaches_the_spec_jupyter_uses(newcomer):
    pip_installed_spec(newcomer.venv_kernels())
    result = newcomer.run("install", "--user", "--env", "LEAN_KERNEL_TIMEOUT=120")
    assert result.returncode == 0, result.stderr
    user_spec = newcomer.home / ".local" / "share" / "jupyter" / "kernels" / "lean4"
    assert f"in {user_spec}" in result.stdout
    assert "shadowed it" in result.stdout  # says which one shadows which
    folder, env = newcomer.spec_jupyter_uses()
    assert folder == str(newcomer.venv_kernels() / "lean4")
    assert env == {"LEAN_KERNEL_TIMEOUT": "120"}
    doctor = newcomer.run("doctor")
    assert f"kernelspec: {folder}" in doctor.stdout
    assert "env: LEAN_KERNEL_TIMEOUT=120" in doctor.stdout
    assert f"shadowed by it, so ignored: {user_spec}" in doctor.stdout
    assert "timeout per cell: 120 s" in doctor.stdout  # the spec's env is what doctor checks


def test_install_without_flags_in_a_venv_writes_the_venvs_spec(newcomer):
    pip_installed_spec(newcomer.venv_kernels())
    result = newcomer.run("install", "--env", "LEAN_KERNEL_TIMEOUT=60")
    assert result.returncode == 0, result.stderr
    assert "note:" not in result.stdout
    assert newcomer.spec_jupyter_uses() == (
        str(newcomer.venv_kernels() / "lean4"),
        {"LEAN_KERNEL_TIMEOUT": "60"},
    )


def test_doctor_applies_the_kernelspec_env_and_says_so(newcomer, tmp_path):
    repl = f"{sys.executable} {FAKE_REPL} --lean-version 4.32.0"
    assert newcomer.run("install", "--env", f"LEAN_KERNEL_REPL={repl}").returncode == 0
    doctor = newcomer.run("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "this env applies to the checks below" in doctor.stdout
    assert "REPL: LEAN_KERNEL_REPL" in doctor.stdout


# -- pieces -------------------------------------------------------------------------------------


def test_without_curl_elan_installer_is_fetched_with_python(tmp_path, monkeypatch):
    name = elan_module._PLATFORMS.get((platform.system(), platform.machine()))
    if name is None:
        pytest.skip("no elan release for this platform")
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("ELAN_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no curl, no sh
    releases = tmp_path / "releases"
    releases.mkdir()
    installer = tmp_path / "elan-init"
    installer.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            """
            import os, sys
            from pathlib import Path
            assert sys.argv[1:] == ["-y", "--default-toolchain", "none"], sys.argv
            folder = Path.home() / ".elan" / "bin"
            folder.mkdir(parents=True)
            (folder / "elan").write_text("#!/bin/sh\\n")
            (folder / "elan").chmod(0o755)
            """
        )
    )
    with tarfile.open(releases / f"elan-{name}.tar.gz", "w:gz") as tar:
        tar.add(installer, arcname="elan-init")
    monkeypatch.setattr(elan_module, "ELAN_RELEASES", releases.as_uri())
    said: list[str] = []
    found = elan_module.ensure_elan(SetupSteps(said.append, verbose=False))
    assert found == str(home / ".elan" / "bin" / "elan")
    assert any("Downloading elan's installer" in s and " MB)" in s for s in said)


def test_a_lake_project_with_its_repl_built_needs_no_download(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lake").write_text("#!/bin/sh\n")
    (bin_dir / "lake").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))  # no elan, no git: nothing could be downloaded
    monkeypatch.delenv("LEAN_KERNEL_REPL", raising=False)
    project = tmp_path / "proj"
    repl = project / ".lake" / "packages" / "REPL"
    (repl / "REPL").mkdir(parents=True)
    (repl / "REPL" / "JSON.lean").write_text("env : Option Nat\n")
    (project / "lakefile.toml").write_text('name = "proj"\n[[require]]\nname = "REPL"\n')
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.19.0\n")
    binary = repl / ".lake" / "build" / "bin" / "repl"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    config = LeanREPLConfig(project_dir=project, cache_dir=tmp_path / "cache")
    launch = config.resolve()
    assert launch.argv == [str(bin_dir / "lake"), "env", str(binary)]
    assert launch.cwd == str(project.resolve()) and launch.lean_version == "v4.19.0"
    assert launch.flavor == "upstream"
    assert "the REPL built in the project" in launch.description


def test_the_first_cell_and_doctor_send_people_to_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("ELAN_HOME", str(tmp_path / "elan"))
    monkeypatch.delenv("LEAN_KERNEL_REPL", raising=False)
    config = LeanREPLConfig("v4.19.0", cache_dir=tmp_path / "cache", working_dir=tmp_path)
    for install in (True, False):  # the first cell installs; doctor does not
        with pytest.raises(ReplSetupError) as err:
            config.resolve(install=install)
        assert "run `python -m lean_kernel setup` (it installs elan and Lean" in str(err.value)


def test_long_steps_pass_on_the_tools_own_progress(tmp_path):
    script = (
        "import sys\n"
        "for p in range(0, 101, 10):\n"
        "    sys.stderr.write(f'\\r{p}% of 215.3 MiB'); sys.stderr.flush()\n"
        "print('Built REPL.Main')\n"
    )
    said: list[str] = []
    steps = SetupSteps(said.append, verbose=False)
    code, _, err = steps.run([sys.executable, "-c", script], tmp_path, 60, None, "", echo=True)
    assert code == 0 and "100% of 215.3 MiB" in err
    assert "  Built REPL.Main" in said and "  100% of 215.3 MiB" in said
    assert len([line for line in said if "MiB" in line]) <= 3  # redraws are not all repeated

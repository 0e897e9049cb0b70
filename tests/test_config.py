"""LeanREPLConfig: how the REPL is found, installed, built and described.

elan, git and lake are replaced by small shims on a private PATH; each logs its argv to a file,
so the tests assert exactly which commands run, in which order and where.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lean_kernel.engine import install as install_module
from lean_kernel.engine.config import (
    DEFAULT_LEAN_VERSION,
    DEFAULT_REPL_REV,
    FORK_REPL_GIT,
    UPSTREAM_REPL_GIT,
    LeanREPLConfig,
    ReplLaunch,
    find_lake_project,
    normalize_lean_version,
    supports_incrementality,
    supports_parallel_elaboration,
)
from lean_kernel.errors import ReplSetupError

REPO_ROOT = Path(__file__).resolve().parents[1]

# The shims' behaviour; settings.json in FAKE_TOOLS_DIR tunes it per test.
FAKE_TOOLS = r"""
import json, os, sys, time
from pathlib import Path

tool, args = sys.argv[1], sys.argv[2:]
state = Path(os.environ["FAKE_TOOLS_DIR"])
settings_file = state / "settings.json"
settings = json.loads(settings_file.read_text()) if settings_file.exists() else {}


def log(event):
    entry = {"tool": tool, "args": args, "cwd": os.getcwd(), "event": event, "t": time.time()}
    with open(state / "log.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


log("start")
if tool == "elan":
    installed = state / "toolchains"
    names = installed.read_text().split() if installed.exists() else []
    if args[:2] == ["toolchain", "list"]:
        print("\n".join(names) if names else "no installed toolchains")
    elif args[:2] == ["toolchain", "install"]:
        if settings.get("elan_offline"):
            print("error: failed to download toolchain: Could not resolve host", file=sys.stderr)
            sys.exit(1)
        with open(installed, "a") as f:
            f.write(args[2] + "\n")
elif tool == "git":
    assert args[:5] == ["clone", "--depth", "1", "--branch", args[4]], args
    tag, url, target = args[4], args[5], Path(args[6])
    if settings.get("git_offline"):
        print(f"Cloning into '{target}'...", file=sys.stderr)
        print(f"fatal: unable to access '{url}/': Could not resolve host: github.com",
              file=sys.stderr)
        sys.exit(128)
    if tag not in settings.get("tags", {}).get(url, []):
        print(f"Cloning into '{target}'...", file=sys.stderr)
        print(f"warning: Could not find remote branch {tag} to clone.", file=sys.stderr)
        print(f"fatal: Remote branch {tag} not found in upstream origin", file=sys.stderr)
        sys.exit(128)
    (target / "REPL").mkdir(parents=True)
    (target / "lakefile.toml").write_text('name = "REPL"\n')
    (target / "lean-toolchain").write_text("leanprover/lean4:v4.0.0\n")
    field = "incrementality : Option Bool" if "augustepoiroux" in url else "env : Option Nat"
    (target / "REPL" / "JSON.lean").write_text(field + "\n")
elif tool == "lake":
    if args == ["build"]:
        time.sleep(settings.get("build_seconds", 0))
        if settings.get("build_fails"):
            print("error: ./REPL/Main.lean:3:0: unknown identifier 'foo'")
            print("error: build failed", file=sys.stderr)
            sys.exit(1)
        binary = Path(".lake/build/bin/repl")
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
log("end")
"""

CHILD_RESOLVE = """
import json, pickle, sys
with open(sys.argv[1], "rb") as f:
    config = pickle.load(f)
print(json.dumps(config.resolve().argv))
"""


class FakeTools:
    """A PATH holding fake elan/git/lake, their settings, and the log of their calls."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        script = root / "fake_tools.py"
        script.write_text(FAKE_TOOLS)
        for tool in ("elan", "git", "lake"):
            shim = self.bin / tool
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" {tool} "$@"\n')
            shim.chmod(0o755)
        self.configure(tags={FORK_REPL_GIT: [fork_tag("v4.19.0")], UPSTREAM_REPL_GIT: []})

    def configure(self, **settings: object) -> None:
        path = self.root / "settings.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**current, **settings}))

    def remove(self, tool: str) -> None:
        (self.bin / tool).unlink()

    def preinstall(self, toolchain: str) -> None:
        with open(self.root / "toolchains", "a") as f:
            f.write(toolchain + "\n")

    def log(self) -> list[dict]:
        path = self.root / "log.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def calls(self) -> list[list[str]]:
        """Each started command as [tool, *args]."""
        return [[e["tool"], *e["args"]] for e in self.log() if e["event"] == "start"]

    def clear_log(self) -> None:
        (self.root / "log.jsonl").unlink(missing_ok=True)


def fork_tag(version: str) -> str:
    return f"{DEFAULT_REPL_REV}_lean-toolchain-{version}"


@pytest.fixture(autouse=True)
def isolated_env(request, monkeypatch, tmp_path):
    """No REPL settings from the developer's shell, no real ~/.elan, no real cache."""
    if request.node.get_closest_marker("real_lean"):
        return
    for var in ("LEAN_KERNEL_REPL", "LEAN_KERNEL_REPL_FLAVOR", "LEAN_KERNEL_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ELAN_HOME", str(tmp_path / "home" / ".elan"))


@pytest.fixture
def tools(tmp_path, monkeypatch) -> FakeTools:
    fake = FakeTools(tmp_path / "tools")
    monkeypatch.setenv("PATH", str(fake.bin))
    monkeypatch.setenv("FAKE_TOOLS_DIR", str(fake.root))
    return fake


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A notebook folder with no Lake project above it."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    return folder


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def make_project(
    folder: Path, toolchain: str = "leanprover/lean4:v4.19.0", *, mathlib: bool = True
) -> Path:
    folder.mkdir(parents=True)
    (folder / "lakefile.lean").write_text("import Lake\nopen Lake DSL\npackage proj\n")
    (folder / "lean-toolchain").write_text(toolchain + "\n")
    packages = [{"name": "mathlib", "type": "git"}] if mathlib else []
    manifest = {"version": "1.1.0", "packagesDir": ".lake/packages", "packages": packages}
    (folder / "lake-manifest.json").write_text(json.dumps(manifest))
    return folder


def make_local_repl(folder: Path, version: str = "v4.19.0", *, fork: bool = True) -> Path:
    (folder / "REPL").mkdir(parents=True)
    (folder / "lakefile.toml").write_text('name = "REPL"\n')
    (folder / "lean-toolchain").write_text(f"leanprover/lean4:{version}\n")
    field = "incrementality : Option Bool" if fork else "env : Option Nat"
    (folder / "REPL" / "JSON.lean").write_text(field + "\n")
    return folder


# -- (a) explicit command ---------------------------------------------------------------------


def test_repl_command_argument_is_used_as_is(workdir):
    config = LeanREPLConfig(repl_command=[sys.executable, "fake_repl.py", "--flavor", "fork"])
    config.working_dir = workdir
    launch = config.resolve()
    assert launch.argv == [sys.executable, "fake_repl.py", "--flavor", "fork"]
    assert launch.cwd == str(workdir.resolve())
    assert launch.env is None
    assert launch.flavor == "unknown"
    assert launch.lean_version is None
    assert "repl_command" in launch.description


def test_env_var_command_is_split_like_a_shell(workdir, monkeypatch):
    script = workdir / "my repl.py"
    monkeypatch.setenv("LEAN_KERNEL_REPL", f"{sys.executable} '{script}' --flavor \"fork x\"")
    monkeypatch.setenv("LEAN_KERNEL_REPL_FLAVOR", "fork")
    launch = LeanREPLConfig(working_dir=workdir).resolve()
    assert launch.argv == [sys.executable, str(script), "--flavor", "fork x"]
    assert launch.flavor == "fork"
    assert "LEAN_KERNEL_REPL" in launch.description


def test_repl_command_argument_wins_over_env_var(workdir, monkeypatch):
    monkeypatch.setenv("LEAN_KERNEL_REPL", "no-such-program")
    config = LeanREPLConfig(
        repl_command=f"{sys.executable} -V", repl_flavor="upstream", working_dir=workdir
    )
    launch = config.resolve()
    assert launch.argv == [sys.executable, "-V"]
    assert launch.flavor == "upstream"


def test_explicit_command_wins_over_a_lake_project(tmp_path, monkeypatch):
    project = make_project(tmp_path / "proj")
    monkeypatch.setenv("LEAN_KERNEL_REPL", f"{sys.executable} repl.py")
    launch = LeanREPLConfig(working_dir=project).resolve()
    assert launch.argv == [sys.executable, "repl.py"]
    assert launch.cwd == str(project.resolve())


def test_missing_executable_names_lean_kernel_repl(workdir, monkeypatch):
    monkeypatch.setenv("LEAN_KERNEL_REPL", "no-such-repl --json")
    with pytest.raises(ReplSetupError) as err:
        LeanREPLConfig(working_dir=workdir).resolve()
    message = str(err.value)
    assert "LEAN_KERNEL_REPL names `no-such-repl`" in message
    assert "not an executable file on PATH" in message
    assert "Fix: set LEAN_KERNEL_REPL to a working REPL command" in message


def test_relative_path_is_checked_against_the_working_dir(workdir):
    repl = workdir / "bin" / "repl"
    repl.parent.mkdir()
    repl.write_text("#!/bin/sh\n")
    repl.chmod(0o755)
    assert LeanREPLConfig(repl_command="bin/repl", working_dir=workdir).resolve().argv == [
        "bin/repl"
    ]
    with pytest.raises(ReplSetupError, match="repl_command names `./missing/repl`"):
        LeanREPLConfig(repl_command="./missing/repl", working_dir=workdir).resolve()


def test_unbalanced_quote_is_a_clear_error(workdir, monkeypatch):
    monkeypatch.setenv("LEAN_KERNEL_REPL", "lake env 'unterminated")
    with pytest.raises(ReplSetupError, match="LEAN_KERNEL_REPL is not a valid shell-quoted"):
        LeanREPLConfig(working_dir=workdir).resolve()


def test_bad_flavor_env_var_is_named(workdir, monkeypatch):
    monkeypatch.setenv("LEAN_KERNEL_REPL", sys.executable)
    monkeypatch.setenv("LEAN_KERNEL_REPL_FLAVOR", "forked")
    with pytest.raises(ReplSetupError, match="LEAN_KERNEL_REPL_FLAVOR='forked'"):
        LeanREPLConfig(working_dir=workdir).resolve()


def test_empty_env_var_counts_as_unset(workdir, tools, cache, monkeypatch):
    monkeypatch.setenv("LEAN_KERNEL_REPL", "  ")
    launch = LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()
    assert launch.argv[1] == "env"


# -- (b) local_repl_path ----------------------------------------------------------------------


def test_local_repl_path_is_built_once_under_a_lock(tmp_path, tools, workdir):
    repl = make_local_repl(tmp_path / "repl")
    config = LeanREPLConfig(local_repl_path=repl, working_dir=workdir)
    launch = config.resolve()
    assert config.resolve() is launch
    assert tools.calls() == [["lake", "build"]]
    assert tools.log()[0]["cwd"] == str(repl.resolve())
    assert launch.argv == [str(tools.bin / "lake"), "env", str(repl / ".lake/build/bin/repl")]
    assert launch.cwd == str(repl.resolve())
    assert launch.flavor == "fork"
    assert launch.lean_version == "v4.19.0"
    assert (repl / ".lake" / "lean_kernel-build.lock").exists()


def test_concurrent_local_builds_do_not_overlap(tmp_path, tools, workdir):
    repl = make_local_repl(tmp_path / "repl")
    tools.configure(build_seconds=0.4)
    configs = [LeanREPLConfig(local_repl_path=repl, working_dir=workdir) for _ in range(2)]
    threads = [threading.Thread(target=c.resolve) for c in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = [(e["event"], e["t"]) for e in tools.log()]
    assert [name for name, _ in events] == ["start", "end", "start", "end"]
    assert events[1][1] <= events[2][1]


def test_local_repl_runs_inside_a_lake_project(tmp_path, tools):
    repl = make_local_repl(tmp_path / "repl", fork=False)
    project = make_project(tmp_path / "proj", mathlib=False)
    launch = LeanREPLConfig(local_repl_path=repl, project_dir=project).resolve()
    assert launch.cwd == str(project.resolve())
    assert launch.argv[2] == str(repl / ".lake/build/bin/repl")
    assert launch.flavor == "upstream"
    assert "local_repl_path" in launch.description


def test_local_repl_for_another_lean_version_than_the_project(tmp_path, tools):
    repl = make_local_repl(tmp_path / "repl", "v4.20.0")
    project = make_project(tmp_path / "proj", mathlib=False)
    with pytest.raises(ReplSetupError, match="is for Lean v4.20.0, but the Lake project"):
        LeanREPLConfig(local_repl_path=repl, project_dir=project).resolve()


def test_local_repl_without_build_needs_the_binary(tmp_path, tools, workdir):
    repl = make_local_repl(tmp_path / "repl")
    config = LeanREPLConfig(local_repl_path=repl, build_repl=False, working_dir=workdir)
    with pytest.raises(ReplSetupError, match=r"Fix: run `lake build` in .*build_repl=True"):
        config.resolve()
    assert tools.calls() == []


def test_local_repl_without_lake_says_how_to_get_it(tmp_path, tools, workdir):
    tools.remove("lake")
    repl = make_local_repl(tmp_path / "repl")
    with pytest.raises(ReplSetupError) as err:
        LeanREPLConfig(local_repl_path=repl, working_dir=workdir).resolve()
    message = str(err.value)
    assert "`lake` (lake_path) was not found" in message
    assert "elan-init.sh" in message
    assert "LEAN_KERNEL_REPL" in message


def test_missing_local_repl_path(tmp_path, workdir):
    with pytest.raises(ReplSetupError, match="local_repl_path .* does not exist"):
        LeanREPLConfig(local_repl_path=tmp_path / "nope", working_dir=workdir).resolve()


def test_failed_local_build_shows_the_output(tmp_path, tools, workdir):
    repl = make_local_repl(tmp_path / "repl")
    tools.configure(build_fails=True)
    with pytest.raises(ReplSetupError) as err:
        LeanREPLConfig(local_repl_path=repl, working_dir=workdir).resolve()
    message = str(err.value)
    assert f"`{tools.bin / 'lake'} build` failed (exit 1) in {repl.resolve()}" in message
    assert "unknown identifier 'foo'" in message
    assert "error: build failed" in message


# -- (c) Lake projects ------------------------------------------------------------------------


def test_project_is_found_by_walking_up(tmp_path, tools, cache):
    project = make_project(tmp_path / "proj")
    (project / ".lake" / "packages" / "mathlib").mkdir(parents=True)
    notebooks = project / "notebooks" / "week1"
    notebooks.mkdir(parents=True)
    assert find_lake_project(notebooks) == project.resolve()
    tools.configure(tags={FORK_REPL_GIT: [fork_tag("v4.19.0")]})

    launch = LeanREPLConfig(cache_dir=cache, working_dir=notebooks).resolve()

    repl_dir = cache / "repl" / "fork-v4.19.0"
    assert launch.argv == [str(tools.bin / "lake"), "env", str(repl_dir / ".lake/build/bin/repl")]
    assert launch.cwd == str(project.resolve())
    assert launch.lean_version == "v4.19.0"
    assert launch.flavor == "fork"
    assert "found by walking up" in launch.description
    assert ["elan", "toolchain", "install", "leanprover/lean4:v4.19.0"] in tools.calls()


def test_lakefile_toml_projects_count_too(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "lakefile.toml").write_text('name = "proj"\n')
    assert find_lake_project(project) is None
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.19.0\n")
    assert find_lake_project(project) == project.resolve()


def test_project_without_downloaded_dependencies(tmp_path, tools, cache):
    project = make_project(tmp_path / "proj")
    with pytest.raises(ReplSetupError) as err:
        LeanREPLConfig(cache_dir=cache, working_dir=project).resolve()
    message = str(err.value)
    assert "has dependencies that are not downloaded yet" in message
    assert f"in {project.resolve()} run `lake exe cache get`" in message
    assert "`lake build`" in message
    assert tools.calls() == []


def test_project_without_dependencies_needs_no_packages(tmp_path, tools, cache):
    project = make_project(tmp_path / "proj", mathlib=False)
    launch = LeanREPLConfig(cache_dir=cache, project_dir=project).resolve()
    assert launch.cwd == str(project.resolve())
    assert "project_dir" in launch.description


def test_leaninteract_style_project_object(tmp_path, tools, cache):
    class LocalProject:
        def __init__(self, directory):
            self.directory = directory

    project = make_project(tmp_path / "proj", mathlib=False)
    launch = LeanREPLConfig(cache_dir=cache, project=LocalProject(str(project))).resolve()
    assert launch.cwd == str(project.resolve())


def test_project_version_conflicting_with_lean_version(tmp_path, tools, cache):
    project = make_project(tmp_path / "proj", mathlib=False)
    config = LeanREPLConfig("v4.20.0", cache_dir=cache, project_dir=project)
    with pytest.raises(ReplSetupError, match="uses Lean v4.19.0"):
        config.resolve()


def test_explicit_lean_version_skips_project_discovery(tmp_path, tools, cache):
    project = make_project(tmp_path / "proj")
    launch = LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=project).resolve()
    assert launch.cwd == str(cache / "repl" / "fork-v4.19.0")


def test_project_on_a_nightly_toolchain(tmp_path, tools, cache):
    project = make_project(tmp_path / "proj", "leanprover/lean4:nightly-2025-01-01")
    with pytest.raises(ReplSetupError, match="is not a Lean release") as err:
        LeanREPLConfig(cache_dir=cache, working_dir=project).resolve()
    assert "local_repl_path" in str(err.value)


def test_project_dir_that_is_not_a_project(tmp_path):
    with pytest.raises(ReplSetupError, match="is not a Lake project"):
        LeanREPLConfig(project_dir=tmp_path).resolve()


# -- (d) the cached install -------------------------------------------------------------------


def test_install_runs_elan_git_lake_in_order_then_nothing(tools, cache, workdir):
    lines: list[str] = []
    config = LeanREPLConfig("4.19.0", cache_dir=cache, working_dir=workdir)
    launch = config.resolve(progress=lines.append)

    repl_dir = cache / "repl" / "fork-v4.19.0"
    assert tools.calls() == [
        ["elan", "toolchain", "list"],
        ["elan", "toolchain", "install", "leanprover/lean4:v4.19.0"],
        ["git", "clone", "--depth", "1", "--branch", fork_tag("v4.19.0"), FORK_REPL_GIT,
         str(repl_dir)],
        ["lake", "build"],
    ]  # fmt: skip
    assert tools.log()[-1]["cwd"] == str(repl_dir)
    assert launch == ReplLaunch(
        argv=[str(tools.bin / "lake"), "env", str(repl_dir / ".lake/build/bin/repl")],
        cwd=str(repl_dir),
        env=None,
        description=launch.description,
        flavor="fork",
        lean_version="v4.19.0",
    )
    assert (repl_dir / "lean-toolchain").read_text() == "leanprover/lean4:v4.19.0\n"
    marker = json.loads((repl_dir / "lean_kernel-build.json").read_text())
    assert marker["tag"] == fork_tag("v4.19.0")
    assert marker["git"] == FORK_REPL_GIT
    assert marker["lean_version"] == "v4.19.0"
    assert any("elan toolchain install" in line for line in lines)
    assert any("git clone" in line for line in lines)
    assert any("lake build" in line for line in lines)

    tools.clear_log()
    assert config.resolve() is launch
    again = LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()
    assert again == launch
    assert tools.calls() == []


def test_installed_toolchain_is_not_installed_again(tools, cache, workdir):
    tools.preinstall("leanprover/lean4:v4.19.0")
    LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()
    assert [c[:3] for c in tools.calls()] == [
        ["elan", "toolchain", "list"],
        ["git", "clone", "--depth"],
        ["lake", "build"],
    ]


def test_cache_dir_defaults_to_the_env_var(tools, cache, workdir, monkeypatch):
    monkeypatch.setenv("LEAN_KERNEL_CACHE_DIR", str(cache))
    launch = LeanREPLConfig("v4.19.0", working_dir=workdir).resolve()
    assert launch.cwd == str(cache / "repl" / "fork-v4.19.0")


def test_default_version_and_latest(tools, cache, workdir):
    tools.configure(tags={FORK_REPL_GIT: [fork_tag(DEFAULT_LEAN_VERSION)]})
    launch = LeanREPLConfig(cache_dir=cache, working_dir=workdir).resolve()
    assert launch.lean_version == DEFAULT_LEAN_VERSION
    assert "lean_kernel's default" in launch.description
    assert LeanREPLConfig("latest").lean_version == DEFAULT_LEAN_VERSION


def test_falls_back_to_upstream_when_the_fork_has_no_tag(tools, cache, workdir):
    tools.configure(tags={FORK_REPL_GIT: [], UPSTREAM_REPL_GIT: ["v4.3.0"]})
    launch = LeanREPLConfig("v4.3.0", cache_dir=cache, working_dir=workdir).resolve()
    clones = [c for c in tools.calls() if c[0] == "git"]
    assert [c[5:7] for c in clones] == [
        [fork_tag("v4.3.0"), FORK_REPL_GIT],
        ["v4.3.0", UPSTREAM_REPL_GIT],
    ]
    assert launch.flavor == "upstream"
    assert launch.cwd == str(cache / "repl" / "upstream-v4.3.0")
    assert not (cache / "repl" / "fork-v4.3.0").exists()

    tools.clear_log()
    LeanREPLConfig("v4.3.0", cache_dir=cache, working_dir=workdir).resolve()
    assert tools.calls() == []


def test_no_repl_tag_anywhere(tools, cache, workdir):
    tools.configure(tags={})
    with pytest.raises(ReplSetupError) as err:
        LeanREPLConfig("v4.2.0", cache_dir=cache, working_dir=workdir).resolve()
    message = str(err.value)
    assert "No REPL release matches Lean v4.2.0" in message
    assert f"tag {fork_tag('v4.2.0')} is not in {FORK_REPL_GIT}" in message
    assert f"tag v4.2.0 is not in {UPSTREAM_REPL_GIT}" in message
    assert "LEAN_KERNEL_REPL" in message


def test_repl_flavor_fork_never_uses_upstream(tools, cache, workdir):
    tools.configure(tags={UPSTREAM_REPL_GIT: ["v4.19.0"]})
    config = LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir, repl_flavor="fork")
    with pytest.raises(ReplSetupError, match="No REPL release matches"):
        config.resolve()
    assert [c[6] for c in tools.calls() if c[0] == "git"] == [FORK_REPL_GIT]


def test_concurrent_threads_build_once(tools, cache, workdir):
    tools.configure(build_seconds=0.5)
    configs = [LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir) for _ in range(3)]
    barrier = threading.Barrier(len(configs))
    launches: list[ReplLaunch] = []
    lines: list[str] = []

    def resolve(config: LeanREPLConfig) -> None:
        barrier.wait()
        launches.append(config.resolve(progress=lines.append))

    threads = [threading.Thread(target=resolve, args=(c,)) for c in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(launches) == 3 and all(launch == launches[0] for launch in launches)
    assert [c[0] for c in tools.calls()].count("lake") == 1
    assert [c[0] for c in tools.calls()].count("git") == 1
    assert any(line.startswith("Waiting for another process") for line in lines)
    assert any(line.startswith("Another process finished the REPL") for line in lines)


def test_concurrent_processes_build_once(tools, cache, workdir, tmp_path):
    tools.configure(build_seconds=1.0)
    pickled = tmp_path / "config.pickle"
    pickled.write_bytes(
        pickle.dumps(LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir))
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD_RESOLVE, str(pickled)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    assert json.loads(outputs[0][0]) == json.loads(outputs[1][0])
    calls = [c[0] for c in tools.calls()]
    assert calls.count("git") == 1
    assert calls.count("lake") == 1


def test_no_elan_names_the_installer_and_lean_kernel_repl(tools, cache, workdir):
    tools.remove("elan")
    with pytest.raises(ReplSetupError) as err:
        LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()
    message = str(err.value)
    assert "`elan` (the Lean toolchain manager) was not found" in message
    assert (
        "install elan: curl https://raw.githubusercontent.com/leanprover/elan/master/"
        "elan-init.sh -sSf | sh"
    ) in message
    assert "or set LEAN_KERNEL_REPL to a REPL command" in message
    assert tools.calls() == []


def test_elan_in_its_home_folder_is_found_off_path(tools, cache, workdir, tmp_path, monkeypatch):
    elan_bin = tmp_path / "home" / ".elan" / "bin"
    elan_bin.mkdir(parents=True)
    for tool in ("elan", "lake"):
        shutil.move(tools.bin / tool, elan_bin / tool)
    launch = LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()
    assert launch.argv[0] == str(elan_bin / "lake")
    assert launch.env is not None
    assert launch.env["PATH"].split(os.pathsep)[0] == str(elan_bin)


def test_offline_clone_says_network_is_needed_once(tools, cache, workdir):
    tools.configure(git_offline=True)
    with pytest.raises(ReplSetupError) as err:
        LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()
    message = str(err.value)
    assert message.startswith("Could not download the Lean REPL: `")
    assert "failed (exit 128)" in message
    assert "Could not resolve host: github.com" in message
    assert "needs network access once" in message
    assert "local_repl_path" in message
    assert "LEAN_KERNEL_REPL" in message
    assert not (cache / "repl" / "fork-v4.19.0").exists()


def test_offline_toolchain_install(tools, cache, workdir):
    tools.configure(elan_offline=True)
    with pytest.raises(ReplSetupError) as err:
        LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()
    message = str(err.value)
    assert "elan toolchain install leanprover/lean4:v4.19.0` failed (exit 1)" in message
    assert "needs network access once" in message


def test_missing_git(tools, cache, workdir):
    tools.remove("git")
    with pytest.raises(ReplSetupError, match="`git` was not found on PATH") as err:
        LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()
    assert "local_repl_path" in str(err.value)


def test_missing_lake(tools, cache, workdir):
    tools.remove("lake")
    with pytest.raises(ReplSetupError, match="`lake` \\(lake_path\\) was not found"):
        LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()


def test_failed_build_leaves_no_marker_and_retries(tools, cache, workdir):
    tools.configure(build_fails=True)
    with pytest.raises(ReplSetupError, match="delete .* and run `python -m lean_kernel setup`"):
        LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()
    assert not (cache / "repl" / "fork-v4.19.0" / "lean_kernel-build.json").exists()
    tools.configure(build_fails=False)
    tools.clear_log()
    LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()
    assert [c[0] for c in tools.calls()] == ["elan", "git", "lake"]


def test_build_timeout_kills_and_explains(tools, cache, workdir, monkeypatch):
    monkeypatch.setattr(install_module, "BUILD_TIMEOUT", 0.5)
    tools.configure(build_seconds=30)
    started = time.monotonic()
    with pytest.raises(ReplSetupError, match="did not finish within 0.5 s"):
        LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir).resolve()
    assert time.monotonic() - started < 10


def test_resolve_without_install_says_to_run_setup(tools, cache, workdir):
    config = LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir)
    with pytest.raises(ReplSetupError, match="run `python -m lean_kernel setup`"):
        config.resolve(install=False)
    assert tools.calls() == []


def test_verbose_prints_steps_to_stderr(tools, cache, workdir, capsys):
    LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir, verbose=True).resolve()
    err = capsys.readouterr().err
    assert "lean_kernel: Installing the Lean toolchain" in err
    assert "lean_kernel: Ready:" in err


# -- describe, helpers, pickling --------------------------------------------------------------


def test_describe_before_and_after_setup(tools, cache, workdir):
    config = LeanREPLConfig("v4.19.0", cache_dir=cache, working_dir=workdir, timeout=30)
    before = config.describe()
    assert "REPL: not ready" in before
    assert "python -m lean_kernel setup" in before
    assert f"lake={tools.bin / 'lake'}" in before
    assert tools.calls() == []

    config.resolve()
    after = config.describe()
    assert "REPL: REPL (fork, tag" in after
    assert "Lean version: v4.19.0" in after
    assert "flavor: fork" in after
    assert "parallel elaboration: on" in after
    assert "timeout per command 30 s" in after


def test_feature_support_by_flavor_and_version():
    assert supports_incrementality("fork", "v4.19.0")
    assert supports_incrementality("unknown", None)
    assert not supports_incrementality("upstream", "v4.19.0")
    assert not supports_incrementality("unknown", "v4.7.0")
    assert supports_parallel_elaboration("fork", "v4.19.0")
    assert supports_parallel_elaboration("fork", "v4.32.0")
    assert not supports_parallel_elaboration("fork", "v4.19.0-rc3")
    assert not supports_parallel_elaboration("fork", "v4.18.0")
    assert not supports_parallel_elaboration("fork", None)
    assert not supports_parallel_elaboration("unknown", "v4.19.0")
    assert not supports_parallel_elaboration("upstream", "v4.19.0")


def test_enable_flags_gate_the_features():
    launch = ReplLaunch(["repl"], "/", None, "", "fork", "v4.19.0")
    assert LeanREPLConfig().use_incrementality(launch)
    assert LeanREPLConfig().use_parallel_elaboration(launch)
    off = LeanREPLConfig(enable_incremental_optimization=False, enable_parallel_elaboration=False)
    assert not off.use_incrementality(launch)
    assert not off.use_parallel_elaboration(launch)


def test_lean_version_spellings():
    assert normalize_lean_version("leanprover/lean4:v4.19.0") == "v4.19.0"
    assert normalize_lean_version("4.19.0-rc2") == "v4.19.0-rc2"
    assert normalize_lean_version("leanprover/lean4:nightly-2025-01-01") is None
    with pytest.raises(ValueError, match="not a Lean release"):
        LeanREPLConfig("nightly")


def test_bad_arguments_are_rejected_early(tmp_path):
    with pytest.raises(ValueError):
        LeanREPLConfig(repl_flavor="forked")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LeanREPLConfig(timeout=0)
    with pytest.raises(ValueError):
        LeanREPLConfig(project=tmp_path, project_dir=tmp_path)


def test_pickle_round_trip(tools, cache, workdir):
    config = LeanREPLConfig(
        "v4.19.0",
        cache_dir=cache,
        working_dir=workdir,
        memory_hard_limit_mb=4096,
        timeout=12.5,
        enable_parallel_elaboration=False,
        repl_flavor="fork",
    )
    launch = config.resolve()
    copy = pickle.loads(pickle.dumps(config))
    public = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    assert {k: v for k, v in vars(copy).items() if not k.startswith("_")} == public
    assert copy._launch is None
    tools.clear_log()
    assert copy.resolve() == launch
    assert tools.calls() == []
    assert pickle.loads(pickle.dumps(launch)) == launch


# -- the real thing ---------------------------------------------------------------------------


@pytest.mark.real_lean
@pytest.mark.timeout(3600)
def test_real_default_repl_answers_a_command():
    if shutil.which("elan") is None:
        pytest.skip("elan is not on PATH")
    config = LeanREPLConfig(verbose=True)
    launch = config.resolve()
    assert Path(launch.argv[-1]).is_file()
    env = {**os.environ, **(launch.env or {})}
    result = subprocess.run(
        launch.argv,
        cwd=launch.cwd,
        env=env,
        input='{"cmd": "#eval 1 + 1"}\n\n',
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert '"data": "2"' in result.stdout

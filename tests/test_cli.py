"""``python -m lean_kernel install | setup | doctor``: what users run before opening a notebook."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import fake_repl_command

from lean_kernel.cli import dependency_modules, install, kernelspec_source

# A minimal REPL for the doctor: answers `#eval 2+2` with 4 and `#eval Lean.versionString` with
# the version given on its command line; `--broken-imports` fails on every name after an import,
# as a REPL built for another Lean version does.
STUB_REPL = textwrap.dedent(
    r"""
    import json, sys
    version = sys.argv[1]
    broken = "--broken-imports" in sys.argv
    log = open(sys.argv[2], "a") if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else None
    env = 0
    lines = []
    for line in sys.stdin:
        if line.strip():
            lines.append(line)
            continue
        if not lines:
            continue
        request = json.loads("".join(lines))
        lines = []
        if log:
            log.write(json.dumps(request) + "\n")
            log.flush()
        cmd = request["cmd"]
        messages = []
        for number, text in enumerate(cmd.split("\n"), start=1):
            pos = {"line": number, "column": 0}
            end = {"line": number, "column": 5}
            if broken and cmd.startswith("import") and text.startswith("#eval"):
                data = "unknown identifier 'Lean.versionString'"
                messages.append({"severity": "error", "pos": pos, "endPos": end, "data": data})
            elif text == "#eval 2+2":
                messages.append({"severity": "info", "pos": pos, "endPos": end, "data": "4"})
            elif text == "#eval Lean.versionString":
                data = json.dumps(version)
                messages.append({"severity": "info", "pos": pos, "endPos": end, "data": data})
        sys.stdout.write(json.dumps({"env": env, "messages": messages}) + "\n\n")
        sys.stdout.flush()
        env += 1
    """
)


pytestmark = pytest.mark.usefixtures("no_repl_left_behind")


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LEAN_KERNEL_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "lean_kernel", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


def stub_command(tmp_path: Path, version: str, *flags: str) -> str:
    script = tmp_path / "stub_repl.py"
    script.write_text(STUB_REPL)
    log = tmp_path / "stub.jsonl"
    return " ".join([sys.executable, str(script), version, str(log), *flags])


def make_project(root: Path, version: str = "v4.19.0") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "lakefile.toml").write_text('name = "demo"\n[[require]]\nname = "mathlib"\n')
    (root / "lean-toolchain").write_text(f"leanprover/lean4:{version}\n")
    manifest = {
        "version": "1.1.0",
        "packagesDir": ".lake/packages",
        "packages": [
            {"name": "mathlib", "inherited": False},
            {"name": "batteries", "inherited": True},
        ],
    }
    (root / "lake-manifest.json").write_text(json.dumps(manifest))
    for package, module in (("mathlib", "Mathlib"), ("batteries", "Batteries")):
        folder = root / ".lake" / "packages" / package
        folder.mkdir(parents=True)
        (folder / f"{module}.lean").write_text(f"import {module}.Basic\n")
    return root


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# -- install ---------------------------------------------------------------------------------


def test_kernelspec_ships_a_spec_and_logos():
    source = kernelspec_source()
    spec = json.loads((source / "kernel.json").read_text())
    assert spec["language"] == "lean4" and spec["display_name"] == "Lean 4"
    assert spec["argv"][-2:] == ["-f", "{connection_file}"]
    assert png_size(source / "logo-32x32.png") == (32, 32)
    assert png_size(source / "logo-64x64.png") == (64, 64)
    assert (source / "logo-svg.svg").read_text().startswith("<svg")


def test_install_uses_this_python_and_bakes_settings(tmp_path):
    dest = Path(install(prefix=str(tmp_path), env={"LEAN_KERNEL_TIMEOUT": "30"}))
    assert dest == tmp_path / "share" / "jupyter" / "kernels" / "lean4"
    spec = json.loads((dest / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    assert spec["env"] == {"LEAN_KERNEL_TIMEOUT": "30"}
    assert {p.name for p in dest.iterdir()} >= {"logo-32x32.png", "logo-64x64.png"}


def test_install_command_line_prefix_and_user(tmp_path):
    result = run_cli("install", "--prefix", str(tmp_path / "p"), "--env", "LEAN_KERNEL_TIMEOUT=5")
    assert result.returncode == 0, result.stderr
    assert "Installed the Lean 4 kernelspec" in result.stdout
    spec = tmp_path / "p" / "share" / "jupyter" / "kernels" / "lean4" / "kernel.json"
    assert json.loads(spec.read_text())["env"]["LEAN_KERNEL_TIMEOUT"] == "5"
    user = run_cli("install", "--user", env={"JUPYTER_DATA_DIR": str(tmp_path / "data")})
    assert user.returncode == 0, user.stderr
    assert (tmp_path / "data" / "kernels" / "lean4" / "kernel.json").is_file()
    bad = run_cli("install", "--prefix", str(tmp_path), "--env", "NOEQUALS")
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr


def test_readme_first_command_brings_a_frontend_and_runs_setup():
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    first, second = (line.strip() for line in (root / "README.md").read_text().splitlines()[2:4])
    assert first == (
        'pip install -e ".[lab]" && python -m lean_kernel setup && jupyter lab notebooks/tour.ipynb'
    )
    assert second == 'pip install -e ".[test]" && python -m pytest'
    assert (root / "notebooks" / "tour.ipynb").is_file()
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {extra: {re.split(r"[<>=\[ ]", r)[0] for r in reqs} for extra, reqs in extras.items()}
    assert {"jupyterlab", "jupyter-console"} <= names["lab"]
    assert names["pandas"] == {"pandas"}
    assert {"pytest", "jupyterlab", "pandas", "import-linter"} <= names["test"]


# -- kernel --help ---------------------------------------------------------------------------


def test_kernel_help_speaks_of_the_lean_kernel():
    result = run_cli("kernel", "--help")
    assert result.returncode == 0, result.stderr
    assert "The Lean 4 Jupyter kernel" in result.stdout
    assert "-f CONNECTION_FILE" in result.stdout
    for variable in (
        "LEAN_KERNEL_REPL",
        "LEAN_KERNEL_PROJECT",
        "LEAN_KERNEL_TIMEOUT",
        "LEAN_KERNEL_MEMORY_LIMIT_MB",
        "LEAN_KERNEL_INCREMENTAL",
    ):
        assert variable in result.stdout
    assert len(result.stdout.splitlines()) < 40
    assert "IPKernelApp" not in result.stdout
    assert run_cli("kernel", "-h").stdout == result.stdout


def test_kernel_help_all_still_shows_ipythons_options():
    result = run_cli("kernel", "--help-all")
    assert result.returncode == 0, result.stderr
    assert "--IPKernelApp." in result.stdout and len(result.stdout.splitlines()) > 100


# -- setup -----------------------------------------------------------------------------------


def test_setup_with_an_explicit_repl_is_ready_at_once(tmp_path):
    result = run_cli("setup", env={"LEAN_KERNEL_REPL": fake_repl_command()}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "The kernel will run: LEAN_KERNEL_REPL" in result.stdout


def test_setup_without_elan_says_how_to_install_it(tmp_path):
    env = {
        "HOME": str(tmp_path),
        "PATH": "/nonexistent",
        "LEAN_KERNEL_CACHE_DIR": str(tmp_path / "cache"),
        "ELAN_HOME": str(tmp_path / "elan"),
    }
    result = run_cli("setup", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Setup failed" in result.stderr and "elan" in result.stderr


# -- doctor ----------------------------------------------------------------------------------


def test_doctor_passes_when_imports_resolve_and_versions_match(tmp_path):
    project = make_project(tmp_path / "proj")
    repl = stub_command(tmp_path, "4.19.0")
    result = run_cli("doctor", env={"LEAN_KERNEL_REPL": repl}, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "#eval 2+2 answers 4" in result.stdout
    assert "import Mathlib works" in result.stdout and "Lean v4.19.0" in result.stdout
    assert "REPL: LEAN_KERNEL_REPL" in result.stdout  # says what runs and why
    sent = [json.loads(line)["cmd"] for line in (tmp_path / "stub.jsonl").read_text().splitlines()]
    assert sent == ["#eval 2+2", "import Mathlib\n#eval Lean.versionString"]


def test_doctor_catches_a_repl_built_for_another_lean_version(tmp_path):
    project = make_project(tmp_path / "proj", version="v4.19.0")
    result = run_cli(
        "doctor", env={"LEAN_KERNEL_REPL": stub_command(tmp_path, "4.18.0")}, cwd=project
    )
    assert result.returncode == 1
    assert "runs Lean v4.18.0" in result.stderr and "v4.19.0" in result.stderr
    assert "python -m lean_kernel setup" in result.stderr


def test_doctor_catches_imports_that_do_not_resolve(tmp_path):
    project = make_project(tmp_path / "proj")
    repl = stub_command(tmp_path, "4.19.0", "--broken-imports")
    result = run_cli("doctor", env={"LEAN_KERNEL_REPL": repl}, cwd=project)
    assert result.returncode == 1
    assert "Importing Mathlib failed" in result.stderr


def test_doctor_catches_a_repl_that_cannot_evaluate(tmp_path):
    result = run_cli("doctor", env={"LEAN_KERNEL_REPL": fake_repl_command()}, cwd=tmp_path)
    assert result.returncode == 1
    assert "could not evaluate `Lean.versionString`" in result.stderr


def test_doctor_reports_a_missing_repl(tmp_path):
    result = run_cli("doctor", env={"LEAN_KERNEL_REPL": str(tmp_path / "no-repl")}, cwd=tmp_path)
    assert result.returncode == 1
    assert "The REPL is not ready" in result.stderr and "LEAN_KERNEL_REPL" in result.stderr


def test_dependency_modules_are_the_direct_requires(tmp_path):
    assert dependency_modules(make_project(tmp_path / "proj")) == ["Mathlib"]
    assert dependency_modules(tmp_path) == []

"""``python -m lean_kernel install | setup | doctor | kernel``: get the kernel working, prove it.

* ``install`` puts the ``lean4`` kernelspec where Jupyter looks (with this Python's path in it,
  so the kernel runs in the environment lean_kernel was installed in).
* ``setup`` installs the toolchain and builds the REPL ahead of time (it takes minutes once),
  so the first notebook cell does not.
* ``doctor`` says what the kernel will run and why, then proves it: ``#eval 2+2`` must answer
  4, and importing the project's dependencies must really work: a REPL built for another Lean
  version accepts ``import`` and then fails on every name, so after the imports it evaluates
  ``Lean.versionString`` and compares it to the toolchain's version.

Each command exits non-zero with a message saying what to do when something is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from lean_kernel.engine.config import (
    LeanREPLConfig,
    ReplLaunch,
    find_lake_project,
    normalize_lean_version,
)
from lean_kernel.engine.protocol import Command, CommandResponse
from lean_kernel.engine.server import LeanServer
from lean_kernel.engine.settings import Settings
from lean_kernel.errors import LeanKernelError, ReplSetupError

KERNEL_NAME = "lean4"
DOCTOR_TIMEOUT_S = 600.0
_VERSION_RE = re.compile(r'^"?v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)')


def kernelspec_source() -> Path:
    """The ``kernelspec`` folder: inside the installed package, or at the top of a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "kernelspec", here.parent / "kernelspec"):
        if (candidate / "kernel.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"lean_kernel's kernelspec folder is missing (looked in {here / 'kernelspec'} and "
        f"{here.parent / 'kernelspec'}); reinstall lean-kernel."
    )


def install(
    *,
    user: bool = False,
    prefix: str | None = None,
    env: dict[str, str] | None = None,
    name: str = KERNEL_NAME,
) -> str:
    """Install the kernelspec; returns the folder it went to.

    ``argv[0]`` becomes this Python, so Jupyter runs the kernel where lean_kernel is installed
    even when the Jupyter server runs from another environment. ``env`` is baked into the spec
    (e.g. ``LEAN_KERNEL_REPL``).
    """
    from jupyter_client.kernelspec import KernelSpecManager

    source = kernelspec_source()
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        shutil.copytree(source, staged)
        spec_path = staged / "kernel.json"
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        spec["argv"][0] = sys.executable
        spec["env"] = {**spec.get("env", {}), **(env or {})}
        spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        return KernelSpecManager().install_kernel_spec(
            str(staged), kernel_name=name, user=user, prefix=prefix
        )


def _say(line: str) -> None:
    print(line, flush=True)


def setup(config: LeanREPLConfig) -> int:
    """Install the toolchain and build the REPL now, printing each step."""
    started = time.monotonic()
    try:
        launch = config.resolve(
            progress=lambda line: _say(f"[{time.monotonic() - started:5.0f} s] {line}")
        )
    except ReplSetupError as err:
        print(f"\nSetup failed:\n{err}", file=sys.stderr)
        return 1
    _say(f"\nThe kernel will run: {launch.description}\nCheck it: python -m lean_kernel doctor")
    return 0


def dependency_modules(project: Path) -> list[str]:
    """The root modules of a Lake project's direct dependencies (``Mathlib`` for mathlib).

    Read from ``lake-manifest.json`` (packages not ``inherited``) and the downloaded packages:
    a package's root module is the ``.lean`` file at its top named like the package.
    """
    try:
        manifest = json.loads((project / "lake-manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    packages_dir = project / (manifest.get("packagesDir") or ".lake/packages")
    modules = []
    for package in manifest.get("packages") or []:
        if not isinstance(package, dict) or package.get("inherited"):
            continue
        name = str(package.get("name", ""))
        folder = packages_dir / name
        wanted = name.lower().replace("-", "").replace("_", "")
        with_files = sorted(folder.glob("*.lean")) if folder.is_dir() else []
        for file in with_files:
            if file.stem.lower().replace("_", "") == wanted:
                modules.append(file.stem)
                break
    return modules


def expected_version(launch: ReplLaunch) -> tuple[str | None, str]:
    """The Lean version the REPL must report, and where that expectation comes from."""
    if launch.lean_version:
        return launch.lean_version, "the toolchain the REPL was built for"
    project = find_lake_project(launch.cwd)
    if project is not None:
        toolchain = project / "lean-toolchain"
        version = normalize_lean_version(toolchain.read_text(encoding="utf-8", errors="replace"))
        if version:
            return version, str(toolchain)
    return None, ""


def doctor(config: LeanREPLConfig, settings: Settings, imports: Sequence[str] = ()) -> int:
    """Say what runs and why, then prove it works. Returns the exit code."""
    print("Lean kernel doctor\n==================")
    print(config.describe())
    print(
        f"kernel settings: {settings.describe_limits()}; "
        f"incremental {'on' if settings.incremental else 'off'}"
    )
    for problem in settings.problems:
        print(f"warning: {problem}")
    try:
        launch = config.resolve(install=False)
    except ReplSetupError as err:
        return _fail(f"The REPL is not ready:\n{err}")
    print()
    problems: list[str] = []
    try:
        with LeanServer(config) as server:
            _check_arithmetic(server, problems)
            if not problems:
                _check_imports(server, launch, list(imports), problems)
    except LeanKernelError as err:
        problems.append(f"The REPL failed: {err}")
    if problems:
        return _fail("\n".join(problems))
    print("\nAll checks passed: the kernel will work.")
    return 0


def _check_arithmetic(server: LeanServer, problems: list[str]) -> None:
    response = server.run(Command(cmd="#eval 2+2"), timeout=DOCTOR_TIMEOUT_S)
    outputs = [m.data.strip() for m in getattr(response, "messages", [])]
    if isinstance(response, CommandResponse) and outputs == ["4"]:
        print("ok   #eval 2+2 answers 4")
        return
    problems.append(f"`#eval 2+2` did not answer 4: {response}")


def _check_imports(
    server: LeanServer, launch: ReplLaunch, imports: list[str], problems: list[str]
) -> None:
    project = find_lake_project(launch.cwd)
    if not imports:
        imports = dependency_modules(project) if project is not None else []
        imports = imports or ["Lean"]
    header = "".join(f"import {module}\n" for module in imports)
    started = time.monotonic()
    response = server.run(
        Command(cmd=header + "#eval Lean.versionString"), timeout=DOCTOR_TIMEOUT_S
    )
    elapsed = time.monotonic() - started
    names = ", ".join(imports)
    if not isinstance(response, CommandResponse):
        problems.append(f"Importing {names} was refused by the REPL: {response}")
        return
    errors = response.get_errors()
    if errors:
        shown = "\n".join(f"  {m}" for m in errors[:5])
        problems.append(
            f"Importing {names} failed:\n{shown}\nFix: build the project (`lake build` in "
            f"{launch.cwd}), and make sure the REPL is built for the project's Lean version "
            "(`python -m lean_kernel setup`)."
        )
        return
    said = [m.data.strip() for m in response.messages if m.severity == "info"]
    match = _VERSION_RE.match(said[-1]) if said else None
    if match is None:
        problems.append(
            f"After importing {names}, the REPL could not evaluate `Lean.versionString` "
            f"(it answered {said[-1] if said else 'nothing'!r}): names do not resolve, as "
            "when the REPL was built for another Lean version than the imported modules.\n"
            "Fix: run `python -m lean_kernel setup` to build a matching REPL, or point "
            "LEAN_KERNEL_REPL at one."
        )
        return
    reported = "v" + match.group(1)
    expected, origin = expected_version(launch)
    if expected is not None and reported != expected:
        problems.append(
            f"The REPL runs Lean {reported}, but {origin} says {expected}: modules built by "
            f"{expected} will not load in it.\nFix: run `python -m lean_kernel setup` (it builds "
            f"the REPL for {expected}), or point LEAN_KERNEL_REPL at a REPL built for it."
        )
        return
    print(f"ok   import {names} works ({elapsed:.1f} s); the REPL runs Lean {reported}")
    if expected is None:
        print("     (no expected version known: no toolchain file to compare with)")


def _fail(message: str) -> int:
    print(f"\nPROBLEM: {message}", file=sys.stderr)
    return 1


def _parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise SystemExit(f"--env takes KEY=VALUE, not {pair!r}")
        env[key] = value
    return env


def _config(args: argparse.Namespace, settings: Settings) -> LeanREPLConfig:
    """The kernel's config (from LEAN_KERNEL_* variables), with the command line's overrides."""
    project = Path(args.project) if args.project else settings.project
    return replace(settings, project=project).config(os.getcwd(), lean_version=args.lean_version)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``lean-kernel`` / ``python -m lean_kernel`` command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "kernel":
        from lean_kernel.kernel.kernel import main as kernel_main

        kernel_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m lean_kernel", description="The Lean 4 Jupyter kernel."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    inst = commands.add_parser("install", help="install the lean4 kernelspec for Jupyter")
    where = inst.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for this user (~/.local/share)")
    where.add_argument("--sys-prefix", action="store_true", help="into this Python environment")
    where.add_argument("--prefix", metavar="DIR", help="under DIR/share/jupyter/kernels")
    inst.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE",
        help="an environment variable for the kernel, e.g. LEAN_KERNEL_TIMEOUT=60",
    )  # fmt: skip
    for name, text in (
        ("setup", "install the Lean toolchain and build the REPL now"),
        ("doctor", "say what the kernel runs, and check that it works"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--project", metavar="DIR", help="a Lake project to use")
        sub.add_argument("--lean-version", metavar="VERSION", help="e.g. v4.19.0 or latest")
        if name == "doctor":
            sub.add_argument(
                "--import", dest="imports", action="append", default=[], metavar="MODULE",
                help="module to check imports with (default: the project's dependencies)",
            )  # fmt: skip
    commands.add_parser("kernel", help="run the kernel (what Jupyter starts)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "install":
        # Default: into the virtual environment this runs in, else for the user.
        in_venv = sys.prefix != sys.base_prefix
        prefix = args.prefix or (sys.prefix if args.sys_prefix or in_venv else None)
        user = args.user or prefix is None
        if user:
            prefix = None
        try:
            dest = install(user=user, prefix=prefix, env=_parse_env(args.env))
        except OSError as err:
            print(f"Could not install the kernelspec: {err}", file=sys.stderr)
            print("Try --user, or --sys-prefix inside a virtual environment.", file=sys.stderr)
            return 1
        print(f"Installed the Lean 4 kernelspec ({KERNEL_NAME}) in {dest}")
        return 0
    try:
        config = _config(args, settings)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "setup":
        return setup(config)
    return doctor(config, settings, args.imports)

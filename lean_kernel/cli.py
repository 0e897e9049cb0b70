"""``python -m lean_kernel install | setup | doctor | kernel``: get the kernel working, prove it.

* ``setup`` does everything a newcomer needs, once: installs elan if it is missing, the Lean
  toolchain, builds the REPL, registers the ``lean4`` kernelspec where Jupyter finds it, and ends
  with doctor's proof. Re-running it is safe and quick.
* ``install`` puts the ``lean4`` kernelspec where Jupyter looks (with this Python's path in it,
  so the kernel runs in the environment lean_kernel was installed in), and makes sure the spec
  Jupyter starts carries the ``--env`` settings (``kernel/kernelspec.py``).
* ``doctor`` says what the kernel will run and why (the kernelspec Jupyter starts, with its env,
  included), then proves it: ``#eval 2+2`` must answer 4, and importing the project's
  dependencies must really work: a REPL built for another Lean version accepts ``import`` and
  then fails on every name, so after the imports it evaluates ``Lean.versionString`` and
  compares it to the toolchain's version (``engine/proof.py``).
* ``kernel`` is what Jupyter runs; ``kernel --help`` says so.

Each command exits non-zero with a message saying what to do when something is wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from lean_kernel.engine.config import LeanREPLConfig, ReplLaunch
from lean_kernel.engine.elan import elan_folder_on_path, ensure_elan
from lean_kernel.engine.install import elan_bin, find_tool
from lean_kernel.engine.launch import CACHE_ENV_VAR, FLAVOR_ENV_VAR, REPL_ENV_VAR
from lean_kernel.engine.proof import dependency_modules, expected_version, prove
from lean_kernel.engine.settings import (
    HEARTBEAT_RATE_ENV_VAR,
    HEARTBEATS_ENV_VAR,
    IDLE_TIMEOUT_ENV_VAR,
    INCREMENTAL_ENV_VAR,
    MEMORY_ENV_VAR,
    PROJECT_ENV_VAR,
    TIMEOUT_ENV_VAR,
    Settings,
)
from lean_kernel.engine.steps import SetupSteps
from lean_kernel.engine.toolchain import explicit_command
from lean_kernel.errors import ReplSetupError
from lean_kernel.kernel import kernelspec
from lean_kernel.kernel.kernelspec import KERNEL_NAME, install, kernelspec_source

__all__ = [
    "KERNEL_NAME",
    "dependency_modules",
    "doctor",
    "expected_version",
    "install",
    "kernelspec_source",
    "main",
]

KERNEL_HELP = f"""\
usage: python -m lean_kernel kernel -f CONNECTION_FILE

The Lean 4 Jupyter kernel: each cell is a Lean command sent to a Lean REPL that stays up
between cells. Jupyter starts it (the lean4 kernelspec runs
`python -m lean_kernel kernel -f {{connection_file}}`); you do not run it by hand. To use it:
  jupyter lab                       (pick the "Lean 4" kernel)
  jupyter console --kernel lean4    (in a terminal)
Set it up and check it with `python -m lean_kernel setup` and `python -m lean_kernel doctor`.

options:
  -f CONNECTION_FILE  the connection file Jupyter writes (ports and key of this kernel)
  -h, --help          this help
  --help-all          every option of the IPython kernel machinery underneath

settings (environment variables read when the kernel starts; give them to the kernel with
`python -m lean_kernel install --env KEY=VALUE`, which bakes them into the kernelspec):
  {REPL_ENV_VAR:<28} the REPL command line, used as is (wins over everything)
  {PROJECT_ENV_VAR:<28} a Lake project folder: its Lean version and dependencies
  {TIMEOUT_ENV_VAR:<28} seconds a cell may run (`none`: no limit)
  {HEARTBEATS_ENV_VAR:<28} Lean's maxHeartbeats first: auto (from the timeout), off, or N
  {HEARTBEAT_RATE_ENV_VAR:<28} heartbeats per second `auto` assumes
  {MEMORY_ENV_VAR:<28} memory one REPL may use, in MB
  {INCREMENTAL_ENV_VAR:<28} on / off: reuse the elaboration of an unchanged prefix
  {IDLE_TIMEOUT_ENV_VAR:<28} seconds an idle batch-pool REPL is kept
  {FLAVOR_ENV_VAR:<28} fork / upstream: the flavour of an explicit REPL command
  {CACHE_ENV_VAR:<28} where REPL builds go (default ~/.cache/lean_kernel)
"""


def _timed(started: float):
    return lambda line: print(f"[{time.monotonic() - started:5.0f} s] {line}", flush=True)


def setup(config: LeanREPLConfig, *, allow_elan: bool = True) -> int:
    """Everything the kernel needs, installed and proven, saying each step; safe to re-run."""
    say = _timed(time.monotonic())
    print("Lean kernel setup\n=================", flush=True)
    explicit = explicit_command(config.repl_command)
    try:
        if explicit is not None:
            say(f"1/4 Lean: {explicit[1]} is set, so the kernel runs that command as is")
            say("2/4 The REPL: nothing to install or build")
            launch = config.resolve(progress=say)
        else:
            launch = _set_up_lean(config, say, allow_elan)
    except ReplSetupError as err:
        print(f"\nSetup failed:\n{err}", file=sys.stderr)
        return 1
    say("3/4 The Jupyter kernelspec")
    lines, problem = kernelspec.ensure_registered()
    for line in lines:
        say(line)
    if problem:
        return _fail(problem)
    say("4/4 Proof that it works (what `python -m lean_kernel doctor` checks)")
    problems = prove(config, launch, check_imports=explicit is None)
    if problems:
        return _fail("\n".join(problems))
    if explicit is not None:
        print("     (your REPL command: `python -m lean_kernel doctor` also checks its imports)")
    print(f"\nThe kernel will run: {launch.description}")
    print(
        "Setup done. Open a notebook: jupyter lab notebooks/tour.ipynb (or, in a terminal: "
        "jupyter console --kernel lean4)"
    )
    if explicit is None and not elan_folder_on_path():
        print(
            f"Lean's tools are in {elan_bin()}; elan added it to your shell profile, so new "
            "shells find `lean` and `lake` (lean_kernel finds them there already)."
        )
    return 0


def _set_up_lean(config: LeanREPLConfig, say, allow_elan: bool) -> ReplLaunch:
    """Steps 1 and 2: elan, then the toolchain and the REPL (each skipped when already there)."""
    try:
        launch = config.resolve(install=False)
    except ReplSetupError:
        pass
    else:
        say("1/4 elan and Lean: already installed")
        say(f"2/4 The REPL: ready, {launch.description}")
        return config.resolve()
    say("1/4 elan, the Lean toolchain manager")
    if find_tool("elan") is None and find_tool("git") is None:
        raise ReplSetupError(
            f"Lean is not installed (`elan` was not found on PATH or in {elan_bin()}), and "
            "`git`, which setup needs to download the REPL's sources, was not found on PATH.\n"
            "Fix: install git (e.g. `apt-get install git`), then run `python -m lean_kernel "
            f"setup` again: it installs elan, Lean and the REPL. Or set {REPL_ENV_VAR} to the "
            f"command of a REPL built elsewhere, or {PROJECT_ENV_VAR} to a Lake project whose "
            "REPL is built."
        )
    ensure_elan(SetupSteps(say, verbose=False), allow_install=allow_elan)
    say("2/4 The Lean toolchain and the REPL (minutes, once)")
    return config.resolve(progress=say)


def doctor(
    config: LeanREPLConfig,
    settings: Settings,
    imports: Sequence[str] = (),
    spec_report: tuple[Sequence[str], Sequence[str]] = ((), ()),
) -> int:
    """Say what runs and why, then prove it works. Returns the exit code.

    ``spec_report``: (lines, problems) about the kernelspec Jupyter starts (``main`` reads it
    before the settings, whose variables its env may set).
    """
    print("Lean kernel doctor\n==================")
    spec_lines, spec_problems = spec_report
    for line in spec_lines:
        print(line)
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
        return _fail("\n".join([f"The REPL is not ready:\n{err}", *spec_problems]))
    print()
    problems = [*spec_problems, *prove(config, launch, imports)]
    if problems:
        return _fail("\n".join(problems))
    print("\nAll checks passed: the kernel will work.")
    return 0


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


def _apply_kernelspec_env() -> tuple[list[str], list[str]]:
    """Doctor's kernelspec (lines, problems); the env of the spec Jupyter starts is applied to
    this process, as the kernel gets it (a kernelspec's env wins over Jupyter's own)."""
    used, lines, problems = kernelspec.report()
    for key, value in (used.env if used else {}).items():
        if os.environ.get(key) != value:
            if key in os.environ:
                lines.append(f"  (its {key} replaces {os.environ[key]!r} from this shell)")
            os.environ[key] = value
    if used is not None and used.env:
        lines.append("  (this env applies to the checks below, as it will to the kernel)")
    return lines, problems


def _install_command(args: argparse.Namespace) -> int:
    user, prefix = kernelspec.default_location()
    if args.user:
        user, prefix = True, None
    elif args.prefix or args.sys_prefix:
        user, prefix = False, args.prefix or sys.prefix
    try:
        result = kernelspec.register(user=user, prefix=prefix, env=_parse_env(args.env))
    except OSError as err:
        print(f"Could not install the kernelspec: {err}", file=sys.stderr)
        print("Try --user, or --sys-prefix inside a virtual environment.", file=sys.stderr)
        return 1
    print(f"Installed the Lean 4 kernelspec ({KERNEL_NAME}) in {result.destination}")
    for note in result.notes:
        print(f"note: {note}")
    return _fail(result.problem) if result.problem else 0


def _kernel_command(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(KERNEL_HELP, end="")
        return 0
    from lean_kernel.kernel.kernel import main as kernel_main

    kernel_main(argv)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lean_kernel",
        description="The Lean 4 Jupyter kernel. New here? `python -m lean_kernel setup` does "
        "everything once (elan, Lean, the REPL, the kernelspec) and proves it works.",
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
        ("setup", "install elan, Lean and the REPL, register the kernelspec, prove it works"),
        ("doctor", "say what the kernel runs, and check that it works"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--project", metavar="DIR", help="a Lake project to use")
        sub.add_argument("--lean-version", metavar="VERSION", help="e.g. v4.19.0 or latest")
        if name == "setup":
            sub.add_argument(
                "--no-elan", action="store_true",
                help="never install elan (fail, saying so, when it is missing)",
            )  # fmt: skip
        if name == "doctor":
            sub.add_argument(
                "--import", dest="imports", action="append", default=[], metavar="MODULE",
                help="module to check imports with (default: the project's dependencies)",
            )  # fmt: skip
    commands.add_parser("kernel", help="run the kernel (what Jupyter starts; see kernel --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``lean-kernel`` / ``python -m lean_kernel`` command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "kernel":
        return _kernel_command(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "install":
        return _install_command(args)
    spec_report = _apply_kernelspec_env() if args.command == "doctor" else ([], [])
    settings = Settings.from_env()
    try:
        config = _config(args, settings)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "setup":
        return setup(config, allow_elan=not args.no_elan)
    return doctor(config, settings, args.imports, spec_report)

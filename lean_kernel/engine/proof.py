"""Doctor's proof that a REPL works: ``#eval 2+2`` answers 4, and imports really resolve.

A REPL built for another Lean version accepts ``import`` and then fails on every name, so after
the imports the proof evaluates ``Lean.versionString`` and compares it to the version expected
(the toolchain the REPL was built for, or the project's ``lean-toolchain``). ``doctor`` and
``setup`` (``python -m lean_kernel``) both end with it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.launch import ReplLaunch, normalize_lean_version
from lean_kernel.engine.protocol import Command, CommandResponse
from lean_kernel.engine.server import LeanServer
from lean_kernel.engine.toolchain import find_lake_project
from lean_kernel.errors import LeanKernelError

Say = Callable[[str], None]
TIMEOUT_S = 600.0
_VERSION_RE = re.compile(r'^"?v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)')


def prove(
    config: LeanREPLConfig,
    launch: ReplLaunch,
    imports: Sequence[str] = (),
    *,
    check_imports: bool = True,
    say: Say = print,
) -> list[str]:
    """Run the checks on a fresh REPL, saying each one that passes; returns the problems.

    ``imports`` default to the project's direct dependencies (``Mathlib``), else ``Lean``.
    """
    problems: list[str] = []
    try:
        with LeanServer(config) as server:
            if _check_arithmetic(server, problems, say) and check_imports:
                _check_imports(server, launch, list(imports), problems, say)
    except LeanKernelError as err:
        problems.append(f"The REPL failed: {err}")
    return problems


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


def _check_arithmetic(server: LeanServer, problems: list[str], say: Say) -> bool:
    response = server.run(Command(cmd="#eval 2+2"), timeout=TIMEOUT_S)
    outputs = [m.data.strip() for m in getattr(response, "messages", [])]
    if isinstance(response, CommandResponse) and outputs == ["4"]:
        say("ok   #eval 2+2 answers 4")
        return True
    problems.append(f"`#eval 2+2` did not answer 4: {response}")
    return False


def _check_imports(
    server: LeanServer, launch: ReplLaunch, imports: list[str], problems: list[str], say: Say
) -> None:
    project = find_lake_project(launch.cwd)
    if not imports:
        imports = dependency_modules(project) if project is not None else []
        imports = imports or ["Lean"]
    header = "".join(f"import {module}\n" for module in imports)
    started = time.monotonic()
    response = server.run(Command(cmd=header + "#eval Lean.versionString"), timeout=TIMEOUT_S)
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
    say(f"ok   import {names} works ({elapsed:.1f} s); the REPL runs Lean {reported}")
    if expected is None:
        say("     (no expected version known: no toolchain file to compare with)")

"""A missing import is an error, although the REPL says nothing.

Lean's ``processHeader`` reports ``unknown module prefix 'X'`` for an import it cannot find and
falls back to an empty environment (not even ``Init``: ``Nat`` is unknown). The REPL (the
``augustepoiroux/repl`` fork up to v1.3.18 and upstream; the fix, leanprover-community/repl PRs
#73 and #141, is not merged) drops that message and answers a bare ``{"env": 0}``, so a notebook
or batch would read the import as fine and every later command would fail with ``unknown
identifier``. After a command with imports that Lean accepted, ``check_imports`` asks the new
env about ``Nat`` (one cheap command); if the env is empty, the answer becomes an error that
names the modules that cannot be found and the project searched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from lean_kernel.engine.protocol import Command, CommandResponse, Message, Pos, Response
from lean_kernel.text.syntax import mask

__all__ = ["PROBE", "check_imports", "imported_modules", "missing_import_message", "olean_of"]

#: What is asked of the env an import built: in an empty environment ``Nat`` is unknown.
PROBE = "#check Nat"
# `import M`, `public import M`, `import all M`, several on a line (comments masked first).
_IMPORT_LINE = re.compile(r"^\s*(?:public\s+)?(?:meta\s+)?import\s+(?:all\s+)?(.+)$", re.M)
# Words of an import line that are not module names (`import A public import B` is two).
_KEYWORDS = frozenset({"import", "public", "meta", "all"})
# Modules every toolchain ships (their .olean files are in Lean's own lib/lean).
_TOOLCHAIN_ROOTS = ("Init", "Std", "Lean", "Lake")
# Where Lake puts a package's .olean files (lib/lean since Lake 5, lib before, build/lib of old).
_OLEAN_DIRS = (".lake/build/lib/lean", ".lake/build/lib", "build/lib")


def imported_modules(text: str) -> list[str]:
    """The modules ``text``'s ``import`` lines name, in order (comments and strings masked)."""
    modules: list[str] = []
    for match in _IMPORT_LINE.finditer(mask(text).text):
        modules.extend(word for word in match.group(1).split() if word not in _KEYWORDS)
    return modules


def check_imports(
    text: str,
    response: Response,
    run: Callable[[Command], Response],
    project: Path | None,
) -> Response:
    """``response`` to the command ``text``, or, when its imports left an empty environment,
    the same answer with an error naming the modules not found (``run`` sends the probe)."""
    if not isinstance(response, CommandResponse) or response.env is None:
        return response
    if any(m.data.startswith("unknown module prefix") for m in response.messages):
        return response  # a REPL with the fix reports it itself
    modules = imported_modules(text)
    if not modules:
        return response
    probe = run(Command(cmd=PROBE, env=response.env))
    if not isinstance(probe, CommandResponse) or not probe.has_errors():
        return response
    line = next((i + 1 for i, row in enumerate(text.split("\n")) if "import" in row), 1)
    error = Message(
        pos=Pos(line=line, column=0),
        end_pos=Pos(line=line, column=len(text.split("\n")[line - 1])),
        severity="error",
        data=missing_import_message(modules, project),
    )
    return response.model_copy(update={"messages": [error, *response.messages]})


def missing_import_message(modules: list[str], project: Path | None) -> str:
    """Words for an import that left an empty environment: which modules, where we looked."""
    missing = [m for m in modules if not _found(m, project)] if project is not None else []
    named = missing or modules
    which = ", ".join(f"`{m}`" for m in named)
    where = (
        f"the project {project} (its .lake/build and .lake/packages) and Lean's own library"
        if project is not None
        else "the REPL's search path"
    )
    return (
        f"unknown module: {which} {'is' if len(named) == 1 else 'are'} not in {where}. Lean "
        "fell back to an empty environment (not even `Nat` is defined), though the REPL reported "
        "nothing. Check the module name, build the project (`lake build`), or run in the "
        "project that has it (%project DIR in the kernel, LEAN_KERNEL_PROJECT)."
    )


def olean_of(module: str, project: Path) -> Path | None:
    """The ``.olean`` file ``module`` is loaded from in ``project`` or its packages (None: in
    neither, e.g. one of Lean's own modules, or a missing one)."""
    relative = module.replace("«", "").replace("»", "").replace(".", "/") + ".olean"
    roots = [project, *sorted(project.glob(".lake/packages/*"))]
    for olean in (root / lib / relative for root in roots for lib in _OLEAN_DIRS):
        if olean.is_file():
            return olean
    return None


def _found(module: str, project: Path) -> bool:
    return module.split(".")[0] in _TOOLCHAIN_ROOTS or olean_of(module, project) is not None

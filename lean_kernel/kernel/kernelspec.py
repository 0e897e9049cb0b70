"""The ``lean4`` kernelspec: installing it, and knowing which one Jupyter will start.

Jupyter looks for kernelspecs in a list of folders and takes the first ``lean4`` it finds. In a
virtual environment the environment's own folder comes first, and ``pip install`` has already
put a ``lean4`` there (the wheel's shared data), so a spec written for the user (``--user``)
is silently ignored, its settings with it. ``register`` therefore checks which spec wins after
installing, and writes the same spec over the winner when it is another one, saying so.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KERNEL_NAME = "lean4"
#: argv[0] values Jupyter replaces with its own Python (jupyter_client's launcher does).
_BARE_PYTHONS = {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}


def kernelspec_source() -> Path:
    """The ``kernelspec`` folder: inside the installed package, or at the top of a checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "kernelspec", package.parent / "kernelspec"):
        if (candidate / "kernel.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"lean_kernel's kernelspec folder is missing (looked in {package / 'kernelspec'} and "
        f"{package.parent / 'kernelspec'}); reinstall lean-kernel."
    )


def install(
    *,
    user: bool = False,
    prefix: str | None = None,
    env: dict[str, str] | None = None,
    name: str = KERNEL_NAME,
) -> str:
    """Install the kernelspec exactly where asked; returns the folder it went to.

    ``argv[0]`` becomes this Python, so Jupyter runs the kernel where lean_kernel is installed
    even when the Jupyter server runs from another environment. ``env`` is baked into the spec
    (e.g. ``LEAN_KERNEL_REPL``). Whether Jupyter will use this copy is ``register``'s concern.
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


@dataclass(frozen=True)
class InstalledSpec:
    """One ``lean4`` kernelspec on Jupyter's search path."""

    directory: Path
    argv: list[str]
    env: dict[str, str]

    def runs_this_python(self) -> bool:
        """Whether Jupyter starts it with this Python (where this lean_kernel is installed).

        A bare ``python`` means the Jupyter server's own Python: this one when the spec sits
        in this environment, whose Jupyter is the one that finds it first.
        """
        program = self.argv[0] if self.argv else ""
        if program in _BARE_PYTHONS:
            return _inside(self.directory, Path(sys.prefix))
        return os.path.realpath(program) == os.path.realpath(sys.executable)

    def describe_env(self) -> str:
        """``KEY=VALUE ...``, or ``none``."""
        return " ".join(f"{k}={v}" for k, v in self.env.items()) or "none"


def installed_specs(name: str = KERNEL_NAME) -> list[InstalledSpec]:
    """Every ``name`` kernelspec Jupyter can see from this Python, the one it uses first."""
    from jupyter_client.kernelspec import KernelSpecManager

    manager = KernelSpecManager()
    winner = manager.find_kernel_specs().get(name)
    found: list[InstalledSpec] = []
    for folder in manager.kernel_dirs:
        spec = _read(Path(folder) / name)
        if spec is not None and all(s.directory != spec.directory for s in found):
            found.append(spec)
    if winner is not None:  # find_kernel_specs is Jupyter's own answer: trust its order
        found.sort(key=lambda s: s.directory != Path(winner).resolve())
    return found


@dataclass
class Registration:
    """What ``register`` did: where the spec went, which one Jupyter uses, what to say."""

    destination: Path
    used: Path | None
    notes: list[str] = field(default_factory=list)
    problem: str | None = None


def register(**where: Any) -> Registration:
    """Install the spec (``where``: ``install``'s arguments), then make sure the spec Jupyter
    starts is this one or says the same.

    When another ``name`` spec comes first on Jupyter's path (the venv's, under ``--user``)
    and differs, it gets the same content: settings given to ``install`` must not be lost.
    """
    name = where.get("name", KERNEL_NAME)
    destination = Path(install(**where)).resolve()
    specs = installed_specs(name)
    used = specs[0] if specs else None
    result = Registration(destination, used.directory if used else None)
    if used is None or used.directory == destination:
        return result
    if all(s.directory != destination for s in specs):
        result.notes.append(
            f"Jupyter started from this Python does not look in {destination.parent} (it "
            f"starts {used.directory}); a Jupyter whose JUPYTER_PATH or prefix includes it will."
        )
        return result
    mine = _read(destination)
    if mine is not None and used.env == mine.env and used.runs_this_python():
        result.notes.append(
            f"Jupyter here starts the {name} kernelspec in {used.directory}, which comes before "
            f"{destination} on its search path; it runs this Python with the same settings."
        )
        return result
    try:
        shutil.copytree(destination, used.directory, dirs_exist_ok=True)
    except OSError as exc:
        result.problem = (
            f"Jupyter starts the {name} kernelspec in {used.directory}, which comes before "
            f"{destination} on its search path, so the spec just written is ignored, and "
            f"{used.directory} cannot be updated ({exc}).\nFix: install there instead "
            "(`python -m lean_kernel install`, which picks the active virtual environment), or "
            "delete that folder."
        )
        return result
    result.notes.append(
        f"Jupyter here starts the {name} kernelspec in {used.directory}: it comes before "
        f"{destination} on Jupyter's search path and shadowed it. It now holds the same spec, "
        "so these settings apply."
    )
    return result


def ensure_registered(name: str = KERNEL_NAME) -> tuple[list[str], str | None]:
    """For ``setup``: (lines to say, a problem or None).

    A spec Jupyter already starts with this Python is left alone (re-running setup changes
    nothing); otherwise the spec is registered at the default place, keeping the settings of
    the spec Jupyter used until now.
    """
    specs = installed_specs(name)
    if specs and specs[0].runs_this_python():
        used = specs[0]
        return [
            f"Jupyter will start the {name} kernelspec in {used.directory}: it runs this Python "
            f"(env: {used.describe_env()})"
        ], None
    user, prefix = default_location()
    result = register(user=user, prefix=prefix, env=specs[0].env if specs else None, name=name)
    lines = [f"Registered the {name} kernelspec in {result.destination} (runs {sys.executable})"]
    return lines + result.notes, result.problem


def report(name: str = KERNEL_NAME) -> tuple[InstalledSpec | None, list[str], list[str]]:
    """For ``doctor``: (the spec Jupyter starts, lines describing it, problems)."""
    specs = installed_specs(name)
    if not specs:
        return (
            None,
            [f"kernelspec: no {name} kernelspec where Jupyter looks"],
            [
                f"Jupyter has no {name} kernelspec, so it cannot start the kernel.\n"
                "Fix: run `python -m lean_kernel install` (or `python -m lean_kernel setup`)."
            ],
        )
    used, problems = specs[0], []
    lines = [
        f"kernelspec: {used.directory} (the {name} spec Jupyter starts)",
        f"  command: {shlex.join(used.argv)}",
        f"  env: {used.describe_env()}",
    ]
    lines += [
        f"  shadowed by it, so ignored: {other.directory} (env: {other.describe_env()})"
        for other in specs[1:]
    ]
    program = used.argv[0] if used.argv else ""
    if not used.runs_this_python():
        if program in _BARE_PYTHONS:
            lines.append("  it runs the Python of the Jupyter server that finds it")
        elif not (os.path.isfile(program) and os.access(program, os.X_OK)):
            problems.append(
                f"The {name} kernelspec in {used.directory} runs {program}, which does not "
                "exist.\nFix: run `python -m lean_kernel install` (it writes this Python)."
            )
        else:
            lines.append(f"  it runs another Python than this one ({program})")
    return used, lines, problems


def default_location() -> tuple[bool, str | None]:
    """(user, prefix) of the default install: the active virtual environment, else the user."""
    in_venv = sys.prefix != sys.base_prefix
    return (False, sys.prefix) if in_venv else (True, None)


def _read(folder: Path) -> InstalledSpec | None:
    try:
        spec = json.loads((folder / "kernel.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    argv = [str(a) for a in spec.get("argv") or []]
    env = {str(k): str(v) for k, v in (spec.get("env") or {}).items()}
    return InstalledSpec(folder.resolve(), argv, env)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True

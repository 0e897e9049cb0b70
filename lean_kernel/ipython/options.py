"""The arguments of ``%%lean`` and ``%lean_config``, and the settings shown back to the user.

Durations, memory sizes and on/off values are read by ``lean_kernel.engine.settings``' parsers,
as everywhere else; wrong usage is an IPython ``UsageError`` with the usage line (argparse would
otherwise exit the kernel).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from lean_kernel.batch.args import PROGRESS_MODES
from lean_kernel.engine.settings import (
    Settings,
    parse_megabytes,
    parse_on_off,
    parse_positive,
    parse_seconds,
)

__all__ = ["CellOptions", "describe_settings", "parse_cell_options", "parse_config"]


@dataclass(frozen=True)
class CellOptions:
    """What a ``%%lean [-o VAR] [-t TIMEOUT] [--raise]`` line asks for."""

    output: str | None = None
    timeout: float | None = None
    raise_errors: bool = False


class _UsageParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit the kernel
        raise UsageError(f"{message}\nusage: {self.format_usage().strip()}")


def parse_cell_options(line: str) -> CellOptions:
    """Read a ``%%lean`` line."""
    parser = _UsageParser(prog="%%lean", add_help=False)
    parser.add_argument("-o", "--output")
    parser.add_argument("-t", "--timeout", type=float)
    parser.add_argument("--raise", dest="raise_errors", action="store_true")
    args = parser.parse_args(_split(line))
    if args.output is not None and not args.output.isidentifier():
        raise UsageError(f"-o needs a Python variable name, not {args.output!r}")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("-t needs a positive number of seconds")
    return CellOptions(args.output, args.timeout, args.raise_errors)


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as err:
        raise UsageError(f"cannot read the arguments ({err}): {line!r}") from None


def _options(words: list[str]) -> list[str]:
    """``name=value`` words as ``--name value`` (``%lean_config cluster=ray``)."""
    out: list[str] = []
    for word in words:
        name, eq, value = word.partition("=")
        out.extend([f"--{name}", value] if eq and not word.startswith("-") else [word])
    return out


def _argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from one of ``engine.settings``' parsers (its message on bad input)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


def _workers(text: str) -> int | None:
    value = parse_positive(text, "workers")
    if value is not None and value != int(value):
        raise ValueError(f"{text!r} is not a whole number of workers")
    return None if value is None else int(value)


_UNSET = object()


def parse_config(line: str, current: Settings) -> Settings:
    """The settings a ``%lean_config`` line asks for, starting from ``current``."""
    parser = _UsageParser(prog="%lean_config", add_help=False)
    parser.add_argument("--repl", default=_UNSET)
    parser.add_argument("--project", default=_UNSET)
    parser.add_argument("--memory", type=_argument(parse_megabytes), default=_UNSET)
    parser.add_argument("--timeout", type=_argument(parse_seconds), default=_UNSET)
    parser.add_argument("--workers", type=_argument(_workers), default=_UNSET)
    parser.add_argument("--incremental", type=_argument(parse_on_off), default=_UNSET)
    parser.add_argument("--progress", choices=PROGRESS_MODES, default=_UNSET)
    parser.add_argument("--idle", type=_argument(parse_seconds), default=_UNSET)
    parser.add_argument("--cluster", default=_UNSET)
    args = parser.parse_args(_options(_split(line)))
    changes: dict[str, Any] = {}
    if args.cluster is not _UNSET:  # a Dask address, ray, a Ray address; none: here
        cluster = args.cluster.strip()
        changes["cluster"] = None if cluster.lower() in ("", "none", "local") else cluster
    if args.repl is not _UNSET:
        changes["repl"] = None if args.repl.lower() in ("", "none", "default") else args.repl
    if args.project is not _UNSET:
        if args.project.lower() in ("", "none"):
            changes["project"] = None
        else:
            folder = Path(args.project).expanduser().resolve()
            if not folder.is_dir():
                raise UsageError(f"--project {args.project}: no such folder")
            changes["project"] = folder
    named = (
        ("memory", "memory_mb"),
        ("timeout", "timeout"),
        ("workers", "workers"),
        ("idle", "idle_timeout"),  # none / off / 0: never end idle REPLs
    )
    for name, key in named:
        value = getattr(args, name)
        if value is not _UNSET:
            changes[key] = value
    for name in ("incremental", "progress"):
        value = getattr(args, name)
        if value is not _UNSET:
            changes[name] = value
    return replace(current, **changes)


def describe_settings(settings: Settings) -> str:
    """The settings, one per line, defaults in words (what ``%lean_config`` prints)."""

    def show(value: Any, unit: str = "", default: str = "none") -> str:
        if value is None:
            return default
        return f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"

    return "\n".join(
        [
            f"repl: {settings.repl or 'LEAN_KERNEL_REPL, else a Lake project, else the cache'}",
            f"project: {show(settings.project, default='none (walks up from the cwd)')}",
            f"memory per REPL: {show(settings.memory_mb, ' MB')}",
            f"timeout per command: {show(settings.timeout, ' s')}",
            f"batch workers: {show(settings.workers, default='CPUs - 1, capped by memory')}",
            f"incremental: {'on' if settings.incremental else 'off'}",
            f"progress: {settings.progress}",
            f"idle batch REPLs end after: {show(settings.idle_timeout, ' s', default='never')}",
            f"batches run on: {settings.cluster or 'this machine (threads)'}",
        ]
    )

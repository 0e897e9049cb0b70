"""The ``%%lean_batch`` magic's arguments, and the commands of its cell body.

Shared by the IPython extension and the Lean kernel, so both read
``%%lean_batch [-w WORKERS] [-t TIMEOUT] [--heartbeats N|auto|off] [--header CODE] [-o VAR]
[--sep LINE] [-i VAR] [--progress MODE] [--no-cache] [--cluster ADDRESS] [--require proved]
[--allow native_decide]`` the same way and cut the body at the same separator lines.
"""

from __future__ import annotations

import argparse
import math
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lean_kernel.engine.heartbeats import HeartbeatSetting, parse_heartbeats
from lean_kernel.engine.settings import parse_seconds
from lean_kernel.engine.verdict import ALLOWANCES

__all__ = [
    "DEFAULT_OUTPUT",
    "DEFAULT_SEPARATOR",
    "PROGRESS_MODES",
    "USAGE",
    "BatchArgs",
    "BatchArgsError",
    "commands_from_value",
    "parse_batch_args",
    "read_commands",
    "split_commands",
]

DEFAULT_SEPARATOR = "----"
DEFAULT_OUTPUT = "lean_results"
PROGRESS_MODES = ("auto", "widget", "text", "none")

USAGE = (
    "%%lean_batch [-w WORKERS] [-t TIMEOUT] [--heartbeats N|auto|off] [--header CODE] [-o VAR] "
    "[--sep LINE] [-i VAR] [--progress auto|widget|text|none] [--no-cache] [--cluster ADDRESS] "
    "[--require proved] [--allow native_decide]"
)


class BatchArgsError(ValueError):
    """The magic line or its input cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class BatchArgs:
    """What a ``%%lean_batch`` line asks for (None: the session's default)."""

    workers: int | None = None
    #: seconds per command; ``math.inf``: no limit; None: the session's default
    timeout: float | None = None
    #: Lean's maxHeartbeats per command (``auto``: from the timeout); None: the session's
    heartbeats: HeartbeatSetting | None = None
    header: str | None = None
    output: str = DEFAULT_OUTPUT
    separator: str = DEFAULT_SEPARATOR
    input: str | None = None
    progress: str | None = None
    #: answers from the result cache where it has them, and new ones kept (``--no-cache``: off)
    cache: bool = True
    #: the address of a cluster to run the batch on (``--cluster``); None: this machine
    cluster: str | None = None
    #: the verdict every command must have (``--require proved``); None: any
    require: str | None = None
    #: axioms allowed beyond the standard ones, by word (``--allow native_decide``)
    allow: tuple[str, ...] = ()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit the kernel
        raise BatchArgsError(f"{message}\nusage: {self.usage}")


def _timeout(text: str) -> float:
    """Seconds per command; ``math.inf`` for the words meaning no limit (``-t none``)."""
    try:
        value = parse_seconds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return math.inf if value is None else value


def _heartbeats(text: str) -> HeartbeatSetting:
    """Lean's heartbeat limit per command: a number, ``auto`` or ``off``."""
    try:
        return parse_heartbeats(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _parser(usage: str) -> _Parser:
    parser = _Parser(prog="%%lean_batch", add_help=False, usage=usage)
    parser.add_argument("-w", "--workers", type=int)
    parser.add_argument("-t", "--timeout", type=_timeout)
    parser.add_argument("--heartbeats", type=_heartbeats)
    parser.add_argument("--header")
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--sep", "--separator", dest="separator", default=DEFAULT_SEPARATOR)
    parser.add_argument("-i", "--input")
    parser.add_argument("--progress", choices=PROGRESS_MODES)
    parser.add_argument("--no-cache", dest="cache", action="store_false")
    parser.add_argument("--cluster")
    parser.add_argument("--require", choices=("proved",))
    parser.add_argument("--allow", action="append", choices=sorted(ALLOWANCES), default=[])
    return parser


def parse_batch_args(line: str, usage: str = USAGE) -> BatchArgs:
    """Read the magic's line. ``--header`` may hold ``\\n`` for several lines. ``usage`` is the
    line errors end with (the Lean kernel's has no ``-i``)."""
    try:
        words = shlex.split(line)
    except ValueError as err:
        raise BatchArgsError(
            f"cannot read the arguments ({err}): {line!r}\nusage: {usage}"
        ) from None
    args = _parser(usage).parse_args(words)
    if args.workers is not None and args.workers < 1:
        raise BatchArgsError(f"-w needs at least 1 worker, not {args.workers}")
    for name in ("output", "input"):
        value = getattr(args, name)
        if value is not None and not value.isidentifier():
            raise BatchArgsError(
                f"-{name[0]} needs a variable name (letters, digits and _, not starting with a "
                f"digit), not {value!r}"
            )
    if args.cluster is not None and not args.cluster.strip():
        raise BatchArgsError("--cluster needs an address, e.g. --cluster tcp://host:8786")
    if not args.separator.strip():
        raise BatchArgsError("--sep needs a non-blank line")
    header = args.header.replace("\\n", "\n") if args.header is not None else None
    if header is not None and not header.endswith("\n"):
        header += "\n"
    return BatchArgs(
        workers=args.workers,
        timeout=args.timeout,
        heartbeats=args.heartbeats,
        header=header,
        output=args.output,
        separator=args.separator.strip(),
        input=args.input,
        progress=args.progress,
        cache=args.cache,
        cluster=args.cluster.strip() if args.cluster is not None else None,
        require=args.require,
        allow=tuple(args.allow),
    )


def split_commands(body: str, separator: str = DEFAULT_SEPARATOR) -> list[str]:
    """The commands of a cell body: the text between lines that are exactly ``separator``
    (surrounding spaces ignored); blank commands are left out."""
    commands: list[str] = []
    current: list[str] = []
    for line in body.split("\n"):
        if line.strip() == separator:
            commands.append("\n".join(current))
            current = []
        else:
            current.append(line)
    commands.append("\n".join(current))
    return [command.strip("\n") for command in commands if command.strip()]


def read_commands(args: BatchArgs, body: str, variables: Mapping[str, Any]) -> list[str]:
    """The commands of a batch in a Python notebook: the cell body cut at separator lines, or
    the list in the variable ``-i`` names (one of the two)."""
    if args.input is None:
        if not body.strip():
            raise BatchArgsError(
                "no commands: put them in a %%lean_batch cell, separated by ----, or name a "
                "list of them: %lean_batch -i VAR"
            )
        return split_commands(body, args.separator)
    if body.strip():
        raise BatchArgsError("give the commands in the cell or with -i, not both")
    if args.input not in variables:
        raise BatchArgsError(f"-i {args.input}: no such variable")
    return commands_from_value(variables[args.input], args.input)


def commands_from_value(value: Any, name: str) -> list[str]:
    """The commands held by the Python value ``-i NAME`` points at: strings in an iterable."""
    if isinstance(value, str):
        raise BatchArgsError(
            f"-i {name}: {name} is one string; give a list of commands (or put them in the cell "
            f"separated by {DEFAULT_SEPARATOR} lines)"
        )
    if not isinstance(value, Iterable):
        raise BatchArgsError(f"-i {name}: {name} is a {type(value).__name__}, not a list of str")
    commands = list(value)
    wrong = next(((i, c) for i, c in enumerate(commands) if not isinstance(c, str)), None)
    if wrong is not None:
        index, item = wrong
        raise BatchArgsError(
            f"-i {name}: item {index} is a {type(item).__name__}, not a str of Lean code"
        )
    return commands

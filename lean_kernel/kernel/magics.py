"""Kernel magics: lines starting with ``%`` at the top of a Lean cell.

Magics are a table (``MAGICS``) of small handlers, so adding one is one decorated function. A
cell is read as: optional ``%%name args`` on its first line (a cell magic: it takes the whole
rest of the cell), else any number of ``%name args`` lines at the top (line magics, run in
order), then Lean code. A line magic may use the code below it (``%proof`` reads tactics,
``%timeout`` and ``%heartbeats`` limit it); whatever code no magic took runs as the cell's Lean
code.

Handlers receive the ``Host`` (``lean_kernel.kernel.host``: the output, the document, the batch
keeper; never the Jupyter kernel itself) and a ``CellPlan`` they may change; they return an
execute reply when they decide the cell's outcome, or None to let the cell go on (or an awaitable
of either, for a magic that waits without blocking the kernel: ``%%lean_batch``). Wrong usage
raises ``MagicError``, which the kernel shows as a ``UsageError`` with the usage line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from lean_kernel.batch.args import BatchArgsError, parse_batch_args, split_commands
from lean_kernel.batch.caching import CACHE_USAGE, CacheUsageError, cache_command
from lean_kernel.batch.results import ItemResult
from lean_kernel.display import render_result, render_table, titled
from lean_kernel.engine.heartbeats import parse_heartbeats
from lean_kernel.engine.outcome import messages_of
from lean_kernel.engine.protocol import LeanError
from lean_kernel.engine.settings import describe_seconds, parse_seconds
from lean_kernel.engine.verdict import parse_axioms_message
from lean_kernel.kernel.exercises import (
    EXERCISE_HELP,
    EXERCISE_USAGE,
    ExerciseUsageError,
    describe_axioms,
    parse_exercise,
)
from lean_kernel.kernel.host import CellPlan, Host, MagicError, Reply
from lean_kernel.notebook import NO_LIMIT

Handler = Callable[[Host, CellPlan, str], "Reply | None | Awaitable[Reply | None]"]

__all__ = [
    "MAGICS",
    "Magic",
    "MagicCall",
    "ParsedCell",
    "known_magics",
    "lookup",
    "magic",
    "magic_help",
    "parse_cell",
]


@dataclass(frozen=True)
class MagicCall:
    """One magic line: ``%name args`` (or ``%%name args`` for a cell magic)."""

    name: str
    args: str
    cell: bool = False


@dataclass
class ParsedCell:
    """The magic calls at the top of a cell, in order, and the plan for the rest."""

    calls: list[MagicCall] = field(default_factory=list)
    plan: CellPlan = field(default_factory=lambda: CellPlan("", "", 0))


@dataclass(frozen=True)
class Magic:
    """One entry of the magic table."""

    name: str
    usage: str
    help: str
    run: Handler
    #: ``%%name``: the rest of the cell is its input
    cell: bool = False
    #: the magic needs lines below it (``jupyter console`` keeps reading until they come)
    needs_body: bool = False


MAGICS: dict[str, Magic] = {}

_MAGIC_LINE = re.compile(r"^(%%?)(\S*)[ \t]*(.*?)\s*$")


def magic(
    name: str, usage: str, help: str, *, cell: bool = False, needs_body: bool = False
) -> Callable[[Handler], Handler]:
    """Register a handler as ``%name`` (or ``%%name`` with ``cell=True``)."""

    def register(handler: Handler) -> Handler:
        MAGICS[name] = Magic(name, usage, help, handler, cell=cell, needs_body=needs_body)
        return handler

    return register


def parse_cell(code: str) -> ParsedCell:
    """Split a cell into its magic calls and the Lean code after them."""
    lines = code.split("\n")
    calls: list[MagicCall] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        if not line.startswith("%"):
            break
        match = _MAGIC_LINE.match(line)
        assert match is not None
        marks, name, args = match.groups()
        if not name:
            raise MagicError(f"`{line.strip()}`: write a magic name after %. {known_magics()}")
        calls.append(MagicCall(name, args, cell=marks == "%%"))
        index += 1
        if marks == "%%":
            break
    body_lines = lines[index:] if calls else lines
    offset = index if calls else 0
    return ParsedCell(calls, CellPlan(code, "\n".join(body_lines), offset))


def lookup(call: MagicCall) -> Magic:
    """The table entry for a call; a clear error listing the known magics otherwise."""
    entry = MAGICS.get(call.name)
    prefix = "%%" if call.cell else "%"
    if entry is None:
        raise MagicError(f"Unknown magic {prefix}{call.name}. {known_magics()}")
    if entry.cell != call.cell:
        right = "%%" if entry.cell else "%"
        where = "on the first line of the cell" if entry.cell else "at the top of the cell"
        raise MagicError(f"{prefix}{call.name} is written {right}{call.name}, {where}.")
    return entry


def known_magics() -> str:
    """One line listing the magics, for error messages."""
    names = ", ".join(("%%" if m.cell else "%") + m.name for m in MAGICS.values())
    return f"Known magics: {names} (`%help` explains them)."


def magic_help() -> str:
    """The usage and purpose of every magic."""
    width = max(len(m.usage) for m in MAGICS.values())
    lines = [f"{m.usage:<{width}}  {m.help}" for m in MAGICS.values()]
    return "Kernel magics (lines starting with % at the top of a cell):\n" + "\n".join(lines)


def _no_args(name: str, args: str) -> None:
    if args:
        raise MagicError(f"%{name} takes no arguments (got `{args}`).")


def _seconds(text: str, usage: str) -> float:
    """Seconds, or `NO_LIMIT` for the words meaning none (see ``engine.settings``)."""
    try:
        value = parse_seconds(text)
    except ValueError as err:
        raise MagicError(f"{err}. Usage: {usage}") from None
    return NO_LIMIT if value is None else value


# ---------------------------------------------------------------------------------------------
# The magics


@magic(
    "proof",
    "%proof [N]",
    "run the tactics below on proof state N (default: where the last %proof left off, else "
    "the last sorry) and show the goals left",
    needs_body=True,
)
def _proof(host: Host, plan: CellPlan, args: str) -> Reply:
    state = None
    if args:
        if not re.fullmatch(r"\d+", args):
            raise MagicError(
                f"`%proof {args}`: give the number of a proof state (shown with each goal as "
                "`goal (proof state N)`), or nothing for the last one."
            )
        state = int(args)
    if not plan.body.strip():
        raise MagicError(
            "%proof needs tactics on the lines below it, one per line, e.g.\n%proof\nintro n\nsimp"
        )
    plan.done = True
    return host.run_proof(plan, state)


@magic(
    "timeout",
    "%timeout [SECONDS|none]",
    "limit this cell's Lean code (when code follows), else every cell; alone: show the limit",
)
def _timeout(host: Host, plan: CellPlan, args: str) -> Reply | None:
    usage = MAGICS["timeout"].usage
    if not args:
        host.output.note(f"Timeout per cell: {describe_seconds(host.settings.timeout)}.")
        return None
    value = _seconds(args, usage)
    if plan.body.strip():
        plan.timeout = value
        return None
    host.set_timeout(None if math.isinf(value) else value)
    host.output.note(f"Timeout per cell: {describe_seconds(value)}.")
    return None


@magic(
    "heartbeats",
    "%heartbeats [N|auto|off]",
    "Lean's maxHeartbeats for this cell's Lean code (when code follows), else every cell: a "
    "runaway command stops as a Lean error and the REPL keeps its state; auto: from the "
    "timeout; alone: show the limit",
)
def _heartbeats(host: Host, plan: CellPlan, args: str) -> Reply | None:
    if not args:
        host.output.note(host.describe_heartbeats())
        return None
    try:
        value = parse_heartbeats(args)
    except ValueError as err:
        raise MagicError(f"{err}. Usage: {MAGICS['heartbeats'].usage}") from None
    if plan.body.strip():
        plan.heartbeats = value
        return None
    host.set_heartbeats(value)
    host.output.note(host.describe_heartbeats())
    return None


@magic("restart", "%restart", "restart the Lean REPL and replay the document into it")
def _restart(host: Host, plan: CellPlan, args: str) -> Reply | None:
    _no_args("restart", args)
    host.restart_repl()
    return None


@magic("reset", "%reset", "forget every cell: a new, empty document in a fresh REPL")
def _reset(host: Host, plan: CellPlan, args: str) -> Reply | None:
    _no_args("reset", args)
    host.notebook.reset()
    host.exercises.clear()  # they were declared by cells of the document
    host.output.note("Document cleared: the next cell starts a new document in a fresh REPL.")
    return None


@magic("cells", "%cells", "show the document as the kernel sees it: cells, envs, status, times")
def _cells(host: Host, plan: CellPlan, args: str) -> Reply | None:
    _no_args("cells", args)
    rows = host.notebook.table()
    if not rows:
        host.output.note("The document is empty: no Lean cell has run yet.")
        return None
    host.output.display(render_table(rows))
    return None


@magic("load", "%load FILE.lean", "run a .lean file as this cell's code")
def _load(host: Host, plan: CellPlan, args: str) -> Reply | None:
    if not args:
        raise MagicError("Usage: %load FILE.lean (a path relative to the notebook's folder).")
    if plan.body.strip():
        raise MagicError("%load takes the whole cell: move the Lean code below it to another cell.")
    path = Path(args.strip("\"'")).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MagicError(f"Cannot read {path}: {err}") from None
    plan.source, plan.body, plan.body_offset = text, text, 0
    return None


@magic(
    "project",
    "%project [DIR]",
    "use the Lake project in DIR (its Lean version and dependencies) and replay the document; "
    "alone: say what the kernel runs",
)
def _project(host: Host, plan: CellPlan, args: str) -> Reply | None:
    if not args:
        host.output.note(host.describe_repl())
        return None
    folder = Path(args.strip("\"'")).expanduser().resolve()
    if not folder.is_dir():
        raise MagicError(f"%project: {folder} is not a folder.")
    config = replace(host.settings, project=folder).config(working_dir=folder)
    host.switch_config(config)
    return None


@magic(
    "axioms",
    "%axioms NAME",
    "the axioms NAME depends on (Lean's #print axioms), and what each one means for its proof",
)
def _axioms(host: Host, plan: CellPlan, args: str) -> Reply | None:
    if not args or len(args.split()) != 1:
        raise MagicError("Usage: %axioms NAME (a declaration of the document, or of an import).")
    response = host.ask(f"#print axioms {args}")
    if response is None:
        return host.output.error(
            "ReplError", f"Lean could not answer `#print axioms {args}` (the REPL failed on it)."
        )
    errors = [m.data for m in messages_of(response) if m.severity == "error"]
    if errors or isinstance(response, LeanError):
        return host.output.error("LeanError", (errors or ["the REPL refused it"])[0])
    found = next(
        (read for m in response.messages if (read := parse_axioms_message(m.data)) is not None),
        None,
    )
    if found is None:
        return host.output.error("LeanError", f"`#print axioms {args}` gave no list of axioms.")
    host.output.stream(describe_axioms(*found) + "\n")
    return None


@magic("exercise", EXERCISE_USAGE, EXERCISE_HELP)
def _exercise(host: Host, plan: CellPlan, args: str) -> Reply | None:
    try:
        exercise = parse_exercise(args)
    except ExerciseUsageError as err:
        raise MagicError(str(err)) from None
    return host.exercise(exercise)


@magic("help", "%help", "list the kernel magics")
def _help(host: Host, plan: CellPlan, args: str) -> Reply | None:
    host.output.stream(magic_help() + "\n")
    return None


# -- batches -----------------------------------------------------------------------------------

BATCH_USAGE = (
    "%%lean_batch [-w WORKERS] [-t TIMEOUT] [--heartbeats N|auto|off] [--header CODE] [-o NAME] "
    "[--sep LINE] [--progress auto|widget|text|none] [--no-cache] [--cluster ADDRESS] "
    "[--require proved] [--allow native_decide]"
)


@magic(
    "lean_batch",
    "%%lean_batch [OPTIONS]",
    "check the commands below (separated by ---- lines) each on its own, apart from the "
    "document, on a pool of REPLs kept warm across cells; live progress, then a results table. "
    "OPTIONS: -w WORKERS, -t TIMEOUT (per command), --heartbeats N|auto|off (Lean's limit per "
    "command, before the timeout), --header CODE (before each command), "
    "-o NAME (keep the results for %batch), --sep LINE, --progress auto|widget|text|none, "
    "--no-cache (run every command, even those the result cache knows), --cluster ADDRESS, "
    "--require proved (a command whose verdict is not proved is an error), --allow native_decide "
    "(its axioms count as proved)",
    cell=True,
    needs_body=True,
)
def _lean_batch(host: Host, plan: CellPlan, args: str) -> Awaitable[Reply]:
    try:
        parsed = parse_batch_args(args, BATCH_USAGE)
    except BatchArgsError as err:
        raise MagicError(str(err)) from None
    if parsed.input is not None:
        raise MagicError(
            f"-i {parsed.input}: -i reads the commands from a Python variable, which only "
            "exists in Python notebooks (there: %load_ext lean_kernel, then %lean_batch -i "
            f"{parsed.input}). In a Lean notebook put the commands in the cell below "
            f"%%lean_batch, separated by {parsed.separator} lines."
        )
    commands = split_commands(plan.body, parsed.separator)
    if not commands:
        raise MagicError(
            f"%%lean_batch needs commands in the cell below it, separated by {parsed.separator} "
            f"lines, e.g.\n%%lean_batch -w 4\ntheorem a : 1 + 1 = 2 := rfl\n"
            f"{parsed.separator}\ntheorem b : 2 + 2 = 4 := rfl\nusage: {BATCH_USAGE}"
        )
    plan.done = True
    return host.run_batch(parsed, commands)


@magic(
    "batch",
    "%batch [NAME [N|all]]",
    "the kept batch results: a list; NAME: its table again; N: item N's command and messages "
    "in full; all: every item",
)
def _batch(host: Host, plan: CellPlan, args: str) -> Reply | None:
    words = args.split()
    usage = MAGICS["batch"].usage
    if len(words) > 2:
        raise MagicError(f"Usage: {usage}")
    keeper = host.keeper
    if not words:
        if not keeper.batches:
            host.output.note("No batch has run yet in this kernel (%%lean_batch runs one).")
        else:
            host.output.display(titled("Batches", render_table(keeper.batch_rows())))
        rows = keeper.pool_rows()
        if rows is not None:
            host.output.display(titled(keeper.pool_title(), render_table(rows)))
        return None
    run = keeper.find(words[0])
    if run is None:
        names = ", ".join(kept.name for kept in keeper.batches) or "none yet"
        raise MagicError(f"%batch: no batch results called {words[0]!r} (kept: {names}).")
    results = run.handle.results
    more = f"`%batch {run.name} all` shows every item"
    if len(words) == 1:
        host.output.display(results.table_bundle(more=more))
    elif words[1] == "all":
        host.output.display(results.table_bundle(limit=None))
    elif re.fullmatch(r"\d+", words[1]) and int(words[1]) < len(results):
        _show_item(host, run.name, results[int(words[1])])
    else:
        raise MagicError(
            f"%batch {run.name} {words[1]}: give an item number from 0 to {len(results) - 1}, "
            "or all."
        )
    return None


@magic(
    "lean_cache",
    CACHE_USAGE,
    "the result cache, where batches keep Lean's answers across sessions: info (its file, "
    "entries, size, files set aside) or clear (empty it)",
)
def _lean_cache(host: Host, plan: CellPlan, args: str) -> Reply | None:
    try:
        text = cache_command(host.result_store(), args)
    except CacheUsageError as err:
        raise MagicError(str(err)) from None
    host.output.stream(text + "\n")
    return None


@magic(
    "lean_config",
    "%lean_config [cluster=ADDRESS|none]",
    "where %%lean_batch runs: a Dask scheduler address (tcp://host:8786), ray (this machine's "
    "Ray session, or a new one), a Ray address (ray://host:10001); none: here; alone: show it",
)
def _lean_config(host: Host, plan: CellPlan, args: str) -> Reply | None:
    if args:
        name, eq, value = args.partition("=")
        if name.strip() != "cluster" or not eq:
            raise MagicError(f"Usage: {MAGICS['lean_config'].usage}")
        value = value.strip()
        cluster = None if value.lower() in ("", "none", "local") else value
        host.settings = replace(host.settings, cluster=cluster)
    where = host.settings.cluster or "this machine (threads)"
    host.output.note(f"Batches run on: {where}.")
    return None


def _show_item(host: Host, name: str, item: ItemResult) -> None:
    """One batch item: its command and what Lean said about it, drawn on the command."""
    kind = f" ({item.outcome})" if item.outcome != item.status else ""  # error (out of heartbeats)
    head = f"{name} #{item.index}: {item.status}{kind}, {item.time:.3f} s"
    if item.header_time:
        head += f" (+ {item.header_time:.3f} s header)"
    if item.worker:
        head += f", on {item.worker}"
    host.output.note(head)
    why = f" ({item.verdict_reason})" if item.verdict_reason else ""
    host.output.note(f"verdict: {item.verdict}{why}")
    response = item.response
    if response is not None and not isinstance(response, LeanError):
        bundle = render_result(item.command, response)
        if bundle:
            host.output.display(bundle)
            return
    details = "\n".join(message.data for message in item.messages) or "(no messages)"
    host.output.display({"text/plain": f"{item.command}\n\n{details}"})

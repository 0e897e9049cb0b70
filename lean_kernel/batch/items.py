"""How the commands of a batch become ``BatchItem``s, grouped by the header they run on.

A string (or a ``Command`` without ``env``) is split into its header (imports; ``open`` and
``set_option`` lines travel with the item as its settings) and its body; the group key is the
imports. A request on a kept state, a proof step, or anything with ``keep_states`` is a direct
item (group ``DIRECT``): it is sent as it is. An item may carry a reference statement, which
its proof must prove (``statement changed`` otherwise): checked here, when the batch is made.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from lean_kernel.batch.headers import HeaderSplit, split_header, split_imports
from lean_kernel.batch.jobs import BatchItem
from lean_kernel.batch.scheduler import DIRECT
from lean_kernel.engine.protocol import BaseREPLQuery, Command, FileCommand, ProofStep
from lean_kernel.engine.verdict import Verdict
from lean_kernel.text.syntax import IDENT_RE, declared_names, mask, statement_colon, top_level_index

__all__ = [
    "batch_item",
    "command_texts",
    "reference_statement",
    "required_verdict",
    "statements_for",
]

#: What ``require=`` accepts.
REQUIRABLE: tuple[Verdict, ...] = ("proved",)


def required_verdict(require: str | None) -> Verdict | None:
    """``require`` checked: None, or a verdict every item must have (``proved``)."""
    if require is not None and require not in REQUIRABLE:
        raise ValueError(f"require takes {' or '.join(REQUIRABLE)} (or None), not {require!r}")
    return require  # type: ignore[return-value]  # checked just above


def statements_for(statements: Sequence[str | None] | None, count: int) -> list[str | None]:
    """The reference statement of each of ``count`` commands (None: none), from the parallel
    list ``statements``; a ValueError when its length is not ``count``."""
    if statements is None:
        return [None] * count
    if isinstance(statements, str) or len(statements) != count:
        raise ValueError(
            f"statements must be a list with one entry per command ({count}): a statement "
            "such as 'theorem foo (n : Nat) : n + 0 = n', or None where there is none"
        )
    return list(statements)


def command_texts(commands: list[Any]) -> list[str]:
    """What each command of a batch shows as its text (tables, results)."""
    texts = []
    for command in commands:
        if isinstance(command, str):
            texts.append(command)
        elif isinstance(command, Command):
            texts.append(command.cmd)
        elif isinstance(command, FileCommand):
            texts.append(command.path)
        elif isinstance(command, ProofStep):
            texts.append(command.tactic)
        else:
            texts.append(repr(command))
    return texts


def batch_item(
    index: int,
    command: Any,
    text: str,
    header: str | None,
    keep_states: bool,
    statement: str | None = None,
) -> tuple[str | None, BatchItem]:
    """The group key (header, or DIRECT) and the item for one command of a batch, with its
    reference ``statement`` (a ValueError saying what to give when it is not one)."""
    reference = reference_statement(statement) if statement is not None else None
    # A Command without env is a template for the body (its options); other requests are
    # sent as they are (on a kept state, a proof step).
    template = command if isinstance(command, Command) and command.env is None else None
    if not isinstance(command, str | BaseREPLQuery):
        raise TypeError(
            f"batch item {index} is a {type(command).__name__}; give Lean text (str) or a "
            "request such as Command(cmd=...)"
        )
    if keep_states or (isinstance(command, BaseREPLQuery) and template is None):
        request = command if isinstance(command, BaseREPLQuery) else Command(cmd=text)
        return DIRECT, BatchItem(
            index=index,
            text=text,
            request=request,
            direct=True,
            keep_state=keep_states,
            statement=reference,
        )
    text = text.replace("\r\n", "\n")
    if header is not None:
        full, body, offset = header, text, 0
    else:
        split = split_header(text)
        full, body, offset = split.header, split.body, split.line_offset
    key, imports = _imports_of(full)
    return key, BatchItem(
        index=index,
        text=text,
        body=body,
        line_offset=offset,
        settings=imports.body,
        settings_offset=imports.line_offset,
        request=template,
        statement=reference,
    )


@functools.lru_cache(maxsize=256)
def _imports_of(header: str) -> tuple[str, HeaderSplit]:
    """The group key of ``header`` and its split into imports and settings; a batch's items
    mostly share a few headers, so each distinct one is split once."""
    imports = split_imports(header)
    # One key for "import A" and "import A\n" (trailing blank lines change no position).
    return (imports.header.rstrip() + "\n" if imports.header.strip() else ""), imports


# -- reference statements ------------------------------------------------------------------------

_STATEMENT_HEAD = re.compile(r"\b(theorem|lemma|def|abbrev)\s+")


def reference_statement(text: str) -> tuple[str, str]:
    """``(NAME, TYPE)`` of a reference statement given as Lean writes one, ``theorem NAME
    BINDERS : TYPE`` (a proof after ``:=`` is ignored, e.g. ``:= by sorry``); TYPE closes over
    the binders (``∀ BINDERS, TYPE``). A ValueError saying what to give for anything else."""
    masked = mask(text).text
    head = _STATEMENT_HEAD.search(masked)
    name = IDENT_RE.match(masked, head.end()) if head else None
    names = declared_names(text)
    if head is None or name is None or not names:
        raise ValueError(
            f"a reference statement is a theorem without its proof, e.g. 'theorem foo (n : Nat) "
            f": n + 0 = n', not {text.strip()[:80]!r}"
        )
    colon = statement_colon(masked, name.end())
    if colon < 0:
        raise ValueError(f"the reference statement {names[0]!r} has no ': TYPE'")
    end = top_level_index(masked, colon + 1, lambda k: masked.startswith(":=", k))
    binders = text[name.end() : colon].strip()
    statement = text[colon + 1 : end if end >= 0 else len(text)].strip()
    if not statement:
        raise ValueError(f"the reference statement {names[0]!r} has an empty type")
    return names[0], f"∀ {binders}\n  , {statement}" if binders else statement

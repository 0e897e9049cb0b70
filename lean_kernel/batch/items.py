"""How the commands of a batch become ``BatchItem``s, grouped by the header they run on.

A string (or a ``Command`` without ``env``) is split into its header (imports; ``open`` and
``set_option`` lines travel with the item as its settings) and its body; the group key is the
imports. A request on a kept state, a proof step, or anything with ``keep_states`` is a direct
item (group ``DIRECT``): it is sent as it is.
"""

from __future__ import annotations

from typing import Any

from lean_kernel.batch.headers import split_header, split_imports
from lean_kernel.batch.jobs import BatchItem
from lean_kernel.batch.scheduler import DIRECT
from lean_kernel.engine.protocol import BaseREPLQuery, Command, FileCommand, ProofStep

__all__ = ["batch_item", "command_texts"]


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
    index: int, command: Any, text: str, header: str | None, keep_states: bool
) -> tuple[str | None, BatchItem]:
    """The group key (header, or DIRECT) and the item for one command of a batch."""
    if isinstance(command, str):
        template = None
    elif isinstance(command, Command) and command.env is None:
        template = command
    elif isinstance(command, BaseREPLQuery):
        return DIRECT, BatchItem(
            index=index, text=text, request=command, direct=True, keep_state=keep_states
        )
    else:
        raise TypeError(
            f"batch item {index} is a {type(command).__name__}; give Lean text (str) or a "
            "request such as Command(cmd=...)"
        )
    if keep_states:
        request = template if template is not None else Command(cmd=text)
        return DIRECT, BatchItem(
            index=index, text=text, request=request, direct=True, keep_state=True
        )
    text = text.replace("\r\n", "\n")
    if header is not None:
        full, body, offset = header, text, 0
    else:
        split = split_header(text)
        full, body, offset = split.header, split.body, split.line_offset
    imports = split_imports(full)
    # One key for "import A" and "import A\n" (trailing blank lines change no position).
    key = imports.header.rstrip() + "\n" if imports.header.strip() else ""
    return key, BatchItem(
        index=index,
        text=text,
        body=body,
        line_offset=offset,
        settings=imports.body,
        settings_offset=imports.line_offset,
        request=template,
    )

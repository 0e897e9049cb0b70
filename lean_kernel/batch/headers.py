"""Split a Lean command into its header (imports and file-level settings) and its body.

Thousands of generated statements usually start with the same few lines (``import Mathlib``,
``open Real``, ``set_option maxHeartbeats 400000``). Elaborating those lines is the expensive part
(an import loads the whole library), and only their *result* is shared: so a batch elaborates each
distinct header once per REPL process and sends every body on the header's env. That works with
any REPL, the upstream one included, where incrementality would only help on the fork.

Within a header, the imports are the expensive part and the settings (``open``, ``set_option``,
``variable``) are cheap and vary more (one statement opens ``Real``, the next ``Nat``), so
``split_imports`` cuts a header once more: commands whose headers differ only in settings still
share one import per worker.

A body run on the header's env gets positions relative to the body; ``shift_response`` moves them
back so the user sees line numbers of the command as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lean_kernel.engine.protocol import (
    CommandResponse,
    LeanError,
    Message,
    Pos,
    Response,
    Sorry,
    Tactic,
)

__all__ = ["HeaderSplit", "shift_response", "split_header", "split_imports"]


# Commands that only set up the file: their effect lives in the env the body runs on.
_HEADER_COMMAND = re.compile(r"^(import|open|set_option|variable|universe)\b")
# `open Foo in` / `set_option x y in` scope over the next command: that belongs to the body.
_SCOPED = re.compile(r"\bin\s*$|\bin\s")


@dataclass(frozen=True)
class HeaderSplit:
    """A command cut in two at a line boundary: ``header + body == command``.

    ``line_offset`` is the number of lines of the header, i.e. body line ``L`` is line
    ``L + line_offset`` of the command.
    """

    header: str
    body: str
    line_offset: int


def split_header(command: str) -> HeaderSplit:
    """Cut ``command`` after its leading ``import`` / ``open`` / ``set_option`` / ``variable`` /
    ``universe`` lines (with the comments, blank lines and indented continuation lines among them).

    A scoped ``open ... in`` or ``set_option ... in`` ends the header, since it belongs to the
    declaration after it. The header keeps its exact text, so equal headers group together and its
    messages carry correct positions.
    """
    lines = command.split("\n")
    end = 0  # lines[:end] is the header found so far
    in_command = False  # the previous header line was a command, so indented lines continue it
    in_block_comment = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if in_block_comment:
            in_block_comment = "-/" not in stripped
            continue
        if not stripped or stripped.startswith("--"):
            continue
        if stripped.startswith("/-") and not stripped.startswith("/--"):
            in_block_comment = "-/" not in stripped[2:]
            in_command = False
            continue
        if line[:1].isspace() and in_command:
            if _SCOPED.search(stripped):
                break
            end = i + 1
            continue
        if _HEADER_COMMAND.match(stripped) and not _SCOPED.search(stripped):
            end = i + 1
            in_command = True
            continue
        break
    if end == len(lines):
        return HeaderSplit(header=command, body="", line_offset=end - 1)
    header = "".join(line + "\n" for line in lines[:end])
    return HeaderSplit(header=header, body="\n".join(lines[end:]), line_offset=end)


def split_imports(header: str) -> HeaderSplit:
    """Cut a header after its last ``import`` line: ``header`` of the result holds the imports
    (and the comments among them), ``body`` the settings after them."""
    lines = header.split("\n")
    end = 0
    for i, line in enumerate(lines):
        if line.strip().startswith("import") and _HEADER_COMMAND.match(line.strip()):
            end = i + 1
    if end == 0:
        return HeaderSplit(header="", body=header, line_offset=0)
    if end == len(lines):
        return HeaderSplit(header=header, body="", line_offset=end - 1)
    imports = "".join(line + "\n" for line in lines[:end])
    return HeaderSplit(header=imports, body="\n".join(lines[end:]), line_offset=end)


def _shift_pos(pos: Pos | None, lines: int) -> Pos | None:
    if pos is None or pos.line <= 0:
        return pos
    return pos.model_copy(update={"line": pos.line + lines})


def _shift_message(message: Message, lines: int) -> Message:
    return message.model_copy(
        update={
            "start_pos": _shift_pos(message.start_pos, lines),
            "end_pos": _shift_pos(message.end_pos, lines),
        }
    )


def _shift_located(item: Sorry | Tactic, lines: int) -> Sorry | Tactic:
    return item.model_copy(
        update={
            "start_pos": _shift_pos(item.start_pos, lines),
            "end_pos": _shift_pos(item.end_pos, lines),
        }
    )


def shift_response(
    response: Response, lines: int, header_messages: list[Message] | None = None
) -> Response:
    """``response`` to a body, as if the whole command had been sent: positions moved down by
    ``lines``, and the header's own ``header_messages`` in front of the body's.
    """
    if isinstance(response, LeanError):
        return response
    update: dict = {
        "messages": [
            *(header_messages or []),
            *(_shift_message(m, lines) for m in response.messages),
        ],
        "sorries": [_shift_located(s, lines) for s in response.sorries],
    }
    if isinstance(response, CommandResponse):
        update["tactics"] = [_shift_located(t, lines) for t in response.tactics]
    return response.model_copy(update=update)

"""Inspection (Shift+Tab, ``name?`` in a console): what Lean says about the name at the cursor.

The signature (``#check``), the docstring and, at a higher detail level, the definition
(``#print``) are asked of Lean on the document's current env, in one command whose env is
dropped, so inspecting never changes the document.
"""

from __future__ import annotations

import threading

from lean_kernel.engine.protocol import CommandResponse
from lean_kernel.kernel.host import Reply
from lean_kernel.notebook import Notebook
from lean_kernel.text.completion import name_at

__all__ = ["DOCSTRING_QUERY", "INSPECT_TIMEOUT_S", "inspect"]

#: Asks Lean for a declaration's docstring without changing the document (its env is dropped).
DOCSTRING_QUERY = (
    "open Lean Elab Command in\n"
    "#eval show CommandElabM Unit from do\n"
    "  match ← findDocString? (← getEnv) `{name} with\n"
    "  | some d => logInfo d\n"
    "  | none => pure ()"
)
INSPECT_TIMEOUT_S = 20.0


def inspect(
    notebook: Notebook | None,
    code: str,
    cursor_pos: int,
    detail_level: int,
    cancel: threading.Event,
) -> Reply:
    """The ``inspect_reply`` for the name at ``cursor_pos`` (not found without a REPL yet)."""
    reply: Reply = {"status": "ok", "found": False, "data": {}, "metadata": {}}
    found = name_at(code, cursor_pos)
    if found is None or notebook is None:
        return reply
    name = found[0]
    query = f"#check {name}\n" + DOCSTRING_QUERY.format(name=name)
    if detail_level:
        query += f"\n#print {name}"
    result = notebook.query(query, timeout=INSPECT_TIMEOUT_S, cancel=cancel)
    if not isinstance(result, CommandResponse):
        return reply
    signature, doc, extra = _inspection(result)
    if signature is None:
        return reply
    plain = "\n\n".join(part for part in (signature, doc, extra) if part)
    fenced = [f"```lean\n{signature}\n```", doc, f"```lean\n{extra}\n```" if extra else ""]
    markdown = "\n\n".join(part for part in fenced if part)
    reply.update(found=True, data={"text/plain": plain, "text/markdown": markdown})
    return reply


def _inspection(result: CommandResponse) -> tuple[str | None, str, str]:
    """(signature from ``#check``, docstring, ``#print`` text) from the inspect command."""
    signature: str | None = None
    doc = extra = ""
    print_line = 2 + DOCSTRING_QUERY.count("\n") + 1
    for msg in result.messages:
        line = msg.start_pos.line
        if msg.severity == "error" and line == 1:
            return None, "", ""
        if msg.severity != "info":
            continue
        if line == 1:
            signature = msg.data.strip()
        elif line < print_line:
            doc = msg.data.strip()
        else:
            extra = msg.data.strip()
    return signature, doc, extra

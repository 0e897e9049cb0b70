"""A REPL response as a Jupyter frontend shows it: a mimebundle, ``#eval`` output, an error reply.

The kernel and the IPython extension hand over the cell text and the REPL's response; this module
turns the response (a command's messages and sorries, a proof step's goals and status, or the
REPL's own error) into the arguments of :func:`~lean_kernel.display.plain.render_plain` and
:func:`~lean_kernel.display.html.render_html`. Everything here is pure: strings and dicts in,
strings and dicts out, nothing of Jupyter imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lean_kernel.display.html import render_html
from lean_kernel.display.layout import (
    CellOptions,
    cell_lines,
    is_eval_output,
    locate,
    proof_step_error,
)
from lean_kernel.display.plain import render_plain
from lean_kernel.engine.protocol import (
    LeanError,
    Message,
    Pos,
    ProofStepResponse,
    Response,
)
from lean_kernel.engine.verdict import DeclVerdict

__all__ = [
    "Response",
    "eval_outputs",
    "render_error_summary",
    "render_result",
    "render_verdicts",
]

"""What the REPL answers to a command or a proof step."""


def render_result(
    source: str,
    response: Response,
    *,
    line_offset: int = 0,
    show_eval_output: bool = True,
    verdicts: Sequence[DeclVerdict] = (),
) -> dict[str, str]:
    """A Jupyter mimebundle (``text/plain`` and ``text/html``) for a REPL response.

    ``source`` is the cell (for a proof step, the tactic text); ``verdicts`` those of the
    declarations it adds (``engine.verdict``), shown first. Returns ``{}`` when there is nothing
    to show (no verdicts, messages, sorries nor goals), so the kernel can send no output at all.
    """
    args = _render_args(response)
    options: CellOptions = {
        "line_offset": line_offset,
        "show_eval_output": show_eval_output,
        "verdicts": verdicts,
    }
    plain = render_plain(source, **args, **options)
    if not plain:
        return {}
    return {"text/plain": plain, "text/html": render_html(source, **args, **options)}


def render_verdicts(verdicts: Sequence[DeclVerdict]) -> dict[str, str]:
    """A mimebundle of verdicts alone (one line per declaration); ``{}`` for none."""
    if not verdicts:
        return {}
    return {
        "text/plain": render_plain("", [], verdicts=verdicts),
        "text/html": render_html("", [], verdicts=verdicts),
    }


def render_error_summary(
    source: str, response: Response, *, line_offset: int = 0, show_eval_output: bool = True
) -> dict[str, Any]:
    """The ``ename`` / ``evalue`` / ``traceback`` of a Jupyter error reply for a failed cell.

    ``evalue`` is the first error in one line; ``traceback`` is the whole rendering in ANSI colour,
    so an error reply alone (what ``nbclient`` and ``jupyter_kernel_test`` expect) shows it all.
    """
    args = _render_args(response)
    lines = cell_lines(source)
    errors = [
        (locate(m.start_pos, m.end_pos, lines, line_offset)[0], m.data)
        for m in args["messages"]
        if m.severity == "error"
    ]
    error = proof_step_error(args.get("status") or "")
    if error is not None:
        errors.append(("", error))
    if errors:
        head, text = errors[0]
        evalue = (f"{head}: " if head else "") + text.split("\n", 1)[0]
        if len(errors) > 1:
            evalue += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    else:
        evalue = "no error"
    plain = render_plain(
        source, **args, line_offset=line_offset, show_eval_output=show_eval_output, ansi=True
    )
    return {"ename": "LeanError", "evalue": evalue, "traceback": plain.rstrip("\n").split("\n")}


def eval_outputs(source: str, messages: Sequence[Message], *, line_offset: int = 0) -> list[str]:
    """The output of the cell's ``#eval`` commands, in order, each ending in a newline.

    For a kernel that sends program output as a ``stream`` (then render with
    ``show_eval_output=False``), as a Python cell's prints are.
    """
    lines = cell_lines(source)
    return [
        msg.data if msg.data.endswith("\n") else msg.data + "\n"
        for msg in messages
        if is_eval_output(msg, lines, line_offset)
    ]


def _render_args(response: Response) -> dict[str, Any]:
    """The messages, goals and proof-step status of a response, as renderer arguments."""
    if isinstance(response, LeanError):
        text = response.message.removeprefix("Lean error:\n")  # the REPL's wrapper, not Lean's
        error = Message(pos=Pos(line=0, column=0), severity="error", data=text)
        return {"messages": [error]}
    if isinstance(response, ProofStepResponse):
        traces = [
            Message(pos=Pos(line=0, column=0), severity="trace", data=trace)
            for trace in response.traces or []
        ]
        return {
            "messages": [*response.messages, *traces],
            "goals": [*response.sorries, *response.goals],
            "proof_state": response.proof_state,
            "status": response.proof_status,
        }
    return {"messages": response.messages, "goals": response.sorries}

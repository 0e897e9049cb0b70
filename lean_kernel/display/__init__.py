"""What people see: diagnostics as text and HTML, tables, batch progress. Pure functions of
results; IPython and ipywidgets are imported only inside the functions that show things.

Import from here: ``from lean_kernel.display import render_result, render_table``. The modules
behind it, one job each:

* ``layout``: what both renderings of a result share (cell lines, REPL positions to ranges,
  messages, goals, a proof step's status line);
* ``plain``: ``text/plain`` in the style of codespan / rustc (``render_plain``);
* ``html``: self-contained, themed ``text/html`` and its style sheet (``render_html``);
* ``diagnostics``: a REPL response to a mimebundle or an error reply (``render_result``,
  ``render_error_summary``, ``eval_outputs``);
* ``tables``: aligned text and HTML tables (``render_table``, ``titled``);
* ``progress``: live progress of a batch (``attach_progress``).
"""

from lean_kernel.display.diagnostics import (
    Response,
    eval_outputs,
    render_error_summary,
    render_result,
)
from lean_kernel.display.html import render_html
from lean_kernel.display.layout import CellOptions, GoalLike
from lean_kernel.display.plain import render_plain
from lean_kernel.display.progress import (
    ProgressDriver,
    ProgressState,
    attach_progress,
    ipython_send,
    make_progress,
)
from lean_kernel.display.tables import render_table, titled

__all__ = [
    "CellOptions",
    "GoalLike",
    "ProgressDriver",
    "ProgressState",
    "Response",
    "attach_progress",
    "eval_outputs",
    "ipython_send",
    "make_progress",
    "render_error_summary",
    "render_html",
    "render_plain",
    "render_result",
    "render_table",
    "titled",
]

"""The kernel's model of a notebook: the document of cells, their results, replay, proof mode.

Nothing here knows Jupyter: the Lean kernel and the ``%%lean`` IPython magic both drive it.
``Notebook`` (notebook.py) composes the parts: the document and its cells (document.py), the REPL
process the cells live in (process.py), the result cache (cache.py) and the persistent one across
processes (stored.py), bringing the document up to date (replay.py), proof mode (proofs.py) over
proof-state handles (proofstates.py), the verdicts of a cell's declarations (verdicts.py), and
the ``%cells`` rows (report.py).
"""

from lean_kernel.notebook.document import Cell, ImportPlacementError, is_import_cell
from lean_kernel.notebook.notebook import CellRun, Notebook
from lean_kernel.notebook.process import NO_LIMIT, ReplUnavailableError
from lean_kernel.notebook.proofs import ProofCell, ProofRun, split_tactics
from lean_kernel.notebook.proofstates import ProofStateError
from lean_kernel.notebook.replay import Recheck, RunOutcome
from lean_kernel.notebook.verdicts import CellVerdicts

__all__ = [
    "NO_LIMIT",
    "Cell",
    "CellRun",
    "CellVerdicts",
    "ImportPlacementError",
    "Notebook",
    "ProofCell",
    "ProofRun",
    "ProofStateError",
    "Recheck",
    "ReplUnavailableError",
    "RunOutcome",
    "is_import_cell",
    "split_tactics",
]

"""The kernel's model of a notebook: the document of cells, their results, replay, proof mode.

Nothing here knows Jupyter: the Lean kernel and the ``%%lean`` IPython magic both drive it.
"""

from lean_kernel.notebook.notebook import (
    NO_LIMIT,
    Cell,
    CellRun,
    ImportPlacementError,
    Notebook,
    ProofRun,
    Recheck,
    ReplUnavailableError,
    is_import_cell,
)
from lean_kernel.notebook.proofstates import ProofCell, ProofStateError, split_tactics

__all__ = [
    "NO_LIMIT",
    "Cell",
    "CellRun",
    "ImportPlacementError",
    "Notebook",
    "ProofCell",
    "ProofRun",
    "ProofStateError",
    "Recheck",
    "ReplUnavailableError",
    "is_import_cell",
    "split_tactics",
]

"""The rows of ``%cells``: the document as the kernel sees it, then the proof cells.

The kernel is not told when a cell is deleted or moved on screen, so this table is how a user
sees what the document really holds and which cells are stale (and which were answered from the
result cache: they have no env until one is needed below them).
"""

from __future__ import annotations

from collections.abc import Sequence

from lean_kernel.engine.outcome import outcome_of, uses_sorry
from lean_kernel.engine.protocol import CommandResponse
from lean_kernel.notebook.document import Cell, CellStatus
from lean_kernel.notebook.proofs import ProofCell

__all__ = ["table_rows"]

_FIRST_LINE_CHARS = 60


def table_rows(
    cells: Sequence[Cell], statuses: Sequence[CellStatus], proofs: Sequence[ProofCell]
) -> list[dict[str, object]]:
    """One row per cell (with its status from ``statuses``), then one per proof cell."""
    rows = [
        _cell_row(position, cell, status)
        for position, (cell, status) in enumerate(zip(cells, statuses, strict=True), start=1)
    ]
    rows.extend(_proof_row(proof) for proof in proofs)
    return rows


def _cell_row(position: int, cell: Cell, status: CellStatus) -> dict[str, object]:
    text: str = status
    if status == "failed":
        text = f"error: {cell.failure}"
    elif status == "error" and outcome_of(status, cell.result) == "out of heartbeats":
        text = "out of heartbeats: Lean's limit"
    elif status == "ok" and isinstance(cell.result, CommandResponse):
        if uses_sorry(cell.result):
            text = "warning: sorry"
        elif cell.result.get_warnings():
            text = "warning"
    if cell.from_store and status != "stale":
        text += " (from the result cache)"
    return {
        "#": position,
        "cell": cell.label,
        "env": "" if cell.env is None else cell.env,
        "status": text,
        "time (s)": round(cell.elapsed, 3),
        "first line": _first_line(cell.text),
    }


def _proof_row(proof: ProofCell) -> dict[str, object]:
    return {
        "#": "",
        "cell": proof.label,
        "env": "" if proof.handle is None else f"proof state {proof.handle}",
        "status": f"proof: {proof.status or 'not run'}",
        "time (s)": round(proof.elapsed, 3),
        "first line": _first_line(proof.tactics),
    }


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:_FIRST_LINE_CHARS]
    return ""

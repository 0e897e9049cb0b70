"""The object ``%lean`` / ``%%lean`` return: a cell's result for Python code, rich in Jupyter.

Python users drive Lean to *use* the answers (filter statements, collect goals), so the result
exposes ``messages``, ``sorries``, ``env`` and friends as plain attributes; displayed, it shows the
diagnostics and the verdict of each declaration as the Lean kernel would (``lean_kernel.display``),
with a line for cells re-checked or replayed first."""

from __future__ import annotations

import html
from dataclasses import dataclass

from lean_kernel.display import render_error_summary, render_result
from lean_kernel.engine.outcome import ResponseReading
from lean_kernel.engine.protocol import CommandResponse, LeanError
from lean_kernel.engine.verdict import DeclVerdict
from lean_kernel.errors import LeanKernelError
from lean_kernel.notebook import CellRun

__all__ = ["LeanCellError", "LeanResult"]


class LeanCellError(LeanKernelError, RuntimeError):
    """A ``%%lean --raise`` cell had Lean errors (so "Run All" stops there)."""


@dataclass(frozen=True)
class LeanResult(ResponseReading):
    """What running one Lean cell gave: Lean's answer, or why the REPL could not give one.

    ``sorries`` carry proof-state handles of the extension's notebook; ``env`` is the env the
    cell built in the extension's REPL (None when it built none).
    """

    source: str
    run: CellRun
    label: str = ""
    verdicts: tuple[DeclVerdict, ...] = ()
    """The verdict of each declaration the cell adds (``proved``, ``sorry``, ``axioms``...:
    ``engine.verdict``), shown as badges beside the diagnostics."""

    @property
    def response(self) -> CommandResponse | LeanError | None:
        """The REPL's answer (None when the REPL died on the cell; see ``error``)."""
        return self.run.response

    @property
    def error(self) -> LeanKernelError | None:
        """Why there is no answer: a timeout, a crash, an interrupt..."""
        return self.run.error

    @property
    def env(self) -> int | None:
        cell = self.run.cell
        return cell.env if cell is not None else None

    @property
    def cell_id(self) -> str | None:
        cell = self.run.cell
        return cell.id if cell is not None else None

    @property
    def elapsed(self) -> float:
        return self.run.elapsed

    @property
    def cached(self) -> bool:
        """Whether the same text on the same env had run before, so nothing was sent (in this
        session, or kept in the result cache: ``run.from_store``)."""
        return self.run.cached

    @property
    def has_errors(self) -> bool:
        """A Lean error, a refused request, or a REPL that died on the cell."""
        return self.run.has_errors

    @property
    def ok(self) -> bool:
        return not self.has_errors

    def notes(self) -> list[str]:
        """Lines to show before the diagnostics: re-checks, replays, and a REPL failure."""
        notes = [recheck.summary() for recheck in self.run.rechecks]
        if self.error is not None:
            notes.append(f"{type(self.error).__name__}: {self.error}")
        return notes

    def raise_for_errors(self) -> None:
        """Raise ``LeanCellError`` when the cell failed."""
        if not self.has_errors:
            return
        if self.response is None:
            raise LeanCellError(f"{self.label} failed: {self.error}")
        summary = render_error_summary(self.source, self.response)
        raise LeanCellError(f"{self.label}: {summary['evalue']}")

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        response = self.response
        bundle = (
            render_result(self.source, response, verdicts=self.verdicts)
            if response is not None
            else {}
        )
        notes = self.notes()
        plain = bundle.get("text/plain", "")
        body_html = bundle.get("text/html", "")
        if not plain and not notes:
            cached = " (from the result cache)" if self.run.from_store else " (cached)"
            plain = f"{self.label} ok" + (cached if self.cached else "")
            body_html = ""
        head = "\n".join(notes)
        text = "\n".join(part for part in (head, plain.rstrip("\n")) if part) + "\n"
        notes_html = "".join(f"<div><i>{html.escape(note)}</i></div>" for note in notes)
        return {"text/plain": text, "text/html": notes_html + (body_html or _pre(plain))}

    def __repr__(self) -> str:
        state = "error" if self.has_errors else "ok"
        return (
            f"<LeanResult {self.label} {state}: {len(self.messages)} messages, "
            f"{len(self.sorries)} sorries, env={self.env}>"
        )


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>" if text else ""

"""Cells answered from the persistent result store: a restarted kernel re-running a notebook
sends nothing to Lean for the cells that did not change.

A cell's answer depends on everything its env was built from, so its key is a chain: the key of
the cell that built its parent env (the last cell above that built one: a cell the REPL died on,
or one it refused, adds nothing to the env and so nothing to the chain), its own text, and the
heartbeat limit it ran under (over the limit, Lean would have stopped it). The chain starts from
`namespace_of` the notebook's config (Lean version, REPL build, the project's manifest), so an
answer is only used where the same Lean would give it; an import cell's key also holds the size
and time of each imported module's ``.olean`` in the project, so rebuilding a module of the
project after editing it changes the key of every cell below the imports.

A cell served from the store is *virtual*: its answer is known, its env exists in no process.
The first time something needs a live env below it, it is elaborated for real (the document is
brought up to date as after a restart). Only deterministic answers with nothing to work on later
are served: ``ok`` and ``error`` without sorries (a sorry's proof state lives in one REPL, and
``%proof`` needs it); timeouts, crashes, cancels and heartbeat stops are never stored
(`stored_result`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.heartbeats import HeartbeatSetting, heartbeat_limit
from lean_kernel.engine.imports import imported_modules, olean_of
from lean_kernel.engine.outcome import status_of
from lean_kernel.engine.protocol import CommandResponse
from lean_kernel.engine.resultstore import (
    ResultStore,
    StoredResult,
    namespace_of,
    result_key,
    stored_result,
)
from lean_kernel.errors import ReplSetupError
from lean_kernel.notebook.document import is_import_cell
from lean_kernel.notebook.process import CellResult

__all__ = ["CellStore", "StoredAnswer"]

#: Statuses served from the store (a ``sorry`` needs a live proof state for ``%proof``).
_SERVED = ("ok", "error")


@dataclass(frozen=True)
class StoredAnswer:
    """A cell's answer found in the store: its key, the key of the env it is the answer on,
    the response (env cleared: it is from another process) and how long Lean took to give it."""

    key: str
    parent_chain: str
    response: CommandResponse
    seconds: float


class CellStore:
    """The persistent result store as a notebook uses it: cell keys, look-ups and writes.

    ``store`` None, or a config that cannot be resolved, means no persistent cache: every key is
    None and nothing is looked up or written.
    """

    def __init__(self, store: ResultStore | None, config: LeanREPLConfig) -> None:
        self.store = store
        self.config = config
        self._namespace = self.namespace_for(config)

    @property
    def enabled(self) -> bool:
        """Whether cells are looked up and written (a store, and a config it can name)."""
        return self._namespace is not None

    def use_config(self, config: LeanREPLConfig, namespace: str | None) -> None:
        """The notebook switched to ``config`` (``namespace``: `namespace_for` it): keys from
        now on are that Lean's."""
        self.config, self._namespace = config, namespace

    def namespace_for(self, config: LeanREPLConfig) -> str | None:
        """What keys of ``config``'s answers start from (None: no store, or no Lean to name)."""
        if self.store is None:
            return None
        try:
            launch = config.resolve()
            namespace = namespace_of(config)
        except ReplSetupError:
            return None  # no Lean to name: the cells run without the store
        # The options every command carries (the server's `_command_options`) are part of it.
        incremental = config.use_incrementality(launch)
        parallel = config.use_parallel_elaboration(launch)
        return f"{namespace}|incrementality={incremental}|Elab.async={parallel}"

    def key(
        self,
        parent_chain: str | None,
        text: str,
        heartbeats: HeartbeatSetting | None,
        timeout: float | None,
    ) -> str | None:
        """The key of a cell: ``text`` elaborated on the env of the cell whose key is
        ``parent_chain`` ("" for a fresh env), under the heartbeat setting it runs with
        (``heartbeats`` None: the config's) and its ``timeout`` (``auto`` derives the limit from
        it). None when not known (no store, or the parent's key is not known)."""
        if self._namespace is None or parent_chain is None:
            return None
        setting = self.config.heartbeats if heartbeats is None else heartbeats
        limit = heartbeat_limit(setting, timeout, self.config.heartbeat_rate)
        parts = [parent_chain, text, f"maxHeartbeats={limit}"]
        if is_import_cell(text):
            parts.append(_imports_fingerprint(text, Path(self.config.resolve().cwd)))
        return result_key(self._namespace, *parts)

    def answer(
        self,
        parent_chain: str | None,
        text: str,
        heartbeats: HeartbeatSetting | None,
        timeout: float | None,
    ) -> StoredAnswer | None:
        """The stored answer of a cell (see `key`) if it may be served: ``ok`` or ``error``, no
        sorry, and Lean took no longer than ``timeout`` to give it (else it would time out)."""
        key = self.key(parent_chain, text, heartbeats, timeout)
        if key is None or parent_chain is None or self.store is None:
            return None
        entry = self.store.get(key)
        if entry is None or entry.status not in _SERVED:
            return None
        if timeout is not None and entry.seconds > timeout:
            return None
        response = entry.to_response()
        if not isinstance(response, CommandResponse) or response.sorries:
            return None
        detached = response.model_copy(update={"env": None})
        return StoredAnswer(key, parent_chain, detached, entry.seconds)

    def remember(self, key: str | None, result: CellResult, seconds: float) -> None:
        """Keep a cell's answer under ``key`` (when ``stored_result`` says it may be kept)."""
        if key is None or self.store is None:
            return
        entry: StoredResult | None = stored_result(status_of(result), result, seconds)
        if entry is not None:
            self.store.put(key, entry)


def _imports_fingerprint(text: str, project: Path) -> str:
    """Size and time of the ``.olean`` each import of ``text`` loads from ``project`` or its
    packages (``-`` for a module found in neither: Lean's own, named by its version)."""
    found = []
    for module in imported_modules(text):
        olean = olean_of(module, project)
        stamp = "-"
        if olean is not None:
            with contextlib.suppress(OSError):
                stat = olean.stat()
                stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        found.append(f"{module}={stamp}")
    return "imports:" + ";".join(found)

"""What survives a REPL restart: requests callers asked to keep, replayed in order.

A REPL process cannot be copied or saved cheaply, so the session cache keeps the *requests* that
built the states a caller wants to keep, and a fresh process gets them again in the same order.
Each kept state is named by a stable negative id (env ``-1``, proof state ``-1`` ...), which the
server maps to whatever id the current process gave it. The cache is shared safely between the
servers of one Python process (a pool): each server replays the entries it has not seen yet.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from lean_kernel.engine.protocol import BaseREPLQuery

StateKind = Literal["env", "proof_state"]


@dataclass(frozen=True)
class SessionEntry:
    """One kept request and the negative ids standing for the states it builds.

    ``key`` names the env (or proof state, per ``kind``) the request creates; ``sorry_keys`` name
    the proof states of its sorries, in the order the REPL reports them.
    """

    key: int
    kind: StateKind
    request: BaseREPLQuery
    sorry_keys: tuple[int, ...] = ()


class ReplaySessionCache:
    """Thread-safe, ordered store of kept requests, shareable by the servers of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, SessionEntry] = {}
        self._next_env_key = -1
        self._next_proof_state_key = -1

    def add(self, request: BaseREPLQuery, kind: StateKind, num_sorries: int = 0) -> SessionEntry:
        """Keep ``request`` and hand out the negative ids of the states it builds."""
        with self._lock:
            if kind == "env":
                key = self._next_env_key
                self._next_env_key -= 1
            else:
                key = self._next_proof_state_key
                self._next_proof_state_key -= 1
            first = self._next_proof_state_key
            self._next_proof_state_key -= num_sorries
            sorry_keys = tuple(range(first, first - num_sorries, -1))
            entry = SessionEntry(key=key, kind=kind, request=request, sorry_keys=sorry_keys)
            self._entries[_slot(kind, key)] = entry
            return entry

    def adopt(self, entries: Iterable[SessionEntry]) -> None:
        """Keep another cache's entries under their own ids (a cluster worker replaying the
        pool's kept states); entries already here are left as they are."""
        with self._lock:
            for entry in entries:
                self._entries.setdefault(_slot(entry.kind, entry.key), entry)
                # Ids handed out here later must not collide with the adopted ones.
                proof_keys = list(entry.sorry_keys)
                if entry.kind == "env":
                    self._next_env_key = min(self._next_env_key, entry.key - 1)
                else:
                    proof_keys.append(entry.key)
                if proof_keys:
                    lowest = min(proof_keys) - 1
                    self._next_proof_state_key = min(self._next_proof_state_key, lowest)

    def remove(self, kind: StateKind, key: int) -> None:
        """Forget a kept state; its id is refused from now on."""
        with self._lock:
            if self._entries.pop(_slot(kind, key), None) is None:
                raise KeyError(f"{_describe(kind, key)} is not in the session cache")

    def clear(self) -> None:
        """Forget every kept state."""
        with self._lock:
            self._entries.clear()

    def contains(self, kind: StateKind, key: int) -> bool:
        """Whether ``key`` names a state kept in this cache (a proof state may be a sorry's)."""
        with self._lock:
            if _slot(kind, key) in self._entries:
                return True
            if kind == "proof_state":
                return any(key in entry.sorry_keys for entry in self._entries.values())
            return False

    def entries(self) -> list[SessionEntry]:
        """A snapshot of the kept requests, in the order they must be replayed."""
        with self._lock:
            return list(self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[SessionEntry]:
        return iter(self.entries())


def _slot(kind: StateKind, key: int) -> tuple[str, int]:
    return (kind, key)


def _describe(kind: StateKind, key: int) -> str:
    return f"env {key}" if kind == "env" else f"proof state {key}"

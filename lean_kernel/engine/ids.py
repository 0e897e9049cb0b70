"""Env and proof-state ids that mean the same state whichever REPL process runs.

Each REPL process counts its ids up from 0, so after a restart "env 3" would silently name a
different state. A server therefore shifts the ids of each new process past every id handed out
before, and refuses an id from a replaced process with ``StaleStateError`` (``ProcessIds``).
States kept in the session cache have negative ids instead, mapped to whatever id the current
process gave them when the cache was replayed into it (``KeptIds``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lean_kernel.engine.protocol import BaseREPLQuery, CommandResponse, ProofStepResponse
from lean_kernel.engine.sessioncache import ReplaySessionCache, SessionEntry, StateKind
from lean_kernel.errors import StaleStateError

_ID_FIELDS = ("env", "proofState")


class ProcessIds:
    """Translates ids between a server's callers (unique for its lifetime) and its current process.

    ``generation`` counts the processes so far; callers compare it to notice a restart.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._base = dict.fromkeys(_ID_FIELDS, 0)
        self._next_id = dict.fromkeys(_ID_FIELDS, 0)

    def new_process(self) -> None:
        """A new process started: its ids begin after every id handed out so far."""
        self.generation += 1
        self._base = dict(self._next_id)

    def same_in_process(self, request: BaseREPLQuery) -> bool:
        """Whether ``request``'s ids mean the same in the current process (none to shift, none
        stale), so it can be sent as it is."""
        base = self._base
        if not base["env"] and not base["proofState"]:
            return True  # nothing handed out before this process: its ids are the callers'
        fields = request.__dict__
        return fields.get("env") is None and fields.get("proof_state") is None

    def to_process(self, payload: dict[str, Any], restart_note: str = "") -> dict[str, Any]:
        """A request with the caller's ids turned into the current process's ids.

        ``restart_note`` (e.g. `` (restart at 12:00:00 after ReplTimeoutError)``) is put in the
        error for an id of a replaced process.
        """
        if self.generation == 1:
            return payload
        for field in _ID_FIELDS:
            value = payload.get(field)
            if isinstance(value, int) and value >= 0:
                base = self._base[field]
                if value < base:
                    what = "env" if field == "env" else "proof state"
                    raise StaleStateError(
                        f"{what} {value} belonged to a REPL process that has since been "
                        f"replaced{restart_note}, and it was not kept in the session "
                        "cache. Run the command that built it again, or keep states across "
                        "restarts with AutoLeanServer.run(..., add_to_session_cache=True)."
                    )
                payload = {**payload, field: value - base}
        return payload

    def from_process(self, data: dict[str, Any]) -> dict[str, Any]:
        """A response with the process's ids (its env, proof states of sorries and tactics)
        turned into the caller's ids, in place; remembers the highest id handed out."""
        env = data.get("env")
        if isinstance(env, int):
            env += self._base["env"]
            data["env"] = env
            if env >= self._next_id["env"]:
                self._next_id["env"] = env + 1
        sorries, tactics = data.get("sorries"), data.get("tactics")
        if "proofState" not in data and not sorries and not tactics:
            return data  # a command's answer without proof states: the common case
        base = self._base["proofState"]
        top = self._next_id["proofState"] - 1
        items = [data, *(sorries or ()), *(tactics or ())]
        for item in items:
            state = item.get("proofState") if isinstance(item, dict) else None
            if isinstance(state, int):
                state += base
                item["proofState"] = state
                top = max(top, state)
        self._next_id["proofState"] = top + 1
        return data


class KeptIds:
    """Which id of the current process each kept state (a negative id) has.

    The session cache hands out the negative ids and remembers the requests; this map is per
    server, rebuilt by every replay, so a cache shared by a pool works for each of its servers.
    """

    def __init__(self, cache: ReplaySessionCache) -> None:
        self.cache = cache
        self._own: dict[tuple[StateKind, int], int] = {}

    def clear(self) -> None:
        """Forget every mapping (a new process has none of the states yet)."""
        self._own.clear()

    def forget(self, kind: StateKind, key: int) -> None:
        """Forget one kept state's mapping."""
        self._own.pop((kind, key), None)

    def __contains__(self, state: tuple[StateKind, int]) -> bool:
        """Whether the current process holds the kept state ``(kind, negative id)``."""
        return state in self._own

    def remember(self, entry: SessionEntry, response: CommandResponse | ProofStepResponse) -> None:
        """The current process built ``entry``'s states: map its negative ids to them."""
        own = response.env if isinstance(response, CommandResponse) else response.proof_state
        self._own[(entry.kind, entry.key)] = own
        for key, sorry in zip(entry.sorry_keys, response.sorries, strict=False):
            if sorry.proof_state is not None:
                self._own[("proof_state", key)] = sorry.proof_state

    def keep(
        self, request: BaseREPLQuery, response: CommandResponse | ProofStepResponse
    ) -> CommandResponse | ProofStepResponse:
        """Add ``request`` to the cache; ``response`` with the kept (negative) ids in it."""
        kind: StateKind = "env" if isinstance(response, CommandResponse) else "proof_state"
        entry = self.cache.add(request, kind, num_sorries=len(response.sorries))
        self.remember(entry, response)
        sorries = [
            sorry.model_copy(update={"proof_state": key})
            for sorry, key in zip(response.sorries, entry.sorry_keys, strict=False)
        ]
        field = "env" if kind == "env" else "proof_state"
        return response.model_copy(update={field: entry.key, "sorries": sorries})

    def resolve(
        self, request: BaseREPLQuery, replay: Callable[[SessionEntry], None] | None
    ) -> BaseREPLQuery:
        """``request`` with its negative (kept) ids replaced by the current process's ids.

        A state kept by another server sharing the cache is built first with ``replay``
        (None while replaying: then an unmapped id is refused).
        """
        fields = request.__dict__  # the declared fields (a getattr of a missing one is slow)
        env, state = fields.get("env"), fields.get("proof_state")
        kept_env, kept_state = type(env) is int and env < 0, type(state) is int and state < 0
        if not (kept_env or kept_state):
            return request  # the common case, kept cheap: no kept id
        update = {}
        if kept_env:
            update["env"] = self._own_id("env", env, replay)
        if kept_state:
            update["proof_state"] = self._own_id("proof_state", state, replay)
        return request.model_copy(update=update)

    def _own_id(
        self, kind: StateKind, key: int, replay: Callable[[SessionEntry], None] | None
    ) -> int:
        own = self._own.get((kind, key))
        if own is not None:
            return own
        if replay is not None and self.cache.contains(kind, key):
            for entry in self.cache.entries():
                if (entry.kind, entry.key) not in self:
                    replay(entry)
            own = self._own.get((kind, key))
            if own is not None:
                return own
        what = "env" if kind == "env" else "proof state"
        if self.cache.contains(kind, key):
            raise StaleStateError(
                f"{what} {key} is in the session cache but could not be rebuilt in the new REPL "
                "process (replaying its command failed, or a state it depends on was removed)."
            )
        raise StaleStateError(
            f"{what} {key} is not in the session cache (it was removed, or never kept). "
            "Negative ids only come from run(..., add_to_session_cache=True)."
        )

"""Lean's own limit first: ``maxHeartbeats`` stops a runaway command before the wall clock does.

A wall-clock timeout can only end a command by killing the REPL (Lean cannot abandon a command
half way); every state it held must then be replayed, and with ``import Mathlib`` the import
alone takes seconds to a minute. Lean has its own, deterministic limit: ``maxHeartbeats``
(thousands of small allocations per declaration). A command over it fails as an ordinary Lean
error ("(deterministic) timeout ... maximum number of heartbeats (N) has been reached") and the
REPL keeps every env. So a command with a limit runs under ``maxHeartbeats`` first, and the wall
clock stays as the backstop, with slack (`backstop`) so that Lean's limit fires first.

The limit is either given (a whole number, in Lean's unit) or ``auto``: derived from the
command's wall-clock limit at `DEFAULT_HEARTBEAT_RATE` heartbeats per second (a deliberately low
estimate of how fast Lean burns them, so the heartbeat limit comes before the wall clock; set
``LeanREPLConfig(heartbeat_rate=...)`` / ``LEAN_KERNEL_HEARTBEAT_RATE`` to your machine's rate).
``off`` adds nothing (Lean's own default, 200000, still applies as in any Lean file).

How the limit reaches Lean: the REPL keeps each env's command state, options included, so
``set_option maxHeartbeats N`` elaborated on env E gives an env E' on which later commands run
under N, and so do the envs built on them (options are inherited). The fork's ``setOptions``
field cannot do this: it only applies to a command without ``env`` (it sets a new session's
options; REPL/Main.lean up to v1.3.18), and with incrementality a header seen before keeps the
options it was first elaborated with. E' is made once per (process, env, limit) and reused, so a
cell re-run on the same parent env still meets the fork's incremental cache; a command on an env
that already carries the limit it needs (the cell after a limited one) runs there directly; one
without a limit on such an env gets Lean's default back first. A command without ``env`` (a
document's first cell, a batch header) has the wall clock only.

Lean's semantics stay the user's: ``set_option maxHeartbeats N in decl`` wins for its
declaration (it sets the option inside ours), and a top-level ``set_option maxHeartbeats N``
wins for the rest of its command and for every env built on it: no limit is added there.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from lean_kernel.engine.protocol import LeanError, Message, Response
from lean_kernel.text.syntax import mask

if TYPE_CHECKING:
    import threading

__all__ = [
    "AUTO",
    "DEFAULT_HEARTBEAT_RATE",
    "OFF",
    "HeartbeatLimits",
    "HeartbeatSetting",
    "backstop",
    "describe_heartbeats",
    "heartbeat_limit",
    "heartbeat_stop",
    "parse_heartbeats",
    "sets_own_limit",
    "stopped_at",
]

AUTO = "auto"
OFF = "off"
#: ``auto`` (from the wall-clock limit), ``off`` (add none), or ``maxHeartbeats`` itself.
HeartbeatSetting = int | Literal["auto", "off"]

#: Heartbeats (Lean's unit: thousands of small allocations) Lean is assumed to burn per second of
#: elaboration when ``auto`` turns a wall-clock limit into ``maxHeartbeats``. Deliberately low, so
#: the heartbeat limit fires before the wall clock on ordinary machines (at this rate Lean's
#: default of 200000 is 40 s); measure yours (README, "Timeouts") and set ``heartbeat_rate``.
DEFAULT_HEARTBEAT_RATE = 5000.0
#: With a heartbeat limit on, the wall clock waits this much longer (factor, then seconds).
BACKSTOP_FACTOR = 1.2
BACKSTOP_SECONDS = 1.0
#: Envs remembered per server (limited ones, and those built on them): this only bounds the
#: bookkeeping of a very long session (an env forgotten here is taken to carry no limit).
_MAX_ENVS = 100_000
#: ``maxHeartbeats``'s default in Lean (``register_builtin_option maxHeartbeats``): what an env
#: gets back when a command without a limit runs on one that carries ours.
LEAN_DEFAULT_MAX_HEARTBEATS = 200000

_OFF_WORDS = ("off", "none", "no")
# Lean's throwMaxHeartbeat text, alone or nested ("Tactic `simp` failed with a nested error:").
_HEARTBEAT_STOP = re.compile(
    r"^\(deterministic\) timeout(?: at `[^`]*`)?, maximum number of heartbeats \((\d+)\) "
    r"has been reached",
    re.M,
)
# ... for maxHeartbeats itself, not another limit (synthInstance.maxHeartbeats words it alike).
_OUR_OPTION = "`set_option maxHeartbeats <num>`"
# A top-level `set_option maxHeartbeats N` (not `... in`), in text whose comments are masked.
_OWN_LIMIT = re.compile(r"\bset_option\s+maxHeartbeats\s+\d+\b(?!\s+in\b)")


def parse_heartbeats(value: object) -> HeartbeatSetting:
    """``auto``, ``off`` (also ``none``, ``no``), or a positive whole number of heartbeats (Lean's
    ``maxHeartbeats`` unit); anything else is a ``ValueError`` saying what is accepted."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    word = str(value).strip().lower()
    if word == AUTO:
        return AUTO
    if word in _OFF_WORDS:
        return OFF
    if word.isdigit() and int(word) > 0:
        return int(word)
    raise ValueError(
        f"{str(value).strip()!r} is not a heartbeat limit: give a positive whole number "
        "(Lean's maxHeartbeats, e.g. 200000), auto (from the time limit) or off"
    )


def heartbeat_limit(setting: HeartbeatSetting, timeout: float | None, rate: float) -> int | None:
    """The ``maxHeartbeats`` a command gets: the number given, or for ``auto`` its wall-clock
    limit at ``rate`` heartbeats per second; None for ``off`` and for ``auto`` without a limit."""
    if setting == OFF:
        return None
    if setting == AUTO:
        if timeout is None or math.isinf(timeout) or timeout <= 0:
            return None
        return max(1, math.ceil(rate * timeout))
    return int(setting)


def backstop(timeout: float | None) -> float | None:
    """The wall-clock limit of a command that also has a heartbeat limit: later, so that Lean's
    own limit (which keeps the REPL's states) fires first when the estimate holds."""
    if timeout is None or math.isinf(timeout):
        return timeout
    return timeout * BACKSTOP_FACTOR + BACKSTOP_SECONDS


def describe_heartbeats(setting: HeartbeatSetting, timeout: float | None, rate: float) -> str:
    """``auto: 300000 for 60 s (5000 per second)`` / ``200000`` / ``off`` (status lines)."""
    if setting == OFF:
        return "off (Lean's own default applies)"
    if setting != AUTO:
        return f"{setting}"
    limit = heartbeat_limit(setting, timeout, rate)
    if limit is None:
        return "auto (none: no time limit to derive it from)"
    return f"auto: {limit} for {timeout:g} s ({rate:g} per second)"


def heartbeat_stop(response: Response | None) -> int | None:
    """The limit Lean reported when it stopped a command at ``maxHeartbeats``, else None."""
    if response is None or isinstance(response, LeanError):
        return None
    for message in response.messages:
        limit = stopped_at(message)
        if limit is not None:
            return limit
    return None


def stopped_at(message: Message) -> int | None:
    """The ``maxHeartbeats`` limit when ``message`` is Lean stopping a command there, else None."""
    if message.severity == "error" and _OUR_OPTION in message.data:
        match = _HEARTBEAT_STOP.search(message.data)
        if match:
            return int(match.group(1))
    return None


def sets_own_limit(text: str) -> bool:
    """Whether Lean text sets ``maxHeartbeats`` for what follows it (not only ``... in``)."""
    return "maxHeartbeats" in text and _OWN_LIMIT.search(mask(text).text) is not None


#: Sends one request (the server's own round trip, ids translated): payload, timeout, cancel.
Send = Callable[[dict[str, Any], "float | None", "threading.Event | None"], dict[str, Any]]


class HeartbeatLimits:
    """One server's heartbeat limits in its running process: which envs carry a limit of ours
    (set on them, or inherited from the env they were built on), the limited env made for each
    (env, limit), and the envs whose own code set ``maxHeartbeats`` (none of ours goes there).

    A command on an env that already carries the limit it needs runs there as it is, so a chain
    of cells pays one ``set_option`` per change of limit; a command without a limit on an env
    that carries one gets Lean's default back first, as if the limit had never been set.

    ``enabled`` says whether the REPL takes them (a known flavour); ``default`` is the setting of
    a request that gives none, ``rate`` the heartbeats per second ``auto`` assumes, and
    ``default_timeout`` the wall-clock limit of a request that gives none.
    """

    def __init__(
        self,
        enabled: bool,
        default: HeartbeatSetting,
        rate: float,
        default_timeout: float | None,
    ) -> None:
        self.enabled = enabled
        self.default = default
        self.rate = rate
        self.default_timeout = default_timeout
        self._generation = -1
        self._limited: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._carried: OrderedDict[int, int] = OrderedDict()
        self._own: set[int] = set()

    def apply(
        self,
        payload: dict[str, Any],
        timeout: float | None,
        setting: HeartbeatSetting | None,
        generation: int,
        cancel: threading.Event | None,
        send: Send,
    ) -> tuple[dict[str, Any], float | None]:
        """The command to send and its wall-clock limit: on an env under the heartbeat limit
        ``setting`` (None: the default) asks for, with the backstop's slack; else as given."""
        setting = self.default if setting is None else parse_heartbeats(setting)
        env = payload.get("env")
        if not self.enabled or not isinstance(env, int):
            return payload, timeout
        self._new_process(generation)
        if env in self._own:
            return payload, timeout
        wall = timeout if timeout is not None else self.default_timeout
        limit = heartbeat_limit(setting, wall, self.rate)
        carried = self._carried.get(env)
        wall_clock = timeout if limit is None else backstop(wall)
        if limit == carried:
            return payload, wall_clock
        wanted = LEAN_DEFAULT_MAX_HEARTBEATS if limit is None else limit
        limited = self._limited_env(env, wanted, wall, cancel, send)
        if limited is None:
            return payload, timeout  # not taken: send the command as it is
        return {**payload, "env": limited}, wall_clock

    def observe(self, payload: dict[str, Any], answer: dict[str, Any], generation: int) -> None:
        """Note what limit the env a command built carries: its parent's, or its own code's."""
        if not self.enabled:
            return
        self._new_process(generation)
        env, parent = answer.get("env"), payload.get("env")
        if not isinstance(env, int):
            return
        own_options = any(
            isinstance(entry, (list, tuple)) and list(entry[0]) == ["maxHeartbeats"]
            for entry in payload.get("setOptions") or ()
        )
        if parent in self._own or own_options or sets_own_limit(str(payload.get("cmd", ""))):
            self._own.add(env)
        elif isinstance(parent, int) and parent in self._carried:
            self._carry(env, self._carried[parent])

    def _limited_env(
        self, env: int, limit: int, wall: float | None, cancel: threading.Event | None, send: Send
    ) -> int | None:
        """``env`` with ``maxHeartbeats`` set to ``limit`` (made once); None if Lean refused."""
        limited = self._limited.get((env, limit))
        if limited is not None:
            self._limited.move_to_end((env, limit))
            return limited
        answer = send({"cmd": f"set_option maxHeartbeats {limit}", "env": env}, wall, cancel)
        limited = answer.get("env")
        if "message" in answer or answer.get("messages") or not isinstance(limited, int):
            return None
        self._limited[(env, limit)] = limited
        while len(self._limited) > _MAX_ENVS:
            self._limited.popitem(last=False)
        if limit != LEAN_DEFAULT_MAX_HEARTBEATS:
            self._carry(limited, limit)
        return limited

    def _carry(self, env: int, limit: int) -> None:
        self._carried[env] = limit
        while len(self._carried) > _MAX_ENVS:
            self._carried.popitem(last=False)

    def _new_process(self, generation: int) -> None:
        """Ids of another process mean nothing here: forget them."""
        if generation != self._generation:
            self._generation = generation
            self._limited.clear()
            self._carried.clear()
            self._own.clear()

"""What resolving a config yields (``ReplLaunch``), and the facts about Lean releases and REPL
flavours that decide it.

It sits below both the config value (``config.py``) and the code that finds and builds the REPL
(``toolchain.py``, ``install.py``), so each can use these names without importing the other.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CACHE_ENV_VAR",
    "DEFAULT_LEAN_VERSION",
    "DEFAULT_REPL_REV",
    "FLAVOR_ENV_VAR",
    "FORK_REPL_GIT",
    "PROJECT_ENV_VAR",
    "REPL_ENV_VAR",
    "UPSTREAM_REPL_GIT",
    "Flavor",
    "FlavorChoice",
    "ReplLaunch",
    "normalize_lean_version",
    "supports_heartbeat_limits",
    "supports_incrementality",
    "supports_parallel_elaboration",
]

Flavor = Literal["fork", "upstream", "unknown"]
FlavorChoice = Literal["auto", "fork", "upstream"]

#: Newest stable Lean release with a REPL tag in both the fork and upstream; what "latest" means.
DEFAULT_LEAN_VERSION = "v4.32.0"
#: Fork release whose tags are named ``<repl_rev>_lean-toolchain-<lean version>``.
DEFAULT_REPL_REV = "v1.3.18"
#: The fork adds incrementality and ``setOptions`` (parallel elaboration) to the REPL.
FORK_REPL_GIT = "https://github.com/augustepoiroux/repl"
#: Upstream tags are the Lean version itself (``v4.19.0``); used when the fork has no such tag.
UPSTREAM_REPL_GIT = "https://github.com/leanprover-community/repl"

REPL_ENV_VAR = "LEAN_KERNEL_REPL"
FLAVOR_ENV_VAR = "LEAN_KERNEL_REPL_FLAVOR"
CACHE_ENV_VAR = "LEAN_KERNEL_CACHE_DIR"
#: A Lake project folder to run the REPL in (read by ``engine.settings``).
PROJECT_ENV_VAR = "LEAN_KERNEL_PROJECT"

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.]+))?$")


@dataclass(frozen=True)
class ReplLaunch:
    """Everything needed to start one REPL process, and a sentence saying why it is this one."""

    argv: list[str]
    cwd: str
    env: dict[str, str] | None
    description: str
    flavor: Flavor
    lean_version: str | None


def normalize_lean_version(version: str) -> str | None:
    """``leanprover/lean4:v4.19.0``, ``v4.19.0`` or ``4.19.0`` -> ``v4.19.0``; None if not one."""
    text = version.strip().removeprefix("leanprover/lean4:")
    match = _VERSION_RE.match(text)
    if match is None:
        return None
    return "v" + text.removeprefix("v")


def supports_incrementality(flavor: Flavor, lean_version: str | None) -> bool:
    """Whether to send ``incrementality``: only the fork implements it (Lean >= 4.8).

    An unknown REPL may be the fork, and upstream ignores unknown fields, so it gets the field
    too unless its Lean version is known to predate the feature.
    """
    if flavor == "upstream":
        return False
    return lean_version is None or _at_least(lean_version, "v4.8.0-rc1")


def supports_parallel_elaboration(flavor: Flavor, lean_version: str | None) -> bool:
    """Whether ``setOptions`` with ``Elab.async`` works: the fork's field, Lean >= 4.19."""
    return flavor == "fork" and _at_least(lean_version, "v4.19.0")


def supports_heartbeat_limits(flavor: Flavor, lean_version: str | None) -> bool:
    """Whether commands can run under a ``maxHeartbeats`` limit set on their env first.

    That is a plain ``set_option`` command, which every Lean 4 REPL elaborates; an unknown REPL
    command is left alone all the same (as for parallel elaboration), until its flavour is
    declared (``repl_flavor`` / ``LEAN_KERNEL_REPL_FLAVOR``).
    """
    return flavor in ("fork", "upstream")


def _version_key(version: str) -> tuple[int, int, int, int] | None:
    """Orders releases; a pre-release (``-rc2``) sorts before its release."""
    match = _VERSION_RE.match(version)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    rc = re.fullmatch(r"rc(\d+)", pre or "")
    rank = sys.maxsize if pre is None else int(rc.group(1)) if rc else 0
    return int(major), int(minor), int(patch), rank


def _at_least(version: str | None, minimum: str) -> bool:
    key = _version_key(version) if version else None
    floor = _version_key(minimum)
    assert floor is not None
    return key is not None and key >= floor

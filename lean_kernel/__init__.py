"""Lean 4 in Jupyter: a kernel, IPython magics, and the engine that drives the Lean REPL.

The engine's names follow LeanInteract's (``LeanREPLConfig``, ``LeanServer``,
``AutoLeanServer``, ``LeanServerPool``, ``Command`` ...), so code reads the same with either.
This module only gathers names; the code lives in the subpackages (see ARCHITECTURE.md). The
module paths of earlier releases (``lean_kernel.server``, ``.config``, ``.pool``, ``.protocol``,
``.sessioncache``) stay importable as aliases of the modules that now hold that code, so
existing imports and pickled configs keep working.
"""

import sys as _sys

from lean_kernel._version import __version__
from lean_kernel.batch import pool, results
from lean_kernel.batch.handle import BatchHandle
from lean_kernel.batch.pool import LeanServerPool
from lean_kernel.batch.results import BatchResults, ItemResult
from lean_kernel.engine import autoserver, config, protocol, sessioncache
from lean_kernel.engine.autoserver import AutoLeanServer
from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.protocol import (
    Command,
    CommandResponse,
    FileCommand,
    LeanError,
    Message,
    PickleEnvironment,
    PickleProofState,
    Pos,
    ProofStep,
    ProofStepResponse,
    Sorry,
    Tactic,
    UnpickleEnvironment,
    UnpickleProofState,
)
from lean_kernel.engine.server import LeanServer
from lean_kernel.engine.sessioncache import ReplaySessionCache
from lean_kernel.errors import *  # noqa: F403  (every error users can act on)
from lean_kernel.errors import __all__ as _error_names
from lean_kernel.notebook import Notebook

for _old, _module in {
    "config": config,
    "pool": pool,
    "protocol": protocol,
    "results": results,
    "server": autoserver,  # LeanInteract's module of both servers
    "sessioncache": sessioncache,
}.items():
    _sys.modules.setdefault(f"{__name__}.{_old}", _module)

__all__ = [
    "AutoLeanServer",
    "BatchHandle",
    "BatchResults",
    "Command",
    "CommandResponse",
    "FileCommand",
    "ItemResult",
    "LeanError",
    "LeanREPLConfig",
    "LeanServer",
    "LeanServerPool",
    "Message",
    "Notebook",
    "PickleEnvironment",
    "PickleProofState",
    "Pos",
    "ProofStep",
    "ProofStepResponse",
    "ReplaySessionCache",
    "Sorry",
    "Tactic",
    "UnpickleEnvironment",
    "UnpickleProofState",
    "__version__",
    *_error_names,
]


def load_ipython_extension(ipython) -> None:
    """``%load_ext lean_kernel``: adds ``%lean``, ``%%lean``, ``%%lean_batch``, ``%lean_config``
    and ``%lean_status`` (IPython is only imported when the extension is loaded)."""
    from lean_kernel.ipython import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    """``%unload_ext lean_kernel``: stops the extension's REPLs and pool."""
    from lean_kernel.ipython import unload_ipython_extension as unload

    unload(ipython)

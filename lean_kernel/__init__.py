"""Lean 4 in Jupyter: a kernel, IPython magics, and the engine that drives the Lean REPL.

The engine's names follow LeanInteract's (``LeanREPLConfig``, ``LeanServer``,
``AutoLeanServer``, ``LeanServerPool``, ``Command`` ...), so code reads the same with either.
"""

from lean_kernel.config import LeanREPLConfig
from lean_kernel.errors import (
    LeanKernelError,
    ReplCancelledError,
    ReplCrashedError,
    ReplMemoryError,
    ReplProtocolError,
    ReplSetupError,
    ReplTimeoutError,
    StaleStateError,
)
from lean_kernel.notebook import Notebook
from lean_kernel.pool import BatchHandle, LeanServerPool
from lean_kernel.protocol import (
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
from lean_kernel.results import BatchResults, ItemResult
from lean_kernel.server import AutoLeanServer, LeanServer
from lean_kernel.sessioncache import ReplaySessionCache

__version__ = "0.1.0"

__all__ = [
    "AutoLeanServer",
    "BatchHandle",
    "BatchResults",
    "Command",
    "CommandResponse",
    "FileCommand",
    "ItemResult",
    "LeanError",
    "LeanKernelError",
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
    "ReplCancelledError",
    "ReplCrashedError",
    "ReplMemoryError",
    "ReplProtocolError",
    "ReplSetupError",
    "ReplTimeoutError",
    "ReplaySessionCache",
    "Sorry",
    "StaleStateError",
    "Tactic",
    "UnpickleEnvironment",
    "UnpickleProofState",
]


def load_ipython_extension(ipython) -> None:
    """``%load_ext lean_kernel``: adds ``%lean``, ``%%lean``, ``%%lean_batch``, ``%lean_config``
    and ``%lean_status`` (IPython is only imported when the extension is loaded)."""
    from lean_kernel.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    """``%unload_ext lean_kernel``: stops the extension's REPLs and pool."""
    from lean_kernel.magics import unload_ipython_extension as unload

    unload(ipython)

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

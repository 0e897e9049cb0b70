"""LeanInteract's names, served by lean_kernel: code written for LeanInteract runs unchanged.

Do not install this package next to the real ``lean-interact`` in one environment: both provide
the ``lean_interact`` module. Submodules LeanInteract documents (``lean_interact.interface``,
``lean_interact.config``, ``lean_interact.server``, ``lean_interact.sessioncache``,
``lean_interact.pool``) are aliases of lean_kernel's modules. ``%load_ext lean_interact`` loads
lean_kernel's IPython magics.
"""

import sys

from lean_kernel import *  # noqa: F403
from lean_kernel import __all__ as _engine_names
from lean_kernel import load_ipython_extension, unload_ipython_extension
from lean_kernel.batch import pool
from lean_kernel.engine import autoserver, config, protocol, sessioncache

for _name, _module in {
    "interface": protocol,
    "config": config,
    "pool": pool,
    "server": autoserver,  # LeanInteract's module of both servers
    "sessioncache": sessioncache,
}.items():
    sys.modules[f"{__name__}.{_name}"] = _module

__all__ = [*_engine_names, "load_ipython_extension", "unload_ipython_extension"]

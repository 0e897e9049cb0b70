"""The IPython extension: %lean, %%lean, %%lean_batch, %lean_config and %lean_status."""

from lean_kernel.ipython.magics import load_ipython_extension, unload_ipython_extension

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

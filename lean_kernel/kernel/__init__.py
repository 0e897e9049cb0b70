"""The Jupyter kernel for Lean 4: small ``do_*`` hooks over a shell that runs cells, its output
and its magics. ``python -m lean_kernel kernel`` starts it (what the kernelspec runs)."""

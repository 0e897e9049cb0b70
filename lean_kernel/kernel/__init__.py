"""The Jupyter kernel for Lean 4; ``python -m lean_kernel kernel`` starts it (what the kernelspec
runs). Top to bottom:

* ``kernel``: ``LeanKernel``, the protocol adapter: small ``do_*`` hooks, interrupts, comms;
* ``output``: ``KernelOutput``, a cell's output as iopub messages (any thread);
* ``shell``: ``LeanShell``, the behaviour without ZMQ: the document, cells, proofs, batches;
* ``batches``: what only the kernel does with a ``%%lean_batch`` (await it, show its table);
* ``magics``: the ``%`` magics, as a table of small handlers;
* ``inspection``, ``failures``: what Lean says about a name; how a failed cell reads;
* ``host``: what magics see of the kernel (``Host``, ``Output``, ``CellPlan``, ``MagicError``).
* ``kernelspec``: the ``lean4`` kernelspec, installed and checked (what ``python -m lean_kernel``
  install / setup / doctor use; it imports nothing of the kernel itself).
"""

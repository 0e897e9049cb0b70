"""``python -m lean_kernel``: install, setup, doctor, or run the kernel (see lean_kernel.cli)."""

import sys

from lean_kernel.cli import main

if __name__ == "__main__":
    sys.exit(main())

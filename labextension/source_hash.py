"""Fingerprint of the sources the prebuilt extension in lean_kernel/labextension/ comes from.

build.sh stores it next to the build output (``build-source.sha256``); the tests compare it
with the sources, so a source change without a rebuild is caught.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("package.json", "package-lock.json", "tsconfig.json", "install.json")


def source_hash(root: Path = HERE) -> str:
    """SHA-256 over the build inputs (names and contents, newlines normalised)."""
    digest = hashlib.sha256()
    paths = [root / name for name in FILES] + sorted((root / "src").rglob("*.ts"))
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()


if __name__ == "__main__":
    print(source_hash())

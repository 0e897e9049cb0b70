#!/bin/sh
# Rebuild the prebuilt JupyterLab extension shipped in lean_kernel/labextension/.
# Needs node >= 20 + npm, and a Python environment with jupyterlab 4 (which brings
# jupyter-builder) on PATH, e.g. the project's venv activated.
set -eu
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python}
OUT=../lean_kernel/labextension

# node_modules from the committed package-lock.json. (A fresh `npm install` of
# @jupyterlab/* 4.6 needs `--before=2026-09-30`: without it npm picks a dependency
# version the registry cannot serve.)
if [ ! -d node_modules ]; then
    npm ci --no-audit --no-fund
fi

rm -rf lib tsconfig.tsbuildinfo
npx tsc --sourceMap false

CORE=$("$PYTHON" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging", "package.json"))')
rm -rf "$OUT/static"
jupyter-builder build . --core-package-file="$CORE"
cp install.json "$OUT/install.json"
"$PYTHON" source_hash.py > "$OUT/build-source.sha256"
du -sh "$OUT"

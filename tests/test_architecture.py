"""The architecture of ARCHITECTURE.md, checked: rooms, import direction, sizes, light imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lean_kernel"
ROOMS = ("batch", "display", "engine", "ipython", "kernel", "notebook", "text")

MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 400
MAX_FUNCTION_LINES = 100


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts)


def test_the_package_is_split_into_its_rooms():
    found = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert found == set(ROOMS)
    loose = {p.name for p in PACKAGE.glob("*.py")}
    assert loose == {"__init__.py", "__main__.py", "_version.py", "cli.py", "errors.py"}


def test_import_contracts_hold():
    """Layers point down, kernel and ipython are independent, no cycles (pyproject.toml)."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_classes_and_functions_stay_small(path: Path):
    source = path.read_text(encoding="utf-8")
    assert source.count("\n") <= MAX_MODULE_LINES
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno - node.lineno + 1 <= MAX_CLASS_LINES, node.name
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno - node.lineno + 1 <= MAX_FUNCTION_LINES, node.name


def test_the_engine_names_load_no_jupyter_machinery():
    code = (
        "import sys\n"
        "from lean_kernel import LeanREPLConfig, LeanServer, AutoLeanServer, LeanServerPool\n"
        "print(sorted(m for m in ('IPython', 'ipykernel', 'ipywidgets', 'zmq') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_old_module_paths_are_the_new_modules():
    import lean_interact.pool
    import lean_interact.server as interact_server
    import lean_kernel.config
    import lean_kernel.pool
    import lean_kernel.protocol
    import lean_kernel.server as old_server
    import lean_kernel.sessioncache

    from lean_kernel.batch import pool
    from lean_kernel.engine import autoserver, config, protocol, sessioncache

    # LeanInteract's ``server`` module holds both servers
    assert old_server is autoserver is interact_server
    assert {"LeanServer", "AutoLeanServer"} <= set(vars(interact_server))
    assert lean_kernel.pool is pool is lean_interact.pool
    assert lean_kernel.config is config
    assert lean_kernel.protocol is protocol
    assert lean_kernel.sessioncache is sessioncache


def test_the_version_has_one_home():
    import lean_kernel
    from lean_kernel._version import __version__

    assert lean_kernel.__version__ == __version__
    assert (
        "version ="
        not in (ROOT / "pyproject.toml")
        .read_text()
        .split("[project]")[1]
        .split("[project.optional-dependencies]")[0]
    )


# LeanREPLConfig(repl_command="lake env repl", timeout=5), pickled (protocol 4) by the release
# whose modules were all at the top of lean_kernel (lean_kernel.config.LeanREPLConfig).
FLAT_LAYOUT_CONFIG_PICKLE = (
    "gASVpAEAAAAAAACMEmxlYW5fa2VybmVsLmNvbmZpZ5SMDkxlYW5SRVBMQ29uZmlnlJOUKYGUfZQojAxsZWFuX3ZlcnNp"
    "b26UTowHcHJvamVjdJROjAtwcm9qZWN0X2RpcpROjAhyZXBsX3JldpSMB3YxLjMuMTiUjAhyZXBsX2dpdJSMJmh0dHBz"
    "Oi8vZ2l0aHViLmNvbS9hdWd1c3RlcG9pcm91eC9yZXBslIwJY2FjaGVfZGlylE6MD2xvY2FsX3JlcGxfcGF0aJROjApi"
    "dWlsZF9yZXBslIiMCWxha2VfcGF0aJSMBGxha2WUjBRtZW1vcnlfaGFyZF9saW1pdF9tYpROjB9lbmFibGVfaW5jcmVt"
    "ZW50YWxfb3B0aW1pemF0aW9ulIiMG2VuYWJsZV9wYXJhbGxlbF9lbGFib3JhdGlvbpSIjAd2ZXJib3NllImMDHJlcGxf"
    "Y29tbWFuZJSMDWxha2UgZW52IHJlcGyUjAtyZXBsX2ZsYXZvcpSMBGF1dG+UjAd0aW1lb3V0lEsFjAt3b3JraW5nX2Rp"
    "cpROjAdfbGF1bmNolE51Yi4="
)


def test_a_config_pickled_by_the_flat_layout_still_loads():
    import base64
    import pickle

    from lean_kernel import LeanREPLConfig

    config = pickle.loads(base64.b64decode(FLAT_LAYOUT_CONFIG_PICKLE))
    assert isinstance(config, LeanREPLConfig)
    assert config.repl_command == "lake env repl"
    assert config.timeout == 5
    assert pickle.loads(pickle.dumps(config)).repl_command == "lake env repl"

"""jupyter_kernel_test's protocol checks for the Lean kernel, running the fake REPL.

The kernelspec used here is installed by lean_kernel's own installer with LEAN_KERNEL_REPL set
to the fake REPL in its ``env``, into a temporary folder put first on JUPYTER_PATH.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest
from pathlib import Path

import jupyter_kernel_test
from kernel_harness import KERNEL_NAME, install_test_kernelspec


class LeanKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = KERNEL_NAME
    language_name = "lean4"
    file_extension = ".lean"

    code_hello_world = '#eval IO.println "hello, world"'
    code_display_data = [
        {"code": "#check Nat", "mime": "text/plain"},
        {"code": "#check Nat", "mime": "text/html"},
    ]
    code_generate_error = "#eval (nope : Nat)"
    completion_samples = [
        {"text": "def x := \\alpha", "matches": {"α"}},
        {"text": "#eva", "matches": {"#eval"}},
    ]
    complete_code_samples = ["def x := 1", "#eval 1 + 1", "theorem t : True := by\n  trivial\n"]
    incomplete_code_samples = ["def f (n : Nat) : Nat :=", "theorem t : True := by", "(1 +"]
    invalid_code_samples = ["def x := (1 + 1))", "#eval 1]"]
    code_inspect_sample = "Nat.add"
    supported_history_operations = ()

    _jupyter_dir: str
    _old_path: str | None

    @classmethod
    def setUpClass(cls) -> None:
        cls._jupyter_dir = tempfile.mkdtemp(prefix="lean-kernel-test-")
        path = install_test_kernelspec(Path(cls._jupyter_dir))
        cls._old_path = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = str(path)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        if cls._old_path is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = cls._old_path
        shutil.rmtree(cls._jupyter_dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()

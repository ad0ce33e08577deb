"""The type stubs (.pyi) match the compiled modules and the package, as
checked by mypy.stubtest against the rnncore that the tests import."""

import pathlib
import subprocess
import sys
import sysconfig

import pytest

import rnncore

pytest.importorskip("mypy.stubtest", reason="mypy is in the test extra")

COMPILED = ["rnncore._cpu", "rnncore._optim", "rnncore._output", "rnncore._parallel",
            "rnncore._plain", "rnncore._recurrence", "rnncore._softmax",
            "rnncore._training"]

# What stubtest may find at run time and not in the stubs.
CYTHON_INTERNALS = r"""
rnncore\.\w+\.__test__
rnncore\.\w+\.__pyx_capi__
rnncore\.\w+\.__reduce_cython__
rnncore\.\w+\.__setstate_cython__
"""
EXCEPT_NAME = r"""
# the name the except clause binds in rnncore/__init__.py
rnncore\.exc
"""
STATIC_ALIASES = r"""
# load = staticmethod(serialization.load) and the like in the RNN class body:
# mypy types the attribute as a staticmethod object, the runtime attribute is
# the function itself
rnncore\.model\.RNN\.load
rnncore\.model\.RNN\.from_torch
"""

MYPY_CONFIG = """
[mypy]
cache_dir = {cache}
[mypy-scipy,scipy.*,threadpoolctl,torch,tqdm]
ignore_missing_imports = True
"""


def stubtest(tmp_path, modules, allowlist):
    (tmp_path / "allowlist.txt").write_text(allowlist)
    (tmp_path / "mypy.ini").write_text(
        MYPY_CONFIG.format(cache=tmp_path / "mypy_cache"))
    # mypy must read the stubs of the rnncore that the tests import: an
    # installed one it finds in site-packages (py.typed) from any folder, an
    # in-place build from its source tree's root.
    where = pathlib.Path(rnncore.__file__).resolve().parent.parent
    installed = {pathlib.Path(sysconfig.get_path(k)).resolve()
                 for k in ("purelib", "platlib")}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", *modules,
         "--mypy-config-file", str(tmp_path / "mypy.ini"),
         "--allowlist", str(tmp_path / "allowlist.txt")],
        cwd=tmp_path if where in installed else where,
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compiled_modules_have_matching_stubs(tmp_path):
    for name in COMPILED:
        stub = pathlib.Path(rnncore.__file__).parent / (name.split(".")[1] + ".pyi")
        assert stub.is_file(), f"no stub {stub.name} for {name}"
    stubtest(tmp_path, COMPILED, CYTHON_INTERNALS)


def test_package_stubs(tmp_path):
    """Every module of the package (stubs or inline annotations)."""
    stubtest(tmp_path, ["rnncore"],
             CYTHON_INTERNALS + EXCEPT_NAME + STATIC_ALIASES)

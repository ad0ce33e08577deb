"""rnncore.show_config: versions, SciPy's BLAS and the SIMD kernels."""

import platform
import sys

import numpy as np
import pytest
import scipy

import rnncore
from rnncore import _config

ISAS = {"x86-64-v4 (AVX-512)", "x86-64-v3 (AVX2, FMA)", "x86-64 (SSE2)", "neon",
        "baseline"}


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (Linux), else None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def test_versions():
    config = rnncore.show_config(mode="dicts")
    assert set(config) == {"rnncore", "python", "numpy", "scipy", "blas"}
    assert config["rnncore"]["version"] == rnncore.__version__
    assert config["numpy"]["version"] == np.__version__
    assert config["scipy"]["version"] == scipy.__version__
    assert config["python"]["version"] == platform.python_version()


def test_simd_isa_matches_the_cpu():
    isa = rnncore.show_config(mode="dicts")["rnncore"]["simd_isa"]
    assert isa in ISAS
    flags = cpu_flags()
    if isa.startswith("x86-64"):
        assert platform.machine().lower() in ("x86_64", "amd64")
    if flags is None:
        return
    v3 = {"avx2", "fma", "bmi2", "movbe"}
    v4 = v3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
    if isa.startswith("x86-64-v4"):
        assert v4 <= flags
    elif isa.startswith("x86-64-v3"):
        assert v3 <= flags and not v4 <= flags
    elif isa.startswith("x86-64 ("):
        assert not v3 <= flags


def test_prints_every_entry(capsys):
    assert rnncore.show_config() is None
    out = capsys.readouterr().out
    config = rnncore.show_config(mode="dicts")
    for section, entries in config.items():
        assert f"{section}:\n" in out
        for key, value in entries.items():
            assert f"  {key}: {value}\n" in out


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        rnncore.show_config(mode="yaml")


def test_blas_threads_and_core_type():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = rnncore.show_config(mode="dicts")["blas"]
    if "details" in blas:
        pytest.skip(blas["details"])
    assert isinstance(blas["num_threads"], int) and blas["num_threads"] >= 1
    assert isinstance(blas["internal_api"], str)
    # The pool reported is one threadpoolctl sees, and follows its limits.
    paths = [p["filepath"] for p in threadpoolctl.threadpool_info()]
    assert blas["filepath"] in paths
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert rnncore.show_config(mode="dicts")["blas"]["num_threads"] == 1


def test_without_threadpoolctl(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    blas = rnncore.show_config(mode="dicts")["blas"]
    assert blas["details"] == "install threadpoolctl for BLAS details"
    assert "num_threads" not in blas
    rnncore.show_config()
    assert "install threadpoolctl for BLAS details" in capsys.readouterr().out


def test_scipy_pool_told_apart_from_numpy(tmp_path, monkeypatch):
    site = tmp_path / "site"
    monkeypatch.setattr(_config.scipy, "__file__", str(site / "scipy" / "__init__.py"))
    monkeypatch.setattr(_config.np, "__file__", str(site / "numpy" / "__init__.py"))

    def pool(*parts, api="blas"):
        return {"user_api": api, "filepath": str(tmp_path.joinpath(*parts))}

    numpy_wheel = pool("site", "numpy.libs", "libscipy_openblas64_.so")
    scipy_wheel = pool("site", "scipy.libs", "libscipy_openblas.so")
    scipy_mac = pool("site", "scipy", ".dylibs", "libscipy_openblas.dylib")
    openmp = pool("site", "scipy", "libgomp.so", api="openmp")
    shared = pool("env", "lib", "libopenblas.so")      # conda-style
    shared2 = pool("env", "lib", "libmkl_rt.so")
    pick = _config._scipy_blas_pool
    assert pick([numpy_wheel, scipy_wheel, openmp]) is scipy_wheel
    assert pick([scipy_mac, numpy_wheel]) is scipy_mac
    assert pick([openmp, shared]) is shared            # the only BLAS
    assert pick([numpy_wheel, shared]) is shared       # NumPy's set aside
    assert pick([numpy_wheel]) is None                 # SciPy's not seen
    assert pick([shared, shared2]) is None             # cannot tell
    assert pick([scipy_wheel, shared]) is scipy_wheel
    assert pick([]) is None

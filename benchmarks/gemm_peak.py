"""The machine's GEMM peak: the best of a few 2048×2048 matrix products.

Every GEMM library in play is measured, because they do not all use the
same kernels on a given CPU:

- ``scipy`` — ``scipy.linalg.blas`` ``sgemm``/``dgemm``: SciPy's OpenBLAS,
  the BLAS that rnncore's compiled kernels call;
- ``numpy`` — ``numpy.matmul``: NumPy's OpenBLAS (the NumPy peer's, and
  rnncore's inference output layer);
- ``torch`` — ``torch.matmul`` (PyTorch's BLAS), when installed;
- ``jax`` — jitted ``jnp.dot`` (XLA's own CPU kernels), when installed.

The machine's peak is the fastest of them, in GFLOP/s.
"""

import importlib.util
import time

import numpy as np
from scipy.linalg import blas

SCIPY_ROUTINES = {"float32": blas.sgemm, "float64": blas.dgemm}


def _best_seconds(fn, seconds, min_reps=3):
    fn()  # warm-up: thread pools start, pages are touched, JAX compiles
    best, spent, reps = float("inf"), 0.0, 0
    while reps < min_reps or spent < seconds:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent, reps = min(best, elapsed), spent + elapsed, reps + 1
    return best


def _products(a, b, threads, frameworks):
    """{library: zero-argument callable computing a·b}; PyTorch and JAX only
    when ``frameworks`` and installed."""
    c = np.empty_like(a)
    fa, fb = np.asfortranarray(a), np.asfortranarray(b)  # no copy in the call
    gemm = SCIPY_ROUTINES[a.dtype.name]
    products = {
        "scipy": lambda: gemm(1.0, fa, fb),
        "numpy": lambda: np.matmul(a, b, out=c),
    }
    if frameworks and importlib.util.find_spec("torch"):
        import torch

        torch.set_num_threads(threads)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        products["torch"] = lambda: torch.matmul(ta, tb)
    if frameworks and importlib.util.find_spec("jax"):
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        ja, jb = jnp.asarray(a), jnp.asarray(b)
        dot = jax.jit(jnp.dot)
        products["jax"] = lambda: dot(ja, jb).block_until_ready()
    return products


def measure(
    threads, dtypes=("float32", "float64"), frameworks=True, n=2048, seconds=0.5
):
    """{"float32": {"scipy": GF/s, "numpy": GF/s, ..., "peak": GF/s}, ...}"""
    rng = np.random.default_rng(0)
    flop = 2.0 * n**3
    out = {}
    for dtype in dtypes:
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        rates = {
            name: flop / _best_seconds(fn, seconds) / 1e9
            for name, fn in _products(a, b, threads, frameworks).items()
        }
        rates["peak"] = max(rates.values())
        out[dtype] = rates
    return out

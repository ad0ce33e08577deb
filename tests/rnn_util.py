"""Helpers shared by the rnncore tests (random problems, comparisons)."""

import os
import subprocess
import sys
import zlib

import numpy as np

import rnncore

PARAM_KEYS = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")

# Per-dtype tolerances for comparing rnncore with the float64 reference.
# An element passes when |got - want| <= rtol * |want| + rtol * scale where
# scale is the largest magnitude in ``want`` (so tiny entries produced by
# cancellation are judged against the size of the whole array).
TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def seed_for(text):
    return zlib.crc32(text.encode("utf-8"))


def make_params(rng, D, H, C, dtype=np.float64, scale=1.0):
    """Random parameters, roughly unit-variance pre-activations."""
    def w(*shape, fan):
        return (rng.standard_normal(shape) * scale / np.sqrt(max(fan, 1))
                ).astype(dtype)
    return {
        "W_xh": w(H, D, fan=D),
        "W_hh": w(H, H, fan=H),
        "b_h": (0.5 * rng.standard_normal(H)).astype(dtype),
        "W_hy": w(C, H, fan=H),
        "b_y": (0.5 * rng.standard_normal(C)).astype(dtype),
    }


def random_lengths(rng, T, B):
    """Lengths in [1, T] in shuffled (not sorted) order, using both ends."""
    lens = rng.integers(1, T + 1, size=B)
    if B >= 1:
        lens[0] = T
    if B >= 2:
        lens[1] = 1
    if B >= 3 and T >= 3:
        lens[2] = T - 1
    rng.shuffle(lens)
    return lens.astype(np.int64)


def make_problem(rng, T, B, D, H, C, dtype=np.float64, mode="seq",
                 with_lengths=False, with_h0=False, ignore_index=None,
                 scale=1.0):
    """Random (params, x, targets, kwargs) for loss_and_grads.

    With ``ignore_index`` set, about a quarter of the targets are replaced by
    it (at least one target stays valid when there is any row at all).
    """
    params = make_params(rng, D, H, C, dtype, scale)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    shape = (T, B) if mode == "seq" else (B,)
    targets = rng.integers(0, C, size=shape).astype(np.int64)
    kwargs = {"mode": mode}
    if with_lengths:
        kwargs["lengths"] = random_lengths(rng, T, B)
    if with_h0:
        kwargs["h0"] = (0.8 * rng.uniform(-1, 1, size=(B, H))).astype(dtype)
    if ignore_index is not None:
        kwargs["ignore_index"] = ignore_index
        mask = rng.random(shape) < 0.25
        targets[mask] = ignore_index
        if targets.size and targets.flat[0] == ignore_index and C > 1:
            # keep one valid row (ignore_index may itself be a class id)
            targets.flat[0] = (ignore_index + 1) % C
    return params, x, targets, kwargs


def rel_err(a, b, floor=1e-8):
    """norm(a - b) / max(norm(a) + norm(b), floor)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm((a - b).ravel())
                 / max(np.linalg.norm(a.ravel()) + np.linalg.norm(b.ravel()),
                       floor))


def assert_close(got, want, dtype=None, tol=None, name="", floor=1e-3):
    """Compare an rnncore result with a float64 reference value; errors are
    judged against the array's largest magnitude, or ``floor`` if larger."""
    got_arr = np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    if tol is None:
        tol = TOL[np.dtype(dtype if dtype is not None else got_arr.dtype)]
    assert got_arr.shape == want.shape, (name, got_arr.shape, want.shape)
    # NaN and inf must sit where the reference has them (assert_allclose
    # checks that); the scale comes from the finite entries
    finite = want[np.isfinite(want)]
    scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    np.testing.assert_allclose(
        got_arr.astype(np.float64), want, rtol=tol,
        atol=tol * max(scale, floor), err_msg=name)


def copies(*arrays):
    return [None if a is None else np.array(a, copy=True) for a in arrays]


def assert_unchanged(before, after):
    for b, a in zip(before, after, strict=True):
        if b is None:
            assert a is None
        else:
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)


def assert_same_state(got, want):
    """Two flat optimiser states: the same keys in the same order, and values
    of the same types, equal (arrays: same dtype, shape and bytes)."""
    assert list(got) == list(want)
    for key, value in want.items():
        assert type(got[key]) is type(value), key
        if isinstance(value, np.ndarray):
            assert (got[key].dtype, got[key].shape) == (value.dtype, value.shape), key
            assert got[key].tobytes() == value.tobytes(), key
        else:
            assert got[key] == value, key


def fortran(a):
    return np.asfortranarray(a)


def strided(a, rng=None):
    """A non-contiguous view with the same values as ``a``.

    Built by embedding ``a`` into a larger array with every axis doubled and
    reversed, then slicing back, so each axis has a negative, non-unit
    stride.
    """
    a = np.asarray(a)
    fill = np.nan if a.dtype.kind == "f" else np.iinfo(a.dtype).max
    big = np.full(tuple(2 * max(n, 1) for n in a.shape), fill, dtype=a.dtype)
    idx = tuple(slice(None, 2 * n, 2) for n in a.shape)
    big[idx] = a[(slice(None, None, -1),) * a.ndim]
    view = big[idx][(slice(None, None, -1),) * a.ndim]
    assert np.array_equal(view, a, equal_nan=a.dtype.kind == "f")
    assert view.ndim == 0 or a.size <= 1 or not view.flags.c_contiguous
    return view


def readonly(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def central_diff(f, arr, eps=1e-6):
    """Central finite differences of the scalar function f() w.r.t. every
    element of the float64 array ``arr``, which f must read (it is perturbed
    in place and restored)."""
    assert arr.dtype == np.float64
    grad = np.zeros(arr.shape)
    flat = arr.reshape(-1)
    assert np.shares_memory(flat, arr)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        grad.flat[i] = (fp - fm) / (2 * eps)
    return grad


def last_of(hs, lengths=None):
    """hs[lengths[b] - 1, b] for every b (hs[T-1] without lengths)."""
    T, B = hs.shape[:2]
    if lengths is None:
        return hs[T - 1]
    return hs[np.asarray(lengths) - 1, np.arange(B)]


def padded_mask(T, B, lengths=None):
    """Boolean (T, B) mask, True at padded steps t >= lengths[b]."""
    if lengths is None:
        return np.zeros((T, B), dtype=bool)
    return np.arange(T)[:, None] >= np.asarray(lengths)[None, :]


def run_python(args, cwd, timeout):
    """Run ``python *args`` in a child process that imports the same rnncore
    as this one (an installed copy or an in-place build alike); cwd should
    not hold a source tree.  Returns the CompletedProcess (text output)."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(rnncore.__file__))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)

"""The vectorised tanh of the recurrence (rnc_tanhf / rnc_tanh in
rnncore/_simd.h), reached through rnn_forward with one input, one hidden
unit, W_xh = 1 and no state: hs[0] = tanh(x) for every batch row.
(benchmarks/tanh_accuracy.c checks every float32 and a larger float64
sample.)"""

import numpy as np
import pytest

import rnncore

# measured: at most 3.7 ulp from the exact value on builds with FMA, 4.2
# on the baseline
MAX_ULP = 5.0


def tanh_of(x):
    dtype = x.dtype
    one = np.ones((1, 1), dtype)
    zero = np.zeros((1, 1), dtype)
    return rnncore.rnn_forward(x.reshape(1, -1, 1), one, zero,
                               np.zeros(1, dtype))[0, :, 0]


def sample(dtype, rng):
    """Magnitudes log-uniform from the tiniest normal to past the clamp,
    dense around 0.5-10 where the approximation works hardest, both signs."""
    info = np.finfo(dtype)
    logs = rng.uniform(np.log(info.tiny), np.log(40.0), 200_000)
    mid = rng.uniform(0.0, 10.0, 200_000)
    mags = np.concatenate([np.exp(logs), mid])
    return np.concatenate([mags, -mags]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_is_accurate_to_a_few_ulp(dtype):
    x = sample(dtype, np.random.default_rng(7))
    got = tanh_of(x)
    exact = np.tanh(x.astype(np.longdouble))
    ulp = np.spacing(np.abs(exact).astype(dtype)).astype(np.longdouble)
    err = np.abs(got.astype(np.longdouble) - exact) / ulp
    worst = int(np.argmax(err))
    assert err[worst] <= MAX_ULP, (x[worst], got[worst], float(err[worst]))
    assert np.all(np.abs(got) <= 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_is_odd_and_keeps_tiny_values(dtype):
    rng = np.random.default_rng(8)
    x = np.abs(sample(dtype, rng)[:200_000])
    np.testing.assert_array_equal(tanh_of(-x), -tanh_of(x))
    tiny = x[x < np.sqrt(np.finfo(dtype).eps) / 4]
    assert tiny.size > 1000
    np.testing.assert_array_equal(tanh_of(tiny), tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_of_special_values(dtype):
    info = np.finfo(dtype)
    x = np.array([np.inf, -np.inf, np.nan, info.max, -info.max, 1e4, 25.0,
                  info.smallest_subnormal, 0.0], dtype)
    got = tanh_of(x)
    np.testing.assert_array_equal(got[:2], [1, -1])
    assert np.isnan(got[2])
    np.testing.assert_array_equal(got[3:7], [1, -1, 1, 1])
    # a denormal is its own tanh (or flushes to zero), 0 stays 0
    assert got[7] in (x[7], 0) and got[8] == 0

"""Numerical stability of softmax / log_softmax / softmax_cross_entropy and
of long float32 sequences."""

import warnings

import numpy as np
import pytest

import reference as ref
import rnncore
from rnn_util import PARAM_KEYS, assert_close, make_problem

BIG = [
    pytest.param(np.float32, 1e4, id="f32-1e4"),
    pytest.param(np.float32, 1e30, id="f32-1e30"),
    pytest.param(np.float64, 1e4, id="f64-1e4"),
    pytest.param(np.float64, 1e300, id="f64-1e300"),
]


@pytest.mark.parametrize("dtype,big", BIG)
def test_cross_entropy_huge_logits(dtype, big):
    logits = np.array([
        [big, -big, 0.0],    # target 0 has probability 1
        [big, -big, 0.0],    # target 1 has probability 0: loss 2*big
        [-big, -big, big],   # target 2 has probability 1
        [big, big, -big],    # tie between two huge logits: p = (.5, .5, 0)
        [-big, -big, -big],  # all equal: uniform
    ], dtype=dtype)
    targets = np.array([0, 1, 2, 1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid warnings
        loss, d = rnncore.softmax_cross_entropy(logits, targets)
    n = 5
    want_rows = [0.0, 2 * big, 0.0, np.log(2.0), np.log(3.0)]
    assert np.isfinite(loss)
    assert loss == pytest.approx(sum(want_rows) / n, rel=1e-6)
    want_d = np.array([
        [0, 0, 0],
        [1, -1, 0],
        [0, 0, 0],
        [0.5, -0.5, 0],
        [1 / 3 - 1, 1 / 3, 1 / 3],
    ]) / n
    assert d.dtype == dtype and np.all(np.isfinite(d))
    np.testing.assert_allclose(d, want_d, rtol=1e-6, atol=1e-7 / n)
    # each gradient row of a valid target sums to zero
    np.testing.assert_allclose(d.sum(axis=1), 0, atol=1e-7)


@pytest.mark.parametrize("dtype,big", BIG)
def test_softmax_huge_inputs(dtype, big):
    x = np.array([[big, -big, 0.0], [-big, -big, -big], [big, big, 0.0],
                  [0.5 * big, big, -big]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = rnncore.softmax(x)
        ls = rnncore.log_softmax(x)
    want_s = np.array([[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0], [0, 1, 0]])
    assert s.dtype == dtype and ls.dtype == dtype
    np.testing.assert_allclose(s, want_s, rtol=1e-6, atol=1e-30)
    assert np.all(np.isfinite(ls))
    want_ls = np.array([
        [0, -2 * big, -big],
        [-np.log(3)] * 3,
        [-np.log(2), -np.log(2), -big - np.log(2)],
        [-0.5 * big, 0, -2 * big],
    ])
    np.testing.assert_allclose(ls, want_ls, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", [
    ((7,), -1), ((7,), 0), ((4, 6), -1), ((4, 6), 0), ((4, 6), 1),
    ((3, 4, 5), 0), ((3, 4, 5), 1), ((3, 4, 5), -1), ((3, 4, 5), -3),
    ((2, 1, 3, 2), 2),
])
def test_softmax_axis_and_reference(rng, dtype, shape, axis):
    x = (20 * rng.standard_normal(shape)).astype(dtype)
    s = rnncore.softmax(x, axis=axis)
    ls = rnncore.log_softmax(x, axis=axis)
    for out in (s, ls):
        assert isinstance(out, np.ndarray)
        assert out.shape == x.shape and out.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(s.sum(axis=axis), 1.0, rtol=0, atol=tol * 4)
    assert np.all(s >= 0) and np.all(s <= 1)
    want_ls = ref.log_softmax(x, axis=axis)
    # log_softmax error should be relative to the magnitude of its inputs
    # (it is x - logsumexp(x) computed in dtype)
    np.testing.assert_allclose(ls, want_ls, rtol=tol,
                               atol=tol * np.max(np.abs(x)))
    assert_close(s, np.exp(want_ls), dtype)


def test_softmax_default_axis_is_last(rng):
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(rnncore.softmax(x),
                                  rnncore.softmax(x, axis=-1))
    np.testing.assert_array_equal(rnncore.log_softmax(x),
                                  rnncore.log_softmax(x, axis=1))
    assert not np.allclose(rnncore.softmax(x, axis=0), rnncore.softmax(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_large_batch_matches_reference(rng, dtype):
    N, C = 300, 50
    logits = (50 * rng.standard_normal((N, C))).astype(dtype)
    targets = rng.integers(0, C, N)
    loss, d = rnncore.softmax_cross_entropy(logits, targets)
    want_loss, want_d = ref.cross_entropy(logits, targets)
    # the per-row loss is a difference of O(50)-sized numbers: its error
    # is relative to the logits' magnitude, not to the loss itself
    eps = np.finfo(dtype).eps
    assert abs(loss - want_loss) <= 20 * eps * np.max(np.abs(logits))
    assert_close(d, want_d, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_logits_propagate(dtype):
    logits = np.array([[1.0, 2.0, 3.0], [1.0, np.nan, 0.0],
                       [0.0, 0.0, 0.0]], dtype=dtype)
    loss, d = rnncore.softmax_cross_entropy(logits, np.array([0, 2, 1]))
    assert np.isnan(loss)
    assert d.shape == (3, 3) and np.any(np.isnan(d))
    s = rnncore.softmax(logits)
    ls = rnncore.log_softmax(logits)
    assert np.all(np.isnan(s[1])) and np.all(np.isnan(ls[1]))
    # other rows are unaffected
    assert_close(s[[0, 2]], ref.softmax(logits[[0, 2]]), dtype)
    assert_close(ls[[0, 2]], ref.log_softmax(logits[[0, 2]]), dtype)
    # a nan row whose target is ignored does not contribute
    loss, d = rnncore.softmax_cross_entropy(logits, np.array([0, -100, 1]))
    want_loss, want_d = ref.cross_entropy(logits[[0, 2]], np.array([0, 1]))
    assert loss == pytest.approx(want_loss, rel=1e-5)
    assert np.all(d[1] == 0)
    assert_close(d[[0, 2]], want_d, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inf_logits_do_not_crash(dtype):
    logits = np.array([[np.inf, 0.0], [-np.inf, 0.0], [1.0, 2.0]], dtype)
    _loss, d = rnncore.softmax_cross_entropy(logits, np.array([1, 1, 0]))
    assert d.shape == (3, 2)
    s = rnncore.softmax(logits)
    assert s.shape == (3, 2)
    # a -inf logit is a well-defined zero probability
    np.testing.assert_allclose(s[1], [0.0, 1.0])
    assert_close(s[2], ref.softmax(logits[2]), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_inf_in_rnn_inputs_propagate(rng, dtype):
    T, B, D, H, C = 5, 3, 2, 4, 3
    params, x, targets, _kw = make_problem(rng, T, B, D, H, C, dtype)
    W = (params["W_xh"], params["W_hh"], params["b_h"])
    xn = x.copy()
    xn[2, 1, 0] = np.nan
    hs = rnncore.rnn_forward(xn, *W)
    assert np.all(np.isnan(hs[2:, 1]))
    want = ref.forward(x, *W)
    # other sequences and earlier steps are unaffected
    assert_close(hs[:, [0, 2]], want[:, [0, 2]], dtype)
    assert_close(hs[:2, 1], want[:2, 1], dtype)
    loss, grads, _h_last = rnncore.loss_and_grads(params, xn, targets)
    assert np.isnan(loss)
    assert np.any(np.isnan(grads["W_hh"]))
    g = rnncore.rnn_backward(np.ones_like(hs), hs, xn, W[0], W[1])
    assert np.any(np.isnan(g.dW_xh))

    # nan in a weight
    Wn = params["W_hh"].copy()
    Wn[0, 0] = np.nan
    loss, grads, _ = rnncore.loss_and_grads(dict(params, W_hh=Wn), x, targets)
    assert np.isnan(loss)

    # inf: must not crash; shapes stay right
    xi = x.copy()
    xi[1, 0, 1] = np.inf
    hs = rnncore.rnn_forward(xi, *W)
    assert hs.shape == (T, B, H)
    assert_close(hs[:, 1:], want[:, 1:], dtype)
    rnncore.rnn_backward(np.ones_like(hs), hs, xi, W[0], W[1])
    rnncore.loss_and_grads(params, xi, targets[-1], mode="last",
                           lengths=np.full(B, T))


@pytest.mark.parametrize("mode", ["seq", "last"])
def test_long_float32_sequence_stays_finite(rng, mode):
    """T = 1000 with weights large enough to saturate tanh: no nan/inf, and
    |h| <= 1 everywhere."""
    T, B, D, H, C = 1000, 4, 3, 16, 5
    params, x, targets, kw = make_problem(rng, T, B, D, H, C, np.float32,
                                          mode, with_lengths=True,
                                          with_h0=True, scale=4.0)
    params["W_hy"] *= 10  # large logits as well
    x *= 5
    W = (params["W_xh"], params["W_hh"], params["b_h"])
    hs = rnncore.rnn_forward(x, *W, h0=kw["h0"], lengths=kw["lengths"])
    assert np.all(np.isfinite(hs)) and np.all(np.abs(hs) <= 1)
    loss, grads, h_last = rnncore.loss_and_grads(params, x, targets, **kw)
    assert np.isfinite(loss) and loss >= 0
    for k in PARAM_KEYS:
        assert np.all(np.isfinite(grads[k])), k
    assert np.all(np.isfinite(h_last))
    g = rnncore.rnn_backward(np.ones_like(hs), hs, x, W[0], W[1],
                             h0=kw["h0"], lengths=kw["lengths"],
                             dh_last=np.ones_like(h_last))
    for name in g._fields:
        assert np.all(np.isfinite(getattr(g, name))), name


def test_long_float32_training_stays_finite(rng):
    """A few hundred SGD steps on T = 1000 float32 sequences."""
    T, B, D, H, C = 1000, 2, 3, 8, 4
    params, x, targets, _kw = make_problem(rng, T, B, D, H, C, np.float32,
                                          "seq", scale=2.0)
    # a learnable target: class of the sign pattern of the current input
    targets = ((x[..., 0] > 0).astype(np.int64)
               + 2 * (x[..., 1] > 0).astype(np.int64))
    first = None
    for _ in range(60):
        loss, grads, _ = rnncore.loss_and_grads(params, x, targets)
        assert np.isfinite(loss)
        first = loss if first is None else first
        for k in PARAM_KEYS:
            assert np.all(np.isfinite(grads[k])), k
            params[k] = (params[k] - 0.2 * grads[k]).astype(np.float32)
    assert loss < first  # training makes progress

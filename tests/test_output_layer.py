"""rnncore.output_layer: hs @ W_hyᵀ + b_y for any leading dimensions."""
import numpy as np
import pytest

import rnncore

DTYPES = (np.float32, np.float64)
TOL = {np.float32: 1e-5, np.float64: 1e-13}


def problem(lead, H, C, dtype, seed=0):
    rng = np.random.default_rng(seed)
    hs = np.tanh(rng.standard_normal((*lead, H))).astype(dtype)
    W_hy = (rng.standard_normal((C, H)) / np.sqrt(max(H, 1))).astype(dtype)
    b_y = rng.standard_normal(C).astype(dtype)
    return hs, W_hy, b_y


def expected(hs, W_hy, b_y):
    """In float64, as the scale to compare against."""
    return hs.astype(np.float64) @ W_hy.astype(np.float64).T + b_y


def check(hs, W_hy, b_y):
    dtype = hs.dtype.type
    want = expected(hs, W_hy, b_y)
    got = rnncore.output_layer(hs, W_hy, b_y)
    assert got.dtype == dtype and got.flags.c_contiguous
    assert got.shape == (*hs.shape[:-1], W_hy.shape[0])
    scale = max(1.0, np.abs(want).max(initial=0.0))
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * scale * 10)
    return got


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead, H, C", [
    ((7, 3), 5, 4),            # (T, B, H) from rnn_forward
    ((3,), 100, 65),           # final states (B, H)
    ((), 9, 2),                # one state (H,)
    ((50, 32), 128, 64),       # the small benchmark workload
    ((2, 3, 4), 17, 33),       # more leading dimensions
    ((1,), 1, 1),
    ((400,), 300, 200),        # large enough to be split on several threads
])
def test_matches_float64_product(lead, H, C, dtype):
    check(*problem(lead, H, C, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead, H, C", [((0, 3), 5, 4), ((2, 3), 0, 4),
                                        ((2, 3), 5, 0), ((0,), 0, 0)])
def test_empty_sizes(lead, H, C, dtype):
    hs, W_hy, b_y = problem(lead, H, C, dtype)
    got = check(hs, W_hy, b_y)
    if H == 0:  # no product: every row is the bias
        assert np.array_equal(got, np.broadcast_to(b_y, got.shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_any_memory_layout_and_inputs_untouched(dtype):
    hs, W_hy, b_y = problem((6, 4), 12, 7, dtype)
    hs_t = np.asfortranarray(hs)
    W_t = np.asfortranarray(W_hy)
    b_s = np.repeat(b_y, 2)[::2]
    before = [a.copy() for a in (hs_t, W_t, b_s)]
    got = rnncore.output_layer(hs_t, W_t, b_s)
    assert np.array_equal(got, rnncore.output_layer(hs, W_hy, b_y))
    for a, b in zip((hs_t, W_t, b_s), before, strict=True):
        assert np.array_equal(a, b)
    # lists convert as NumPy would (float64)
    from_lists = rnncore.output_layer(hs.tolist(), W_hy.tolist(), b_y.tolist())
    assert from_lists.dtype == np.float64


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_as_model_forward(dtype):
    """A model's forward pass is rnn_forward followed by the output layer."""
    model = rnncore.RNN(5, 16, 3, dtype=dtype, seed=1)
    x = np.random.default_rng(2).standard_normal((9, 4, 5)).astype(dtype)
    p = model.params
    hs = rnncore.rnn_forward(x, p["W_xh_l0"], p["W_hh_l0"], p["b_h_l0"])
    got = rnncore.output_layer(hs, p["W_hy"], p["b_y"])
    np.testing.assert_allclose(got, model.forward(x), rtol=0, atol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_threads_agree_with_one(dtype):
    hs, W_hy, b_y = problem((64, 64), 256, 128, dtype)
    with rnncore.threads(1):
        one = rnncore.output_layer(hs, W_hy, b_y)
    with rnncore.threads(2):
        two = rnncore.output_layer(hs, W_hy, b_y)
    np.testing.assert_allclose(two, one, rtol=0,
                               atol=TOL[dtype] * np.abs(one).max() * 10)


def test_matches_torch_linear():
    torch = pytest.importorskip("torch")
    hs, W_hy, b_y = problem((10, 3), 20, 6, np.float64)
    lin = torch.nn.functional.linear(torch.from_numpy(hs), torch.from_numpy(W_hy),
                                     torch.from_numpy(b_y))
    np.testing.assert_allclose(rnncore.output_layer(hs, W_hy, b_y), lin.numpy(),
                               rtol=1e-13, atol=1e-13)


def ok():
    return problem((4, 3), 5, 2, np.float32)


@pytest.mark.parametrize("args, exc, match", [
    ((np.float32(1.0), ok()[1], ok()[2]), ValueError, "hs must be at least 1-D"),
    ((ok()[0][..., :4], ok()[1], ok()[2]), ValueError, "W_hy must have shape"),
    ((ok()[0], ok()[1], ok()[2][:1]), ValueError, "b_y must have shape"),
    ((ok()[0], ok()[1][None], ok()[2]), ValueError, "W_hy must be 2-D"),
    ((ok()[0], ok()[1], ok()[2][None]), ValueError, "b_y must be 1-D"),
    ((ok()[0].astype(np.int32), ok()[1], ok()[2]), TypeError, "hs must be a float"),
    ((ok()[0].astype(np.float16), ok()[1], ok()[2]), TypeError, "hs must be a float"),
    ((ok()[0], ok()[1].astype(np.float64), ok()[2]), TypeError, "W_hy has dtype"),
    ((ok()[0], None, ok()[2]), TypeError, "W_hy must be a float"),
    ((None, ok()[1], ok()[2]), TypeError, "hs must be a float"),
])
def test_bad_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        rnncore.output_layer(*args)


def test_rows_beyond_blas_limit():
    hs = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32),
                                         (2**16, 2**16, 1), (0, 0, 4))
    with pytest.raises(ValueError, match="BLAS integer limit"):
        rnncore.output_layer(hs, np.zeros((1, 1), np.float32),
                             np.zeros(1, np.float32))

"""Bad inputs raise ValueError / TypeError naming the offending argument."""

import re
import subprocess

import numpy as np
import pytest

import rnncore
from rnn_util import PARAM_KEYS, make_params, run_python

T, B, D, H, C = 4, 3, 2, 5, 6


def name(*names):
    """Regex matching any of the argument names as a whole word
    (so "hs" does not match inside "dhs", nor "x" inside "W_xh")."""
    return "|".join(r"(?<![A-Za-z0-9_])" + re.escape(n) + r"(?![A-Za-z0-9_])"
                    for n in names)


def fwd_args(dtype=np.float64):
    rng = np.random.default_rng(0)
    p = make_params(rng, D, H, C, dtype)
    return dict(x=rng.standard_normal((T, B, D)).astype(dtype),
                W_xh=p["W_xh"], W_hh=p["W_hh"], b_h=p["b_h"],
                h0=np.zeros((B, H), dtype), lengths=np.array([4, 1, 2]))


def bwd_args(dtype=np.float64):
    f = fwd_args(dtype)
    rng = np.random.default_rng(1)
    return dict(dhs=rng.standard_normal((T, B, H)).astype(dtype),
                hs=np.tanh(rng.standard_normal((T, B, H))).astype(dtype),
                x=f["x"], W_xh=f["W_xh"], W_hh=f["W_hh"], h0=f["h0"],
                lengths=f["lengths"],
                dh_last=rng.standard_normal((B, H)).astype(dtype))


def lag_args(mode="seq", dtype=np.float64):
    rng = np.random.default_rng(2)
    f = fwd_args(dtype)
    tshape = (T, B) if mode == "seq" else (B,)
    return dict(params=make_params(rng, D, H, C, dtype), x=f["x"],
                targets=rng.integers(0, C, tshape), mode=mode, h0=f["h0"],
                lengths=f["lengths"])


def ce_args(dtype=np.float64):
    rng = np.random.default_rng(3)
    return dict(logits=rng.standard_normal((7, C)).astype(dtype),
                targets=rng.integers(0, C, 7))


def call_fwd(**kw):
    kw = dict(kw)
    return rnncore.rnn_forward(kw.pop("x"), kw.pop("W_xh"), kw.pop("W_hh"),
                               kw.pop("b_h"), **kw)


def call_bwd(**kw):
    kw = dict(kw)
    return rnncore.rnn_backward(kw.pop("dhs"), kw.pop("hs"), kw.pop("x"),
                                kw.pop("W_xh"), kw.pop("W_hh"), **kw)


def call_lag(**kw):
    kw = dict(kw)
    return rnncore.loss_and_grads(kw.pop("params"), kw.pop("x"),
                                  kw.pop("targets"), **kw)


def call_ce(**kw):
    kw = dict(kw)
    return rnncore.softmax_cross_entropy(kw.pop("logits"), kw.pop("targets"),
                                         **kw)


def test_valid_arguments_are_accepted():
    """Sanity check: the unmodified argument sets used below are valid."""
    call_fwd(**fwd_args())
    call_bwd(**bwd_args())
    call_lag(**lag_args("seq"))
    call_lag(**lag_args("last"))
    call_ce(**ce_args())
    for dt in (np.float32, np.float64):
        call_fwd(**fwd_args(dt))
        call_bwd(**bwd_args(dt))
        call_lag(**lag_args(dtype=dt))
        call_ce(**ce_args(dt))


# ---------------------------------------------------------------------------
# ValueError: shapes
# ---------------------------------------------------------------------------

FWD_SHAPE_ERRORS = [
    ("x", np.zeros((T, B)), name("x")),
    ("x", np.zeros((T, B, D, 1)), name("x")),
    ("x", np.zeros((T, B, D + 1)), name("x", "W_xh")),
    ("x", np.zeros((0, B, D)), name("x", "T")),
    ("W_xh", np.zeros(H), name("W_xh")),
    ("W_xh", np.zeros((H, D, 1)), name("W_xh")),
    ("W_xh", np.zeros((H, D + 1)), name("x", "W_xh")),
    ("W_xh", np.zeros((H + 1, D)), name("W_xh", "W_hh")),
    ("W_hh", np.zeros(H), name("W_hh")),
    ("W_hh", np.zeros((H, H + 1)), name("W_hh")),
    ("W_hh", np.zeros((H + 1, H + 1)), name("W_hh", "W_xh")),
    ("b_h", np.zeros((H, 1)), name("b_h")),
    ("b_h", np.zeros(H + 1), name("b_h")),
    ("b_h", np.zeros(H - 1), name("b_h")),
    ("h0", np.zeros(H), name("h0")),
    ("h0", np.zeros((1, B, H)), name("h0")),
    ("h0", np.zeros((B + 1, H)), name("h0")),
    ("h0", np.zeros((B, H + 1)), name("h0")),
    ("lengths", np.array([[4, 1, 2]]), name("lengths")),
    ("lengths", np.array([4, 1]), name("lengths")),
    ("lengths", np.array([4, 1, 2, 3]), name("lengths")),
    ("lengths", np.array([4, 0, 2]), name("lengths")),
    ("lengths", np.array([4, 5, 2]), name("lengths")),
    ("lengths", np.array([4, -1, 2]), name("lengths")),
    ("lengths", np.array([4, 2**32 + 1, 2]), name("lengths")),
    ("lengths", np.array([4, 2**64 - 1, 2], dtype=np.uint64),
     name("lengths")),
]


@pytest.mark.parametrize("arg,value,pattern", FWD_SHAPE_ERRORS)
def test_forward_value_errors(arg, value, pattern):
    kw = fwd_args()
    kw[arg] = value
    if arg == "x" and value.shape[0] == 0:
        kw["lengths"] = None  # only T == 0 is wrong
    with pytest.raises(ValueError, match=pattern):
        call_fwd(**kw)


BWD_SHAPE_ERRORS = [
    ("dhs", np.zeros((T, B)), name("dhs")),
    ("dhs", np.zeros((T + 1, B, H)), name("dhs")),
    ("dhs", np.zeros((T, B, H + 1)), name("dhs")),
    ("hs", np.zeros((T, B)), name("hs")),
    ("hs", np.zeros((T, B + 1, H)), name("hs")),
    ("hs", np.zeros((T, B, H + 1)), name("hs", "W_xh", "W_hh")),
    ("x", np.zeros((T, B, D + 1)), name("x", "W_xh")),
    ("x", np.zeros((T - 1, B, D)), name("x", "hs")),
    ("W_xh", np.zeros((H, D + 1)), name("x", "W_xh")),
    ("W_hh", np.zeros((H + 1, H + 1)), name("W_hh", "W_xh")),
    ("h0", np.zeros((B, H + 1)), name("h0")),
    ("lengths", np.array([4, 0, 2]), name("lengths")),
    ("lengths", np.array([4, 1]), name("lengths")),
    ("dh_last", np.zeros(H), name("dh_last")),
    ("dh_last", np.zeros((B, H + 1)), name("dh_last")),
    ("dh_last", np.zeros((B + 1, H)), name("dh_last")),
]


@pytest.mark.parametrize("arg,value,pattern", BWD_SHAPE_ERRORS)
def test_backward_value_errors(arg, value, pattern):
    kw = bwd_args()
    kw[arg] = value
    with pytest.raises(ValueError, match=pattern):
        call_bwd(**kw)


def test_backward_zero_T():
    kw = bwd_args()
    kw.update(dhs=np.zeros((0, B, H)), hs=np.zeros((0, B, H)),
              x=np.zeros((0, B, D)), lengths=None)
    with pytest.raises(ValueError, match=name("x", "hs", "dhs", "T")):
        call_bwd(**kw)


@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("key,value,pattern", [
    ("W_hy", np.zeros(C), name("W_hy")),
    ("W_hy", np.zeros((C, H + 1)), name("W_hy")),
    ("b_y", np.zeros(C + 1), name("b_y")),
    ("b_y", np.zeros((C, 1)), name("b_y")),
    ("W_xh", np.zeros((H, D + 1)), name("W_xh", "x")),
    ("W_hh", np.zeros((H, H + 1)), name("W_hh")),
    ("b_h", np.zeros(H + 1), name("b_h")),
    ("W_hy", np.zeros((0, H)), name("W_hy", "b_y", "C")),
])
def test_loss_and_grads_param_value_errors(mode, key, value, pattern):
    kw = lag_args(mode)
    kw["params"] = dict(kw["params"], **{key: value})
    with pytest.raises(ValueError, match=pattern):
        call_lag(**kw)


@pytest.mark.parametrize("mode", ["seq", "last"])
def test_loss_and_grads_zero_classes(mode):
    """C == 0 (consistently in W_hy and b_y) is rejected even when every
    target is ignored."""
    kw = lag_args(mode)
    kw["params"] = dict(kw["params"], W_hy=np.zeros((0, H)), b_y=np.zeros(0))
    kw["targets"] = np.full(kw["targets"].shape, -100)
    with pytest.raises(ValueError, match=name("W_hy", "b_y", "C")):
        call_lag(**kw)


@pytest.mark.parametrize("mode,targets", [
    ("seq", np.zeros(B, np.int64)),
    ("seq", np.zeros((T + 1, B), np.int64)),
    ("seq", np.zeros((T, B + 1), np.int64)),
    ("seq", np.zeros((T, B, 1), np.int64)),
    ("last", np.zeros((T, B), np.int64)),
    ("last", np.zeros(B + 1, np.int64)),
    ("last", np.zeros((), np.int64)),
])
def test_loss_and_grads_target_shape(mode, targets):
    kw = lag_args(mode)
    kw["targets"] = targets
    with pytest.raises(ValueError, match=name("targets")):
        call_lag(**kw)


@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("bad", [C, C + 10, -1, -101, 2**32 + 1])
def test_loss_and_grads_target_range(mode, bad):
    kw = lag_args(mode)
    t = kw["targets"].copy()
    t.flat[0] = bad  # position (0, 0) is valid whatever the lengths
    kw["targets"] = t
    with pytest.raises(ValueError, match=name("targets")):
        call_lag(**kw)


def test_loss_and_grads_unsigned_target_not_ignore_index():
    """2**64 - 100 is not -100: it must not be taken for ignore_index."""
    kw = lag_args("last")
    t = kw["targets"].astype(np.uint64)
    t[1] = np.uint64(2**64 - 100)
    kw["targets"] = t
    with pytest.raises(ValueError, match=name("targets")):
        call_lag(**kw)


@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("arg,value,pattern", [
    ("x", np.zeros((T, B)), name("x")),
    ("x", np.zeros((T, B, D + 1)), name("x", "W_xh")),
    ("x", np.zeros((0, B, D)), name("x", "T")),
    ("h0", np.zeros((B, H + 1)), name("h0")),
    ("lengths", np.array([4, 0, 2]), name("lengths")),
    ("lengths", np.array([4, 5, 2]), name("lengths")),
    ("lengths", np.array([4, 2]), name("lengths")),
])
def test_loss_and_grads_other_value_errors(mode, arg, value, pattern):
    kw = lag_args(mode)
    kw[arg] = value
    if arg == "x" and value.shape[0] == 0:
        kw["lengths"] = None  # only T == 0 is wrong
        if mode == "seq":
            kw["targets"] = np.zeros((0, B), np.int64)
    with pytest.raises(ValueError, match=pattern):
        call_lag(**kw)


@pytest.mark.parametrize("mode", ["bogus", "", "Seq", "sequence"])
def test_unknown_mode(mode):
    kw = lag_args("seq")
    kw["mode"] = mode
    with pytest.raises(ValueError, match=name("mode")):
        call_lag(**kw)


@pytest.mark.parametrize("missing", PARAM_KEYS)
def test_missing_param_key(missing):
    kw = lag_args()
    del kw["params"][missing]
    with pytest.raises(ValueError, match=name(missing)):
        call_lag(**kw)


@pytest.mark.parametrize("extra", ["W_extra", "b_hh", "w_xh"])
def test_unknown_param_key(extra):
    kw = lag_args()
    kw["params"][extra] = np.zeros(3)
    with pytest.raises(ValueError, match=name(extra)):
        call_lag(**kw)


@pytest.mark.parametrize("logits,targets,pattern", [
    (np.zeros(C), np.zeros(1, np.int64), name("logits")),
    (np.zeros((2, 3, C)), np.zeros(2, np.int64), name("logits")),
    (np.zeros((3, C)), np.zeros((3, 1), np.int64), name("targets")),
    (np.zeros((3, C)), np.zeros(4, np.int64), name("targets", "logits")),
    (np.zeros((3, C)), np.zeros(2, np.int64), name("targets", "logits")),
    (np.zeros((3, C)), np.array([0, C, 1]), name("targets")),
    (np.zeros((3, C)), np.array([0, -1, 1]), name("targets")),
    (np.zeros((3, C)), np.array([0, 2**32 + 2, 1]), name("targets")),
    (np.zeros((3, 0)), np.array([-100, -100, -100]), name("logits", "C")),
    (np.zeros((0, 0)), np.zeros(0, np.int64), name("logits", "C")),
])
def test_cross_entropy_value_errors(logits, targets, pattern):
    with pytest.raises(ValueError, match=pattern):
        rnncore.softmax_cross_entropy(logits, targets)


def test_cross_entropy_custom_ignore_index_range():
    logits = np.zeros((3, C))
    # -100 is an ordinary out-of-range value once ignore_index is changed
    with pytest.raises(ValueError, match=name("targets")):
        rnncore.softmax_cross_entropy(logits, np.array([0, -100, 1]),
                                      ignore_index=-1)
    rnncore.softmax_cross_entropy(logits, np.array([0, -1, 1]),
                                  ignore_index=-1)


@pytest.mark.parametrize("fn", [rnncore.softmax, rnncore.log_softmax])
def test_softmax_value_errors(fn):
    with pytest.raises(ValueError):
        fn(np.float64(1.0) * np.ones(()))
    with pytest.raises((ValueError, IndexError)):
        fn(np.zeros((2, 3)), axis=2)
    with pytest.raises((ValueError, IndexError)):
        fn(np.zeros((2, 3)), axis=-3)


@pytest.mark.parametrize("fn", [rnncore.softmax, rnncore.log_softmax])
@pytest.mark.parametrize("axis,exc", [
    (2, ValueError), (-3, ValueError), (2**70, ValueError), (1.0, TypeError),
    (None, TypeError), ("0", TypeError), (True, TypeError), ((0,), TypeError),
])
def test_softmax_bad_axis(fn, axis, exc):
    with pytest.raises(exc, match=name("axis")):
        fn(np.zeros((2, 3)), axis=axis)


@pytest.mark.parametrize("value,exc", [
    (2**63, ValueError), (-2**63 - 1, ValueError), (2**70, ValueError),
    (np.uint64(2**64 - 1), ValueError), (1.0, TypeError),
    (float("nan"), TypeError), ("-100", TypeError), (None, TypeError),
    (True, TypeError), (np.array([-100]), TypeError),
])
def test_bad_ignore_index(value, exc):
    """Out of the kernels' integer range is a ValueError, not OverflowError."""
    with pytest.raises(exc, match=name("ignore_index")):
        call_ce(**ce_args(), ignore_index=value)
    with pytest.raises(exc, match=name("ignore_index")):
        call_lag(**lag_args("last"), ignore_index=value)


def test_extreme_ignore_index_accepted():
    kw = ce_args()
    for value in (2**63 - 1, -2**63, np.int64(-2**63)):
        loss, _ = call_ce(**kw, ignore_index=value)
        assert np.isfinite(loss)


@pytest.mark.parametrize("mode", [None, 1, b"seq", np.array("seq"),
                                  np.array(["seq", "last"]), ["seq"]])
def test_mode_must_be_a_string(mode):
    kw = lag_args("seq")
    kw["mode"] = mode
    with pytest.raises(ValueError, match=name("mode")):
        call_lag(**kw)


RAGGED = [[1.0, 2.0], [3.0]]


@pytest.mark.parametrize("arg", ["x", "W_xh", "W_hh", "b_h", "h0", "lengths"])
def test_forward_unconvertible_argument(arg):
    kw = fwd_args()
    kw[arg] = RAGGED
    with pytest.raises(ValueError, match=name(arg)):
        call_fwd(**kw)


@pytest.mark.parametrize("arg", ["dhs", "hs", "dh_last"])
def test_backward_unconvertible_argument(arg):
    kw = bwd_args()
    kw[arg] = RAGGED
    with pytest.raises(ValueError, match=name(arg)):
        call_bwd(**kw)


@pytest.mark.parametrize("arg", ["targets", "W_hy"])
def test_loss_and_grads_unconvertible_argument(arg):
    kw = lag_args()
    if arg in PARAM_KEYS:
        kw["params"][arg] = RAGGED
    else:
        kw[arg] = RAGGED
    with pytest.raises(ValueError, match=name(arg)):
        call_lag(**kw)


def test_softmax_and_cross_entropy_unconvertible_argument():
    for fn in (rnncore.softmax, rnncore.log_softmax):
        with pytest.raises(ValueError, match=name("x")):
            fn(RAGGED)
    with pytest.raises(ValueError, match=name("logits")):
        rnncore.softmax_cross_entropy(RAGGED, [0, 0])
    with pytest.raises(ValueError, match=name("targets")):
        rnncore.softmax_cross_entropy(np.zeros((2, 3)), RAGGED)


def test_masked_arrays_are_refused():
    """np.asarray would drop the mask and compute with the masked values."""
    masked = np.ma.masked_array(np.ones((2, 3)), mask=[[0, 1, 0]] * 2)
    for fn in (rnncore.softmax, rnncore.log_softmax):
        with pytest.raises(TypeError, match=name("x")):
            fn(masked)
    with pytest.raises(TypeError, match=name("logits")):
        rnncore.softmax_cross_entropy(masked, np.zeros(2, np.int64))
    kw = fwd_args()
    kw["x"] = np.ma.masked_array(kw["x"])
    with pytest.raises(TypeError, match=name("x")):
        call_fwd(**kw)
    kw = lag_args()
    kw["targets"] = np.ma.masked_array(kw["targets"])
    with pytest.raises(TypeError, match=name("targets")):
        call_lag(**kw)


def test_float64_lists_are_arrays():
    """Array-likes are accepted as NumPy converts them (nested lists of
    Python floats are float64)."""
    kw = fwd_args()
    want = call_fwd(**kw)
    got = call_fwd(**{k: v.tolist() for k, v in kw.items()})
    np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match=name("x", "W_xh")):
        call_fwd(**dict(kw, x=kw["x"].astype(np.float32).tolist(),
                        W_xh=kw["W_xh"].astype(np.float32)))


@pytest.mark.parametrize("lengths", [
    np.zeros(0, np.uint8), np.zeros(0, ">i8"), np.zeros(0, np.int32), [],
], ids=["uint8", "big-endian", "int32", "empty-list"])
def test_empty_batch_lengths_of_any_integer_dtype(lengths):
    """With B == 0 the lengths are an empty array: of any integer dtype, or
    the float64 array NumPy makes of an empty list."""
    x, W_xh, W_hh, b_h = np.zeros((2, 0, 1)), np.ones((3, 1)), np.eye(3), np.ones(3)
    hs = rnncore.rnn_forward(x, W_xh, W_hh, b_h, lengths=lengths)
    assert hs.shape == (2, 0, 3)
    g = rnncore.rnn_backward(None, hs, x, W_xh, W_hh, lengths=lengths)
    assert g.dx.shape == (2, 0, 1) and np.all(g.dW_hh == 0)
    params = dict(W_xh=W_xh, W_hh=W_hh, b_h=b_h, W_hy=np.ones((2, 3)),
                  b_y=np.zeros(2))
    loss, _, h_last = rnncore.loss_and_grads(params, x, [], mode="last",
                                             lengths=lengths)
    assert loss == 0.0 and h_last.shape == (0, 3)


@pytest.mark.parametrize("fn", [rnncore.softmax, rnncore.log_softmax])
@pytest.mark.parametrize("shape,axis", [((4, 4, 0), -1), ((3, 0), 1),
                                        ((0, 2), 0), ((2, 0, 3), 1)])
def test_softmax_along_an_empty_axis(fn, shape, axis):
    out = fn(np.zeros(shape, np.float32), axis=axis)
    assert out.shape == shape and out.dtype == np.float32


# ---------------------------------------------------------------------------
# TypeError: dtypes and None
# ---------------------------------------------------------------------------

BAD_FLOAT_DTYPES = [np.int64, np.int32, np.uint8, np.bool_, np.complex128,
                    np.float16, object]


def _as(value, dtype):
    if dtype is object:
        out = np.empty(value.shape, dtype=object)
        out[...] = value
        return out
    return value.astype(dtype)


@pytest.mark.parametrize("dtype", BAD_FLOAT_DTYPES,
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("arg", ["x", "W_xh", "W_hh", "b_h", "h0"])
def test_forward_bad_float_dtype(arg, dtype):
    kw = fwd_args()
    kw[arg] = _as(kw[arg], dtype)
    with pytest.raises(TypeError, match=name(arg)):
        call_fwd(**kw)


# With mixed float dtypes the message must name the odd argument out, except
# when that is the argument an implementation naturally takes the dtype
# from (x, or hs for rnn_backward): then naming any of the float arguments
# it disagrees with is just as informative.
FWD_FLOATS = ("x", "W_xh", "W_hh", "b_h", "h0")
BWD_FLOATS = ("dhs", "hs", "x", "W_xh", "W_hh", "h0", "dh_last")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("arg", FWD_FLOATS)
def test_forward_mixed_dtypes(arg, dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    kw = fwd_args(dtype)
    kw[arg] = kw[arg].astype(other)
    pattern = name(*FWD_FLOATS) if arg == "x" else name(arg)
    with pytest.raises(TypeError, match=pattern):
        call_fwd(**kw)


def test_forward_all_float16():
    kw = {k: (v.astype(np.float16) if v.dtype.kind == "f" else v)
          for k, v in fwd_args().items()}
    with pytest.raises(TypeError, match=name("x")):
        call_fwd(**kw)


@pytest.mark.parametrize("dtype", BAD_FLOAT_DTYPES,
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("arg", ["dhs", "hs", "x", "W_xh", "W_hh", "h0",
                                 "dh_last"])
def test_backward_bad_float_dtype(arg, dtype):
    kw = bwd_args()
    kw[arg] = _as(kw[arg], dtype)
    with pytest.raises(TypeError, match=name(arg)):
        call_bwd(**kw)


@pytest.mark.parametrize("arg", BWD_FLOATS)
def test_backward_mixed_dtypes(arg):
    kw = bwd_args(np.float64)
    kw[arg] = kw[arg].astype(np.float32)
    pattern = name(*BWD_FLOATS) if arg in ("dhs", "hs", "x") else name(arg)
    with pytest.raises(TypeError, match=pattern):
        call_bwd(**kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex64])
@pytest.mark.parametrize("fn", ["fwd", "bwd", "lag"])
def test_lengths_must_be_integers(fn, dtype):
    kw = {"fwd": fwd_args, "bwd": bwd_args, "lag": lag_args}[fn]()
    kw["lengths"] = kw["lengths"].astype(dtype)
    call = {"fwd": call_fwd, "bwd": call_bwd, "lag": call_lag}[fn]
    with pytest.raises(TypeError, match=name("lengths")):
        call(**kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_targets_must_be_integers(dtype):
    for mode in ("seq", "last"):
        kw = lag_args(mode)
        kw["targets"] = kw["targets"].astype(dtype)
        with pytest.raises(TypeError, match=name("targets")):
            call_lag(**kw)
    kw = ce_args()
    kw["targets"] = kw["targets"].astype(dtype)
    with pytest.raises(TypeError, match=name("targets")):
        call_ce(**kw)


@pytest.mark.parametrize("dtype", BAD_FLOAT_DTYPES,
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("key", PARAM_KEYS)
def test_loss_and_grads_bad_param_dtype(key, dtype):
    kw = lag_args()
    kw["params"][key] = _as(kw["params"][key], dtype)
    with pytest.raises(TypeError, match=name(key)):
        call_lag(**kw)


@pytest.mark.parametrize("key", (*PARAM_KEYS, "x", "h0"))
def test_loss_and_grads_mixed_dtypes(key):
    kw = lag_args(dtype=np.float64)
    if key in PARAM_KEYS:
        kw["params"][key] = kw["params"][key].astype(np.float32)
    else:
        kw[key] = kw[key].astype(np.float32)
    pattern = (name(*PARAM_KEYS, "x", "h0") if key in ("x", "W_xh")
               else name(key))
    with pytest.raises(TypeError, match=pattern):
        call_lag(**kw)


@pytest.mark.parametrize("dtype", BAD_FLOAT_DTYPES,
                         ids=lambda d: np.dtype(d).name)
def test_cross_entropy_bad_logits_dtype(dtype):
    kw = ce_args()
    kw["logits"] = _as(kw["logits"], dtype)
    with pytest.raises(TypeError, match=name("logits")):
        call_ce(**kw)


@pytest.mark.parametrize("dtype", BAD_FLOAT_DTYPES,
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("fn", [rnncore.softmax, rnncore.log_softmax])
def test_softmax_bad_dtype(fn, dtype):
    with pytest.raises(TypeError):
        fn(_as(np.ones((2, 3)), dtype))


@pytest.mark.parametrize("arg", ["x", "W_xh", "W_hh", "b_h"])
def test_forward_none_required(arg):
    kw = fwd_args()
    kw[arg] = None
    with pytest.raises(TypeError, match=name(arg)):
        call_fwd(**kw)


@pytest.mark.parametrize("arg", ["hs", "x", "W_xh", "W_hh"])
def test_backward_none_required(arg):
    kw = bwd_args()
    kw[arg] = None
    with pytest.raises(TypeError, match=name(arg)):
        call_bwd(**kw)


def test_backward_optional_none_accepted():
    kw = bwd_args()
    kw.update(dhs=None, h0=None, lengths=None, dh_last=None)
    g = call_bwd(**kw)
    # no incoming gradient at all: everything is zero
    for a in g:
        assert np.all(a == 0)


@pytest.mark.parametrize("arg", ["params", "x", "targets"])
def test_loss_and_grads_none_required(arg):
    kw = lag_args()
    kw[arg] = None
    with pytest.raises(TypeError, match=name(arg)):
        call_lag(**kw)


@pytest.mark.parametrize("key", PARAM_KEYS)
def test_loss_and_grads_none_param(key):
    kw = lag_args()
    kw["params"][key] = None
    with pytest.raises(TypeError, match=name(key)):
        call_lag(**kw)


@pytest.mark.parametrize("arg", ["logits", "targets"])
def test_cross_entropy_none_required(arg):
    kw = ce_args()
    kw[arg] = None
    with pytest.raises(TypeError, match=name(arg)):
        call_ce(**kw)


def test_softmax_none():
    for fn in (rnncore.softmax, rnncore.log_softmax):
        with pytest.raises(TypeError):
            fn(None)


# ---------------------------------------------------------------------------
# Dimensions too large for 32-bit BLAS integers.
#
# Arrays of that size cannot be allocated here, so zero-stride views of huge
# shape are used.  A correct implementation either rejects the dimensions up
# front (ValueError) or fails to allocate its output / contiguous copies
# (MemoryError); the shapes are chosen so that every such allocation needs
# far more than the machine's memory.  Either is accepted.  What must never
# happen is a crash, a silent truncation of a dimension to 32 bits, or an
# endless computation over the broadcast view.  Each call runs in a child
# process so that a segfault or a hang fails the test instead of taking the
# whole test run down.
# ---------------------------------------------------------------------------

HUGE_TIMEOUT = 120


def _overcommit_always():
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


huge = pytest.mark.skipif(
    _overcommit_always(),
    reason="with vm.overcommit_memory=1 a huge allocation would succeed and "
           "be touched instead of raising MemoryError")

_HUGE_PRELUDE = """
import numpy as np
import rnncore

def zeros_view(shape, dtype=np.float64):
    return np.broadcast_to(np.zeros((), dtype), shape)

try:
    CALL
except (ValueError, MemoryError) as exc:
    print("RAISED", type(exc).__name__, str(exc)[:200])
except BaseException as exc:
    print("WRONG", type(exc).__name__, str(exc)[:200])
else:
    print("RETURNED")
"""

HUGE_CASES = {
    # T * B = 2**34 rows; hs alone would be 128 GiB
    "forward-TB": "rnncore.rnn_forward(zeros_view((2**17, 2**17, 1)), "
                  "np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1))",
    # D = 2**34: x and W_xh would be 128 GiB each
    "forward-D": "rnncore.rnn_forward(zeros_view((2, 1, 2**34)), "
                 "zeros_view((1, 2**34)), np.zeros((1, 1)), np.zeros(1))",
    # H = 2**20: W_hh has 2**40 elements (8 TiB)
    "forward-H": "rnncore.rnn_forward(np.zeros((2, 1, 1)), "
                 "zeros_view((2**20, 1)), zeros_view((2**20, 2**20)), "
                 "zeros_view((2**20,)))",
    "backward-TB": "rnncore.rnn_backward(zeros_view((2**17, 2**17, 1)), "
                   "zeros_view((2**17, 2**17, 1)), "
                   "zeros_view((2**17, 2**17, 1)), np.zeros((1, 1)), "
                   "np.zeros((1, 1)))",
    "backward-D": "rnncore.rnn_backward(np.zeros((2, 1, 1)), "
                  "np.zeros((2, 1, 1)), zeros_view((2, 1, 2**34)), "
                  "zeros_view((1, 2**34)), np.zeros((1, 1)))",
    # C = 2**34 classes
    "loss_and_grads-C": "rnncore.loss_and_grads(dict(W_xh=np.zeros((1, 1)), "
                        "W_hh=np.zeros((1, 1)), b_h=np.zeros(1), "
                        "W_hy=zeros_view((2**34, 1)), "
                        "b_y=zeros_view((2**34,))), np.zeros((2, 1, 1)), "
                        "np.zeros(1, np.int64), mode='last')",
    "cross_entropy-NC": "rnncore.softmax_cross_entropy("
                        "zeros_view((2**17, 2**17)), "
                        "zeros_view((2**17,), np.int64))",
    "cross_entropy-C": "rnncore.softmax_cross_entropy(zeros_view((1, 2**34)),"
                       " np.zeros(1, np.int64))",
    "cross_entropy-N": "rnncore.softmax_cross_entropy(zeros_view((2**34, 1)),"
                       " zeros_view((2**34,), np.int64))",
}


@huge
@pytest.mark.parametrize("case", sorted(HUGE_CASES))
def test_huge_dims_fail_cleanly(case, tmp_path):
    code = _HUGE_PRELUDE.replace("CALL", HUGE_CASES[case])
    try:
        proc = run_python(["-c", code], cwd=tmp_path, timeout=HUGE_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: no ValueError/MemoryError within "
                    f"{HUGE_TIMEOUT} s (computing over the broadcast view?)")
    assert proc.returncode == 0, (
        f"{case}: child process died with return code {proc.returncode}\n"
        f"{proc.stderr[-2000:]}")
    assert proc.stdout.startswith("RAISED"), (proc.stdout, proc.stderr[-2000:])


def zeros_view(shape, dtype=np.float64):
    """A read-only array of zeros of any shape, in one element of memory."""
    return np.broadcast_to(np.zeros((), dtype), shape)


@huge
@pytest.mark.parametrize("call", [
    # D = 2**36: a contiguous copy of x would need 512 GiB
    lambda: rnncore.rnn_forward(zeros_view((1, 1, 2**36)),
                                zeros_view((1, 2**36)), np.zeros((1, 1)),
                                np.zeros(1)),
    lambda: rnncore.rnn_backward(None, np.zeros((1, 1, 1)),
                                 zeros_view((1, 1, 2**36)),
                                 zeros_view((1, 2**36)), np.zeros((1, 1))),
    # T * B = 2**32 rows, with D = H = 0 so that only the count is wrong
    lambda: rnncore.rnn_forward(zeros_view((2**16, 2**16, 0)),
                                np.zeros((0, 0)), np.zeros((0, 0)),
                                np.zeros(0)),
    lambda: rnncore.loss_and_grads(
        dict(W_xh=np.zeros((1, 0)), W_hh=np.zeros((1, 1)), b_h=np.zeros(1),
             W_hy=np.zeros((2, 1)), b_y=np.zeros(2)),
        zeros_view((2**16, 2**16, 0)), zeros_view((2**16,), np.int64),
        mode="last"),
    # C = 2**36 classes: a copy of the logits would need 256 GiB
    lambda: rnncore.softmax_cross_entropy(zeros_view((1, 2**36), np.float32),
                                          np.zeros(1, np.int64)),
], ids=["forward-D", "backward-D", "forward-TB", "loss_and_grads-TB",
        "cross_entropy-C"])
def test_blas_limits_fail_before_copying(call):
    """Dimensions beyond BLAS's 32-bit integers are a ValueError raised when
    the dimension is first seen, before any argument is copied (copying
    first would end in a MemoryError here, or in gigabytes of copying)."""
    with pytest.raises(ValueError, match="BLAS integer limit"):
        call()


def test_arrays_beyond_the_address_space_are_refused():
    """A new array whose size in bytes overflows the index type raises a
    ValueError naming the dimensions, not NumPy's anonymous one (reached in
    practice only through inputs that are themselves too big to copy, so
    tested on the allocation helper itself)."""
    from rnncore._validation import BLAS_INT_MAX, Arguments
    args = Arguments()
    # T * B and H at the BLAS limit: (T, B, H) would need 2**65 bytes
    args.floats("x", np.zeros((BLAS_INT_MAX, 1, 0)), ("T", "B", "D"))
    args.ints("h", zeros_view((BLAS_INT_MAX,), np.intp), ("H",))
    with pytest.raises(ValueError, match=r"T = 2147483647 \(from x\.shape\[0\]\)"):
        args.empty(*(args.dims[s] for s in "TBH"))


# After a MemoryError (the output or workspace of a valid call does not fit
# in memory: 8 TiB here) the process goes on working.  Run in a child so the
# attempt cannot disturb this process.
_RECOVERY = """
import numpy as np
import rnncore
rng = np.random.default_rng(0)
H, C = 2**10, 3
big_x = np.broadcast_to(np.zeros((), np.float32), (2**24, 64, 0))
w = dict(W_xh=np.zeros((H, 0), np.float32), W_hh=np.zeros((H, H), np.float32),
         b_h=np.zeros(H, np.float32), W_hy=np.zeros((C, H), np.float32),
         b_y=np.zeros(C, np.float32))
calls = {
    "rnn_forward": lambda: rnncore.rnn_forward(big_x, w["W_xh"], w["W_hh"],
                                               w["b_h"]),
    "loss_and_grads": lambda: rnncore.loss_and_grads(
        w, big_x, np.zeros(64, np.int64), mode="last"),
}
for label, call in calls.items():
    try:
        call()
    except MemoryError:
        print("MemoryError", label)
x = rng.standard_normal((3, 2, 4))
params = dict(W_xh=rng.standard_normal((5, 4)), W_hh=0.3 * np.eye(5),
              b_h=np.zeros(5), W_hy=rng.standard_normal((3, 5)), b_y=np.zeros(3))
loss, grads, h_last = rnncore.loss_and_grads(params, x, np.zeros((3, 2), int))
hs = rnncore.rnn_forward(x, params["W_xh"], params["W_hh"], params["b_h"])
np.save("result.npy", np.concatenate([[loss], h_last.ravel(), hs.ravel()]))
print("done")
"""


@huge
def test_usable_after_memory_error(tmp_path):
    import reference as ref
    proc = run_python(["-c", _RECOVERY], cwd=tmp_path, timeout=HUGE_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:3] == [
        "MemoryError rnn_forward", "MemoryError loss_and_grads", "done"], (
        proc.stdout, proc.stderr[-2000:])
    got = np.load(tmp_path / "result.npy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 4))
    params = dict(W_xh=rng.standard_normal((5, 4)), W_hh=0.3 * np.eye(5),
                  b_h=np.zeros(5), W_hy=rng.standard_normal((3, 5)),
                  b_y=np.zeros(3))
    loss, _, h_last, extra = ref.loss_and_grads(params, x, np.zeros((3, 2), int))
    np.testing.assert_allclose(
        got, np.concatenate([[loss], h_last.ravel(), extra["hs"].ravel()]),
        rtol=1e-12, atol=1e-12)

"""rnncore against the pure-NumPy reference in reference.py.

Covers both dtypes, both loss modes, shuffled lengths, h0, ignore_index,
non-contiguous / Fortran-ordered / read-only inputs, that inputs are never
modified, the padding semantics of ``lengths`` and the zero-sized cases.
"""

import itertools

import numpy as np
import pytest

import reference as ref
import rnncore
from rnn_util import (
    PARAM_KEYS,
    assert_close,
    assert_unchanged,
    central_diff,
    copies,
    fortran,
    last_of,
    make_params,
    make_problem,
    padded_mask,
    random_lengths,
    readonly,
    rel_err,
    strided,
)

DTYPES = [np.float32, np.float64]
SHAPES = [  # T, B, D, H, C
    (1, 1, 1, 1, 2),
    (5, 4, 3, 6, 3),
    (7, 3, 4, 5, 6),
    (3, 5, 8, 2, 9),
]
LAYOUTS = {"strided": strided, "fortran": fortran, "readonly": readonly}


# ---------------------------------------------------------------------------
# The reference itself, checked against finite differences.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["seq", "last"])
def test_reference_against_finite_differences(rng, mode):
    T, B, D, H, C = 4, 3, 2, 3, 4
    params, x, targets, kw = make_problem(
        rng, T, B, D, H, C, mode=mode, with_lengths=True, with_h0=True,
        ignore_index=-1)
    h0, lengths = kw["h0"], kw["lengths"]

    def loss():
        return ref.loss_only(params, x, targets, mode, h0, lengths, -1)

    loss0, grads, _h_last, extra = ref.loss_and_grads(
        params, x, targets, mode, h0, lengths, -1)
    assert abs(loss0 - loss()) < 1e-14
    for k in PARAM_KEYS:
        assert rel_err(grads[k], central_diff(loss, params[k])) < 1e-7, k
    assert rel_err(extra["dx"], central_diff(loss, x)) < 1e-7
    assert rel_err(extra["dh0"], central_diff(loss, h0)) < 1e-7
    # padding gets no gradient and hs is zero there
    pad = padded_mask(T, B, lengths)
    assert np.all(extra["dx"][pad] == 0) and np.all(extra["hs"][pad] == 0)

    # backward() on its own, with a random linear functional of hs / h_last
    G = rng.standard_normal((T, B, H))
    G2 = rng.standard_normal((B, H))

    def lin():
        hs = ref.forward(x, params["W_xh"], params["W_hh"], params["b_h"],
                         h0, lengths)
        return float(np.sum(G * hs) + np.sum(G2 * last_of(hs, lengths)))

    hs = ref.forward(x, params["W_xh"], params["W_hh"], params["b_h"], h0,
                     lengths)
    g = ref.backward(G, hs, x, params["W_xh"], params["W_hh"], h0, lengths,
                     G2)
    for name, arr in [("dx", x), ("dh0", h0), ("dW_xh", params["W_xh"]),
                      ("dW_hh", params["W_hh"]), ("db_h", params["b_h"])]:
        assert rel_err(g[name], central_diff(lin, arr)) < 1e-7, name


def test_reference_cross_entropy_small_case():
    # hand-computed: logits (0, log 3) -> p = (1/4, 3/4)
    logits = np.array([[0.0, np.log(3.0)], [5.0, 5.0]])
    loss, d = ref.cross_entropy(logits, np.array([0, 1]))
    assert loss == pytest.approx((np.log(4.0) + np.log(2.0)) / 2, rel=1e-15)
    np.testing.assert_allclose(d, [[-0.375, 0.375], [0.25, -0.25]],
                               rtol=1e-15)


# ---------------------------------------------------------------------------
# Forward / backward / loss against the reference.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_lengths,with_h0",
                         [(False, False), (True, False), (False, True),
                          (True, True)])
def test_forward(rng, dtype, shape, with_lengths, with_h0):
    T, B, D, H, C = shape
    p = make_params(rng, D, H, C, dtype)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = (rng.uniform(-1, 1, (B, H)).astype(dtype) if with_h0 else None)
    lengths = random_lengths(rng, T, B) if with_lengths else None
    hs = rnncore.rnn_forward(x, p["W_xh"], p["W_hh"], p["b_h"], h0=h0,
                             lengths=lengths)
    assert isinstance(hs, np.ndarray)
    assert hs.dtype == dtype and hs.shape == (T, B, H)
    assert hs.flags.c_contiguous
    want = ref.forward(x, p["W_xh"], p["W_hh"], p["b_h"], h0, lengths)
    assert_close(hs, want, dtype, name="hs")
    assert np.all(hs[padded_mask(T, B, lengths)] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("grad_in", ["dhs", "dh_last", "both"])
def test_backward(rng, dtype, shape, with_lengths, with_h0, grad_in):
    T, B, D, H, C = shape
    p = make_params(rng, D, H, C, dtype)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = (rng.uniform(-1, 1, (B, H)).astype(dtype) if with_h0 else None)
    lengths = random_lengths(rng, T, B) if with_lengths else None
    hs = ref.forward(x, p["W_xh"], p["W_hh"], p["b_h"], h0,
                     lengths).astype(dtype)
    dhs = (rng.standard_normal((T, B, H)).astype(dtype)
           if grad_in in ("dhs", "both") else None)
    dh_last = (rng.standard_normal((B, H)).astype(dtype)
               if grad_in in ("dh_last", "both") else None)
    g = rnncore.rnn_backward(dhs, hs, x, p["W_xh"], p["W_hh"], h0=h0,
                             lengths=lengths, dh_last=dh_last)
    assert isinstance(g, rnncore.RNNGrads)
    assert isinstance(g, tuple)
    assert g._fields == ("dx", "dh0", "dW_xh", "dW_hh", "db_h")
    want = ref.backward(dhs, hs, x, p["W_xh"], p["W_hh"], h0, lengths,
                        dh_last)
    shapes = dict(dx=(T, B, D), dh0=(B, H), dW_xh=(H, D), dW_hh=(H, H),
                  db_h=(H,))
    for name in g._fields:
        got = getattr(g, name)
        assert isinstance(got, np.ndarray), name
        assert got.dtype == dtype and got.shape == shapes[name], name
        assert got.flags.c_contiguous, name
        assert_close(got, want[name], dtype, name=name)
    assert np.all(g.dx[padded_mask(T, B, lengths)] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("with_lengths,with_h0,ignore_index",
                         [(False, False, None), (True, False, None),
                          (False, True, -100), (True, True, -100),
                          (True, True, -1), (True, False, 2)])
def test_loss_and_grads(rng, dtype, shape, mode, with_lengths, with_h0,
                        ignore_index):
    T, B, D, H, C = shape
    params, x, targets, kw = make_problem(
        rng, T, B, D, H, C, dtype, mode, with_lengths, with_h0,
        ignore_index)
    loss, grads, h_last = rnncore.loss_and_grads(params, x, targets, **kw)
    want_loss, want_grads, want_last, _ = ref.loss_and_grads(
        params, x, targets, mode, kw.get("h0"), kw.get("lengths"),
        kw.get("ignore_index", -100))
    assert type(loss) is float
    assert loss == pytest.approx(want_loss, rel=10 * float(np.finfo(dtype).eps)
                                 * max(T, 4), abs=1e-300)
    assert isinstance(grads, dict) and set(grads) == set(PARAM_KEYS)
    for k in PARAM_KEYS:
        assert grads[k].dtype == dtype, k
        assert grads[k].shape == params[k].shape, k
        assert grads[k].flags.c_contiguous, k
        assert_close(grads[k], want_grads[k], dtype, name=k)
    assert h_last.dtype == dtype and h_last.shape == (B, H)
    assert_close(h_last, want_last, dtype, name="h_last")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ignore_index", [-100, -1, 0])
def test_softmax_cross_entropy(rng, dtype, ignore_index):
    N, C = 13, 5
    logits = (3 * rng.standard_normal((N, C))).astype(dtype)
    targets = rng.integers(0, C, N)
    targets[rng.random(N) < 0.3] = ignore_index
    targets[0] = 3
    loss, d = rnncore.softmax_cross_entropy(logits, targets,
                                            ignore_index=ignore_index)
    want_loss, want_d = ref.cross_entropy(logits, targets, ignore_index)
    assert type(loss) is float
    assert loss == pytest.approx(want_loss, rel=50 * float(np.finfo(dtype).eps))
    assert d.dtype == dtype and d.shape == (N, C) and d.flags.c_contiguous
    assert_close(d, want_d, dtype, name="dlogits")
    assert np.all(d[targets == ignore_index] == 0)


# ---------------------------------------------------------------------------
# Memory layouts, read-only inputs and input preservation.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layouts_forward_backward(rng, dtype, layout):
    T, B, D, H, C = 6, 4, 3, 5, 4
    conv = LAYOUTS[layout]
    p = make_params(rng, D, H, C, dtype)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = rng.uniform(-1, 1, (B, H)).astype(dtype)
    lengths = random_lengths(rng, T, B)
    args = [x, p["W_xh"], p["W_hh"], p["b_h"], h0, lengths]
    conv_args = [conv(a) for a in args]
    before = copies(*conv_args)
    hs = rnncore.rnn_forward(*conv_args[:4], h0=conv_args[4],
                             lengths=conv_args[5])
    assert_unchanged(before, conv_args)
    want_hs = ref.forward(*args)
    assert hs.flags.c_contiguous and hs.dtype == dtype
    assert_close(hs, want_hs, dtype, name="hs")

    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    dh_last = rng.standard_normal((B, H)).astype(dtype)
    hs_in = want_hs.astype(dtype)
    bargs = [dhs, hs_in, x, p["W_xh"], p["W_hh"], h0, lengths, dh_last]
    conv_b = [conv(a) for a in bargs]
    before = copies(*conv_b)
    g = rnncore.rnn_backward(*conv_b[:5], h0=conv_b[5], lengths=conv_b[6],
                             dh_last=conv_b[7])
    assert_unchanged(before, conv_b)
    want = ref.backward(*bargs)
    for name in g._fields:
        got = getattr(g, name)
        assert got.flags.c_contiguous and got.dtype == dtype, name
        assert_close(got, want[name], dtype, name=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("mode", ["seq", "last"])
def test_layouts_loss_and_grads(rng, dtype, layout, mode):
    T, B, D, H, C = 5, 4, 3, 4, 6
    conv = LAYOUTS[layout]
    params, x, targets, kw = make_problem(rng, T, B, D, H, C, dtype, mode,
                                          True, True, -100)
    cp = {k: conv(v) for k, v in params.items()}
    cx, ct = conv(x), conv(targets)
    ckw = dict(kw, h0=conv(kw["h0"]), lengths=conv(kw["lengths"]))
    before = copies(cx, ct, ckw["h0"], ckw["lengths"], *cp.values())
    loss, grads, h_last = rnncore.loss_and_grads(cp, cx, ct, **ckw)
    assert_unchanged(before, [cx, ct, ckw["h0"], ckw["lengths"],
                              *cp.values()])
    want_loss, want_grads, want_last, _ = ref.loss_and_grads(
        params, x, targets, mode, kw["h0"], kw["lengths"], -100)
    assert loss == pytest.approx(want_loss, rel=1e-5 if dtype == np.float32
                                 else 1e-12)
    for k in PARAM_KEYS:
        assert grads[k].flags.c_contiguous, k
        assert_close(grads[k], want_grads[k], dtype, name=k)
    assert h_last.flags.c_contiguous
    assert_close(h_last, want_last, dtype, name="h_last")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layouts_softmax(rng, dtype, layout):
    conv = LAYOUTS[layout]
    logits = (2 * rng.standard_normal((7, 5))).astype(dtype)
    targets = rng.integers(0, 5, 7)
    cl, ctg = conv(logits), conv(targets)
    before = copies(cl, ctg)
    loss, d = rnncore.softmax_cross_entropy(cl, ctg)
    sm = rnncore.softmax(cl, axis=0)
    lsm = rnncore.log_softmax(cl)
    assert_unchanged(before, [cl, ctg])
    want_loss, want_d = ref.cross_entropy(logits, targets)
    assert loss == pytest.approx(want_loss, rel=50 * float(np.finfo(dtype).eps))
    assert_close(d, want_d, dtype)
    assert_close(sm, ref.softmax(logits, axis=0), dtype)
    assert_close(lsm, ref.log_softmax(logits), dtype)
    for out in (d, sm, lsm):
        assert out.flags.c_contiguous and out.dtype == dtype


def test_outputs_are_new_arrays(rng):
    T, B, D, H, C = 3, 2, 2, 3, 3
    params, x, targets, kw = make_problem(rng, T, B, D, H, C,
                                          with_h0=True, with_lengths=True)
    ins = [x, targets, kw["h0"], *params.values()]
    hs = rnncore.rnn_forward(x, params["W_xh"], params["W_hh"],
                             params["b_h"], h0=kw["h0"])
    g = rnncore.rnn_backward(hs, hs, x, params["W_xh"], params["W_hh"],
                             h0=kw["h0"], dh_last=kw["h0"])
    _loss, grads, h_last = rnncore.loss_and_grads(params, x, targets, **kw)
    logits = rng.standard_normal((4, 3))
    _, d = rnncore.softmax_cross_entropy(logits, np.array([0, 1, 2, 0]))
    outs = [hs, *g, *grads.values(), h_last, d,
            rnncore.softmax(logits), rnncore.log_softmax(logits)]
    for a, b in itertools.product(outs, [*ins, logits]):
        assert not np.shares_memory(a, b)
    for a, b in itertools.combinations(outs, 2):
        assert not np.shares_memory(a, b)


# ---------------------------------------------------------------------------
# lengths / padding semantics
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_padding_semantics(rng, dtype):
    T, B, D, H, C = 8, 6, 3, 4, 5
    params, x, targets, kw = make_problem(rng, T, B, D, H, C, dtype, "seq",
                                          True, True)
    lengths, h0 = kw["lengths"], kw["h0"]
    assert not np.all(np.diff(lengths) >= 0)  # really unsorted
    pad = padded_mask(T, B, lengths)
    W = (params["W_xh"], params["W_hh"], params["b_h"])

    hs = rnncore.rnn_forward(x, *W, h0=h0, lengths=lengths)
    assert np.all(hs[pad] == 0)
    assert np.all(np.any(hs[~pad] != 0, axis=-1))

    # h_last is exactly hs at lengths - 1
    _, _, h_last = rnncore.loss_and_grads(params, x, targets, **kw)
    np.testing.assert_array_equal(h_last, last_of(hs, lengths))
    _, _, h_last2 = rnncore.loss_and_grads(params, x, targets[-1],
                                           mode="last", h0=h0,
                                           lengths=lengths)
    np.testing.assert_array_equal(h_last2, h_last)

    # the padded part of x, dhs and targets is never read
    x2 = x.copy()
    x2[pad] = (1e3 * rng.standard_normal((pad.sum(), D))).astype(dtype)
    t2 = targets.copy()
    t2[pad] = (targets[pad] + 1) % C
    np.testing.assert_array_equal(
        rnncore.rnn_forward(x2, *W, h0=h0, lengths=lengths), hs)
    l1, g1, _ = rnncore.loss_and_grads(params, x, targets, **kw)
    l2, g2, _ = rnncore.loss_and_grads(params, x2, t2, **kw)
    assert l1 == l2
    for k in PARAM_KEYS:
        np.testing.assert_array_equal(g1[k], g2[k])

    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    dhs2 = dhs.copy()
    dhs2[pad] = 1e3
    ga = rnncore.rnn_backward(dhs, hs, x, params["W_xh"], params["W_hh"],
                              h0=h0, lengths=lengths)
    gb = rnncore.rnn_backward(dhs2, hs, x2, params["W_xh"], params["W_hh"],
                              h0=h0, lengths=lengths)
    for a, b in zip(ga, gb, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.all(ga.dx[pad] == 0)


def test_nan_in_padding_is_not_read(rng):
    """Packed-sequence semantics: padded entries of x and dhs are never
    used, so even nan there must not leak into the results."""
    T, B, D, H, C = 6, 4, 3, 4, 3
    params, x, targets, kw = make_problem(rng, T, B, D, H, C, mode="seq",
                                          with_lengths=True)
    lengths = kw["lengths"]
    pad = padded_mask(T, B, lengths)
    W = (params["W_xh"], params["W_hh"], params["b_h"])
    xn = x.copy()
    xn[pad] = np.nan
    hs = rnncore.rnn_forward(xn, *W, lengths=lengths)
    assert_close(hs, ref.forward(x, *W, lengths=lengths))
    dhs = rng.standard_normal((T, B, H))
    dhs[pad] = np.nan
    g = rnncore.rnn_backward(dhs, hs, xn, params["W_xh"], params["W_hh"],
                             lengths=lengths)
    want = ref.backward(np.where(pad[..., None], 0, dhs), hs, x,
                        params["W_xh"], params["W_hh"], lengths=lengths)
    for name in g._fields:
        assert_close(getattr(g, name), want[name], name=name)
    loss, grads, _ = rnncore.loss_and_grads(params, xn, targets, **kw)
    want_loss, want_grads, _, _ = ref.loss_and_grads(params, x, targets,
                                                     lengths=lengths)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    for k in PARAM_KEYS:
        assert_close(grads[k], want_grads[k], name=k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_full_lengths_equal_no_lengths(rng, dtype):
    T, B, D, H, C = 5, 3, 2, 3, 4
    params, x, targets, kw = make_problem(rng, T, B, D, H, C, dtype,
                                          with_h0=True)
    full = np.full(B, T)
    W = (params["W_xh"], params["W_hh"], params["b_h"])
    a = rnncore.rnn_forward(x, *W, h0=kw["h0"])
    b = rnncore.rnn_forward(x, *W, h0=kw["h0"], lengths=full)
    assert_close(b, a.astype(np.float64), dtype)
    la, ga, ha = rnncore.loss_and_grads(params, x, targets, **kw)
    lb, gb, hb = rnncore.loss_and_grads(params, x, targets, lengths=full,
                                        **kw)
    assert lb == pytest.approx(la, rel=10 * float(np.finfo(dtype).eps))
    for k in PARAM_KEYS:
        assert_close(gb[k], ga[k].astype(np.float64), dtype, name=k)
    assert_close(hb, ha.astype(np.float64), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_h0_none_is_zeros(rng, dtype):
    T, B, D, H, C = 4, 3, 2, 3, 2
    params, x, _targets, kw = make_problem(rng, T, B, D, H, C, dtype,
                                          with_lengths=True)
    W = (params["W_xh"], params["W_hh"], params["b_h"])
    z = np.zeros((B, H), dtype)
    lengths = kw["lengths"]
    a = rnncore.rnn_forward(x, *W, lengths=lengths)
    b = rnncore.rnn_forward(x, *W, h0=z, lengths=lengths)
    np.testing.assert_array_equal(a, b)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    ga = rnncore.rnn_backward(dhs, a, x, W[0], W[1], lengths=lengths)
    gb = rnncore.rnn_backward(dhs, a, x, W[0], W[1], h0=z, lengths=lengths)
    for name in ga._fields:
        assert_close(getattr(ga, name), getattr(gb, name).astype(np.float64),
                     dtype, name=name)
    # dh0 is returned (and meaningful) even when h0 is None
    assert ga.dh0.shape == (B, H) and np.any(ga.dh0 != 0)
    want = ref.backward(dhs, a, x, W[0], W[1], None, lengths)
    assert_close(ga.dh0, want["dh0"], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["seq", "last"])
def test_all_targets_ignored(rng, dtype, mode):
    T, B, D, H, C = 3, 2, 2, 3, 4
    params, x, targets, kw = make_problem(rng, T, B, D, H, C, dtype, mode)
    targets[...] = -100
    loss, grads, h_last = rnncore.loss_and_grads(params, x, targets, **kw)
    assert loss == 0.0 and type(loss) is float
    for k in PARAM_KEYS:
        assert grads[k].shape == params[k].shape
        assert np.all(grads[k] == 0), k
    hs = ref.forward(x, params["W_xh"], params["W_hh"], params["b_h"])
    assert_close(h_last, hs[-1], dtype)

    loss, d = rnncore.softmax_cross_entropy(
        rng.standard_normal((4, C)).astype(dtype), np.full(4, -7),
        ignore_index=-7)
    assert loss == 0.0 and d.shape == (4, C) and d.dtype == dtype
    assert np.all(d == 0)
    loss, d = rnncore.softmax_cross_entropy(np.zeros((0, C), dtype),
                                            np.zeros(0, np.int64))
    assert loss == 0.0 and d.shape == (0, C) and d.dtype == dtype


@pytest.mark.parametrize("tdtype", [np.int8, np.int16, np.int32, np.int64,
                                    np.uint8, np.uint32, np.uint64])
def test_integer_target_and_length_dtypes(rng, tdtype):
    T, B, D, H, C = 4, 3, 2, 3, 5
    params, x, targets, kw = make_problem(rng, T, B, D, H, C,
                                          with_lengths=True)
    want = ref.loss_and_grads(params, x, targets, "seq", None,
                              kw["lengths"])
    loss, grads, _ = rnncore.loss_and_grads(
        params, x, targets.astype(tdtype), lengths=kw["lengths"].astype(tdtype))
    assert loss == pytest.approx(want[0], rel=1e-12)
    for k in PARAM_KEYS:
        assert_close(grads[k], want[1][k], name=k)


# ---------------------------------------------------------------------------
# Zero-sized dimensions
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 0, 2, 3, 4), (3, 2, 0, 3, 4),
                                   (3, 2, 2, 0, 4), (1, 0, 0, 0, 1)],
                         ids=["B0", "D0", "H0", "all0"])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_zero_sized_dims(rng, dtype, shape, with_lengths):
    T, B, D, H, C = shape
    params, x, targets, kw = make_problem(rng, T, B, D, H, C, dtype, "seq",
                                          with_lengths, True)
    h0, lengths = kw["h0"], kw.get("lengths")
    W = (params["W_xh"], params["W_hh"], params["b_h"])
    hs = rnncore.rnn_forward(x, *W, h0=h0, lengths=lengths)
    assert hs.shape == (T, B, H) and hs.dtype == dtype
    assert_close(hs, ref.forward(x, *W, h0, lengths), dtype)

    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    g = rnncore.rnn_backward(dhs, hs, x, W[0], W[1], h0=h0, lengths=lengths,
                             dh_last=np.ones((B, H), dtype))
    want = ref.backward(dhs, hs, x, W[0], W[1], h0, lengths,
                        np.ones((B, H)))
    for name in g._fields:
        assert getattr(g, name).dtype == dtype
        assert_close(getattr(g, name), want[name], dtype, name=name)

    for mode in ("seq", "last"):
        tg = targets if mode == "seq" else targets[0]
        loss, grads, h_last = rnncore.loss_and_grads(
            params, x, tg, mode=mode, h0=h0, lengths=lengths)
        wl, wg, _wh, _ = ref.loss_and_grads(params, x, tg, mode, h0, lengths)
        assert type(loss) is float
        assert loss == pytest.approx(wl, rel=1e-5, abs=1e-300)
        assert h_last.shape == (B, H)
        for k in PARAM_KEYS:
            assert grads[k].shape == params[k].shape
            assert grads[k].dtype == dtype
            assert_close(grads[k], wg[k], dtype, name=k)

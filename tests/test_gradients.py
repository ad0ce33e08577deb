"""Central finite differences (float64) against rnncore's analytic gradients.

Every parameter, the inputs x and the initial state h0 are checked, through
``loss_and_grads`` (both modes, with/without lengths, h0 and ignore_index)
and through ``rnn_backward`` with a random linear functional of the states.
"""

import numpy as np
import pytest

import rnncore
from rnn_util import (
    PARAM_KEYS,
    central_diff,
    last_of,
    make_params,
    make_problem,
    padded_mask,
    random_lengths,
    rel_err,
)

EPS = 1e-6
RTOL = 1e-6
# Central differences carry a round-off error of about
# machine_eps * |L| / EPS ~ 1e-10 per entry, so relative errors are taken
# against max(norm(a) + norm(b), FLOOR): an absolute error of RTOL * FLOOR =
# 1e-10 is tolerated for gradients that are (nearly) zero.
FLOOR = 1e-4


def check(got, fd, what):
    err = rel_err(got, fd, floor=FLOOR)
    assert err <= RTOL, (what, err, got, fd)

SHAPES = [  # T, B, D, H, C
    pytest.param((1, 1, 1, 1, 2), id="T1B1D1H1C2"),
    pytest.param((1, 1, 1, 1, 1), id="T1B1D1H1C1"),
    pytest.param((3, 1, 1, 1, 2), id="T3B1D1H1C2"),
    pytest.param((1, 3, 2, 4, 3), id="T1B3D2H4C3"),
    pytest.param((4, 2, 1, 3, 2), id="T4B2D1H3C2"),
    pytest.param((7, 3, 4, 5, 6), id="T7B3D4H5C6"),
]

CONFIGS = [  # with_lengths, with_h0, ignore_index
    pytest.param(False, False, None, id="plain"),
    pytest.param(True, False, None, id="lengths"),
    pytest.param(False, True, None, id="h0"),
    pytest.param(True, True, -100, id="lengths-h0-ignore"),
    pytest.param(False, True, -1, id="h0-ignore-1"),
]


def composed_input_grads(params, x, targets, mode, h0, lengths,
                         ignore_index):
    """dL/dx and dL/dh0 of the loss_and_grads loss, assembled from the
    public building blocks rnn_forward, softmax_cross_entropy and
    rnn_backward.  Also returns the loss and parameter gradients so they
    can be compared with loss_and_grads."""
    T, B, _ = x.shape
    _C, H = params["W_hy"].shape
    hs = rnncore.rnn_forward(x, params["W_xh"], params["W_hh"],
                             params["b_h"], h0=h0, lengths=lengths)
    if mode == "seq":
        tg = targets.copy()
        tg[padded_mask(T, B, lengths)] = ignore_index
        feats = hs.reshape(T * B, H)
        loss, dlog = rnncore.softmax_cross_entropy(
            feats @ params["W_hy"].T + params["b_y"], tg.reshape(-1),
            ignore_index=ignore_index)
        dhs = (dlog @ params["W_hy"]).reshape(T, B, H)
        dh_last = None
    else:
        feats = last_of(hs, lengths)
        loss, dlog = rnncore.softmax_cross_entropy(
            feats @ params["W_hy"].T + params["b_y"], targets,
            ignore_index=ignore_index)
        dhs = None
        dh_last = dlog @ params["W_hy"]
    g = rnncore.rnn_backward(dhs, hs, x, params["W_xh"], params["W_hh"],
                             h0=h0, lengths=lengths, dh_last=dh_last)
    pgrads = dict(W_xh=g.dW_xh, W_hh=g.dW_hh, b_h=g.db_h,
                  W_hy=dlog.T @ feats, b_y=dlog.sum(axis=0))
    return loss, g.dx, g.dh0, pgrads


@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_lengths,with_h0,ignore_index", CONFIGS)
def test_loss_and_grads_fd(rng, mode, shape, with_lengths, with_h0,
                           ignore_index):
    T, B, D, H, C = shape
    params, x, targets, kw = make_problem(
        rng, T, B, D, H, C, np.float64, mode, with_lengths, with_h0,
        ignore_index)
    # Without with_h0 the calls below use h0=None; the derivative w.r.t. the
    # initial state is then taken at an explicit zero state.
    h0 = kw["h0"] if with_h0 else np.zeros((B, H))
    kw_h0 = dict(kw, h0=h0)
    ii = kw.get("ignore_index", -100)

    def loss():
        return rnncore.loss_and_grads(params, x, targets, **kw)[0]

    def loss_h0():
        return rnncore.loss_and_grads(params, x, targets, **kw_h0)[0]

    loss0, grads, _ = rnncore.loss_and_grads(params, x, targets, **kw)
    assert np.isfinite(loss0) and loss0 >= 0
    for k in PARAM_KEYS:
        check(grads[k], central_diff(loss, params[k], EPS), k)

    c_loss, dx, dh0, c_grads = composed_input_grads(
        params, x, targets, mode, kw.get("h0"), kw.get("lengths"), ii)
    assert c_loss == pytest.approx(loss0, rel=1e-12, abs=1e-15)
    for k in PARAM_KEYS:
        assert rel_err(grads[k], c_grads[k]) <= 1e-12, k
    check(dx, central_diff(loss, x, EPS), "dx")
    check(dh0, central_diff(loss_h0, h0, EPS), "dh0")
    if C > 1:  # a non-degenerate problem really has non-zero gradients
        assert np.linalg.norm(grads["W_hy"]) > 1e-6
        assert np.linalg.norm(dx) > 1e-8 or D == 0


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("which", ["dhs", "dh_last", "both"])
def test_rnn_backward_fd(rng, shape, with_lengths, with_h0, which):
    T, B, D, H, C = shape
    p = make_params(rng, D, H, C)
    W_xh, W_hh, b_h = p["W_xh"], p["W_hh"], p["b_h"]
    x = rng.standard_normal((T, B, D))
    h0 = rng.uniform(-0.9, 0.9, (B, H)) if with_h0 else np.zeros((B, H))
    lengths = random_lengths(rng, T, B) if with_lengths else None
    G = rng.standard_normal((T, B, H)) if which != "dh_last" else None
    G2 = rng.standard_normal((B, H)) if which != "dhs" else None

    def L():
        hs = rnncore.rnn_forward(x, W_xh, W_hh, b_h, h0=h0, lengths=lengths)
        out = 0.0
        if G is not None:
            out += np.sum(G * hs)
        if G2 is not None:
            out += np.sum(G2 * last_of(hs, lengths))
        return float(out)

    hs = rnncore.rnn_forward(x, W_xh, W_hh, b_h, h0=h0, lengths=lengths)
    g = rnncore.rnn_backward(G, hs, x, W_xh, W_hh,
                             h0=h0 if with_h0 else None, lengths=lengths,
                             dh_last=G2)
    for name, arr in [("dx", x), ("dh0", h0), ("dW_xh", W_xh),
                      ("dW_hh", W_hh), ("db_h", b_h)]:
        check(getattr(g, name), central_diff(L, arr, EPS), name)
    assert np.linalg.norm(g.db_h) > 1e-8

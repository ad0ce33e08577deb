"""rnncore against PyTorch (optional oracle, skipped without torch).

nn.RNN(tanh) with bias_hh = 0 + nn.Linear + F.cross_entropy reproduce the
model exactly; lengths go through pack_padded_sequence(enforce_sorted=False).
"""

import numpy as np
import pytest

import rnncore
from rnn_util import (
    PARAM_KEYS,
    assert_close,
    make_params,
    make_problem,
    padded_mask,
    random_lengths,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

TOL = {np.float32: 1e-4, np.float64: 1e-10}
TDTYPE = {np.float32: torch.float32, np.float64: torch.float64}

SHAPES = [  # T, B, D, H, C
    pytest.param((1, 1, 1, 1, 2), id="tiny"),
    pytest.param((7, 3, 4, 5, 6), id="medium"),
    pytest.param((12, 6, 3, 8, 4), id="longer"),
]


def build_torch_model(params, dtype):
    H, D = params["W_xh"].shape
    C = params["W_hy"].shape[0]
    tdt = TDTYPE[dtype]
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh").to(tdt)
    lin = torch.nn.Linear(H, C).to(tdt)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(params["W_xh"].copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(params["W_hh"].copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(params["b_h"].copy()))
        rnn.bias_hh_l0.zero_()
        lin.weight.copy_(torch.from_numpy(params["W_hy"].copy()))
        lin.bias.copy_(torch.from_numpy(params["b_y"].copy()))
    return rnn, lin


def run_torch_rnn(rnn, x, h0, lengths):
    T, B, _ = x.shape
    H = rnn.hidden_size
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    h0_np = np.zeros((B, H), x.dtype) if h0 is None else h0
    h0t = torch.from_numpy(h0_np.copy()[None]).requires_grad_(True)
    if lengths is None:
        out, hn = rnn(xt, h0t)
    else:
        packed = pack_padded_sequence(
            xt, torch.from_numpy(np.asarray(lengths, dtype=np.int64)),
            enforce_sorted=False)
        out, hn = rnn(packed, h0t)
        out, _ = pad_packed_sequence(out, total_length=T)
    return xt, h0t, out, hn[0]


def to_np(t):
    return t.detach().numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("with_lengths,with_h0,ignore_index", [
    pytest.param(False, False, None, id="plain"),
    pytest.param(True, True, None, id="lengths-h0"),
    pytest.param(True, False, -100, id="lengths-ignore"),
    pytest.param(False, True, 1, id="h0-ignore1"),
])
def test_loss_and_grads_vs_torch(rng, dtype, shape, mode, with_lengths,
                                 with_h0, ignore_index):
    T, B, D, H, C = shape
    params, x, targets, kw = make_problem(rng, T, B, D, H, C, dtype, mode,
                                          with_lengths, with_h0,
                                          ignore_index)
    h0, lengths = kw.get("h0"), kw.get("lengths")
    ii = kw.get("ignore_index", -100)
    tol = TOL[dtype]

    rnn, lin = build_torch_model(params, dtype)
    xt, h0t, out, hn = run_torch_rnn(rnn, x, h0, lengths)
    if mode == "seq":
        tg = targets.copy()
        tg[padded_mask(T, B, lengths)] = ii
        tloss = F.cross_entropy(lin(out).reshape(T * B, C),
                                torch.from_numpy(tg.reshape(-1)),
                                ignore_index=ii)
    else:
        tloss = F.cross_entropy(lin(hn), torch.from_numpy(targets),
                                ignore_index=ii)
    tloss.backward()
    tgrads = dict(W_xh=rnn.weight_ih_l0.grad, W_hh=rnn.weight_hh_l0.grad,
                  b_h=rnn.bias_ih_l0.grad, W_hy=lin.weight.grad,
                  b_y=lin.bias.grad)
    # bias_hh enters exactly like bias_ih, so their gradients coincide
    assert_close(to_np(rnn.bias_hh_l0.grad),
                 to_np(rnn.bias_ih_l0.grad).astype(np.float64), dtype,
                 tol=tol)

    loss, grads, h_last = rnncore.loss_and_grads(params, x, targets, **kw)
    assert loss == pytest.approx(tloss.item(), rel=tol)
    for k in PARAM_KEYS:
        assert_close(grads[k], to_np(tgrads[k]).astype(np.float64), dtype,
                     tol=tol, name=k)
    assert_close(h_last, to_np(hn).astype(np.float64), dtype, tol=tol)

    # input gradients via the building blocks
    hs = rnncore.rnn_forward(x, params["W_xh"], params["W_hh"],
                             params["b_h"], h0=h0, lengths=lengths)
    assert_close(hs, to_np(out).astype(np.float64), dtype, tol=tol)
    if mode == "seq":
        tg = targets.copy()
        tg[padded_mask(T, B, lengths)] = ii
        logits = hs.reshape(T * B, H) @ params["W_hy"].T + params["b_y"]
        _, dlog = rnncore.softmax_cross_entropy(logits, tg.reshape(-1),
                                                ignore_index=ii)
        dhs, dh_last = (dlog @ params["W_hy"]).reshape(T, B, H), None
    else:
        logits = h_last @ params["W_hy"].T + params["b_y"]
        _, dlog = rnncore.softmax_cross_entropy(logits, targets,
                                                ignore_index=ii)
        dhs, dh_last = None, dlog @ params["W_hy"]
    g = rnncore.rnn_backward(dhs, hs, x, params["W_xh"], params["W_hh"],
                             h0=h0, lengths=lengths, dh_last=dh_last)
    assert_close(g.dx, to_np(xt.grad).astype(np.float64), dtype, tol=tol,
                 name="dx")
    assert_close(g.dh0, to_np(h0t.grad[0]).astype(np.float64), dtype,
                 tol=tol, name="dh0")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_forward_backward_vs_torch(rng, dtype, shape, with_lengths):
    T, B, D, H, C = shape
    p = make_params(rng, D, H, C, dtype, scale=1.5)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = rng.uniform(-1, 1, (B, H)).astype(dtype)
    lengths = random_lengths(rng, T, B) if with_lengths else None
    tol = TOL[dtype]
    rnn, _ = build_torch_model(p, dtype)
    xt, h0t, out, hn = run_torch_rnn(rnn, x, h0, lengths)
    G = rng.standard_normal((T, B, H)).astype(dtype)
    G2 = rng.standard_normal((B, H)).astype(dtype)
    ((out * torch.from_numpy(G)).sum()
     + (hn * torch.from_numpy(G2)).sum()).backward()

    hs = rnncore.rnn_forward(x, p["W_xh"], p["W_hh"], p["b_h"], h0=h0,
                             lengths=lengths)
    assert_close(hs, to_np(out).astype(np.float64), dtype, tol=tol)
    g = rnncore.rnn_backward(G, hs, x, p["W_xh"], p["W_hh"], h0=h0,
                             lengths=lengths, dh_last=G2)
    for name, want in [("dx", xt.grad), ("dh0", h0t.grad[0]),
                       ("dW_xh", rnn.weight_ih_l0.grad),
                       ("dW_hh", rnn.weight_hh_l0.grad),
                       ("db_h", rnn.bias_ih_l0.grad)]:
        assert_close(getattr(g, name), to_np(want).astype(np.float64),
                     dtype, tol=tol, name=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ignore_index", [-100, 0, 3])
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_cross_entropy_vs_torch(rng, dtype, ignore_index, scale):
    N, C = 20, 7
    logits = (scale * rng.standard_normal((N, C))).astype(dtype)
    targets = rng.integers(0, C, N)
    targets[rng.random(N) < 0.2] = ignore_index
    targets[0] = 5
    lt = torch.from_numpy(logits.copy()).requires_grad_(True)
    tl = F.cross_entropy(lt, torch.from_numpy(targets),
                         ignore_index=ignore_index)
    tl.backward()
    loss, d = rnncore.softmax_cross_entropy(logits, targets,
                                            ignore_index=ignore_index)
    assert loss == pytest.approx(tl.item(), rel=TOL[dtype])
    assert_close(d, to_np(lt.grad).astype(np.float64), dtype,
                 tol=TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_vs_torch(rng, dtype):
    x = (10 * rng.standard_normal((3, 4, 5))).astype(dtype)
    for axis in (0, 1, 2, -1, -2):
        xt = torch.from_numpy(x.copy())
        assert_close(rnncore.softmax(x, axis=axis),
                     torch.softmax(xt, dim=axis).numpy().astype(np.float64),
                     dtype, tol=TOL[dtype])
        assert_close(rnncore.log_softmax(x, axis=axis),
                     torch.log_softmax(xt, dim=axis).numpy()
                     .astype(np.float64), dtype, tol=TOL[dtype])

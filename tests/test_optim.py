"""rnncore.optim: every optimiser against NumPy implementations of its
formulas (always) and torch.optim (when installed); gradient clipping,
in-place updates, allocation-free steps, validation, state round trips and
schedules."""

import math
import re
import threading
import tracemalloc

import numpy as np
import pytest

import rnncore
from rnn_util import assert_close, assert_same_state, make_params, readonly, strided
from rnncore import optim

DTYPES = [np.float32, np.float64]
N_STEPS = 5


def model_params(rng, dtype):
    """Parameters keyed like a two-direction, one-layer model's."""
    H, D, C = 4, 3, 5
    shapes = {"W_xh_l0": (H, D), "W_hh_l0": (H, H), "b_h_l0": (H,),
              "W_xh_l0_reverse": (H, D), "W_hh_l0_reverse": (H, H),
              "b_h_l0_reverse": (H,), "W_hy": (C, 2 * H), "b_y": (C,)}
    return {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}


def random_grads(rng, params, n=N_STEPS):
    return [{k: rng.standard_normal(p.shape).astype(p.dtype)
             for k, p in params.items()} for _ in range(n)]


def copy_dict(arrays):
    return {k: v.copy() for k, v in arrays.items()}


# ---- NumPy implementations of the update formulas (float64) ----------------

def ref_sgd(params, grads_seq, lr, momentum=0.0, dampening=0.0, nesterov=False,
            weight_decay=0.0):
    p = {k: v.astype(np.float64) for k, v in params.items()}
    buf = {}
    for grads in grads_seq:
        for k in p:
            d = grads[k].astype(np.float64) + weight_decay * p[k]
            if momentum != 0:
                if k in buf:
                    buf[k] = momentum * buf[k] + (1 - dampening) * d
                else:
                    buf[k] = d.copy()
                d = d + momentum * buf[k] if nesterov else buf[k]
            p[k] = p[k] - lr * d
    return p


def ref_adagrad(params, grads_seq, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                initial_accumulator_value=0.0, eps=1e-10):
    p = {k: v.astype(np.float64) for k, v in params.items()}
    s = {k: np.full(v.shape, initial_accumulator_value) for k, v in p.items()}
    for t, grads in enumerate(grads_seq, start=1):
        clr = lr / (1 + (t - 1) * lr_decay)
        for k in p:
            d = grads[k].astype(np.float64) + weight_decay * p[k]
            s[k] = s[k] + d * d
            p[k] = p[k] - clr * d / (np.sqrt(s[k]) + eps)
    return p


def ref_adam(params, grads_seq, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
             weight_decay=0.0, decoupled=False):
    """Adam as Kingma & Ba write it (bias-corrected moments), with L2 weight
    decay (Adam) or decoupled decay (AdamW)."""
    b1, b2 = betas
    p = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros(v.shape) for k, v in p.items()}
    v = {k: np.zeros(v.shape) for k, v in p.items()}
    for t, grads in enumerate(grads_seq, start=1):
        for k in p:
            g = grads[k].astype(np.float64)
            if decoupled:
                p[k] = p[k] * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * p[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            m_hat = m[k] / (1 - b1 ** t)
            v_hat = v[k] / (1 - b2 ** t)
            p[k] = p[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def ref_adamw(params, grads_seq, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
              weight_decay=1e-2):
    return ref_adam(params, grads_seq, lr, betas, eps, weight_decay, decoupled=True)


# name, rnncore class, reference, keyword arguments (torch's names)
CASES = [
    ("SGD", optim.SGD, ref_sgd, dict(lr=0.1)),
    ("SGD", optim.SGD, ref_sgd, dict(lr=0.1, weight_decay=0.05)),
    ("SGD", optim.SGD, ref_sgd, dict(lr=0.1, momentum=0.9)),
    ("SGD", optim.SGD, ref_sgd, dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", optim.SGD, ref_sgd, dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", optim.SGD, ref_sgd,
     dict(lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.1)),
    ("SGD", optim.SGD, ref_sgd,
     dict(lr=0.05, momentum=0.8, dampening=0.5, weight_decay=0.1)),
    ("Adagrad", optim.Adagrad, ref_adagrad, dict()),
    ("Adagrad", optim.Adagrad, ref_adagrad, dict(lr=0.1, lr_decay=0.2)),
    ("Adagrad", optim.Adagrad, ref_adagrad,
     dict(lr=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", optim.Adagrad, ref_adagrad, dict(lr=0.1, weight_decay=0.1)),
    ("Adagrad", optim.Adagrad, ref_adagrad,
     dict(lr=0.1, lr_decay=0.1, weight_decay=0.05,
          initial_accumulator_value=0.1, eps=1e-6)),
    ("Adam", optim.Adam, ref_adam, dict()),
    ("Adam", optim.Adam, ref_adam, dict(lr=0.1, weight_decay=0.1)),
    # β₁ < 0.5 takes the other branch of torch's lerp
    ("Adam", optim.Adam, ref_adam, dict(lr=0.05, betas=(0.3, 0.9), eps=1e-6)),
    ("Adam", optim.Adam, ref_adam, dict(lr=0.05, betas=(0.0, 0.5))),
    ("AdamW", optim.AdamW, ref_adamw, dict()),
    ("AdamW", optim.AdamW, ref_adamw, dict(lr=0.1, weight_decay=0.2)),
    ("AdamW", optim.AdamW, ref_adamw, dict(lr=0.1, weight_decay=0.0)),
    ("AdamW", optim.AdamW, ref_adamw,
     dict(lr=0.05, betas=(0.5, 0.99), eps=1e-6, weight_decay=0.1)),
]
CASE_IDS = [f"{name}-" + "-".join(f"{k}={v}" for k, v in kw.items())
            for name, _, _, kw in CASES]


def run(cls, params, grads_seq, kwargs):
    opt = cls(params, **kwargs)
    for grads in grads_seq:
        opt.step(grads)
    return params


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, cls, ref, kwargs", CASES, ids=CASE_IDS)
def test_optimizer_matches_numpy_formulas(rng, name, cls, ref, kwargs, dtype):
    params = model_params(rng, dtype)
    grads_seq = random_grads(rng, params)
    want = ref(params, grads_seq, **kwargs)
    got = run(cls, copy_dict(params), grads_seq, kwargs)
    for k in params:
        assert got[k].dtype == dtype
        assert_close(got[k], want[k], dtype, name=k)
        assert not np.array_equal(got[k], params[k])


def torch_run(torch, name, params, grads_seq, kwargs):
    tparams = {k: torch.from_numpy(v.copy()).requires_grad_(True)
               for k, v in params.items()}
    opt = getattr(torch.optim, name)(list(tparams.values()), **kwargs)
    for grads in grads_seq:
        for k, tp in tparams.items():
            tp.grad = torch.from_numpy(grads[k].copy())
        opt.step()
    return {k: tp.detach().numpy() for k, tp in tparams.items()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, cls, ref, kwargs", CASES, ids=CASE_IDS)
def test_optimizer_matches_torch(rng, name, cls, ref, kwargs, dtype):
    torch = pytest.importorskip("torch")
    params = model_params(rng, dtype)
    grads_seq = random_grads(rng, params)
    want = torch_run(torch, name, params, grads_seq, kwargs)
    got = run(cls, copy_dict(params), grads_seq, kwargs)
    for k in params:
        assert_close(got[k], want[k].astype(np.float64), dtype, name=k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_defaults_match_torch(dtype):
    """The documented defaults are torch's."""
    torch = pytest.importorskip("torch")
    import inspect
    for name in ("Adagrad", "Adam", "AdamW", "SGD"):
        ours = inspect.signature(getattr(optim, name)).parameters
        theirs = inspect.signature(getattr(torch.optim, name)).parameters
        for arg, p in ours.items():
            if arg in ("params", "schedule") or p.default is inspect.Parameter.empty:
                continue
            assert theirs[arg].default == p.default, (name, arg)


def test_trains_rnncore_model(rng):
    """The 5-key dict of loss_and_grads: Adam drives the loss down."""
    params = make_params(rng, 3, 8, 4, np.float64)
    x = rng.standard_normal((6, 5, 3))
    targets = rng.integers(0, 4, (6, 5))
    opt = rnncore.Adam(params, lr=0.05)
    first, _, _ = rnncore.loss_and_grads(params, x, targets)
    for _ in range(30):
        loss, grads, _ = rnncore.loss_and_grads(params, x, targets)
        opt.step(grads)
    assert opt.step_count == 30
    assert loss < 0.7 * first


# ---- in place, no allocation -----------------------------------------------

@pytest.mark.parametrize("cls", [optim.SGD, optim.Adagrad, optim.Adam, optim.AdamW])
def test_updates_the_given_arrays_in_place(rng, cls):
    params = model_params(rng, np.float32)
    ids = {k: id(v) for k, v in params.items()}
    view = params["W_hh_l0"][1:3]          # e.g. a model's own view
    before = view.copy()
    opt = cls(params, lr=0.1)
    opt.step(random_grads(rng, params, 1)[0])
    assert {k: id(v) for k, v in params.items()} == ids
    assert all(opt.params[k] is params[k] for k in params)
    assert not np.array_equal(view, before)
    np.testing.assert_array_equal(view, params["W_hh_l0"][1:3])


def test_gradients_are_not_modified(rng):
    params = model_params(rng, np.float64)
    grads = random_grads(rng, params, 1)[0]
    saved = copy_dict(grads)
    optim.Adam(params, weight_decay=0.1).step(grads)
    for k in grads:
        np.testing.assert_array_equal(grads[k], saved[k])


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_and_readonly_grads(rng, dtype):
    params = model_params(rng, dtype)
    grads = random_grads(rng, params, 1)[0]
    a, b = copy_dict(params), copy_dict(params)
    optim.SGD(a, lr=0.1, momentum=0.9).step(grads)
    optim.SGD(b, lr=0.1, momentum=0.9).step(
        {k: strided(g) if g.ndim == 2 else readonly(g) for k, g in grads.items()})
    for k in params:
        np.testing.assert_array_equal(a[k], b[k])


def big_params(rng, dtype):
    """Every array large enough that a temporary copy would show."""
    shapes = {"W_xh": (64, 32), "W_hh": (64, 64), "b_h": (2048,),
              "W_hy": (32, 64), "b_y": (2048,)}
    return {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}


def traced(fn, repeats=50):
    """(growth, peak above the start) in bytes over repeated calls."""
    fn()
    tracemalloc.start()
    try:
        fn()
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(repeats):
            fn()
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return end - start, peak - start


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [
    lambda p: optim.SGD(p, lr=1e-3),
    lambda p: optim.SGD(p, lr=1e-3, momentum=0.9, nesterov=True, weight_decay=0.1),
    lambda p: optim.Adagrad(p, lr_decay=0.1),
    lambda p: optim.Adam(p, weight_decay=0.1),
    lambda p: optim.AdamW(p),
], ids=["SGD", "SGD-nesterov", "Adagrad", "Adam", "AdamW"])
def test_steady_state_step_allocates_nothing(rng, make, dtype):
    params = big_params(rng, dtype)
    grads = random_grads(rng, params, 1)[0]
    opt = make(params)
    for _ in range(3):
        opt.step(grads)
    growth, peak = traced(lambda: opt.step(grads))
    assert growth < 300
    # smallest array: 2048 elements, 8 KiB in float32; no array temporaries
    assert peak < 2048


def test_clipping_allocates_nothing(rng):
    grads = big_params(rng, np.float32)
    growth, peak = traced(lambda: optim.clip_grad_norm(grads, 1e9))
    assert growth < 300 and peak < 2048
    growth, peak = traced(lambda: optim.clip_grad_value(grads, 1e9))
    assert growth < 300 and peak < 2048


def test_concurrent_steps_on_one_optimiser_fail_cleanly():
    """A step releases the GIL; a second thread stepping the same optimiser
    meanwhile gets a RuntimeError, never corrupted state or a crash."""
    params = {"a": np.zeros(300_000, np.float32), "b": np.zeros(7, np.float32)}
    grads = {k: np.ones_like(v) for k, v in params.items()}
    opt = optim.SGD(params, lr=1.0, momentum=0.5)
    errors, done = [], []

    def worker():
        for _ in range(20):
            try:
                opt.step(grads)
                done.append(1)
            except RuntimeError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) + len(errors) == 40
    assert all("another thread" in e for e in errors)
    # every successful step moved each element by the same amount
    assert np.unique(params["a"]).size == 1
    np.testing.assert_array_equal(params["a"][:7], params["b"])


# ---- non-finite gradients --------------------------------------------------

def test_nonfinite_gradients_propagate(rng):
    """Documented: like torch.optim, a step does not check for NaN or inf."""
    params = model_params(rng, np.float64)
    grads = random_grads(rng, params, 1)[0]
    grads["b_y"][1] = np.nan
    grads["W_hy"][0, 0] = np.inf
    optim.SGD(params, lr=0.1).step(grads)
    assert np.isnan(params["b_y"][1]) and np.isinf(params["W_hy"][0, 0])
    assert np.isfinite(np.delete(params["b_y"], 1)).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_an_infinite_parameter_without_l2_decay_stays_infinite(rng, dtype, cls):
    """Adam adds weight_decay·p to the gradient only when weight_decay is
    not 0 (as torch does), so an infinite parameter does not turn its
    moments into NaN (g + 0·inf would)."""
    params = model_params(rng, dtype)
    W = params["W_hh_l0"]
    W[1, 2] = np.inf
    grads = random_grads(rng, params, 1)[0]
    opt = cls(params, lr=0.1, weight_decay=0.0)
    opt.step(grads)
    opt.step(grads)
    assert W[1, 2] == np.inf
    assert np.isfinite(np.delete(W.ravel(), 1 * W.shape[1] + 2)).all()
    for buffer in ("exp_avg", "exp_avg_sq"):
        assert np.isfinite(opt.state_dict()[f"state/W_hh_l0/{buffer}"]).all()


# ---- gradient clipping ------------------------------------------------------

def numpy_norm(grads, p):
    flat = np.concatenate([g.astype(np.float64).ravel() for g in grads.values()])
    if p == math.inf:
        return np.max(np.abs(flat))
    return np.sum(np.abs(flat) ** p) ** (1 / p)


NORM_TYPES = [2.0, 1.0, math.inf, 3.0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", NORM_TYPES)
@pytest.mark.parametrize("fraction", [0.25, 0.9, 1.0])
def test_clip_grad_norm_matches_numpy(rng, p, dtype, fraction):
    """Scaled by max_norm / (norm + 1e-6) whenever that is below 1 (also
    for max_norm == norm, as torch does)."""
    grads = model_params(rng, dtype)
    original = copy_dict(grads)
    ids = {k: id(v) for k, v in grads.items()}
    norm = numpy_norm(grads, p)
    max_norm = fraction * norm
    total = optim.clip_grad_norm(grads, max_norm, norm_type=p)
    assert type(total) is float
    rel = 1e-6 if dtype == np.float32 else 1e-13
    assert total == pytest.approx(float(norm), rel=rel)
    coef = max_norm / (norm + 1e-6)
    for k in grads:
        assert id(grads[k]) == ids[k]
        assert_close(grads[k], original[k].astype(np.float64) * coef, dtype, name=k)
    assert numpy_norm(grads, p) == pytest.approx(max_norm, rel=1e-5)


def torch_holding(torch, grads):
    """Torch leaf tensors whose .grad are copies of the arrays."""
    tensors = []
    for g in grads.values():
        t = torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
        t.grad = torch.from_numpy(g.copy())
        tensors.append(t)
    return tensors


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", NORM_TYPES)
def test_clip_grad_norm_matches_torch(rng, p, dtype):
    torch = pytest.importorskip("torch")
    grads = model_params(rng, dtype)
    tensors = torch_holding(torch, grads)
    max_norm = 0.3 * numpy_norm(grads, p)
    want = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type=p)
    got = optim.clip_grad_norm(grads, max_norm, norm_type=p)
    assert got == pytest.approx(float(want), rel=1e-5 if dtype == np.float32 else 1e-12)
    for g, t in zip(grads.values(), tensors, strict=True):
        assert_close(g, t.grad.numpy().astype(np.float64), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_norm_below_threshold_is_a_no_op(rng, dtype):
    grads = model_params(rng, dtype)
    original = copy_dict(grads)
    norm = numpy_norm(grads, 2.0)
    for max_norm in (norm * 1.01, norm + 1.0, math.inf):
        total = optim.clip_grad_norm(grads, max_norm)
        assert total == pytest.approx(norm, rel=1e-6)
        for k in grads:
            np.testing.assert_array_equal(grads[k], original[k])


def test_clip_grad_norm_empty_and_zero():
    assert optim.clip_grad_norm({}, 1.0) == 0.0
    grads = {"a": np.zeros(3, np.float32)}
    assert optim.clip_grad_norm(grads, 0.0) == 0.0
    np.testing.assert_array_equal(grads["a"], 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_grad_norm_nonfinite(rng, bad):
    """Documented: a NaN or infinite norm is returned and the gradients are
    left unchanged; error_if_nonfinite raises instead."""
    grads = model_params(rng, np.float64)
    grads["W_hy"][0, 1] = bad
    original = copy_dict(grads)
    for p in (2.0, math.inf):
        total = optim.clip_grad_norm(grads, 1.0, norm_type=p)
        assert not math.isfinite(total)
        assert math.isnan(total) == (bad != bad)
        with pytest.raises(ValueError, match="norm"):
            optim.clip_grad_norm(grads, 1.0, norm_type=p, error_if_nonfinite=True)
        for k in grads:
            np.testing.assert_array_equal(grads[k], original[k])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 15, 16, 17, 47])
def test_two_norm_over_blocks_and_tail(rng, dtype, n):
    """The 2-norm sums 16 lanes of partial sums, then the elements past the
    last whole 16: every element counts once, and a NaN anywhere makes the
    norm NaN."""
    g = rng.standard_normal(n).astype(dtype)
    grads = {"g": g.copy()}
    want = math.sqrt(float(np.sum(g.astype(np.float64) ** 2)))
    assert optim.clip_grad_norm(grads, math.inf) == pytest.approx(want, rel=1e-12)
    for i in sorted({0, n // 2, n - 1}):
        grads = {"g": g.copy()}
        grads["g"][i] = np.nan
        assert math.isnan(optim.clip_grad_norm(grads, 1.0))


def test_inf_norm_sees_nan_anywhere(rng):
    grads = {"a": np.array([1.0, np.nan, 5.0]), "b": np.array([7.0])}
    assert math.isnan(optim.clip_grad_norm(grads, 1.0, norm_type=math.inf))
    grads = {"a": np.array([1.0, 5.0]), "b": np.array([np.nan, 2.0])}
    assert math.isnan(optim.clip_grad_norm(grads, 1.0, norm_type=math.inf))


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_value(rng, dtype):
    grads = model_params(rng, dtype)
    grads["b_y"][0] = np.nan
    want = {k: np.clip(v, -0.5, 0.5) for k, v in grads.items()}
    ids = {k: id(v) for k, v in grads.items()}
    optim.clip_grad_value(grads, 0.5)
    for k in grads:
        assert id(grads[k]) == ids[k]
        np.testing.assert_array_equal(grads[k], want[k])
    assert np.isnan(grads["b_y"][0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_value_matches_torch(rng, dtype):
    torch = pytest.importorskip("torch")
    grads = model_params(rng, dtype)
    tensors = torch_holding(torch, grads)
    torch.nn.utils.clip_grad_value_(tensors, 0.7)
    optim.clip_grad_value(grads, 0.7)
    for g, t in zip(grads.values(), tensors, strict=True):
        np.testing.assert_array_equal(g, t.grad.numpy())


# ---- validation -------------------------------------------------------------

def key(name):
    return re.escape(repr(name))


ALL = [optim.SGD, optim.Adagrad, optim.Adam, optim.AdamW]


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("lr, error", [
    (-0.1, ValueError), (np.nan, ValueError), (np.inf, ValueError),
    (True, TypeError), ("0.1", TypeError), (None, TypeError)])
def test_invalid_lr(cls, lr, error):
    with pytest.raises(error, match="lr"):
        cls({"a": np.zeros(2)}, lr=lr)
    opt = cls({"a": np.zeros(2)}, lr=0.1)
    with pytest.raises(error, match="lr"):
        opt.lr = lr
    assert opt.lr == 0.1


@pytest.mark.parametrize("cls, kwargs, error, match", [
    (optim.SGD, dict(momentum=-0.1), ValueError, "momentum"),
    (optim.SGD, dict(weight_decay=-1), ValueError, "weight_decay"),
    (optim.SGD, dict(dampening=np.nan), ValueError, "dampening"),
    (optim.SGD, dict(nesterov=True), ValueError, "nesterov"),
    (optim.SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError,
     "nesterov"),
    (optim.SGD, dict(nesterov="yes", momentum=0.9), TypeError, "nesterov"),
    (optim.Adagrad, dict(lr_decay=-0.1), ValueError, "lr_decay"),
    (optim.Adagrad, dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (optim.Adagrad, dict(initial_accumulator_value=-1), ValueError,
     "initial_accumulator_value"),
    (optim.Adagrad, dict(eps=-1e-10), ValueError, "eps"),
    (optim.Adam, dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (optim.Adam, dict(betas=(-0.1, 0.999)), ValueError, r"betas\[0\]"),
    (optim.Adam, dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    (optim.AdamW, dict(betas=(0.9, np.nan)), ValueError, r"betas\[1\]"),
    (optim.Adam, dict(betas=0.9), TypeError, "betas"),
    (optim.Adam, dict(betas=(0.9, 0.99, 0.999)), TypeError, "betas"),
    (optim.Adam, dict(eps=-1.0), ValueError, "eps"),
    (optim.AdamW, dict(weight_decay=-0.01), ValueError, "weight_decay"),
])
def test_invalid_options(cls, kwargs, error, match):
    lr = {"lr": 0.1} if cls is optim.SGD else {}
    with pytest.raises(error, match=match):
        cls({"a": np.zeros(2)}, **lr, **kwargs)


def f_order(shape):
    return np.asfortranarray(np.zeros(shape))


@pytest.mark.parametrize("params, error, match", [
    ([np.zeros(2)], TypeError, "params must be a mapping"),
    ({}, ValueError, "params is empty"),
    ({"a": [1.0, 2.0]}, TypeError, r"params\['a'\].*NumPy array"),
    ({"a": np.zeros(2, np.int64)}, TypeError, r"params\['a'\].*float32 or float64"),
    ({"a": np.zeros(2, np.float16)}, TypeError, r"params\['a'\]"),
    ({"a": np.zeros(2, ">f8")}, TypeError, r"params\['a'\]"),
    ({"a": np.zeros(2), "b": np.zeros(2, np.float32)}, TypeError,
     r"params\['b'\].*one dtype"),
    ({"a": np.zeros(6)[::2]}, ValueError, r"params\['a'\].*C-contiguous"),
    ({"a": f_order((3, 2))}, ValueError, r"params\['a'\].*C-contiguous"),
    ({"a": readonly(np.zeros(2))}, ValueError, r"params\['a'\].*writeable"),
    ({1: np.zeros(2)}, TypeError, "keys must be strings"),
])
def test_invalid_params(params, error, match):
    for cls in ALL:
        with pytest.raises(error, match=match):
            cls(params, lr=0.1)


def test_params_sharing_memory_are_rejected():
    a = np.zeros(10)
    with pytest.raises(ValueError, match=r"params\['a'\] and params\['b'\] share"):
        optim.Adam({"a": a, "b": a})
    with pytest.raises(ValueError, match=r"params\['x'\] and params\['y'\] share"):
        optim.Adam({"x": a[:6], "y": a[5:]})
    opt = optim.Adam({"x": a[:5], "y": a[5:]})  # adjacent views are fine
    opt.step({"x": np.ones(5), "y": np.ones(5)})
    assert (a < 0).all()


@pytest.mark.parametrize("cls", ALL)
def test_invalid_grads_change_nothing(rng, cls):
    params = model_params(rng, np.float32)
    saved = copy_dict(params)
    good = random_grads(rng, params, 1)[0]
    opt = cls(params, lr=0.1)
    bad_cases = [
        ([good["W_hy"]], TypeError, "grads must be a mapping"),
        ({k: v for k, v in good.items() if k != "b_y"}, ValueError,
         r"missing the key\(s\) \['b_y'\]"),
        ({**good, "extra": good["b_y"]}, ValueError, r"unknown key\(s\) \['extra'\]"),
        ({**good, "W_hy": good["W_hy"].T}, ValueError, r"grads\['W_hy'\] has shape"),
        ({**good, "b_y": good["b_y"][:-1]}, ValueError, r"grads\['b_y'\] has shape"),
        ({**good, "b_y": good["b_y"].astype(np.float64)}, TypeError,
         r"grads\['b_y'\] has dtype float64"),
        ({**good, "b_y": None}, TypeError, r"grads\['b_y'\]"),
        ({**good, "b_y": np.zeros(5, int)}, TypeError, r"grads\['b_y'\] has dtype"),
    ]
    for grads, error, match in bad_cases:
        with pytest.raises(error, match=match):
            opt.step(grads)
    assert opt.step_count == 0
    for k in params:
        np.testing.assert_array_equal(params[k], saved[k])
    assert opt.state_dict()["step"] == 0


# ---- state_dict ---------------------------------------------------------------

# the documented flat layout: entries besides the buffers, and the buffers
STATE_ENTRIES = {
    "SGD": ["momentum", "dampening", "nesterov", "weight_decay"],
    "Adagrad": ["lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
    "Adam": ["betas", "eps", "weight_decay"],
    "AdamW": ["betas", "eps", "weight_decay"],
}
BUFFERS = {"SGD": ["momentum_buffer"], "Adagrad": ["sum"],
           "Adam": ["exp_avg", "exp_avg_sq"], "AdamW": ["exp_avg", "exp_avg_sq"]}


def flat(state):
    """True when state maps str keys to str, bool, int, float or arrays:
    what rnncore.save stores."""
    return all(isinstance(k, str) and isinstance(v, (str, bool, int, float, np.ndarray))
               for k, v in state.items())


def buffers_of(state):
    return {k: v for k, v in state.items() if k.startswith("state/")}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, cls, ref, kwargs", CASES, ids=CASE_IDS)
def test_state_dict_round_trip_is_exact(rng, name, cls, ref, kwargs, dtype):
    params = model_params(rng, dtype)
    grads_seq = random_grads(rng, params, 6)
    opt = cls(params, **kwargs)
    for grads in grads_seq[:3]:
        opt.step(grads)
    state = opt.state_dict()
    assert flat(state) and state["optimizer"] == name and state["step"] == 3
    has_buffers = name != "SGD" or kwargs.get("momentum", 0) != 0
    want_keys = ["optimizer", "step", "lr", *STATE_ENTRIES[name],
                 *(f"state/{k}/{b}" for k in params
                   for b in (BUFFERS[name] if has_buffers else []))]
    assert sorted(state) == sorted(want_keys)
    if "betas" in kwargs:
        assert state["betas"].dtype == np.float64
        assert state["betas"].tolist() == list(kwargs["betas"])
    for key, value in buffers_of(state).items():
        assert value.dtype == dtype and value.shape == params[key.split("/")[1]].shape
    at_save = copy_dict(params)
    snapshot = copy_dict(buffers_of(state))
    for grads in grads_seq[3:]:
        opt.step(grads)
    # the saved arrays are copies: later steps did not touch them
    for k, a in buffers_of(state).items():
        np.testing.assert_array_equal(a, snapshot[k])

    resumed_params = copy_dict(at_save)
    lr = {"lr": 123.0} if cls is optim.SGD else {}
    resumed = cls(resumed_params, **lr)     # other options: restored by load
    resumed.load_state_dict(state)
    assert resumed.lr == opt.lr and resumed.step_count == 3
    assert_same_state(resumed.state_dict(), state)
    for grads in grads_seq[3:]:
        resumed.step(grads)
    for k in params:
        np.testing.assert_array_equal(resumed_params[k], params[k])
    assert_same_state(resumed.state_dict(), opt.state_dict())


def test_state_dict_before_any_step_keeps_first_step_semantics(rng):
    params = model_params(rng, np.float64)
    grads_seq = random_grads(rng, params, 2)
    a, b = copy_dict(params), copy_dict(params)
    opt = optim.SGD(a, lr=0.1, momentum=0.9)
    other = optim.SGD(b, lr=0.1, momentum=0.9)
    other.load_state_dict(opt.state_dict())
    for grads in grads_seq:
        opt.step(grads)
        other.step(grads)
    want = ref_sgd(params, grads_seq, lr=0.1, momentum=0.9)
    for k in params:
        np.testing.assert_array_equal(a[k], b[k])
        assert_close(b[k], want[k], np.float64)


def test_load_state_dict_rejects_bad_states_and_changes_nothing(rng):
    params = model_params(rng, np.float32)
    opt = optim.Adam(params, lr=0.01)
    opt.step(random_grads(rng, params, 1)[0])
    good = opt.state_dict()
    target = optim.Adam(copy_dict(params), lr=0.5, betas=(0.5, 0.6))
    before = target.state_dict()

    def variant(**changes):
        return {**good, **changes}

    def without(*keys):
        return {k: v for k, v in good.items() if k not in keys}

    bad = [
        ([good], TypeError, "state_dict must be a mapping"),
        (without("step"), ValueError, r"missing the key\(s\) \['step'\]"),
        (without("optimizer"), ValueError, r"missing the key\(s\) \['optimizer'\]"),
        (variant(optimizer="AdamW"), ValueError, "'AdamW'.*not of 'Adam'"),
        (variant(optimizer=7), ValueError, r"\['optimizer'\] is 7"),
        (variant(step=-1), ValueError, "step"),
        (variant(step=1.5), TypeError, "step"),
        (variant(lr=-1.0), ValueError, "lr"),
        (variant(lr="fast"), TypeError, "lr"),
        (variant(betas=np.array([0.9, 2.0])), ValueError, r"betas\[1\]"),
        (variant(betas=np.array([0.9, 0.99, 0.999])), TypeError, "betas"),
        (variant(eps=np.nan), ValueError, "eps"),
        (variant(momentum=0.9), ValueError, r"unknown key\(s\) \['momentum'\]"),
        (without("eps"), ValueError, r"missing the key\(s\) \['eps'\]"),
        (without("state/b_y/exp_avg_sq"), ValueError,
         r"missing the key\(s\) \['state/b_y/exp_avg_sq'\]"),
        (variant(**{"state/extra/exp_avg": np.zeros(5, np.float32)}), ValueError,
         r"unknown key\(s\) \['state/extra/exp_avg'\]"),
        (variant(**{"state/W_hy/exp_avg": good["state/W_hy/exp_avg"].T}), ValueError,
         r"'state/W_hy/exp_avg'\] has shape"),
        (variant(**{"state/b_y/exp_avg_sq": np.zeros(5, int)}), TypeError,
         r"'state/b_y/exp_avg_sq'\] must be a float array"),
        (variant(**{"state/b_y/exp_avg_sq": None}), TypeError, "state/b_y/exp_avg_sq"),
        ({**{1: 2}, **good}, ValueError, r"unknown key\(s\) \[1\]"),
    ]
    for state, error, match in bad:
        with pytest.raises(error, match=match):
            target.load_state_dict(state)
        assert_same_state(target.state_dict(), before)


def test_load_state_dict_takes_betas_as_a_pair(rng):
    """A state written by hand may give betas as a tuple."""
    params = model_params(rng, np.float64)
    state = optim.Adam(copy_dict(params), betas=(0.8, 0.9)).state_dict()
    target = optim.Adam(params)
    target.load_state_dict({**state, "betas": (0.8, 0.9)})
    assert target.state_dict()["betas"].tolist() == [0.8, 0.9]


def test_state_dict_keys_with_slashes(rng):
    """Parameter keys holding "/" still get a buffer entry each."""
    params = {"a": rng.standard_normal(3), "a/sum": rng.standard_normal(2),
              "state/a": rng.standard_normal(4)}
    grads = random_grads(rng, params, 3)
    opt = optim.Adagrad(params, lr=0.1)
    opt.step(grads[0])
    state = opt.state_dict()
    assert sorted(buffers_of(state)) == ["state/a/sum", "state/a/sum/sum",
                                         "state/state/a/sum"]
    resumed_params = copy_dict(params)
    resumed = optim.Adagrad(resumed_params)
    resumed.load_state_dict(state)
    for g in grads[1:]:
        opt.step(g)
        resumed.step(g)
    for k in params:
        np.testing.assert_array_equal(resumed_params[k], params[k])


def test_load_state_dict_can_add_a_momentum_buffer(rng):
    """Loading restores the options, allocating the buffers they need."""
    params = model_params(rng, np.float64)
    grads_seq = random_grads(rng, params, 4)
    a = copy_dict(params)
    opt = optim.SGD(a, lr=0.1, momentum=0.9, nesterov=True)
    for grads in grads_seq[:2]:
        opt.step(grads)
    b = copy_dict(a)
    resumed = optim.SGD(b, lr=0.1)
    assert not buffers_of(resumed.state_dict())
    resumed.load_state_dict(opt.state_dict())
    for grads in grads_seq[2:]:
        opt.step(grads)
        resumed.step(grads)
    for k in params:
        np.testing.assert_array_equal(a[k], b[k])


# ---- schedules ----------------------------------------------------------------

def test_schedule_is_applied_before_each_step(rng):
    params = model_params(rng, np.float64)
    grads_seq = random_grads(rng, params, 4)
    calls = []

    def schedule(step):
        calls.append(step)
        return 0.1 / (1 + step)

    a, b = copy_dict(params), copy_dict(params)
    opt = optim.SGD(a, lr=5.0, schedule=schedule)
    manual = optim.SGD(b, lr=5.0)
    for t, grads in enumerate(grads_seq):
        opt.step(grads)
        manual.lr = 0.1 / (1 + t)
        manual.step(grads)
        assert opt.lr == manual.lr
    assert calls == [0, 1, 2, 3]
    for k in params:
        np.testing.assert_array_equal(a[k], b[k])


def test_schedule_validation(rng):
    params = model_params(rng, np.float64)
    saved = copy_dict(params)
    with pytest.raises(TypeError, match="schedule"):
        optim.Adam(params, schedule=0.1)
    opt = optim.Adam(params, schedule=lambda t: -1.0)
    with pytest.raises(ValueError, match=r"schedule\(0\)"):
        opt.step(random_grads(rng, params, 1)[0])
    assert opt.step_count == 0
    for k in params:
        np.testing.assert_array_equal(params[k], saved[k])
    opt.schedule = None
    opt.step(random_grads(rng, params, 1)[0])
    assert opt.step_count == 1


def test_step_lr():
    s = optim.StepLR(0.5, step_size=3, gamma=0.1)
    want = [0.5, 0.5, 0.5, 0.05, 0.05, 0.05, 0.005]
    assert [s(t) for t in range(7)] == pytest.approx(want, rel=1e-15)
    with pytest.raises(ValueError, match="step_size"):
        optim.StepLR(0.5, step_size=0)
    with pytest.raises(TypeError, match="step_size"):
        optim.StepLR(0.5, step_size=1.5)
    with pytest.raises(ValueError, match="gamma"):
        optim.StepLR(0.5, 2, gamma=-1)


def test_cosine_lr():
    s = optim.CosineLR(1.0, total_steps=4, min_lr=0.2)
    want = [1.0, 0.2 + 0.8 * (1 + math.cos(math.pi / 4)) / 2, 0.6,
            0.2 + 0.8 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.2, 0.2, 0.2]
    assert [s(t) for t in range(7)] == pytest.approx(want, rel=1e-14)
    with pytest.raises(ValueError, match="total_steps"):
        optim.CosineLR(1.0, total_steps=0)
    with pytest.raises(ValueError, match="min_lr"):
        optim.CosineLR(1.0, 10, min_lr=-0.1)


def test_schedules_match_torch_schedulers(rng):
    torch = pytest.importorskip("torch")
    params = model_params(rng, np.float64)
    grads_seq = random_grads(rng, params, 8)
    for ours, make_theirs in [
        (optim.StepLR(0.2, step_size=3, gamma=0.5),
         lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
        (optim.CosineLR(0.2, total_steps=8, min_lr=0.01),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8,
                                                              eta_min=0.01)),
    ]:
        mine = copy_dict(params)
        opt = optim.SGD(mine, lr=0.2, momentum=0.9, schedule=ours)
        tparams = [torch.from_numpy(v.copy()).requires_grad_(True)
                   for v in params.values()]
        topt = torch.optim.SGD(tparams, lr=0.2, momentum=0.9)
        sched = make_theirs(topt)
        for grads in grads_seq:
            for tp, g in zip(tparams, grads.values(), strict=True):
                tp.grad = torch.from_numpy(g.copy())
            topt.step()
            sched.step()
            opt.step(grads)
        for k, tp in zip(mine, tparams, strict=True):
            assert_close(mine[k], tp.detach().numpy(), np.float64, name=k)


# ---- clipping validation -------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda g: optim.clip_grad_norm(g, -1.0), ValueError, "max_norm"),
    (lambda g: optim.clip_grad_norm(g, np.nan), ValueError, "max_norm"),
    (lambda g: optim.clip_grad_norm(g, 1.0, norm_type=0), ValueError, "norm_type"),
    (lambda g: optim.clip_grad_norm(g, 1.0, norm_type=-2), ValueError, "norm_type"),
    (lambda g: optim.clip_grad_norm(g, 1.0, norm_type="fro"), TypeError, "norm_type"),
    (lambda g: optim.clip_grad_value(g, -0.1), ValueError, "clip_value"),
    (lambda g: optim.clip_grad_value(g, None), TypeError, "clip_value"),
])
def test_invalid_clip_arguments(rng, call, error, match):
    grads = model_params(rng, np.float32)
    with pytest.raises(error, match=match):
        call(grads)


@pytest.mark.parametrize("clip", [
    lambda g: optim.clip_grad_norm(g, 1e-3),
    lambda g: optim.clip_grad_value(g, 1e-3),
], ids=["norm", "value"])
def test_clip_rejects_grads_it_cannot_modify_in_place(rng, clip):
    g = rng.standard_normal((4, 6))
    a = np.zeros(8)
    for grads, error, match in [
        ({"a": readonly(g)}, ValueError, r"grads\['a'\].*writeable"),
        ({"a": g[:, ::2]}, ValueError, r"grads\['a'\].*C-contiguous"),
        ({"a": g.tolist()}, TypeError, r"grads\['a'\]"),
        ({"a": g, "b": g.astype(np.float32)}, TypeError, "one dtype"),
        ({"a": a[:5], "b": a[3:]}, ValueError, "share memory"),
        ([g], TypeError, "mapping"),
    ]:
        before = np.array(grads["a"] if isinstance(grads, dict) else g, copy=True)
        with pytest.raises(error, match=match):
            clip(grads)
        after = grads["a"] if isinstance(grads, dict) else g
        np.testing.assert_array_equal(np.asarray(after), before)


def test_repr_and_exports():
    opt = optim.Adam({"a": np.zeros(3, np.float32)})
    text = repr(opt)
    assert text.startswith("Adam(lr=0.001") and "float32" in text
    for name in ("SGD", "Adagrad", "Adam", "AdamW", "clip_grad_norm",
                 "clip_grad_value"):
        assert getattr(rnncore, name) is getattr(optim, name)
    assert rnncore.optim is optim

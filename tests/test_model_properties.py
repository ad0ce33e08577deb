"""Property-based tests of the model layer: random RNN models and calls agree
with the NumPy reference, random invalid arguments raise ValueError or
TypeError naming the culprit, and the optimisers and gradient clipping on
random gradient dicts agree with their NumPy formulas.

As in test_properties.py, hypothesis makes every structural choice (sizes,
layers, directions, dtype, modes, optional arguments, memory layouts, what
to break), so that a failure shrinks to a small example; the array values
come from a NumPy generator it seeds.  The number of examples comes from
the hypothesis profile (tests/conftest.py).
"""
import math
import re

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import note  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import calls  # noqa: E402
import reference  # noqa: E402
import rnncore  # noqa: E402
from rnn_util import TOL, assert_close, random_lengths  # noqa: E402
from rnncore import optim  # noqa: E402
from test_optim import numpy_norm, ref_adagrad, ref_adam, ref_adamw, ref_sgd  # noqa: E402
from test_properties import DrawChooser  # noqa: E402

DTYPES = [np.float32, np.float64]
MODES = ["seq", "last"]


# ---- random models and calls -------------------------------------------------

def draw_model_call(choose, dtype, mode):
    """A random model and the arguments of a valid call, as (model, kwargs,
    clean): kwargs as given (any layout, token ids or floats), clean the
    same values as float64 reference inputs."""
    rng = np.random.default_rng(choose.integer(0, 2**32 - 1))
    L, bi = choose.integer(1, 3), choose.boolean()
    T, B = choose.integer(1, 5), choose.integer(0, 3)
    D, H, C = choose.integer(1, 4), choose.integer(1, 4), choose.integer(1, 4)
    model = rnncore.RNN(D, H, C, num_layers=L, bidirectional=bi, dtype=dtype,
                        input_init=choose.choice(rnncore.model.INPUT_INITS),
                        recurrent_init=choose.choice(rnncore.model.RECURRENT_INITS),
                        seed=int(rng.integers(2**31)))
    for v in model.params.values():  # larger weights: a harder check
        v *= 2
    if choose.boolean():  # token ids, one-hot encoded by the model
        ids = rng.integers(0, D, (T, B))
        x, clean_x = calls._int_array(choose, ids), np.eye(D)[ids]
    else:
        # floats of either dtype: the model casts them to its own
        x = rng.standard_normal((T, B, D)).astype(choose.choice(DTYPES))
        clean_x = x.astype(dtype).astype(np.float64)
    # (an empty nested list of token ids would read back as floats)
    kwargs = {"x": calls._layout(choose, x) if x.size else x, "mode": mode}
    clean = {"x": clean_x, "h0": None, "lengths": None, "ignore_index": -100}
    if choose.boolean():
        h0 = np.tanh(rng.standard_normal((L * model.num_directions, B, H)))
        kwargs["h0"] = calls._layout(choose, h0.astype(dtype))
        clean["h0"] = h0.astype(dtype)
    if choose.boolean():
        lengths = random_lengths(rng, T, B)
        kwargs["lengths"] = calls._layout(choose, calls._int_array(choose, lengths))
        clean["lengths"] = lengths
    ignore_index = calls._ignore_index(choose, C)
    if ignore_index is not None:
        kwargs["ignore_index"] = clean["ignore_index"] = ignore_index
    clean["targets"] = calls._targets(choose, rng, (T, B) if mode == "seq" else (B,),
                                      C, ignore_index)
    kwargs["targets"] = calls._layout(choose, clean["targets"])
    return model, kwargs, clean


def forward_kwargs(kwargs):
    return {k: v for k, v in kwargs.items()
            if k in ("x", "mode", "h0", "lengths")}


def check_array(name, got, want, dtype):
    assert type(got) is np.ndarray and got.dtype == dtype, (name, got.dtype)
    assert_close(got, want, dtype, name=name, floor=1.0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@hypothesis.given(data=st.data())
def test_model_agrees_with_reference(dtype, mode, data):
    model, kwargs, c = draw_model_call(DrawChooser(data.draw), dtype, mode)
    note(f"{model!r}: {calls.Call('RNN', kwargs, {}, {}, dtype).describe()}")
    L, bi, nd = model.num_layers, model.bidirectional, model.num_directions
    before = {k: calls._snapshot(v) for k, v in kwargs.items()}
    params_before = {k: v.copy() for k, v in model.params.items()}

    loss, grads, h_n = model.loss_and_grads(**kwargs)
    logits, h_n2 = model.forward(**forward_kwargs(kwargs), return_state=True)

    want_loss, want_grads, want_h_n = reference.stacked_loss_and_grads(
        model.params, c["x"], c["targets"], L, bi, mode, c["h0"], c["lengths"],
        c["ignore_index"])
    top, _ = reference.stacked(model.params, c["x"], L, bi, c["h0"], c["lengths"])
    feats = top if mode == "seq" else np.concatenate(list(want_h_n[-nd:]), axis=1)
    want_logits = (feats @ model.params["W_hy"].astype(np.float64).T
                   + model.params["b_y"])

    tol = TOL[np.dtype(dtype)]
    assert type(loss) is float
    np.testing.assert_allclose(loss, want_loss, rtol=tol, atol=tol)
    assert list(grads) == list(model.params)
    for k in grads:
        check_array(k, grads[k], want_grads[k], dtype)
    for name, got in (("h_n", h_n), ("forward h_n", h_n2)):
        check_array(name, got, want_h_n, dtype)
    check_array("logits", logits, want_logits, dtype)
    np.testing.assert_array_equal(model.predict(**forward_kwargs(kwargs)),
                                  np.argmax(logits, axis=-1))
    for k in before:
        calls._assert_unchanged(before[k], kwargs[k], k)
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, params_before[k], err_msg=k)


# ---- invalid arguments --------------------------------------------------------

CONSTRUCTOR = {"input_size": 3, "hidden_size": 4, "output_size": 2, "num_layers": 1,
               "bidirectional": False, "dtype": "float32", "input_init": "uniform",
               "recurrent_init": "uniform"}
BAD_SIZES = (0, -1, 2.5, True, "3", None, np.float64(3), 2**31, 2**63, [3])
BAD_CONSTRUCTOR = {
    "input_size": BAD_SIZES, "hidden_size": BAD_SIZES, "output_size": BAD_SIZES,
    "num_layers": (0, -2, 1.0, False, "2", None, 2**63),
    "bidirectional": ("yes", 1, 0, None, np.array([True])),
    "dtype": ("float16", "int32", "complex64", "nonsense", bool, object),
    "input_init": ("zeros", "Uniform", None, 1, np.array(["xavier"] * 2)),
    "recurrent_init": ("xavier", None, ("uniform",)),
}


@hypothesis.given(data=st.data())
def test_constructor_refuses_invalid_arguments_naming_them(data):
    name = data.draw(st.sampled_from(sorted(BAD_CONSTRUCTOR)))
    value = data.draw(st.sampled_from(BAD_CONSTRUCTOR[name]))
    kwargs = {**CONSTRUCTOR, name: value}
    note(f"RNN({kwargs})")
    with pytest.raises((ValueError, TypeError)) as info:
        rnncore.RNN(kwargs.pop("input_size"), kwargs.pop("hidden_size"),
                    kwargs.pop("output_size"), **kwargs)
    assert re.search(calls.names_pattern([name]), str(info.value)), info.value


def _break_call(choose, model, kwargs):
    """kwargs with one argument broken, and the names of which the error
    must mention one."""
    x = np.asarray(kwargs["x"])
    T, B = x.shape[:2]
    D, H = model.input_size, model.hidden_size
    S = model.num_layers * model.num_directions
    dt = model.dtype
    mode = kwargs["mode"]
    options = {
        "x": [np.zeros((T, B, D + 1), dt), np.zeros((T, B), np.float32),
              np.zeros((T, B, D, 1), dt), np.zeros((T, B, D), np.complex64),
              np.zeros((T, B, D), np.int64), np.zeros((T, B), bool), None, "abc",
              calls.RAGGED, np.full((T, B), D), np.full((T, B), -1),
              np.zeros((0, B, D), dt), np.ma.masked_array(np.zeros((T, B, D), dt))],
        "h0": [np.zeros((S + 1, B, H), dt), np.zeros((S, B + 1, H), dt),
               np.zeros((S, B, H + 1), dt), np.zeros((B, H), dt),
               np.zeros((S, B, H), np.int32), "abc"],
        "lengths": [np.full(B + 1, T), np.full((B, 1), T), np.full(B, T + 1),
                    np.zeros(B, int), np.full(B, float(T)), "abc"],
        "mode": ["all", "SEQ", None, 1, np.array(["seq", "last"])],
        "targets": [np.full((T, B) if mode == "seq" else (B,), model.output_size),
                    np.zeros((T + 1, B) if mode == "seq" else (B + 1,), int),
                    np.zeros((T, B) if mode == "seq" else (B,), float) + 0.5, None],
        "ignore_index": [1.5, "-100", None, True, 2**63],
    }
    if B == 0:  # no sequence to give a wrong length or target value
        options["lengths"] = options["lengths"][:2] + options["lengths"][5:]
        options["targets"] = [options["targets"][1], None]  # (empty ones pass)
        options["x"] = [v for v in options["x"]
                        if not (isinstance(v, np.ndarray) and v.dtype.kind == "i")]
    name = choose.choice(sorted(options))
    value = choose.choice(options[name])
    names = {"x": ["x", "input_size", "T"]}.get(name, [name])
    return {**kwargs, name: value}, names


@pytest.mark.parametrize("method", ["forward", "loss_and_grads", "predict"])
@hypothesis.given(data=st.data())
def test_invalid_calls_raise_naming_the_argument(method, data):
    choose = DrawChooser(data.draw)
    model, kwargs, _ = draw_model_call(choose, choose.choice(DTYPES),
                                       choose.choice(MODES))
    broken, names = _break_call(choose, model, kwargs)
    if method != "loss_and_grads":
        if set(names) & {"targets", "ignore_index"}:
            names = ["mode"]
            broken["mode"] = "bogus"
        broken = forward_kwargs(broken)
    note(f"{model!r}.{method}: "
         f"{calls.Call(method, broken, {}, {}, model.dtype).describe()}; "
         f"the error must name one of {names}")
    with pytest.raises((ValueError, TypeError)) as info:
        getattr(model, method)(**broken)
    assert re.search(calls.names_pattern(names), str(info.value)), (
        f"{type(info.value).__name__}: {info.value}")


# ---- optimisers and gradient clipping -------------------------------------------

def draw_arrays(choose, rng, dtype):
    """A dict of 1 to 4 float arrays of random shapes (0 to 3 axes, some
    empty) in one dtype."""
    arrays = {}
    for i in range(choose.integer(1, 4)):
        shape = tuple(choose.integer(0, 4) for _ in range(choose.integer(0, 3)))
        arrays[f"p{i}"] = rng.standard_normal(shape).astype(dtype)
    return arrays


OPTIMISERS = {  # name: (class, reference, option strategies)
    "SGD": (optim.SGD, ref_sgd, {
        "lr": st.sampled_from([0.0, 0.01, 0.1, 1.0]),
        "momentum": st.sampled_from([0.0, 0.5, 0.9]),
        "dampening": st.sampled_from([0.0, 0.3]),
        "weight_decay": st.sampled_from([0.0, 0.1])}),
    "Adagrad": (optim.Adagrad, ref_adagrad, {
        "lr": st.sampled_from([0.01, 0.1]),
        "lr_decay": st.sampled_from([0.0, 0.2]),
        "weight_decay": st.sampled_from([0.0, 0.1]),
        "initial_accumulator_value": st.sampled_from([0.0, 0.5]),
        "eps": st.sampled_from([1e-10, 1e-6])}),
    "Adam": (optim.Adam, ref_adam, {
        "lr": st.sampled_from([1e-3, 0.05]),
        "betas": st.sampled_from([(0.9, 0.999), (0.3, 0.9), (0.0, 0.5)]),
        "eps": st.sampled_from([1e-8, 1e-6]),
        "weight_decay": st.sampled_from([0.0, 0.1])}),
    "AdamW": (optim.AdamW, ref_adamw, {
        "lr": st.sampled_from([1e-3, 0.05]),
        "betas": st.sampled_from([(0.9, 0.999), (0.5, 0.99)]),
        "eps": st.sampled_from([1e-8, 1e-6]),
        "weight_decay": st.sampled_from([0.0, 0.01, 0.2])}),
}


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@hypothesis.given(data=st.data())
def test_optimiser_steps_agree_with_numpy(name, dtype, data):
    cls, ref, strategies = OPTIMISERS[name]
    choose = DrawChooser(data.draw)
    rng = np.random.default_rng(choose.integer(0, 2**32 - 1))
    kwargs = {k: data.draw(s, label=k) for k, s in strategies.items()}
    if name == "SGD" and kwargs["momentum"] and kwargs["dampening"] == 0:
        kwargs["nesterov"] = choose.boolean()
    params = draw_arrays(choose, rng, dtype)
    grads_seq = [{k: rng.standard_normal(p.shape).astype(dtype)
                  for k, p in params.items()} for _ in range(choose.integer(1, 4))]
    want = ref(params, grads_seq, **kwargs)
    got = {k: v.copy() for k, v in params.items()}
    arrays = dict(got)
    opt = cls(got, **kwargs)
    for grads in grads_seq:
        opt.step(grads)
    assert opt.step_count == len(grads_seq)
    for k in params:
        assert got[k] is arrays[k] and got[k].dtype == dtype  # updated in place
        assert_close(got[k], want[k], dtype, name=k)


NORM_TYPES = (1.0, 2.0, 3.0, 0.5, math.inf)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@hypothesis.given(data=st.data())
def test_clip_grad_norm_agrees_with_numpy(dtype, data):
    choose = DrawChooser(data.draw)
    rng = np.random.default_rng(choose.integer(0, 2**32 - 1))
    grads = draw_arrays(choose, rng, dtype)
    p = choose.choice(NORM_TYPES)
    norm = float(numpy_norm(grads, p)) if any(g.size for g in grads.values()) else 0.0
    # away from max_norm ≈ norm + 1e-6, where rounding decides whether to clip
    fraction = choose.choice((0.0, 0.1, 0.5, 0.99, 1.0, 1.5, math.inf))
    max_norm = math.inf if fraction == math.inf else fraction * norm
    original = {k: v.copy() for k, v in grads.items()}
    total = optim.clip_grad_norm(grads, max_norm, norm_type=p)
    assert type(total) is float
    assert total == pytest.approx(norm, rel=10 * TOL[np.dtype(dtype)], abs=1e-12)
    coef = max_norm / (norm + 1e-6)
    for k, g in grads.items():
        if coef < 1:
            assert_close(g, original[k].astype(np.float64) * coef, dtype, name=k)
        else:
            np.testing.assert_array_equal(g, original[k], err_msg=k)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@hypothesis.given(data=st.data())
def test_clip_grad_value_agrees_with_numpy(dtype, data):
    choose = DrawChooser(data.draw)
    rng = np.random.default_rng(choose.integer(0, 2**32 - 1))
    grads = draw_arrays(choose, rng, dtype)
    for g in grads.values():
        if g.size and choose.boolean():
            g.flat[rng.integers(g.size)] = choose.choice((np.nan, np.inf, -np.inf))
    clip_value = choose.choice((0.0, 0.1, 0.7, 1.0, 2.5, math.inf))
    want = {k: np.clip(g, -clip_value, clip_value) for k, g in grads.items()}
    optim.clip_grad_value(grads, clip_value)
    for k, g in grads.items():
        np.testing.assert_array_equal(g, want[k], err_msg=k)


BAD_OPTIONS = {
    "lr": (-0.1, math.nan, math.inf, "0.1", None),
    "weight_decay": (-1.0, math.nan, "0"),
    "eps": (-1e-8, math.nan),
}


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
@hypothesis.given(data=st.data())
def test_optimisers_refuse_invalid_arguments_naming_them(name, data):
    cls = OPTIMISERS[name][0]
    choose = DrawChooser(data.draw)
    rng = np.random.default_rng(choose.integer(0, 2**32 - 1))
    params = draw_arrays(choose, rng, choose.choice(DTYPES))
    key = sorted(params)[0]
    breaks = [("options", o) for o in BAD_OPTIONS
              if o != "eps" or name != "SGD"]
    breaks += [("grads", kind) for kind in ("missing", "unknown", "shape", "dtype")]
    what, kind = choose.choice(breaks)
    if what == "options":
        value = choose.choice(BAD_OPTIONS[kind])
        note(f"{name}({kind}={value!r})")
        with pytest.raises((ValueError, TypeError)) as info:
            cls(params, **({"lr": 0.1} if name == "SGD" else {}), **{kind: value})
        names = [kind]
    else:
        opt = cls(params, **({"lr": 0.1} if name == "SGD" else {}))
        before = {k: v.copy() for k, v in params.items()}
        grads = {k: np.zeros_like(v) for k, v in params.items()}
        other = np.float32 if opt.dtype == np.float64 else np.float64
        if kind == "missing":
            del grads[key]
        elif kind == "unknown":
            grads["bogus"] = np.zeros(1, opt.dtype)
        elif kind == "shape":
            grads[key] = np.zeros((*params[key].shape, 1), opt.dtype)
        else:
            grads[key] = grads[key].astype(other)
        names = ["bogus"] if kind == "unknown" else [key]
        note(f"{name}.step({kind} {names})")
        with pytest.raises((ValueError, TypeError)) as info:
            opt.step(grads)
        for k, v in params.items():  # nothing was updated
            np.testing.assert_array_equal(v, before[k], err_msg=k)
        assert opt.step_count == 0
    assert re.search(calls.names_pattern(names), str(info.value)), info.value

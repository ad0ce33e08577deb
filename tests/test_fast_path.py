"""The checks of the common call (plain C-contiguous arrays of one float dtype,
np.intp targets, no h0 or lengths) skip Arguments: they must accept exactly
what Arguments accepts for such calls, give the same results, and leave
every other call, and every error, to the full checks."""
import types

import numpy as np
import pytest

import rnncore
from rnn_util import assert_unchanged, copies, fortran, make_problem
from rnncore import functional


class NoArguments:
    def __init__(self, *args, **kwargs):
        raise AssertionError("the full checks ran")


@pytest.fixture
def no_full_checks(monkeypatch):
    """Fails any call that reaches Arguments."""
    monkeypatch.setattr(functional, "Arguments", NoArguments)


class Subclass(np.ndarray):
    pass


def unaligned(a):
    """A C-contiguous copy of `a` at an address that is not a multiple of
    its itemsize."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out = raw[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


def byteswapped(a):
    return a.astype(a.dtype.newbyteorder())


def slow_variants(params, x, targets):
    """The same values in forms that only the full checks accept."""
    yield "mapping proxy", types.MappingProxyType(params), x, targets
    yield "Fortran x", params, fortran(x), targets
    yield "int32 targets", params, x, targets.astype(np.int32)
    yield "list targets", params, x, targets.tolist()
    yield "strided W_hh", {**params, "W_hh": fortran(params["W_hh"])}, x, targets
    swapped = {**params, "W_hy": byteswapped(params["W_hy"])}
    yield "byte-swapped W_hy", swapped, x, targets
    yield "byte-swapped targets", params, x, byteswapped(targets)
    yield "unaligned x", params, unaligned(x), targets
    yield "unaligned b_y", {**params, "b_y": unaligned(params["b_y"])}, x, targets
    yield "subclass x", params, x.view(Subclass), targets


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (5, 1, 7, 9, 4), (4, 3, 6, 33, 5)])
def test_plain_call_matches_full_checks(rng, dtype, mode, shape):
    params, x, targets, kwargs = make_problem(rng, *shape, dtype=dtype, mode=mode,
                                              ignore_index=1)
    before = copies(x, targets, *params.values())
    loss, grads, h_last = rnncore.loss_and_grads(params, x, targets, **kwargs)
    assert_unchanged(before, [x, targets, *params.values()])
    for name, p, xs, ts in slow_variants(params, x, targets):
        loss2, grads2, h_last2 = rnncore.loss_and_grads(p, xs, ts, **kwargs)
        assert loss2 == loss, name
        np.testing.assert_array_equal(h_last2, h_last, err_msg=name)
        for key in grads:
            assert grads2[key].dtype == grads[key].dtype
            np.testing.assert_array_equal(grads2[key], grads[key], err_msg=name)


def test_plain_calls_skip_full_checks(rng, no_full_checks):
    params, x, targets, _ = make_problem(rng, 3, 2, 4, 5, 3, dtype=np.float32)
    rnncore.loss_and_grads(params, x, targets)
    rnncore.loss_and_grads(params, x, targets[-1], mode="last")
    hs = rnncore.rnn_forward(x, params["W_xh"], params["W_hh"], params["b_h"])
    rnncore.output_layer(hs, params["W_hy"], params["b_y"])
    rnncore.output_layer(hs[-1, 0], params["W_hy"], params["b_y"])
    for _, p, xs, ts in slow_variants(params, x, targets):
        with pytest.raises(AssertionError, match="full checks"):
            rnncore.loss_and_grads(p, xs, ts)
    with pytest.raises(AssertionError, match="full checks"):
        rnncore.loss_and_grads(params, x, targets, h0=np.zeros((2, 5), np.float32))
    with pytest.raises(AssertionError, match="full checks"):
        rnncore.rnn_forward(fortran(x), params["W_xh"], params["W_hh"], params["b_h"])
    with pytest.raises(AssertionError, match="full checks"):
        rnncore.output_layer(unaligned(hs), params["W_hy"], params["b_y"])


@pytest.mark.parametrize("bad", [-1, 3, 10**6, -100 + 1])
def test_plain_targets_out_of_range(rng, bad):
    params, x, targets, _ = make_problem(rng, 3, 2, 4, 5, 3)
    targets = targets.astype(np.intp)
    targets[1, 1] = bad
    with pytest.raises(ValueError, match=rf"targets must lie in \[0, C\).*got {bad}"):
        rnncore.loss_and_grads(params, x, targets)
    targets[1, 1] = -100  # the default ignore_index is in range
    rnncore.loss_and_grads(params, x, targets)


@pytest.mark.parametrize("dtype", [np.uint64, np.uint32, np.int8])
def test_unsigned_targets_do_not_wrap_onto_ignore_index(rng, dtype):
    """2**64 - 100 as np.intp would be -100, the default ignore_index."""
    params, x, targets, _ = make_problem(rng, 3, 2, 4, 5, 3)
    bad = targets.astype(dtype)
    bad[0, 0] = np.iinfo(dtype).max - 99 if dtype == np.uint64 else np.iinfo(dtype).max
    with pytest.raises(ValueError, match="targets must lie in"):
        rnncore.loss_and_grads(params, x, bad)


def test_ignore_index_beyond_intp(rng):
    params, x, targets, _ = make_problem(rng, 3, 2, 4, 5, 3)
    with pytest.raises(ValueError, match="ignore_index must lie in"):
        rnncore.loss_and_grads(params, x, targets, ignore_index=2**70)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plain_forward_matches_full_checks(rng, dtype):
    params, x, _, _ = make_problem(rng, 6, 3, 5, 40, 2, dtype=dtype)
    W_xh, W_hh, b_h = params["W_xh"], params["W_hh"], params["b_h"]
    hs = rnncore.rnn_forward(x, W_xh, W_hh, b_h)
    np.testing.assert_array_equal(
        rnncore.rnn_forward(fortran(x), W_xh, fortran(W_hh), memoryview(b_h)), hs)
    np.testing.assert_array_equal(
        rnncore.rnn_forward(unaligned(x), byteswapped(W_xh), W_hh.view(Subclass),
                            b_h), hs)
    # a zero initial state given explicitly takes the full checks
    np.testing.assert_array_equal(
        rnncore.rnn_forward(x, W_xh, W_hh, b_h, h0=np.zeros((3, 40), dtype)), hs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead", [(), (4,), (3, 2)])
def test_plain_output_layer_matches_full_checks(rng, dtype, lead):
    hs = rng.standard_normal((*lead, 7)).astype(dtype)
    W_hy = rng.standard_normal((5, 7)).astype(dtype)
    b_y = rng.standard_normal(5).astype(dtype)
    logits = rnncore.output_layer(hs, W_hy, b_y)
    assert logits.shape == (*lead, 5)
    for name, args in [("Fortran W_hy", (hs, fortran(W_hy), b_y)),
                       ("unaligned hs", (unaligned(hs), W_hy, b_y)),
                       ("byte-swapped b_y", (hs, W_hy, byteswapped(b_y))),
                       ("subclass W_hy", (hs, W_hy.view(Subclass), b_y))]:
        got = rnncore.output_layer(*args)
        assert type(got) is np.ndarray and got.dtype == dtype, name
        np.testing.assert_array_equal(got, logits, err_msg=name)


@pytest.mark.parametrize("shape", [(0, 2, 3), (2, 0, 3), (2, 2, 0)])
def test_empty_sizes_take_full_checks(rng, shape):
    """A size of 0 is the full checks' to refuse or to handle."""
    T, B, D = shape
    H, C = 4, 3
    params = {k: v.astype(np.float32) for k, v in
              make_problem(rng, 1, 1, D, H, C)[0].items()}
    x = np.zeros((T, B, D), np.float32)
    targets = np.zeros((T, B), np.intp)
    if T == 0:
        with pytest.raises(ValueError, match="T, the number of time steps"):
            rnncore.loss_and_grads(params, x, targets)
    else:
        loss, grads, _ = rnncore.loss_and_grads(params, x, targets)
        assert np.isfinite(loss)
        assert grads["W_xh"].shape == (H, D)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (5, 1, 7, 9, 4), (4, 3, 6, 33, 5)])
def test_plain_model_step_matches_full_checks(rng, monkeypatch, dtype, mode, shape):
    """A one-layer model's loss_and_grads takes rnncore.loss_and_grads' path
    on plain arrays, with the bits and keys of its own full checks."""
    from rnncore import model as model_module
    T, B, D, H, C = shape
    m = rnncore.RNN(D, H, C, dtype=dtype, seed=3)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    targets = rng.integers(0, C, (T, B) if mode == "seq" else (B,))
    with monkeypatch.context() as patch:
        patch.setattr(model_module, "Arguments", NoArguments)
        patch.setattr(functional, "Arguments", NoArguments)
        loss, grads, h_n = m.loss_and_grads(x, targets, mode=mode)
    for name, xs, ts in [("Fortran x", fortran(x), targets),
                         ("int32 targets", x, targets.astype(np.int32)),
                         ("unaligned x", unaligned(x), targets)]:
        loss2, grads2, h_n2 = m.loss_and_grads(xs, ts, mode=mode)
        assert loss2 == loss, name
        assert list(grads2) == list(grads) == list(m.params), name
        for key in grads:
            np.testing.assert_array_equal(grads2[key], grads[key], err_msg=name)
        assert h_n.shape == h_n2.shape == (1, B, H)
        np.testing.assert_array_equal(h_n2, h_n, err_msg=name)


def test_model_calls_that_need_full_checks_take_them(rng, monkeypatch):
    """Another dtype, h0, a stack, two directions: never the plain path."""
    from rnncore import model as model_module
    monkeypatch.setattr(model_module, "Arguments", NoArguments)
    m = rnncore.RNN(3, 4, 2, seed=0)
    x = rng.standard_normal((2, 1, 3)).astype(np.float32)
    targets = np.zeros((2, 1), np.intp)
    m.loss_and_grads(x, targets)
    calls = [lambda: m.loss_and_grads(x.astype(np.float64), targets),
             lambda: m.loss_and_grads(x, targets, h0=np.zeros((1, 1, 4))),
             lambda: rnncore.RNN(3, 4, 2, num_layers=2).loss_and_grads(x, targets),
             lambda: rnncore.RNN(3, 4, 2, bidirectional=True).loss_and_grads(
                 x, targets)]
    for call in calls:
        with pytest.raises(AssertionError, match="full checks"):
            call()
    monkeypatch.undo()
    # a replaced parameter of another dtype is named, not computed with
    m.params["W_hh_l0"] = m.params["W_hh_l0"].astype(np.float64)
    with pytest.raises(ValueError, match=r"params\['W_hh_l0'\] must be"):
        m.loss_and_grads(x, targets)


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (1, True)])
@pytest.mark.parametrize("mode", ["seq", "last"])
def test_plain_model_forward_matches_full_checks(rng, monkeypatch, layers,
                                                 bidirectional, mode):
    from rnncore import model as model_module
    m = rnncore.RNN(5, 7, 3, num_layers=layers, bidirectional=bidirectional, seed=1)
    x = rng.standard_normal((70, 2, 5)).astype(np.float32)  # two chunks
    with monkeypatch.context() as patch:
        patch.setattr(model_module, "Arguments", NoArguments)
        logits, h_n = m.forward(x, mode=mode, return_state=True)
    for name, xs in [("Fortran x", fortran(x)), ("unaligned x", unaligned(x)),
                     ("float64 x", x.astype(np.float64))]:
        logits2, h_n2 = m.forward(xs, mode=mode, return_state=True)
        np.testing.assert_array_equal(logits2, logits, err_msg=name)
        np.testing.assert_array_equal(h_n2, h_n, err_msg=name)
    # a replaced parameter is still checked on the plain path
    m.params["W_hy"] = m.params["W_hy"][:, :-1]
    with pytest.raises(ValueError, match=r"params\['W_hy'\] must be"):
        m.forward(x, mode=mode)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plain_stream_step_matches_full_checks(rng, monkeypatch, layers, dtype):
    """step() on np.intp ids or plain floats, with the state carried, takes
    no Arguments and gives the bits of the inputs that need them."""
    from rnncore import model as model_module
    m = rnncore.RNN(6, 5, 4, num_layers=layers, dtype=dtype, seed=2)
    ids = rng.integers(0, 6, (8, 3))
    feats = rng.standard_normal((8, 3, 6)).astype(dtype)
    for plain, slow in [(ids, ids.astype(np.int32)),
                        (feats, [fortran(f) for f in feats])]:
        h_fast = h_slow = None
        for t in range(len(ids)):
            with monkeypatch.context() as patch:
                patch.setattr(model_module, "Arguments", NoArguments)
                y_fast, h_new = m.step(plain[t], h_fast)
            assert h_new is not h_fast
            h_fast = h_new
            y_slow, h_slow = m.step(slow[t], h_slow)
            np.testing.assert_array_equal(y_fast, y_slow)
            np.testing.assert_array_equal(h_fast, h_slow)
    before = h_fast.copy()
    m.step(ids[0], h_fast)
    np.testing.assert_array_equal(h_fast, before)  # the state is not modified


def test_model_step_errors_take_the_full_checks():
    m = rnncore.RNN(6, 5, 4, seed=2)
    with pytest.raises(ValueError, match=r"must lie in .* got values in \[1, 6\]"):
        m.step(np.array([1, 6]))
    with pytest.raises(ValueError, match=r"token ids in x must lie"):
        m.step(np.array([-1]))
    with pytest.raises(ValueError, match="h must have shape"):
        m.step(np.array([1, 2]), np.zeros((2, 2, 5), np.float32))
    with pytest.raises(ValueError, match="x must have 6 features"):
        m.step(np.zeros((2, 5), np.float32))
    # another dtype of state is converted, as before
    y, h = m.step(np.array([1, 2]), np.zeros((1, 2, 5)))
    assert h.dtype == np.float32 and y.shape == (2, 4)

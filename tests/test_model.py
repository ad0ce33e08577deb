"""rnncore.RNN: stacked and bidirectional models, both modes, inference
path, streaming steps, truncated BPTT and input checking."""

import numpy as np
import pytest

import reference
import rnncore
from rnn_util import assert_close, central_diff, random_lengths, rel_err

CONFIGS = [  # num_layers, bidirectional
    pytest.param(1, False, id="1layer"),
    pytest.param(2, False, id="2layers"),
    pytest.param(1, True, id="1layer-bi"),
    pytest.param(2, True, id="2layers-bi"),
]


def problem(rng, num_layers, bidirectional, mode, T=5, B=4, D=3, H=4, C=3,
            dtype="float64", with_lengths=True, with_h0=True):
    model = rnncore.RNN(D, H, C, num_layers=num_layers,
                        bidirectional=bidirectional, dtype=dtype,
                        seed=int(rng.integers(2**31)))
    for v in model.params.values():  # larger weights: a harder check
        v *= 2
    x = rng.standard_normal((T, B, D)).astype(dtype)
    targets = rng.integers(0, C, size=(T, B) if mode == "seq" else (B,))
    kw = {"mode": mode}
    if with_lengths:
        kw["lengths"] = random_lengths(rng, T, B)
    if with_h0:
        S = num_layers * (2 if bidirectional else 1)
        kw["h0"] = (0.8 * rng.uniform(-1, 1, (S, B, H))).astype(dtype)
    return model, x, targets, kw


@pytest.mark.parametrize("num_layers, bidirectional", CONFIGS)
@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradients_match_finite_differences(rng, num_layers, bidirectional, mode,
                                            with_lengths):
    model, x, targets, kw = problem(rng, num_layers, bidirectional, mode,
                                    with_lengths=with_lengths)
    _loss, grads, _ = model.loss_and_grads(x, targets, **kw)
    assert set(grads) == set(model.params)
    for name, p in model.params.items():
        fd = central_diff(lambda: model.loss_and_grads(x, targets, **kw)[0], p)
        assert grads[name].shape == p.shape
        assert rel_err(grads[name], fd) < 1e-7, name


@pytest.mark.parametrize("num_layers, bidirectional", CONFIGS)
@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_forward_and_states_match_reference(rng, num_layers, bidirectional,
                                                 mode, dtype):
    model, x, targets, kw = problem(rng, num_layers, bidirectional, mode,
                                    dtype=dtype)
    loss, _, h_n = model.loss_and_grads(x, targets, **kw)
    top, want_h_n = reference.stacked(model.params, x, num_layers, bidirectional,
                                      kw["h0"], kw["lengths"])
    want_loss = reference.stacked_loss(model.params, x, targets, num_layers,
                                       bidirectional, mode, kw["h0"], kw["lengths"])
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert loss == pytest.approx(want_loss, rel=tol)
    assert_close(h_n, want_h_n, tol=tol)

    logits, h_n2 = model.forward(x, mode=mode, h0=kw["h0"], lengths=kw["lengths"],
                                 return_state=True)
    nd = 2 if bidirectional else 1
    feats = top if mode == "seq" else np.concatenate(list(want_h_n[-nd:]), axis=1)
    want_logits = (feats @ model.params["W_hy"].T.astype(np.float64)
                   + model.params["b_y"])
    assert logits.dtype == np.dtype(dtype)
    assert_close(logits, want_logits, tol=tol)
    assert_close(h_n2, want_h_n, tol=tol)
    probs = model.predict_proba(x, mode=mode, h0=kw["h0"], lengths=kw["lengths"])
    np.testing.assert_allclose(probs.sum(-1), 1, rtol=tol * 10)
    np.testing.assert_array_equal(
        model.predict(x, mode=mode, h0=kw["h0"], lengths=kw["lengths"]),
        np.argmax(logits, axis=-1))


@pytest.mark.parametrize("num_layers, bidirectional", [
    pytest.param(2, False, id="2layers"), pytest.param(3, False, id="3layers"),
    pytest.param(2, True, id="2layers-bi")])
# rows of the output layer (T·B in mode "seq", B in "last") over several
# blocks of _output.OUTPUT_BLOCK_ROWS = 512, and in mode "seq" over the
# chunks of the top layer's backward pass, which runs the output layer of
# one direction as it reaches each chunk; every third target ignored; the
# second step with initial states and another ignore_index
@pytest.mark.parametrize("mode, T, B", [("seq", 40, 30), ("last", 3, 1100)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stacked_training_step_over_chunks_and_blocks(rng, num_layers,
                                                      bidirectional, mode, T,
                                                      B, dtype):
    from rnncore._workspace import Workspace

    model, _, _, _ = problem(rng, num_layers, bidirectional, mode, T=T, B=B,
                             D=3, H=6, C=5, dtype=dtype, with_lengths=False,
                             with_h0=False)
    S = num_layers * model.num_directions
    ws = Workspace()  # a training loop's: the second step reuses the first's
    for h0, ignore_index in ((None, -100),
                             (rng.uniform(-1, 1, (S, B, 6)).astype(dtype), 0)):
        x = rng.standard_normal((T, B, 3)).astype(dtype)
        targets = rng.integers(0, 5, size=(T, B) if mode == "seq" else (B,))
        targets.reshape(-1)[::3] = ignore_index
        lengths = random_lengths(rng, T, B)
        loss, grads, h_n = model._train_step(x, targets, mode, h0, lengths,
                                             ignore_index, ws)
        want_loss, want_grads, want_h_n = reference.stacked_loss_and_grads(
            model.params, x, targets, num_layers, bidirectional, mode, h0,
            lengths, ignore_index)
        tol = 1e-5 if dtype == "float32" else 1e-12
        assert loss == pytest.approx(want_loss, rel=tol)
        assert_close(h_n, want_h_n, dtype, name="h_n")
        assert set(grads) == set(want_grads)
        for name, want in want_grads.items():
            assert_close(grads[name], want, dtype, name=name)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", ["seq", "last"])
def test_inference_runs_long_sequences_in_chunks(rng, bidirectional, mode):
    # T spans several chunks of the inference path, lengths end mid-chunk
    T, B = 2 * rnncore.model.CHUNK + 17, 3
    model = rnncore.RNN(3, 5, 4, num_layers=2, bidirectional=bidirectional,
                        dtype="float64", seed=3)
    x = rng.standard_normal((T, B, 3))
    lengths = np.array([T, rnncore.model.CHUNK + 5, 7])
    targets = np.zeros((T, B) if mode == "seq" else B, dtype=int)
    _, _, h_n = model.loss_and_grads(x, targets, mode=mode, lengths=lengths)
    logits, h_n2 = model.forward(x, mode=mode, lengths=lengths, return_state=True)
    np.testing.assert_allclose(h_n2, h_n, rtol=1e-12, atol=1e-13)
    top, _ = reference.stacked(model.params, x, 2, bidirectional, None, lengths)
    if mode == "seq":
        want = top @ model.params["W_hy"].T + model.params["b_y"]
        np.testing.assert_allclose(logits, want, rtol=1e-10, atol=1e-12)


def test_step_streams_the_same_states_as_forward(rng):
    model = rnncore.RNN(4, 6, 5, num_layers=2, dtype="float64", seed=0)
    x = rng.standard_normal((9, 3, 4))
    h0 = rng.uniform(-1, 1, (2, 3, 6))
    logits, h_n = model.forward(x, h0=h0, return_state=True)
    h = h0.copy()
    for t in range(9):
        y, h_new = model.step(x[t], h)
        np.testing.assert_allclose(y, logits[t], rtol=1e-12, atol=1e-13)
        assert h_new is not h
        h = h_new
    np.testing.assert_allclose(h, h_n, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(h0, h0.copy())
    with pytest.raises(ValueError, match="unidirectional"):
        rnncore.RNN(4, 6, 5, bidirectional=True).step(x[0])


def test_step_does_not_modify_its_state_argument(rng):
    model = rnncore.RNN(4, 6, 5, dtype="float64", seed=0)
    h = rng.uniform(-1, 1, (1, 2, 6))
    before = h.copy()
    model.step(rng.standard_normal((2, 4)), h)
    np.testing.assert_array_equal(h, before)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_truncated_bptt_first_chunk_equals_full_bptt_of_that_chunk(rng, bidirectional):
    model = rnncore.RNN(3, 5, 4, num_layers=2, bidirectional=bidirectional,
                        dtype="float64", seed=1)
    x = rng.standard_normal((12, 2, 3))
    targets = rng.integers(0, 4, (12, 2))
    _loss_a, grads_a, h_a = model.loss_and_grads(x[:6], targets[:6])
    # the first chunk alone is exactly full BPTT over those six steps
    for name, p in model.params.items():
        fd = central_diff(lambda: model.loss_and_grads(x[:6], targets[:6])[0], p)
        assert rel_err(grads_a[name], fd) < 1e-7, name
    if not bidirectional:
        # the carried state continues the sequence: chunked states = full run
        _, _, h_b = model.loss_and_grads(x[6:], targets[6:], h0=h_a)
        _, h_full = model.forward(x, return_state=True)
        np.testing.assert_allclose(h_b, h_full, rtol=1e-12, atol=1e-13)


def test_token_ids_are_one_hot_inputs(rng):
    model = rnncore.RNN(7, 5, 7, dtype="float64", seed=2)
    ids = rng.integers(0, 7, (6, 3))
    onehot = np.eye(7)[ids]
    np.testing.assert_array_equal(model.forward(ids), model.forward(onehot))
    la, ga, _ = model.loss_and_grads(ids, ids)
    lb, gb, _ = model.loss_and_grads(onehot, ids)
    assert la == lb
    for k in ga:
        np.testing.assert_array_equal(ga[k], gb[k])
    with pytest.raises(ValueError, match="input_size"):
        model.forward(np.full((2, 2), 7))


def test_inputs_are_not_modified_and_float64_inputs_follow_the_model_dtype(rng):
    model = rnncore.RNN(3, 4, 2, num_layers=2, bidirectional=True, seed=0)
    x = rng.standard_normal((5, 2, 3))
    x[4, 1] = np.nan  # padding: never read
    lengths = np.array([5, 4])
    targets = rng.integers(0, 2, (5, 2))
    before = [x.copy(), lengths.copy(), targets.copy()]
    params_before = {k: v.copy() for k, v in model.params.items()}
    loss, grads, _h_n = model.loss_and_grads(x, targets, lengths=lengths)
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())
    assert all(g.dtype == np.float32 for g in grads.values())
    for b, a in zip(before, [x, lengths, targets], strict=True):
        np.testing.assert_array_equal(a, b)
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, params_before[k])


def test_initialisation(rng):
    a = rnncore.RNN(5, 8, 3, num_layers=2, bidirectional=True, seed=7)
    b = rnncore.RNN(5, 8, 3, num_layers=2, bidirectional=True, seed=7)
    c = rnncore.RNN(5, 8, 3, num_layers=2, bidirectional=True, seed=8)
    assert list(a.params) == list(a.param_shapes())
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
        assert a.params[k].dtype == np.float32 and a.params[k].flags.c_contiguous
    assert not np.array_equal(a.params["W_hh_l0"], c.params["W_hh_l0"])
    assert a.params["W_xh_l1"].shape == (8, 16) and a.params["W_hy"].shape == (3, 16)
    bound = 1 / np.sqrt(8)
    assert all(np.abs(a.params[k]).max() <= bound for k in a.params if "_l" in k)
    assert np.abs(a.params["W_hy"]).max() <= 1 / np.sqrt(16)

    o = rnncore.RNN(5, 8, 3, dtype="float64", recurrent_init="orthogonal",
                    input_init="xavier", seed=1)
    W = o.params["W_hh_l0"]
    np.testing.assert_allclose(W @ W.T, np.eye(8), atol=1e-12)
    assert np.abs(o.params["W_xh_l0"]).max() <= np.sqrt(6 / (5 + 8))
    assert np.abs(o.params["W_xh_l0"]).max() > bound  # not the default bound


@pytest.mark.parametrize("kwargs, error, match", [
    ({"input_size": 0}, ValueError, "input_size"),
    ({"hidden_size": 2.5}, TypeError, "hidden_size"),
    ({"num_layers": 0}, ValueError, "num_layers"),
    ({"dtype": "float16"}, TypeError, "dtype"),
    ({"dtype": "nonsense"}, TypeError, "dtype"),
    ({"bidirectional": "yes"}, TypeError, "bidirectional"),
    ({"input_init": "zeros"}, ValueError, "input_init"),
    ({"recurrent_init": "xavier"}, ValueError, "recurrent_init"),
])
def test_constructor_errors(kwargs, error, match):
    args = {"input_size": 3, "hidden_size": 4, "output_size": 2, **kwargs}
    with pytest.raises(error, match=match):
        rnncore.RNN(args.pop("input_size"), args.pop("hidden_size"),
                    args.pop("output_size"), **args)


def test_call_errors(rng):
    model = rnncore.RNN(3, 4, 2, num_layers=2)
    x = rng.standard_normal((5, 2, 3))
    t = np.zeros((5, 2), dtype=int)
    with pytest.raises(ValueError, match="input_size"):
        model.forward(rng.standard_normal((5, 2, 4)))
    with pytest.raises(ValueError, match="h0"):
        model.forward(x, h0=np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="h0"):
        model.forward(x, h0=np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="mode"):
        model.loss_and_grads(x, t, mode="all")
    for mode in (np.array(["seq", "last"]), np.array("seq"), ["seq"]):
        with pytest.raises(ValueError, match="mode"):
            model.forward(x, mode=mode)
    with pytest.raises(ValueError, match="targets"):
        model.loss_and_grads(x, t + 2)
    with pytest.raises(ValueError, match="targets"):
        model.loss_and_grads(x, t, mode="last")
    with pytest.raises(ValueError, match="lengths"):
        model.forward(x, lengths=[0, 5])
    with pytest.raises(TypeError, match="x"):
        model.forward(x.astype(np.complex64))
    with pytest.raises(TypeError, match="x"):
        model.forward(None)
    with pytest.raises(ValueError, match="x could not be converted"):
        model.forward([[[1.0, 2.0, 3.0]], [[3.0]]])
    with pytest.raises(TypeError, match="x must not be a masked array"):
        model.forward(np.ma.masked_array(x, mask=x > 0))
    with pytest.raises(ValueError, match="h0 could not be converted"):
        model.forward(x, h0=[[1.0], [2.0, 3.0]])
    with pytest.raises(ValueError, match="h"):
        model.step(x[0], np.zeros((1, 2, 4)))
    model.params["W_hh_l1"] = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="W_hh_l1"):
        model.forward(x)


@pytest.mark.parametrize("num_layers, bidirectional", CONFIGS)
@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients_match_torch_autograd(rng, num_layers, bidirectional, mode, dtype):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    model, x, targets, kw = problem(rng, num_layers, bidirectional, mode, T=6, B=5,
                                    D=4, H=7, C=5, dtype=dtype)
    loss, grads, h_n = model.loss_and_grads(x, targets, **kw)

    rnn, linear = rnncore.to_torch(model)
    T = x.shape[0]
    packed = pack_padded_sequence(torch.from_numpy(x), torch.as_tensor(kw["lengths"]),
                                  enforce_sorted=False)
    out, t_h_n = rnn(packed, torch.from_numpy(kw["h0"]))
    if mode == "seq":
        out, _ = pad_packed_sequence(out, total_length=T)
        t_targets = np.where(np.arange(T)[:, None] >= kw["lengths"], -100, targets)
        t_loss = torch.nn.functional.cross_entropy(
            linear(out).reshape(-1, model.output_size),
            torch.as_tensor(t_targets).reshape(-1))
    else:
        nd = model.num_directions
        feats = torch.cat([t_h_n[-nd + d] for d in range(nd)], dim=1)
        t_loss = torch.nn.functional.cross_entropy(linear(feats),
                                                   torch.as_tensor(targets))
    t_loss.backward()
    tol = 1e-4 if dtype == "float32" else 1e-10
    assert loss == pytest.approx(t_loss.item(), rel=tol)
    assert_close(h_n, t_h_n.detach().numpy().astype(np.float64), tol=tol)
    torch_grads = {"W_hy": linear.weight.grad, "b_y": linear.bias.grad}
    for k in range(num_layers):
        for d in range(model.num_directions):
            s = f"_l{k}" + ("_reverse" if d else "")
            torch_grads["W_xh" + s] = getattr(rnn, "weight_ih" + s).grad
            torch_grads["W_hh" + s] = getattr(rnn, "weight_hh" + s).grad
            torch_grads["b_h" + s] = getattr(rnn, "bias_ih" + s).grad
    assert set(torch_grads) == set(grads)
    for name, g in torch_grads.items():
        assert_close(grads[name], g.numpy().astype(np.float64), tol=tol, name=name)


def test_inference_memory_does_not_grow_with_sequence_length(rng):
    import tracemalloc

    T, B, H = 4000, 4, 32
    model = rnncore.RNN(8, H, 3, num_layers=2, seed=0)
    x = rng.standard_normal((T, B, 8)).astype(np.float32)
    model.forward(x[:10], mode="last")  # warm-up
    tracemalloc.start()
    logits = model.forward(x, mode="last")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert logits.shape == (B, 3)
    all_states = T * B * H * 4  # what keeping one layer's activations would take
    assert peak < all_states / 10, (peak, all_states)


BLAS_INT_MAX = 2**31 - 1


@pytest.mark.parametrize("kwargs, match", [
    ({"input_size": 2**31}, "input_size"),
    ({"input_size": 2**63 - 1}, "input_size"),
    ({"hidden_size": 2**31}, "hidden_size"),
    ({"output_size": 2**31}, "output_size"),
    # each size fits, but the next layer and the output layer read 2·H features
    ({"hidden_size": 2**30, "bidirectional": True}, "num_directions \\* hidden_size"),
    # each dimension fits a BLAS int, the matrices do not fit the address space
    ({"input_size": BLAS_INT_MAX, "hidden_size": BLAS_INT_MAX}, "input_size"),
    ({"hidden_size": 2**30}, "hidden_size"),
    ({"hidden_size": 2**29, "output_size": 2**31 - 1, "bidirectional": True},
     "output_size"),
    ({"hidden_size": 3 * 2**28, "num_layers": 2, "bidirectional": True},
     "W_xh_l1 \\(hidden_size, num_directions \\* hidden_size\\)"),
    ({"num_layers": 2**61}, "num_layers"),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_constructor_refuses_huge_sizes_before_allocating(kwargs, match, dtype):
    import tracemalloc

    args = {"input_size": 3, "hidden_size": 4, "output_size": 2, **kwargs}
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            rnncore.RNN(args.pop("input_size"), args.pop("hidden_size"),
                        args.pop("output_size"), dtype=dtype, **args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, peak  # no parameter was allocated


def test_constructor_accepts_the_largest_blas_dimension():
    """Sizes up to the limit are the memory's business, not refused."""
    model = rnncore.RNN(3, 2, BLAS_INT_MAX // 2**16, dtype="float32", seed=0)
    assert model.params["W_hy"].shape == (BLAS_INT_MAX // 2**16, 2)
    with pytest.raises(MemoryError):
        rnncore.RNN(BLAS_INT_MAX, 2**16, 2)  # 2**47 bytes, within the address space


def huge_token_model(monkeypatch, input_size):
    """A model configured for ``input_size`` classes of tokens without its
    weights (those alone would take gigabytes): the token checks run first
    and never get to them."""
    model = rnncore.RNN(3, 2, 2, dtype="float64", seed=0)
    monkeypatch.setattr(model, "input_size", input_size)
    monkeypatch.setattr(model, "_check_params", lambda: None)
    return model


def zeros(*shape):
    """Zeros of any shape as a zero-stride view: nothing is allocated."""
    return np.broadcast_to(np.intp(0), shape)


# (T, B) ids with T·B within the BLAS limit but T·B·input_size·8 bytes beyond
# the address space, and the (B,) ids of one step
@pytest.mark.parametrize("call", [
    lambda m: m.forward(zeros(4, 2**29 - 1)),
    lambda m: m.predict(zeros(4, 2**29 - 1), mode="last"),
    lambda m: m.loss_and_grads(zeros(4, 2**29 - 1), zeros(2**29 - 1), mode="last"),
    lambda m: m.step(zeros(2**30)),
], ids=["forward", "predict", "loss_and_grads", "step"])
def test_token_ids_refuse_one_hot_beyond_the_address_space(monkeypatch, call):
    import tracemalloc

    model = huge_token_model(monkeypatch, BLAS_INT_MAX)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"input_size.*address space"):
            call(model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, peak

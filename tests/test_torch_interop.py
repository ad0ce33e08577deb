"""Models to and from PyTorch's nn.RNN + nn.Linear (skipped without torch,
except the check that rnncore needs no torch for NumPy state dicts)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnncore

TOL = {np.float32: 2e-5, np.float64: 1e-12}
ARCHS = [  # num_layers, bidirectional
    pytest.param(1, False, id="1layer"),
    pytest.param(2, False, id="2layers"),
    pytest.param(1, True, id="bidir"),
    pytest.param(2, True, id="bidir-2layers"),
]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_modules(torch, rng, D, H, C, num_layers=1, bidirectional=False, bias=True,
                  dtype=np.float32, **kwargs):
    """nn.RNN + nn.Linear with PyTorch's own random initialisation (so both
    biases are non-zero), seeded from ``rng``."""
    torch.manual_seed(int(rng.integers(2**31)))
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    rnn = torch.nn.RNN(D, H, num_layers, bias=bias, bidirectional=bidirectional,
                       dtype=tdt, **kwargs)
    linear = torch.nn.Linear(H * (2 if bidirectional else 1), C, dtype=tdt)
    return rnn, linear


def torch_forward(torch, rnn, linear, x, mode, h0=None, lengths=None):
    """PyTorch's logits and h_n; lengths through a packed sequence."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    T = x.shape[0]
    nd = 2 if rnn.bidirectional else 1
    with torch.no_grad():
        xt = torch.from_numpy(x)
        h0t = None if h0 is None else torch.from_numpy(h0)
        if lengths is None:
            out, h_n = rnn(xt, h0t)
        else:
            packed = pack_padded_sequence(xt, torch.from_numpy(lengths),
                                          enforce_sorted=False)
            out, h_n = rnn(packed, h0t)
            out, _ = pad_packed_sequence(out, total_length=T)
        feats = out if mode == "seq" else torch.cat(list(h_n[-nd:]), dim=1)
        return linear(feats).numpy(), h_n.numpy()


def random_inputs(rng, model, T=6, B=4):
    dt = model.dtype
    x = rng.standard_normal((T, B, model.input_size)).astype(dt)
    h0 = rng.standard_normal((model.num_layers * model.num_directions, B,
                              model.hidden_size)).astype(dt)
    lengths = rng.integers(1, T + 1, B)
    lengths[0], lengths[1] = T, 1  # both ends, unsorted
    return x, h0, lengths


def assert_close(got, want, dtype):
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])


# ---- from PyTorch -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_layers,bidirectional", ARCHS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("packed", [False, True], ids=["full", "lengths-h0"])
def test_from_torch_matches_torch(torch, rng, dtype, num_layers, bidirectional, bias,
                                  mode, packed):
    rnn, linear = torch_modules(torch, rng, 3, 5, 4, num_layers, bidirectional, bias,
                                dtype)
    model = rnncore.from_torch(rnn, linear)
    assert model.config == dict(input_size=3, hidden_size=5, output_size=4,
                                num_layers=num_layers, bidirectional=bidirectional,
                                dtype=np.dtype(dtype).name, input_init="uniform",
                                recurrent_init="uniform")
    x, h0, lengths = random_inputs(rng, model)
    kw = {"h0": h0, "lengths": lengths} if packed else {}
    logits, h_n = model.forward(x, mode=mode, return_state=True, **kw)
    want_logits, want_h_n = torch_forward(torch, rnn, linear, x, mode, **kw)
    assert logits.dtype == dtype
    assert_close(logits, want_logits, dtype)
    assert_close(h_n, want_h_n, dtype)


def test_batch_first_does_not_change_the_weights(torch, rng):
    rnn, linear = torch_modules(torch, rng, 3, 5, 4, 2, True, batch_first=True)
    model = rnncore.RNN.from_torch(rnn, linear)
    x, _, _ = random_inputs(rng, model)
    with torch.no_grad():
        out, _ = rnn(torch.from_numpy(x.transpose(1, 0, 2).copy()))
        want = linear(out).numpy().transpose(1, 0, 2)
    assert_close(model.forward(x), want, np.float32)


def test_biases_sum_into_b_h(torch, rng):
    rnn, linear = torch_modules(torch, rng, 2, 3, 2, 2, True)
    model = rnncore.from_torch(rnn, linear)
    sd = rnn.state_dict()
    for s in ("_l0", "_l1_reverse"):
        want = sd["bias_ih" + s].numpy() + sd["bias_hh" + s].numpy()
        assert np.all(sd["bias_hh" + s].numpy() != 0)
        assert np.array_equal(model.params["b_h" + s], want)
    assert np.array_equal(model.params["W_hy"], linear.weight.detach().numpy())


def test_numpy_state_dicts_give_the_same_model(torch, rng):
    rnn, linear = torch_modules(torch, rng, 3, 4, 5, 2, True, dtype=np.float64)
    from_modules = rnncore.from_torch(rnn, linear)
    from_tensors = rnncore.from_torch(rnn.state_dict(), linear.state_dict())
    from_numpy = rnncore.from_torch(
        {k: v.numpy() for k, v in rnn.state_dict().items()},
        {k: v.numpy() for k, v in linear.state_dict().items()})
    for other in (from_tensors, from_numpy):
        assert other.config == from_modules.config
        for name, value in from_modules.params.items():
            assert np.array_equal(other.params[name], value)


def test_imported_params_are_copies(torch, rng):
    rnn, linear = torch_modules(torch, rng, 2, 3, 2)
    model = rnncore.from_torch(rnn, linear)
    before = {k: v.copy() for k, v in model.params.items()}
    with torch.no_grad():
        for p in list(rnn.parameters()) + list(linear.parameters()):
            p.add_(1.0)
    assert all(np.array_equal(model.params[k], before[k]) for k in before)


def test_new_output_layer(torch, rng):
    rnn, _ = torch_modules(torch, rng, 3, 4, 2, 1, True)
    a = rnncore.from_torch(rnn, output_size=7, seed=3)
    b = rnncore.from_torch(rnn, output_size=7, seed=3)
    assert a.params["W_hy"].shape == (7, 8) and a.params["b_y"].shape == (7,)
    assert np.array_equal(a.params["W_hy"], b.params["W_hy"])
    assert np.array_equal(a.params["W_hh_l0_reverse"],
                          rnn.weight_hh_l0_reverse.detach().numpy())


def test_dtypes(torch, rng):
    rnn, linear = torch_modules(torch, rng, 2, 3, 2)
    half = rnncore.from_torch(rnn.half(), linear.to(torch.bfloat16))
    assert half.dtype == np.float32  # widened exactly
    assert np.array_equal(half.params["W_hh_l0"],
                          rnn.weight_hh_l0.detach().float().numpy())

    rnn, linear = torch_modules(torch, rng, 2, 3, 2, dtype=np.float64)
    mixed = rnncore.from_torch(rnn, linear.float())
    assert mixed.dtype == np.float64
    narrowed = rnncore.from_torch(rnn, linear, dtype="float32")
    assert narrowed.dtype == np.float32
    assert np.array_equal(narrowed.params["W_xh_l0"],
                          rnn.weight_ih_l0.detach().numpy().astype(np.float32))


# ---- refusals -------------------------------------------------------------------

def test_refuses_other_recurrences(torch):
    linear = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="relu"):
        rnncore.from_torch(torch.nn.RNN(2, 3, nonlinearity="relu"), linear)
    for module in (torch.nn.LSTM(2, 3), torch.nn.GRU(2, 3)):
        with pytest.raises(TypeError, match=type(module).__name__):
            rnncore.from_torch(module, linear)
    with pytest.raises(TypeError, match=r"torch\.nn\.RNN"):
        rnncore.from_torch(torch.nn.Linear(2, 3), linear)
    with pytest.raises(TypeError, match=r"torch\.nn\.Linear"):
        rnncore.from_torch(torch.nn.RNN(2, 3), torch.nn.RNN(3, 2))


def test_refuses_projections(torch):
    rnn = torch.nn.RNN(2, 3)
    rnn.proj_size = 2  # nn.RNN rejects proj_size itself; a subclass might not
    with pytest.raises(ValueError, match="proj_size"):
        rnncore.from_torch(rnn, torch.nn.Linear(3, 2))
    state = torch.nn.LSTM(2, 3, proj_size=2).state_dict()  # has weight_hr_l0
    with pytest.raises(ValueError, match="proj_size"):
        rnncore.from_torch(state, torch.nn.Linear(2, 2))


def test_refuses_bad_state_dicts(rng):
    """NumPy state dicts: no torch needed for these checks."""
    f32 = np.float32
    good = {"weight_ih_l0": np.ones((3, 2), f32), "weight_hh_l0": np.ones((3, 3), f32),
            "bias_ih_l0": np.ones(3, f32), "bias_hh_l0": np.ones(3, f32)}
    linear = {"weight": np.ones((4, 3), f32), "bias": np.ones(4, f32)}
    assert rnncore.from_torch(good, linear).params["b_h_l0"].tolist() == [2, 2, 2]
    cases = [
        ({k: v for k, v in good.items() if k != "bias_hh_l0"}, linear, ValueError,
         r"lacks \['bias_hh_l0'\]"),
        ({**good, "weight_ih_l2": good["weight_ih_l0"]}, linear, ValueError,
         "weight_ih_l1"),
        ({**good, "extra": 1.0}, linear, ValueError, "unexpected key 'extra'"),
        ({**good, "weight_hh_l0": np.ones((3, 4), f32)}, linear, ValueError,
         "weight_hh_l0 has shape"),
        ({**good, "weight_hh_l0": np.ones(3, f32)}, linear, ValueError, "2-D"),
        ({**good, "bias_ih_l0": np.ones(1, f32)}, linear, ValueError,
         "bias_ih_l0 has shape"),
        ({**good, "weight_ih_l0": np.ones((3, 2), np.int64)}, linear, TypeError,
         "floats"),
        (good, {"weight": np.ones((4, 6), f32)}, ValueError, "weight has shape"),
        (good, {"weight": np.ones(4, f32)}, ValueError, "2-D"),
        (good, {"weight": np.ones((4, 3), f32), "scale": 1.0}, ValueError, "'bias'"),
        ({}, linear, ValueError, "weight_ih_l0"),
    ]
    for rnn, lin, error, match in cases:
        with pytest.raises(error, match=match):
            rnncore.from_torch(rnn, lin)
    with pytest.raises(TypeError, match="exactly one"):
        rnncore.from_torch(good, linear, output_size=4)
    with pytest.raises(TypeError, match="exactly one"):
        rnncore.from_torch(good)


# ---- to PyTorch -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_layers,bidirectional", ARCHS)
def test_to_torch_round_trip(torch, rng, dtype, num_layers, bidirectional):
    model = rnncore.RNN(3, 4, 5, num_layers=num_layers, bidirectional=bidirectional,
                        dtype=dtype, seed=0)
    for value in model.params.values():
        value[...] = rng.standard_normal(value.shape)
    rnn, linear = rnncore.to_torch(model)
    assert rnn.mode == "RNN_TANH" and rnn.weight_ih_l0.dtype == torch.from_numpy(
        np.zeros(1, dtype)).dtype
    x, h0, lengths = random_inputs(rng, model)
    for mode in ("seq", "last"):
        for kw in ({}, {"h0": h0, "lengths": lengths}):
            want = torch_forward(torch, rnn, linear, x, mode, **kw)
            got = model.forward(x, mode=mode, return_state=True, **kw)
            assert_close(got[0], want[0], dtype)
            assert_close(got[1], want[1], dtype)

    back = rnncore.RNN.from_torch(rnn, linear)
    assert back.config == model.config
    for name, value in model.params.items():
        assert back.params[name].tobytes() == value.tobytes()
    assert all(torch.count_nonzero(b) == 0 for k, b in rnn.state_dict().items()
               if k.startswith("bias_hh"))


def test_to_torch_state_dict(torch, rng):
    model = rnncore.RNN(2, 3, 4, num_layers=2, bidirectional=True, seed=1)
    rnn_state, linear_state = rnncore.to_torch_state_dict(model)
    reference = torch.nn.RNN(2, 3, 2, bidirectional=True)
    assert list(rnn_state) == list(reference.state_dict())
    assert list(linear_state) == ["weight", "bias"]
    assert np.array_equal(rnn_state["bias_ih_l1_reverse"].numpy(),
                          model.params["b_h_l1_reverse"])
    rnn_state["weight_hh_l0"].add_(1.0)  # copies: the model is untouched
    assert not np.array_equal(rnn_state["weight_hh_l0"].numpy(),
                              model.params["W_hh_l0"])
    assert model.to_torch(batch_first=True)[0].batch_first is True
    model.params["W_hy"] = model.params["W_hy"].astype(np.float64)
    with pytest.raises(ValueError, match="W_hy"):
        rnncore.to_torch(model)
    with pytest.raises(TypeError, match=r"rnncore\.RNN"):
        rnncore.to_torch_state_dict(model.params)


def test_torch_is_optional():
    """With torch unimportable, rnncore imports, takes NumPy state dicts, and
    to_torch says what it needs."""
    code = """
import sys
sys.modules["torch"] = None  # any import of torch now fails
import numpy as np
import rnncore
rnn = {"weight_ih_l0": np.ones((3, 2)), "weight_hh_l0": np.eye(3)}
model = rnncore.from_torch(rnn, {"weight": np.ones((2, 3))})
assert model.dtype == np.float64 and not model.params["b_h_l0"].any()
try:
    rnncore.to_torch(model)
except ImportError as exc:
    assert "PyTorch" in str(exc), exc
else:
    raise AssertionError("to_torch worked without torch")
print("ok")
"""
    root = str(Path(rnncore.__file__).parents[1])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, cwd=root, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr

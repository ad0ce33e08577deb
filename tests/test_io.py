"""Saving and loading models: bit-exact round trips, atomic writes, and a
clear ModelFileError for every kind of damaged or hostile file."""

import io
import json
import os
import pickle
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import model_files as craft  # builders of damaged files
import rnncore
from rnn_util import assert_same_state
from rnncore import ModelFileError

FUZZ_LOADER = Path(__file__).resolve().parents[1] / "tools" / "fuzz_loader.py"

CONFIGS = [
    pytest.param(dict(input_size=3, hidden_size=4, output_size=5), id="plain-f32"),
    pytest.param(dict(input_size=2, hidden_size=3, output_size=4, num_layers=2,
                      bidirectional=True, dtype="float64"), id="bidir-2layer-f64"),
    pytest.param(dict(input_size=4, hidden_size=6, output_size=3, num_layers=3,
                      input_init="xavier", recurrent_init="orthogonal"),
                 id="3layer-xavier-orthogonal"),
    pytest.param(dict(input_size=1, hidden_size=1, output_size=1, bidirectional=True),
                 id="bidir-size1"),
]
BASE = dict(input_size=3, hidden_size=4, output_size=5)
SMALL_PEAK = 4 * 2**20  # bytes: loading a file of a few KB allocates no more


class Optimizer:
    def __init__(self, state):
        self.state = state

    def state_dict(self):
        return self.state


def random_model(rng, config):
    """A model whose parameters are random normals (not its initialisation)."""
    model = rnncore.RNN(**config, seed=1)
    for value in model.params.values():
        value[...] = rng.standard_normal(value.shape)
    return model


def saved(model, **kwargs):
    buf = io.BytesIO()
    rnncore.save(model, buf, **kwargs)
    return buf.getvalue()


def load_bytes(data, **kwargs):
    return rnncore.load(io.BytesIO(data), **kwargs)


def valid_items():
    return craft.members(saved(rnncore.RNN(**BASE, seed=0)))


def replaced(items, name, payload):
    assert name in dict(items)
    return [(n, payload if n == name else b) for n, b in items]


def assert_same_model(a, b):
    assert b.config == a.config
    assert list(b.params) == list(a.params)
    for name, value in a.params.items():
        got = b.params[name]
        assert got.dtype == value.dtype and got.shape == value.shape
        assert got.tobytes() == value.tobytes(), name  # bit for bit, NaN included
        assert got.flags.c_contiguous and got.flags.writeable
        assert not np.shares_memory(got, value)


# ---- round trips ----------------------------------------------------------------

@pytest.mark.parametrize("config", CONFIGS)
def test_round_trip_is_bit_exact(rng, tmp_path, config):
    model = random_model(rng, config)
    path = tmp_path / "model.npz"
    rnncore.save(model, path)
    loaded = rnncore.load(path)
    assert_same_model(model, loaded)
    assert loaded.seed is None

    T, B = 7, 3
    x = rng.standard_normal((T, B, model.input_size)).astype(model.dtype)
    lengths = rng.integers(1, T + 1, B)
    h0 = rng.standard_normal((model.num_layers * model.num_directions, B,
                              model.hidden_size)).astype(model.dtype)
    for mode in ("seq", "last"):
        for kw in ({}, {"lengths": lengths, "h0": h0}):
            want = model.forward(x, mode=mode, return_state=True, **kw)
            got = loaded.forward(x, mode=mode, return_state=True, **kw)
            for w, g in zip(want, got, strict=True):
                assert np.array_equal(w, g)
    targets = rng.integers(0, model.output_size, (T, B))
    loss, grads, _ = model.loss_and_grads(x, targets)
    loss2, grads2, _ = loaded.loss_and_grads(x, targets)
    assert loss == loss2
    assert all(np.array_equal(grads[k], grads2[k]) for k in grads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_keeps_special_values(tmp_path, dtype):
    """NaN (with its payload bits), inf, -0.0 and subnormals are stored, not
    refused or normalised."""
    model = rnncore.RNN(**BASE, dtype=dtype, seed=0)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    nan_payload = np.array([0x7FC00123 if dtype == np.float32 else 0x7FF8000000000123],
                           dtype=bits).view(dtype)[0]
    special = np.array([np.nan, nan_payload, np.inf, -np.inf, -0.0,
                        np.finfo(dtype).smallest_subnormal], dtype=dtype)
    model.params["W_hh_l0"].reshape(-1)[:special.size] = special
    rnncore.save(model, tmp_path / "m.npz")
    assert_same_model(model, rnncore.load(tmp_path / "m.npz"))


def test_path_types_and_methods(tmp_path):
    model = rnncore.RNN(**BASE, seed=2)
    for target in (str(tmp_path / "a.npz"), tmp_path / "b.npz",
                   os.fsencode(tmp_path / "c.npz")):
        rnncore.save(model, target)
        assert_same_model(model, rnncore.load(target))
    model.save(tmp_path / "d.npz")  # the RNN methods
    assert_same_model(model, rnncore.RNN.load(tmp_path / "d.npz"))


def test_no_suffix_is_added(tmp_path):
    rnncore.save(rnncore.RNN(**BASE), tmp_path / "model.bin")
    assert os.listdir(tmp_path) == ["model.bin"]


def test_file_objects(tmp_path):
    model = rnncore.RNN(**BASE, seed=3)
    with open(tmp_path / "m.npz", "wb") as f:
        rnncore.save(model, f)
    with open(tmp_path / "m.npz", "rb") as f:
        assert_same_model(model, rnncore.load(f))

    buf = io.BytesIO(b"preamble")  # read from the current position
    buf.seek(0, io.SEEK_END)
    rnncore.save(model, buf)
    buf.seek(len(b"preamble"))
    assert_same_model(model, rnncore.load(buf))


def test_streams_without_seek(rng):
    class WriteOnly:
        def __init__(self):
            self.chunks = []

        def write(self, data):
            self.chunks.append(bytes(data))
            return len(data)

    class ReadOnly:
        def __init__(self, data):
            self.buf = io.BytesIO(data)

        def read(self, n=-1):
            return self.buf.read(n)

    model = random_model(rng, BASE)
    out = WriteOnly()
    rnncore.save(model, out)
    assert_same_model(model, rnncore.load(ReadOnly(b"".join(out.chunks))))


def test_optimizer_state_round_trip(rng, tmp_path):
    """Any flat dict of the kinds save accepts comes back as it was."""
    model = rnncore.RNN(**BASE, seed=4)
    state = {"step": 12, "lr": 0.1, "nesterov": False, "beta": np.float32(0.9),
             "beta2": np.float64(0.99), "flag": np.bool_(True), "n": np.int16(-3),
             "name": "Adam", "text": "préférence ✓",
             "m.W_hh_l0": rng.standard_normal((4, 4)),
             "counts": np.arange(3, dtype=np.int32), "mask": np.array([True, False]),
             "empty": np.zeros((0, 3)), "zero-d": np.array(2.5),
             "big-endian": np.arange(4, dtype=">f8")}
    rnncore.save(model, tmp_path / "m.npz", optimizer=Optimizer(state))
    loaded, got = rnncore.load(tmp_path / "m.npz", return_optimizer_state=True)
    assert_same_model(model, loaded)
    got["big-endian"] = got["big-endian"].astype(">f8")  # read in native order
    assert_same_state(got, state)

    rnncore.save(model, tmp_path / "plain.npz")
    assert rnncore.load(tmp_path / "plain.npz", return_optimizer_state=True)[1] is None


@pytest.mark.parametrize("state,error", [
    ({"a": {"nested": 1}}, TypeError),
    ({"a": np.array([object()], dtype=object)}, TypeError),
    ({"a": np.array(["text"])}, TypeError),
    ({"a": np.ones(2, np.complex128)}, TypeError),
    ({"a": ""}, ValueError),
    ({"a": "two\nlines"}, ValueError),
    ({"a": "x" * 201}, ValueError),
    ({"a": b"adam"}, TypeError),
    ({"a": (0.9, 0.999)}, TypeError),
    ({"a": None}, TypeError),
    ({1: 2}, TypeError),
    ({"": 2}, TypeError),
    ({"a\nb": 2}, TypeError),
    ({"a": 2**70}, ValueError),
])
def test_bad_optimizer_state_writes_nothing(tmp_path, state, error):
    with pytest.raises(error, match="optimizer state"):
        rnncore.save(rnncore.RNN(**BASE), tmp_path / "m.npz",
                     optimizer=Optimizer(state))
    assert os.listdir(tmp_path) == []


def test_optimizer_state_dict_must_be_a_mapping(tmp_path):
    with pytest.raises(TypeError, match="state_dict"):
        rnncore.save(rnncore.RNN(**BASE), tmp_path / "m.npz", optimizer=Optimizer([1]))


# ---- real optimisers: save, load, resume -----------------------------------------

OPTIMIZERS = [
    pytest.param(rnncore.SGD, dict(lr=0.1, momentum=0.9, nesterov=True), id="SGD"),
    pytest.param(rnncore.Adagrad, dict(lr=0.1, lr_decay=0.01), id="Adagrad"),
    pytest.param(rnncore.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01),
                 id="Adam"),
    pytest.param(rnncore.AdamW, dict(lr=0.01), id="AdamW"),
]
RESUME_CONFIG = dict(input_size=3, hidden_size=4, output_size=5, num_layers=2,
                     bidirectional=True)


def batches(rng, model, n, T=6, B=3):
    return [(rng.standard_normal((T, B, model.input_size)).astype(model.dtype),
             rng.integers(0, model.output_size, (T, B))) for _ in range(n)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls, kwargs", OPTIMIZERS)
def test_training_resumes_from_a_file_bit_for_bit(rng, tmp_path, cls, kwargs, dtype):
    """Train, save model and optimiser, load both into new objects: the
    original and the copy then take identical steps."""
    model = rnncore.RNN(**RESUME_CONFIG, dtype=dtype, seed=3)
    opt = cls(model.params, **kwargs)
    data = batches(rng, model, 6)
    for x, targets in data[:3]:
        opt.step(model.loss_and_grads(x, targets)[1])
    rnncore.save(model, tmp_path / "m.npz", optimizer=opt)

    model2, state = rnncore.load(tmp_path / "m.npz", return_optimizer_state=True)
    assert state["optimizer"] == cls.__name__ and state["step"] == 3
    assert_same_state(state, opt.state_dict())
    opt2 = cls(model2.params, lr=1.0)  # the other options come from the state
    opt2.load_state_dict(state)
    assert opt2.params["W_hy"] is model2.params["W_hy"]
    at_save = {k: v.copy() for k, v in model.params.items()}
    for x, targets in data[3:]:
        _, grads, _ = model.loss_and_grads(x, targets)
        opt.step(grads)
        opt2.step(grads)
    assert_same_model(model, model2)
    assert_same_state(opt2.state_dict(), opt.state_dict())
    assert not any(np.array_equal(model.params[k], at_save[k]) for k in at_save)


def test_fit_resumes_with_a_loaded_optimiser(rng, tmp_path):
    """RNN.fit takes the restored optimiser object as it is."""
    model = rnncore.RNN(**BASE, seed=0)
    x = rng.standard_normal((5, 8, 3)).astype(np.float32)
    y = rng.integers(0, 5, (5, 8))
    opt = rnncore.Adam(model.params, lr=0.01)
    model.fit(x, y, optimizer=opt, batch_size=4, shuffle=False, progress=False)
    rnncore.save(model, tmp_path / "m.npz", optimizer=opt)
    model2, state = rnncore.load(tmp_path / "m.npz", return_optimizer_state=True)
    opt2 = rnncore.Adam(model2.params)
    opt2.load_state_dict(state)
    for m, o in ((model, opt), (model2, opt2)):
        m.fit(x, y, optimizer=o, batch_size=4, shuffle=False, progress=False)
    assert opt2.step_count == opt.step_count == 4
    assert_same_model(model, model2)


def adam_file(rng):
    """Members of a file holding a model and an Adam state after one step."""
    model = rnncore.RNN(**BASE, seed=0)
    opt = rnncore.Adam(model.params, lr=0.01)
    opt.step({k: rng.standard_normal(v.shape).astype(v.dtype)
              for k, v in model.params.items()})
    return craft.members(saved(model, optimizer=opt))


DROP_MEMBER = "drop the member, keep it in the header"


def with_state(items, changes):
    """``items`` with optimiser-state entries replaced or added (value
    ``(kind, array or raw .npy bytes)``), removed (None) or DROP_MEMBER."""
    header = craft.header_of(items)
    manifest = header["optimizer"]
    for key, change in changes.items():
        name = f"optimizer/{key}.npy"
        items = [(n, b) for n, b in items if n != name]
        if change is None:
            del manifest[key]
        elif change != DROP_MEMBER:
            manifest[key], value = change
            items.append((name, value if isinstance(value, bytes)
                          else craft.npy_bytes(value)))
    return craft.build_zip(craft.with_header(items, json.dumps(header).encode()))


def utf8(text):
    return np.frombuffer(text, dtype=np.uint8)


# (changes, the error, its message): ModelFileError at load, others at
# load_state_dict
CORRUPT_STATES = [
    pytest.param({"state/W_hy/exp_avg": ("array", np.zeros((4, 5), np.float32))},
                 ValueError, r"'state/W_hy/exp_avg'\] has shape \(4, 5\), but "
                 r"params\['W_hy'\] has shape \(5, 4\)", id="buffer-shape"),
    pytest.param({"state/b_y/exp_avg_sq": DROP_MEMBER}, ModelFileError,
                 "missing members.*state/b_y/exp_avg_sq", id="member-missing"),
    pytest.param({"state/b_y/exp_avg_sq": None}, ValueError,
                 r"missing the key\(s\) \['state/b_y/exp_avg_sq'\]",
                 id="buffer-missing"),
    pytest.param({"state/b_y/junk": ("array", np.zeros(5, np.float32))}, ValueError,
                 r"unknown key\(s\) \['state/b_y/junk'\]", id="buffer-unknown"),
    pytest.param({"state/b_y/exp_avg": ("array", np.zeros(5, np.int32))}, TypeError,
                 r"'state/b_y/exp_avg'\] must be a float array, got dtype int32",
                 id="buffer-of-ints"),
    pytest.param({"state/b_y/exp_avg": ("array", np.zeros(5, np.complex64))},
                 ModelFileError, "unsupported array", id="buffer-complex"),
    pytest.param({"state/b_y/exp_avg": ("float", np.float64(0))}, ValueError,
                 r"'state/b_y/exp_avg'\] has shape \(\)", id="buffer-a-number"),
    pytest.param({"step": ("float", np.float64(1))}, TypeError,
                 r"state_dict\['step'\] must be an integer", id="step-float"),
    pytest.param({"step": ("int", np.int64(-5))}, ValueError,
                 r"state_dict\['step'\] must be >= 0", id="step-negative"),
    pytest.param({"lr": ("str", utf8(b"fast"))}, TypeError,
                 r"state_dict\['lr'\] must be a real number", id="lr-text"),
    pytest.param({"betas": ("array", np.array([0.9, 0.99, 0.999]))}, TypeError,
                 "betas must be a pair", id="betas-three"),
    pytest.param({"betas": ("array", np.array([0.9, 1.5]))}, ValueError,
                 r"betas\[1\] must be a finite number in \[0, 1\)", id="betas-range"),
    pytest.param({"eps": None}, ValueError, r"missing the key\(s\) \['eps'\]",
                 id="option-missing"),
    pytest.param({"momentum": ("float", np.float64(0.9))}, ValueError,
                 r"unknown key\(s\) \['momentum'\]", id="option-unknown"),
    pytest.param({"optimizer": ("str", utf8(b"AdamW"))}, ValueError,
                 "'AdamW': the state of another optimiser, not of 'Adam'",
                 id="other-class"),
    pytest.param({"optimizer": None}, ValueError,
                 r"missing the key\(s\) \['optimizer'\]", id="class-missing"),
    pytest.param({"optimizer": ("str", np.float64(1))}, ModelFileError,
                 r"'optimizer' \(str\) must be stored as UTF-8", id="text-a-number"),
    pytest.param({"optimizer": ("str", utf8(b"\xffAdam"))}, ModelFileError,
                 r"'optimizer' \(str\) is not UTF-8", id="text-not-utf8"),
    pytest.param({"optimizer": ("str", utf8(b"Ad\nam"))}, ModelFileError,
                 "must be printable text", id="text-not-printable"),
    pytest.param({"optimizer": ("str", utf8(b"A" * 801))}, ModelFileError,
                 r"1 to 800 bytes\), got uint8 of shape \(801,\)", id="text-too-long"),
    pytest.param({"optimizer": ("str", utf8(b"A" * 300))}, ModelFileError,
                 "printable text of 1 to 200 characters", id="text-300-chars"),
    pytest.param({"optimizer": ("bytes", utf8(b"Adam"))}, ModelFileError,
                 "header 'optimizer' must map", id="unknown-kind"),
    pytest.param({"optimizer": ("str", craft.npy_bytes(
        np.array(["Adam"], dtype=object), allow_pickle=True))}, ModelFileError,
        "never unpickled", id="text-pickled"),
]


@pytest.mark.parametrize("changes, error, match", CORRUPT_STATES)
def test_corrupted_optimizer_state_is_refused(rng, changes, error, match):
    data = with_state(adam_file(rng), changes)
    if error is ModelFileError:
        with pytest.raises(ModelFileError, match=match):
            load_bytes(data, return_optimizer_state=True)
        return
    model, state = load_bytes(data, return_optimizer_state=True)
    opt = rnncore.Adam(model.params, lr=0.5)
    before = opt.state_dict()
    with pytest.raises(error, match=match):
        opt.load_state_dict(state)
    assert_same_state(opt.state_dict(), before)


def test_the_unchanged_adam_file_loads(rng):
    """The file the corruptions start from is sound."""
    model, state = load_bytes(with_state(adam_file(rng), {}),
                              return_optimizer_state=True)
    opt = rnncore.Adam(model.params)
    opt.load_state_dict(state)
    assert opt.step_count == 1 and opt.lr == 0.01


def test_save_needs_a_model(tmp_path):
    with pytest.raises(TypeError, match=r"rnncore\.RNN, got dict"):
        rnncore.save(rnncore.RNN(**BASE).params, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_only_the_model_parameters_are_saved():
    model = rnncore.RNN(**BASE)
    model.params["notes"] = np.zeros(3)  # not a parameter: the model never reads it
    loaded = load_bytes(saved(model))
    assert "notes" not in loaded.params and len(loaded.params) == 5


def test_broken_params_write_nothing(tmp_path):
    model = rnncore.RNN(**BASE)
    model.params["W_hh_l0"] = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="W_hh_l0"):
        rnncore.save(model, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# ---- atomic writes -------------------------------------------------------------

def test_failed_save_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = rnncore.RNN(**BASE, seed=5)
    rnncore.save(old, path)
    before = path.read_bytes()

    def half_write(fileobj, **members):
        fileobj.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(rnncore.serialization.np, "savez", half_write)
    with pytest.raises(OSError, match="disk full"):
        rnncore.save(rnncore.RNN(**BASE, seed=6), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_save_replaces_and_respects_umask(tmp_path):
    path = tmp_path / "m.npz"
    rnncore.save(rnncore.RNN(**BASE, seed=7), path)
    new = rnncore.RNN(**BASE, seed=8)
    rnncore.save(new, path)
    assert_same_model(new, rnncore.load(path))
    assert os.listdir(tmp_path) == ["m.npz"]
    umask = os.umask(0)
    os.umask(umask)
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_onto_a_directory_fails_cleanly(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        rnncore.save(rnncore.RNN(**BASE), tmp_path / "d")
    assert os.listdir(tmp_path) == ["d"]


# ---- files that are not model files ---------------------------------------------

def test_missing_file():
    with pytest.raises(FileNotFoundError):
        rnncore.load("/nonexistent/model.npz")


def test_error_is_a_value_error_naming_the_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ModelFileError, match=r"notes\.txt") as info:
        rnncore.load(path)
    assert isinstance(info.value, ValueError)
    assert "not a zip archive" in str(info.value)


@pytest.mark.parametrize("data", [
    pytest.param(b"", id="empty"),
    pytest.param(b"PK", id="two-bytes"),
    pytest.param(os.urandom(300), id="random"),
    pytest.param(craft.npy_bytes(np.zeros(3)), id="bare-npy"),
    pytest.param(pickle.dumps({"W_hh": [1.0]}), id="pickle"),
    pytest.param(b"PK\x03\x04" + bytes(100), id="zip-magic-only"),
])
def test_not_a_model_file(data):
    with pytest.raises(ModelFileError, match="<BytesIO>"):
        load_bytes(data)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_truncated(fraction):
    data = saved(rnncore.RNN(**BASE, seed=0))
    with pytest.raises(ModelFileError):
        load_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ModelFileError):
        load_bytes(data[:-1])


def test_flipped_payload_bit_fails_the_checksum():
    data = bytearray(saved(rnncore.RNN(**BASE, seed=0)))
    pos = data.index(b"params/W_hy.npy") + 200  # inside that member's data
    data[pos] ^= 0x10
    with pytest.raises(ModelFileError, match="CRC"):
        load_bytes(bytes(data))


# ---- members -------------------------------------------------------------------

def test_missing_member():
    items = [(n, b) for n, b in valid_items() if n != "params/W_hy.npy"]
    with pytest.raises(ModelFileError, match=r"missing members \['params/W_hy'\]"):
        load_bytes(craft.build_zip(items))


@pytest.mark.parametrize("name,match", [
    ("params/W_hh_l1.npy", "unexpected members"),
    ("optimizer/m.npy", "unexpected members"),
    ("readme.txt", "not a .npy array"),
])
def test_extra_member(name, match):
    items = [*valid_items(), (name, craft.npy_bytes(np.zeros(2, np.float32)))]
    with pytest.raises(ModelFileError, match=match):
        load_bytes(craft.build_zip(items))


def test_duplicate_member():
    items = valid_items()
    with pytest.raises(ModelFileError, match="twice"):
        load_bytes(craft.build_zip(items + items[-1:]))


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_compressed_member(method):
    with pytest.raises(ModelFileError, match="compressed"):
        load_bytes(craft.build_zip(valid_items(), method))


def test_member_claiming_more_bytes_than_the_file_holds():
    data = bytearray(craft.build_zip(valid_items()))
    entry = data.index(b"PK\x01\x02")  # the first central-directory entry
    data[entry + 20:entry + 28] = (2**31).to_bytes(4, "little") * 2  # sizes
    with pytest.raises(ModelFileError, match="more than the file holds"):
        load_bytes(bytes(data))


def test_swapped_members_of_different_shapes():
    items = dict(valid_items())
    items["params/W_xh_l0.npy"], items["params/W_hh_l0.npy"] = (
        items["params/W_hh_l0.npy"], items["params/W_xh_l0.npy"])
    with pytest.raises(ModelFileError, match="parameter 'W_xh_l0'"):
        load_bytes(craft.build_zip(list(items.items())))


# ---- the header ------------------------------------------------------------------

def header_file(edit):
    """A valid file whose header JSON went through ``edit(header)``."""
    items = valid_items()
    header = craft.header_of(items)
    edit(header)
    return craft.build_zip(craft.with_header(items, json.dumps(header).encode()))


@pytest.mark.parametrize("text,match", [
    (b"{", "not valid UTF-8 JSON"),
    (b"\xff\xfe{}", "not valid UTF-8 JSON"),
    (b"[" * 100000, "not valid UTF-8 JSON"),
    (b'{"format": NaN}', "NaN"),
    (b'{"format": "rnncore-model", "format": "rnncore-model"}', "repeats a key"),
    (b"[1, 2]", "not an rnncore model file"),
    (b'{"format": "other"}', r"format 'other'"),
    (b"", "not valid UTF-8 JSON"),
])
def test_malformed_header(text, match):
    with pytest.raises(ModelFileError, match=match):
        load_bytes(craft.build_zip(craft.with_header(valid_items(), text)))


def test_header_member_must_be_bytes():
    items = replaced(valid_items(), "header.npy",
                     craft.npy_bytes(np.zeros(4, np.float32)))
    with pytest.raises(ModelFileError, match="UTF-8 text"):
        load_bytes(craft.build_zip(items))


def test_no_header():
    items = [(n, b) for n, b in valid_items() if n != "header.npy"]
    with pytest.raises(ModelFileError, match="no 'header' member"):
        load_bytes(craft.build_zip(items))


def test_newer_version():
    with pytest.raises(ModelFileError, match=r"newer rnncore.*version 2.*upgrade"):
        load_bytes(header_file(lambda h: h.update(version=2)))


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, True, None])
def test_bad_version(version):
    with pytest.raises(ModelFileError, match="version must be a positive integer"):
        load_bytes(header_file(lambda h: h.update(version=version)))


def test_header_keys():
    with pytest.raises(ModelFileError, match=r"unknown keys \['extra'\]"):
        load_bytes(header_file(lambda h: h.update(extra=1)))
    with pytest.raises(ModelFileError, match=r"missing keys \['config'\]"):
        load_bytes(header_file(lambda h: h.pop("config")))


# ---- the configuration ----------------------------------------------------------

@pytest.mark.parametrize("key,value", [
    ("hidden_size", "4"), ("hidden_size", 4.0), ("hidden_size", True),
    ("hidden_size", None), ("hidden_size", [4]), ("bidirectional", 1),
    ("dtype", 32), ("input_init", None),
])
def test_config_wrong_type(key, value):
    with pytest.raises(ModelFileError, match=f"config '{key}' must be"):
        load_bytes(header_file(lambda h: h["config"].update({key: value})))


@pytest.mark.parametrize("key,value,match", [
    ("hidden_size", 0, "hidden_size must be >= 1"),
    ("output_size", -3, "output_size must be >= 1"),
    ("dtype", "float16", "dtype"),
    ("dtype", "O", "dtype"),
    ("input_init", "he", "input_init"),
])
def test_config_bad_value(key, value, match):
    with pytest.raises(ModelFileError, match=match):
        load_bytes(header_file(lambda h: h["config"].update({key: value})))


def test_config_keys():
    with pytest.raises(ModelFileError, match=r"unknown keys \['seed'\]"):
        load_bytes(header_file(lambda h: h["config"].update(seed=0)))
    with pytest.raises(ModelFileError, match=r"missing keys \['num_layers'\]"):
        load_bytes(header_file(lambda h: h["config"].pop("num_layers")))
    with pytest.raises(ModelFileError, match="config must be a JSON object"):
        load_bytes(header_file(lambda h: h.update(config=[1])))


def assert_refused_cheaply(data, match):
    """Refused with ModelFileError, allocating at most SMALL_PEAK bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=match):
            load_bytes(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < SMALL_PEAK


@pytest.mark.parametrize("key,value,match", [
    ("hidden_size", 10**12, "exceeds the limit"),
    ("input_size", 2**63, "exceeds the limit"),
    ("hidden_size", 2**20, "parameter 'W_xh_l0'.* needs float32 of shape "
                           r"\(1048576, 3\)"),
    ("hidden_size", 2**31 - 1, r"config: W_hh_l0 \(hidden_size, hidden_size\).*"
                               "more than the address space"),
    ("output_size", 10**9, "parameter 'W_hy'"),
    ("num_layers", 10**9, "num_layers = 1000000000 but the file holds 5"),
])
def test_absurd_sizes_refused_before_allocating(key, value, match):
    data = header_file(lambda h: h["config"].update({key: value}))
    assert_refused_cheaply(data, match)


def test_config_disagreeing_with_arrays():
    for key, value, match in [("hidden_size", 5, "W_xh_l0"),
                              ("dtype", "float64", "W_xh_l0"),
                              ("num_layers", 2, "missing members"),
                              ("bidirectional", True, "missing members")]:
        with pytest.raises(ModelFileError, match=match):
            load_bytes(header_file(
                lambda h, key=key, value=value: h["config"].update({key: value})))


# ---- parameter arrays -----------------------------------------------------------

@pytest.mark.parametrize("array,match", [
    (np.zeros((4, 5), np.float32), r"shape \(4, 5\)"),
    (np.zeros((4, 4), np.float64), "float64 array"),
    (np.zeros(16, np.float32), r"shape \(16,\)"),
    (np.zeros((4, 4, 1), np.float32), r"shape \(4, 4, 1\)"),
    (np.zeros((4, 4), np.int32), "int32 array"),
    (np.zeros((4, 4), np.complex64), "unsupported array"),
    (np.zeros((4, 4), "U1"), "unsupported array"),
    (np.zeros(4, [("a", np.float32), ("b", np.float32)]), "unsupported array"),
    (np.float32(0), r"shape \(\)"),
])
def test_wrong_parameter_array(array, match):
    items = replaced(valid_items(), "params/W_hh_l0.npy", craft.npy_bytes(array))
    with pytest.raises(ModelFileError, match=match):
        load_bytes(craft.build_zip(items))


def test_other_byte_order_and_fortran_order_load_exactly(rng):
    model = random_model(rng, BASE)
    items = valid_items()
    W = model.params["W_xh_l0"]
    items = replaced(items, "params/W_xh_l0.npy", craft.npy_bytes(W.astype(">f4")))
    items = replaced(items, "params/W_hh_l0.npy",
                     craft.npy_bytes(np.asfortranarray(model.params["W_hh_l0"])))
    loaded = load_bytes(craft.build_zip(items))
    for name in ("W_xh_l0", "W_hh_l0"):
        got = loaded.params[name]
        assert got.dtype == np.float32 and got.dtype.isnative and got.flags.c_contiguous
        assert got.tobytes() == model.params[name].tobytes()


@pytest.mark.parametrize("member", ["params/W_hh_l0.npy", "header.npy"])
@pytest.mark.parametrize("shape", [(10**6, 10**6), (2**62,), (2**31 - 1, 2**31 - 1, 4),
                                   (10**12, 0), (-1, 4), (2**64,)])
def test_giant_declared_shape_is_refused_before_allocating(member, shape):
    """A .npy header may claim any shape; only the bytes present count."""
    descr = "<f4" if member.startswith("params") else "|u1"
    forged = craft.npy_raw(craft.npy_header_text(descr, shape), bytes(64))
    data = craft.build_zip(replaced(valid_items(), member, forged))
    assert_refused_cheaply(data, "declares|unsupported array")


@pytest.mark.parametrize("text", [
    "{[1]: 2}", "(" * 5000, "-" * 5000 + "1", "[1, 2]", "__import__('os')",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), 'x': 1}",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4)",
])
def test_unparseable_npy_header(text):
    forged = craft.npy_raw(text, bytes(64))
    with pytest.raises(ModelFileError, match="params/W_hh_l0"):
        load_bytes(craft.build_zip(
            replaced(valid_items(), "params/W_hh_l0.npy", forged)))


def test_npy_version_3_is_refused():
    member = bytearray(craft.npy_bytes(np.zeros((4, 4), np.float32)))
    member[6] = 3
    with pytest.raises(ModelFileError, match="version"):
        load_bytes(craft.build_zip(replaced(valid_items(), "params/W_hh_l0.npy",
                                            bytes(member))))


# ---- pickles are never loaded -----------------------------------------------------

@pytest.mark.parametrize("member", ["params/W_hh_l0.npy", "header.npy",
                                    "optimizer/step.npy"])
def test_pickled_object_array_is_refused_unrun(tmp_path, monkeypatch, member):
    marker = tmp_path / "payload-ran"
    payload = craft.npy_bytes(np.array([craft.Pickled(str(marker))], dtype=object),
                              allow_pickle=True)
    model = rnncore.RNN(**BASE)
    items = craft.members(saved(model, optimizer=Optimizer({"step": 1})))
    data = craft.build_zip(replaced(items, member, payload))

    def no_unpickling(*args, **kwargs):
        raise AssertionError("pickle was called")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, no_unpickling)
    with pytest.raises(ModelFileError, match=r"Python objects.*never unpickled"):
        load_bytes(data)
    assert not marker.exists()


def test_optimizer_state_lies():
    model = rnncore.RNN(**BASE)
    optimizer = Optimizer({"step": 1, "m": np.ones(3)})
    items = craft.members(saved(model, optimizer=optimizer))
    swapped = replaced(items, "optimizer/step.npy", craft.npy_bytes(np.ones(3)))
    with pytest.raises(ModelFileError, match="'step' \\(int\\) must be stored 0-d"):
        load_bytes(craft.build_zip(swapped))
    retyped = replaced(items, "optimizer/step.npy", craft.npy_bytes(np.float64(1)))
    with pytest.raises(ModelFileError, match="must be stored as int64"):
        load_bytes(craft.build_zip(retyped))
    for key, kind in (("m", "pickle"), ("m\nn", "array"), ("", "int")):
        header = craft.header_of(items)
        header["optimizer"][key] = kind
        with pytest.raises(ModelFileError, match="header 'optimizer'"):
            load_bytes(craft.build_zip(craft.with_header(items,
                                                         json.dumps(header).encode())))


# ---- the fuzzer -------------------------------------------------------------------

@pytest.mark.skipif(not FUZZ_LOADER.exists(),
                    reason="tools/fuzz_loader.py is not there (not a source tree)")
def test_fuzz_loader_script():
    """A few hundred damaged files, in a child process under a memory limit:
    each is refused with ModelFileError or loads as the model it declares."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(rnncore.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, str(FUZZ_LOADER), "--cases", "330", "--seed", "1"],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "330 cases" in result.stdout and " 0 failures" in result.stdout
    assert str(Path(rnncore.__file__).parent) in result.stdout

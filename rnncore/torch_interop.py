"""Moving models between rnncore and PyTorch (``torch.nn.RNN`` + ``torch.nn.Linear``).

PyTorch is optional: it is imported only inside the functions that need it,
and :func:`from_torch` also takes plain state dicts of NumPy arrays without
it.  The weights keep their layout (``W_xh_l{k}`` is ``weight_ih_l{k}``,
``W_hh_l{k}`` is ``weight_hh_l{k}``, ``_reverse`` for the second direction,
``W_hy``/``b_y`` are the Linear layer's ``weight``/``bias``); PyTorch's two
biases per layer sum into ``b_h``, which goes back as ``bias_ih`` with
``bias_hh = 0``.
"""
import re
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from rnncore import model as _model
from rnncore._assemble import blank_model, check_model

__all__ = ["from_torch", "to_torch", "to_torch_state_dict"]

_RNN_KEY = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?")


def _import_torch(what):
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            f"{what} needs PyTorch (python -m pip install torch)") from exc
    return torch


# ---- from PyTorch -----------------------------------------------------------

def from_torch(rnn, linear=None, *, output_size=None, dtype=None, seed=None):
    """An :class:`RNN` computing what a PyTorch ``nn.RNN`` + ``nn.Linear`` compute.

    Parameters
    ----------
    rnn : torch.nn.RNN or mapping
        A tanh ``nn.RNN`` (any ``num_layers``, ``bidirectional``, ``bias``,
        ``batch_first``), or its ``state_dict()``: ``weight_ih_l{k}``,
        ``weight_hh_l{k}`` and, with biases, ``bias_ih_l{k}``,
        ``bias_hh_l{k}``, each also with ``_reverse`` for a bidirectional
        RNN. Values are tensors or anything ``np.asarray`` takes (NumPy
        arrays need no PyTorch). A state dict does not record the
        nonlinearity: it must come from a tanh RNN.
    linear : torch.nn.Linear or mapping, optional
        The output layer (``weight`` (C, num_directions·H), optional
        ``bias`` (C,)), or its state dict. When None, ``output_size`` sets C
        and the output layer is initialised as ``RNN`` does (from ``seed``).
    output_size : int, optional
        Only without ``linear``.
    dtype : {"float32", "float64"}, optional
        The model's dtype; by default float64 if any weight is float64,
        else float32 (half-precision weights are widened exactly).
    seed : int, optional
        Seeds the new output layer when ``linear`` is None.

    Returns
    -------
    RNN
        Its parameters are copies: later changes to either model do not
        reach the other.

    Raises
    ------
    ValueError
        A ReLU RNN, ``proj_size``, missing or unexpected state-dict keys, or
        shapes that disagree.
    TypeError
        An LSTM, GRU or other module, non-float weights, or ``linear`` and
        ``output_size`` both given or both missing.
    """
    weights, num_layers, bidirectional = _rnn_weights(rnn)
    if (linear is None) == (output_size is None):
        raise TypeError("from_torch needs exactly one of linear (the output layer) "
                        "and output_size (for a new one)")
    if linear is not None:
        weights.update(_linear_weights(linear))
        output_size = weights["weight"].shape[0]
    if dtype is None:  # widen, never round
        dtype = np.result_type(np.float32, *(w.dtype for w in weights.values()))
    W_ih, W_hh = weights["weight_ih_l0"], weights["weight_hh_l0"]
    config = {"input_size": W_ih.shape[1], "hidden_size": W_hh.shape[0],
              "output_size": output_size, "num_layers": num_layers,
              "bidirectional": bidirectional, "dtype": dtype}

    if linear is None:
        model = _model.RNN(**config, seed=seed)  # draws the new output layer
        new = {"W_hy", "b_y"}
    else:
        model = blank_model(config)
        new = set()
    for name, shape in model.param_shapes().items():
        if name in new:
            continue
        head, sep, layer = name.partition("_l")  # e.g. "W_xh", "_l", "0_reverse"
        sources = [torch_name + sep + layer for torch_name in _TORCH_NAMES[head]]
        if not all(source in weights for source in sources):  # bias=False
            model.params[name] = np.zeros(shape, model.dtype)
            continue
        for source in sources:
            if weights[source].shape != shape:
                raise ValueError(f"{source} has shape {weights[source].shape}; "
                                 f"{model!r} needs {shape}")
        # np.array copies: np.asarray of a tensor shares the tensor's memory
        model.params[name] = sum(np.array(weights[source], dtype=model.dtype)
                                 for source in sources)
    return model


# each rnncore parameter (without its layer suffix) and the PyTorch entries
# that sum into it
_TORCH_NAMES = {"W_xh": ("weight_ih",), "W_hh": ("weight_hh",),
                "b_h": ("bias_ih", "bias_hh"), "W_hy": ("weight",), "b_y": ("bias",)}


def _rnn_weights(rnn):
    """(weights, num_layers, bidirectional): the RNN's weights as
    {state-dict key: array}, the key set checked."""
    if not isinstance(rnn, Mapping):
        torch = _import_torch("from_torch with a module")
        if not isinstance(rnn, torch.nn.RNNBase):
            raise TypeError(f"rnn must be a torch.nn.RNN or its state_dict, got "
                            f"{type(rnn).__name__}")
        if rnn.mode != "RNN_TANH":
            kind = ("nonlinearity='relu'" if rnn.mode == "RNN_RELU"
                    else type(rnn).__name__)
            raise (ValueError if rnn.mode == "RNN_RELU" else TypeError)(
                f"rnncore computes tanh Elman RNNs; cannot import a {kind} module")
        if getattr(rnn, "proj_size", 0):
            raise ValueError(f"proj_size={rnn.proj_size} is not supported")
        rnn = rnn.state_dict()
    weights = {}
    for key, value in rnn.items():
        if key.startswith("weight_hr"):
            raise ValueError(f"{key}: projections (proj_size) are not supported")
        if not _RNN_KEY.fullmatch(key):
            raise ValueError(f"unexpected key {key!r} in the RNN state dict")
        weights[key] = _to_numpy(key, value)
    for key in ("weight_ih_l0", "weight_hh_l0"):
        if key not in weights or weights[key].ndim != 2:
            raise ValueError(f"the RNN state dict needs a 2-D {key!r}")
    # layers 0..L-1, each with the same entries (PyTorch's own layout)
    num_layers = len({_RNN_KEY.fullmatch(k).group(2) for k in weights})
    reverse = "weight_ih_l0_reverse" in weights
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"]
                                          if "bias_ih_l0" in weights else [])
    expected = {f"{n}_l{k}{s}" for n in names for k in range(num_layers)
                for s in (("", "_reverse") if reverse else ("",))}
    if weights.keys() != expected:
        raise ValueError(
            f"the RNN state dict lacks {sorted(expected - weights.keys())} "
            f"and has unexpected keys {sorted(weights.keys() - expected)}")
    return weights, num_layers, reverse


def _linear_weights(linear):
    if not isinstance(linear, Mapping):
        torch = _import_torch("from_torch with a module")
        if not isinstance(linear, torch.nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear or its state_dict, "
                            f"got {type(linear).__name__}")
        linear = linear.state_dict()
    if "weight" not in linear or not linear.keys() <= {"weight", "bias"}:
        raise ValueError(f"the Linear state dict must hold 'weight' and optionally "
                         f"'bias', got keys {sorted(linear)}")
    weights = {key: _to_numpy(key, value) for key, value in linear.items()}
    if weights["weight"].ndim != 2:
        raise ValueError(f"the Linear weight must be 2-D, got shape "
                         f"{weights['weight'].shape}")
    return weights


def _to_numpy(key, value):
    if hasattr(value, "detach"):  # a tensor: torch is installed
        value = value.detach().cpu()
        if not value.is_floating_point():
            raise TypeError(f"{key} must hold floats, got {value.dtype}")
        if value.dtype.itemsize < 4:  # float16/bfloat16, exactly as float32
            value = value.float()
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{key} must hold floats, got dtype {arr.dtype}")
    return arr


# ---- to PyTorch -------------------------------------------------------------

def to_torch_state_dict(model):
    """The model's weights as PyTorch state dicts.

    Tensors are copies in the model's dtype.

    Returns
    -------
    rnn_state : OrderedDict
        For ``torch.nn.RNN(input_size, hidden_size, num_layers,
        bidirectional=...)``: ``bias_ih_l{k}`` holds ``b_h``, ``bias_hh_l{k}``
        zeros.
    linear_state : OrderedDict
        For ``torch.nn.Linear(num_directions·H, output_size)``.
    """
    torch = _import_torch("to_torch_state_dict")
    check_model(model)
    p = model.params
    rnn_state = OrderedDict()
    for k in range(model.num_layers):
        for d in range(model.num_directions):
            s = f"_l{k}" + ("_reverse" if d else "")
            rnn_state["weight_ih" + s] = p["W_xh" + s]
            rnn_state["weight_hh" + s] = p["W_hh" + s]
            rnn_state["bias_ih" + s] = p["b_h" + s]
            rnn_state["bias_hh" + s] = np.zeros_like(p["b_h" + s])
    linear_state = OrderedDict(weight=p["W_hy"], bias=p["b_y"])
    for state in (rnn_state, linear_state):
        for key, value in state.items():
            state[key] = torch.from_numpy(np.array(value))
    return rnn_state, linear_state


def to_torch(model, *, batch_first=False):
    """``(torch.nn.RNN, torch.nn.Linear)`` computing what the model computes.

    Parameters
    ----------
    model : RNN
    batch_first : bool, default False
        Passed to ``torch.nn.RNN``; it does not change the weights.

    Returns
    -------
    rnn : torch.nn.RNN
        tanh, with the model's layers and directions, ``bias_hh`` zero.
    linear : torch.nn.Linear
        The output layer; ``linear(h)`` are the model's logits.
    """
    torch = _import_torch("to_torch")
    rnn_state, linear_state = to_torch_state_dict(model)
    tdtype = {np.float32: torch.float32, np.float64: torch.float64}[model.dtype.type]
    rnn = torch.nn.RNN(model.input_size, model.hidden_size, model.num_layers,
                       nonlinearity="tanh", bias=True, batch_first=batch_first,
                       bidirectional=model.bidirectional, dtype=tdtype)
    linear = torch.nn.Linear(model.num_directions * model.hidden_size,
                             model.output_size, dtype=tdtype)
    rnn.load_state_dict(rnn_state)
    linear.load_state_dict(linear_state)
    return rnn, linear

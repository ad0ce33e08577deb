"""The public functions of rnncore: NumPy arrays in, NumPy arrays out.

Arrays are time-major, like PyTorch's default: x is (T, B, D) for T steps
of a batch of B sequences with D features; hidden states are (T, B, H).
Weights use PyTorch's layout: W_xh (H, D), W_hh (H, H), W_hy (C, H).

Each function validates its arguments here, then runs one compiled kernel
that releases the GIL for the whole computation.
"""
import math
from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from rnncore import _output, _recurrence, _softmax, _training
from rnncore._plain import plain_output_dims, plain_recurrence_dims, plain_train_dims
from rnncore._softmax import targets_in_range
from rnncore._threads import guarded
from rnncore._validation import (
    BLAS_INT_MAX,
    FLOAT_DTYPES,
    Arguments,
    as_array,
    check_axis,
    check_index,
    check_lengths,
    check_mode,
    check_targets,
)
from rnncore._workspace import scratch, train_step_shapes

__all__ = [
    "RNNGrads",
    "rnn_forward",
    "rnn_backward",
    "output_layer",
    "softmax_cross_entropy",
    "softmax",
    "log_softmax",
    "loss_and_grads",
]

PARAM_SHAPES = {
    "W_xh": ("H", "D"),
    "W_hh": ("H", "H"),
    "b_h": ("H",),
    "W_hy": ("C", "H"),
    "b_y": ("C",),
}

RNNGrads = namedtuple("RNNGrads", ["dx", "dh0", "dW_xh", "dW_hh", "db_h"])
RNNGrads.__doc__ = """Gradients returned by :func:`rnn_backward`.

dx (T, B, D), dh0 (B, H) (also when h0 was None: the gradient with respect
to the zero initial state), dW_xh (H, D), dW_hh (H, H), db_h (H,)."""


def _absent(shape, dtype):
    """An empty read-only array: an absent h0 or lengths, as the kernels take
    it, made once instead of at every call."""
    arr = np.empty(shape, dtype)
    arr.flags.writeable = False
    return arr


_ABSENT = {dtype: _absent((0, 0), dtype) for dtype in FLOAT_DTYPES}
_NO_LENGTHS = _absent(0, np.intp)


def _unchecked_empty(dtype):
    """Arguments.empty without its size check, for the arrays of a call
    whose sizes a check of rnncore._plain has bounded by its arguments' own."""
    def empty(*shape):
        return np.empty(shape, dtype)
    return empty


def _recurrence_args(args, x, W_xh, W_hh, h0, lengths):
    """Validates the arguments shared by the forward and backward passes.
    Absent optional arrays become empty arrays (the kernels' convention).
    Also returns the (T, B) mask of padded steps, or None without padding."""
    x = args.floats("x", x, ("T", "B", "D"))
    W_xh = args.floats("W_xh", W_xh, ("H", "D"))
    W_hh = args.floats("W_hh", W_hh, ("H", "H"))
    h0 = _ABSENT[args.dtype] if h0 is None else args.floats("h0", h0, ("B", "H"))
    if lengths is None:
        lengths = _NO_LENGTHS
    else:
        lengths = args.ints("lengths", lengths, ("B",))
    args.check_sizes()
    # np.intp even when empty (B == 0): the kernels take no other dtype
    lengths = check_lengths(lengths, args.dims["T"])
    padded = None
    if lengths.size:
        padded = np.arange(args.dims["T"])[:, None] >= lengths[None, :]
        if padded.any():
            # Padding is never read: zeroed here, a NaN there cannot leak
            # into dW_xh through 0 * NaN.
            x = np.where(padded[:, :, None], x.dtype.type(0), x)
        else:
            padded = None
    return x, W_xh, W_hh, h0, lengths, padded


def rnn_forward(x, W_xh, W_hh, b_h, h0=None, lengths=None):
    """Run the Elman recurrence over a batch of sequences.

    ``h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)``, with ``h_{-1} = h0``.

    Parameters
    ----------
    x : ndarray, shape (T, B, D)
        Inputs, time-major. float32 or float64.
    W_xh : ndarray, shape (H, D)
        Input-to-hidden weights (PyTorch's ``weight_ih_l0``).
    W_hh : ndarray, shape (H, H)
        Hidden-to-hidden weights (PyTorch's ``weight_hh_l0``).
    b_h : ndarray, shape (H,)
        Hidden bias (PyTorch's ``bias_ih_l0 + bias_hh_l0``).
    h0 : ndarray, shape (B, H), optional
        Initial state; zeros when None.
    lengths : array of int, shape (B,), optional
        Length of each sequence, in [1, T], in any order. Steps at or past a
        sequence's length output zeros and leave its state unchanged.

    Returns
    -------
    hs : ndarray, shape (T, B, H)
        Every hidden state, a new C-contiguous array of the input dtype.

    Raises
    ------
    ValueError
        Wrong number of dimensions, mismatched sizes, T == 0, lengths out of
        [1, T], or sizes beyond BLAS's 32-bit integers.
    TypeError
        Non-float arrays, float16, mixed float dtypes, non-integer lengths.
    """
    dims = (plain_recurrence_dims(x, W_xh, W_hh, b_h)
            if h0 is None and lengths is None else None)
    if dims is not None:  # the common call, checked without Arguments
        T, B, _, H = dims
        dtype = x.dtype
        h0, lengths = _ABSENT[dtype], _NO_LENGTHS
        empty = _unchecked_empty(dtype)
    else:
        args = Arguments()
        x, W_xh, W_hh, h0, lengths, _ = _recurrence_args(
            args, x, W_xh, W_hh, h0, lengths
        )
        b_h = args.floats("b_h", b_h, ("H",))
        T, B, H = args.dims["T"], args.dims["B"], args.dims["H"]
        dtype, empty = args.dtype, args.empty
    hs = empty(T, B, H)
    wbuf, = scratch("rnn_forward",
                    [(_recurrence.weight_buffer_len(H, dtype.itemsize),)], dtype,
                    empty)
    guarded(_recurrence.forward, x, W_xh, W_hh, b_h, h0, lengths, wbuf, hs)
    return hs


def rnn_backward(dhs, hs, x, W_xh, W_hh, h0=None, lengths=None, dh_last=None):
    """Backpropagation through time for :func:`rnn_forward`.

    With ``δ_t = (1 - h_t²) ⊙ ∂L/∂h_t``, where ``∂L/∂h_t`` sums ``dhs[t]``
    and ``W_hhᵀ δ_{t+1}`` (and ``dh_last`` at each sequence's last step):
    ``dW_hh = Σ_t δ_t h_{t-1}ᵀ``, ``dW_xh = Σ_t δ_t x_tᵀ``, ``db_h = Σ_t δ_t``,
    ``dx_t = W_xhᵀ δ_t``, ``dh0 = W_hhᵀ δ_0``. See docs/derivation.md.

    Parameters
    ----------
    dhs : ndarray, shape (T, B, H), or None
        Gradient of the loss with respect to each ``h_t`` from outside the
        recurrence (e.g. from an output layer at every step); None for zeros.
        Entries at padded steps (t >= lengths[b]) are ignored.
    hs : ndarray, shape (T, B, H)
        The hidden states returned by :func:`rnn_forward`.
    x, W_xh, W_hh, h0, lengths
        As given to :func:`rnn_forward`.
    dh_last : ndarray, shape (B, H), optional
        Gradient with respect to each sequence's final state (the state at
        step ``lengths[b] - 1``), e.g. from a many-to-one output layer.

    Returns
    -------
    RNNGrads
        Named tuple ``(dx, dh0, dW_xh, dW_hh, db_h)`` of new arrays. ``dx`` is
        zero at padded steps.

    Raises
    ------
    ValueError, TypeError
        As for :func:`rnn_forward`, for every argument.
    """
    args = Arguments()
    hs = args.floats("hs", hs, ("T", "B", "H"))
    x, W_xh, W_hh, h0, lengths, _ = _recurrence_args(
        args, x, W_xh, W_hh, h0, lengths
    )
    T, B, D, H = (args.dims[s] for s in "TBDH")
    # read, never written: the kernel keeps δ in a small buffer of its own
    dhs = (args.empty(0, 0, 0) if dhs is None
           else args.floats("dhs", dhs, ("T", "B", "H")))
    if dh_last is None:
        dh_last = args.empty(0, 0)
    else:
        dh_last = args.floats("dh_last", dh_last, ("B", "H"))
    grads = RNNGrads(
        dx=args.empty(T, B, D),
        dh0=args.empty(B, H),
        dW_xh=args.empty(H, D),
        dW_hh=args.empty(H, H),
        db_h=args.empty(H),
    )
    work, wbuf = scratch(
        "rnn_backward",
        [(_recurrence.backward_steps(T, B, D, H, args.dtype.itemsize), B, H),
         (_recurrence.backward_weight_buffer_len(B, H, args.dtype.itemsize),)],
        args.dtype, args.empty)
    guarded(_recurrence.backward, dhs, dh_last, hs, x, W_xh, W_hh, h0, lengths,
            *grads, work, wbuf)
    return grads


def output_layer(hs, W_hy, b_y):
    """The output layer on hidden states: ``hs @ W_hyᵀ + b_y``.

    One product with the bias added in the same pass; on several BLAS
    threads it runs on the same helper threads as :func:`rnn_forward`, so
    that an inference pass does not wake a second thread pool between its
    recurrence and its output layer.

    Parameters
    ----------
    hs : ndarray, shape (..., H)
        Hidden states, at least 1-D: (T, B, H) from :func:`rnn_forward`,
        (B, H) for final states, or (H,) for one state. float32 or float64.
    W_hy : ndarray, shape (C, H)
        Output weights (PyTorch's ``nn.Linear.weight``).
    b_y : ndarray, shape (C,)
        Output bias.

    Returns
    -------
    logits : ndarray, shape (..., C)
        A new C-contiguous array of the input dtype; its leading dimensions
        are those of ``hs``.

    Raises
    ------
    ValueError
        ``hs`` is a scalar, mismatched sizes, or sizes beyond BLAS's 32-bit
        integers.
    TypeError
        Non-float arrays, float16, mixed float dtypes.
    """
    plain = plain_output_dims(hs, W_hy, b_y)
    if plain is not None:  # the common call, checked without Arguments
        N, H, C = plain
        logits = np.empty((N, C), hs.dtype)
        guarded(_output.logits, hs.reshape(N, H), W_hy, b_y, logits)
        return logits.reshape(*hs.shape[:-1], C)
    args = Arguments()
    if hs is None:
        raise TypeError("hs must be a float32 or float64 array, got None")
    hs = as_array("hs", hs)
    if hs.ndim == 0:
        raise ValueError("hs must be at least 1-D with shape (..., H), got a scalar")
    lead = hs.shape[:-1]
    N = math.prod(lead)
    if N > BLAS_INT_MAX:  # checked before hs is converted or copied
        raise ValueError(
            f"hs has {N} rows (the product of its leading dimensions {lead}), "
            f"beyond the BLAS integer limit {BLAS_INT_MAX}"
        )
    hs = args.floats("hs", hs, (*(f"n{i}" for i in range(len(lead))), "H"))
    W_hy = args.floats("W_hy", W_hy, ("C", "H"))
    b_y = args.floats("b_y", b_y, ("C",))
    H, C = args.dims["H"], args.dims["C"]
    logits = args.empty(N, C)
    if N * C and H:
        guarded(_output.logits, hs.reshape(N, H), W_hy, b_y, logits)
    else:  # nothing to multiply: every row is the bias
        logits[...] = b_y
    return logits.reshape(*lead, C)


def softmax_cross_entropy(logits, targets, ignore_index=-100):
    """Mean softmax cross-entropy and its gradient, fused and stable.

    ``loss = mean_n [logsumexp(logits[n]) - logits[n, targets[n]]]`` over the
    rows whose target is not ``ignore_index``; finite for any finite logits.
    One pass over the logits; from 2**15 of them, on several BLAS threads,
    the rows are shared by the helper threads of :func:`rnn_forward`.

    Parameters
    ----------
    logits : ndarray, shape (N, C)
        Unnormalised scores, float32 or float64.
    targets : array of int, shape (N,)
        Class indices in [0, C), or ``ignore_index`` to leave a row out.
    ignore_index : int, default -100
        Target value whose rows take no loss and get a zero gradient.

    Returns
    -------
    loss : float
        The mean over the rows not ignored (accumulated in double precision);
        0.0 when every row is ignored.
    dlogits : ndarray, shape (N, C)
        ``(softmax(logits) - onehot(targets)) / n_valid`` on rows not
        ignored, zero on ignored rows.

    Raises
    ------
    ValueError
        Wrong shapes, C == 0, or a target outside [0, C) other than
        ``ignore_index``.
    TypeError
        Non-float logits, non-integer targets or ignore_index.
    """
    args = Arguments()
    logits = args.floats("logits", logits, ("N", "C"))
    targets = args.ints("targets", targets, ("N",))
    ignore_index = check_index("ignore_index", ignore_index)
    args.check_sizes()
    targets = check_targets(targets, args.dims["C"], ignore_index)
    dlogits = args.empty(*logits.shape)
    loss = guarded(_softmax.cross_entropy, logits, targets, ignore_index, dlogits)
    return loss, dlogits


def _softmax_along(x, axis, log):
    args = Arguments()
    x = as_array("x", x)
    ndim = x.ndim
    x = args.floats("x", x, tuple(f"n{i}" for i in range(ndim)))
    if ndim == 0:
        raise ValueError("x must be at least 1-D, got a scalar")
    axis = check_axis(axis, ndim)
    moved = np.moveaxis(x, axis, -1)
    # the row count spelled out: reshape(-1, 0) is ambiguous for empty rows
    rows = np.ascontiguousarray(
        moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1]))
    out = np.empty_like(rows)
    if rows.size:
        guarded(_softmax.softmax, rows, out, log)
    return np.ascontiguousarray(np.moveaxis(out.reshape(moved.shape), -1, axis))


def softmax(x, axis=-1):
    """Softmax along ``axis``, shifted by the maximum so it never overflows.

    Parameters
    ----------
    x : ndarray, at least 1-D
        Scores, float32 or float64, any shape and memory layout.
    axis : int, default -1
        The axis along which the result sums to 1.

    Returns
    -------
    ndarray
        Same shape and dtype as ``x``, a new C-contiguous array; each slice
        along ``axis`` sums to 1.

    Raises
    ------
    ValueError
        ``x`` is a scalar, or ``axis`` is out of range (NumPy's AxisError).
    TypeError
        ``x`` is not float32 or float64 (or is None).
    """
    return _softmax_along(x, axis, log=False)


def log_softmax(x, axis=-1):
    """Log-softmax along ``axis``: ``(x - max) - log Σ exp(x - max)``.

    Exact for huge logits (no ``log(exp(...))`` round trip).

    Parameters
    ----------
    x : ndarray, at least 1-D
        Scores, float32 or float64, any shape and memory layout.
    axis : int, default -1
        The axis along which the softmax is taken.

    Returns
    -------
    ndarray
        Same shape and dtype as ``x``, a new C-contiguous array.

    Raises
    ------
    ValueError
        ``x`` is a scalar, or ``axis`` is out of range (NumPy's AxisError).
    TypeError
        ``x`` is not float32 or float64 (or is None).
    """
    return _softmax_along(x, axis, log=True)


def loss_and_grads(params, x, targets, *, mode="seq", h0=None, lengths=None,
                   ignore_index=-100):
    """One training step: forward, softmax cross-entropy, all gradients.

    ``h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)``, ``y = W_hy h + b_y``,
    ``loss = mean cross-entropy(y, targets)``.

    Parameters
    ----------
    params : mapping
        Exactly the keys ``W_xh`` (H, D), ``W_hh`` (H, H), ``b_h`` (H,),
        ``W_hy`` (C, H), ``b_y`` (C,), all of one float dtype.
    x : ndarray, shape (T, B, D)
        Inputs, time-major, same dtype as the parameters.
    targets : array of int
        ``mode="seq"``: shape (T, B), a class per step; ``mode="last"``:
        shape (B,), a class per sequence. Values in [0, C) or
        ``ignore_index``.
    mode : {"seq", "last"}
        ``"seq"``: logits and loss at every step (many-to-many);
        ``"last"``: only on each sequence's final state (many-to-one).
    h0 : ndarray, shape (B, H), optional
        Initial state; zeros when None. No gradient flows into it (use
        :func:`rnn_backward` for ``dh0``).
    lengths : array of int, shape (B,), optional
        Sequence lengths in [1, T]; padded steps take no loss.
    ignore_index : int, default -100
        Target value that takes no loss.

    Returns
    -------
    loss : float
        Mean cross-entropy over the targets that count (0.0 if none).
    grads : dict
        Gradients keyed like ``params``.
    h_last : ndarray, shape (B, H)
        Each sequence's final state, to carry into the next chunk.

    Raises
    ------
    ValueError
        Unknown ``mode``, a missing or unknown key in ``params``, wrong or
        mismatched shapes, targets or lengths out of range.
    TypeError
        ``params`` not a mapping, non-float arrays, mixed float dtypes,
        non-integer targets, lengths or ignore_index.
    """
    check_mode(mode)
    seq = mode == "seq"
    ignore_index = check_index("ignore_index", ignore_index)
    if (h0 is None and lengths is None and type(params) is dict
            and len(params) == len(PARAM_SHAPES)):
        # the common call, checked without Arguments' conversions and messages
        done = _plain_train_step(seq, x, params.get("W_xh"), params.get("W_hh"),
                                 params.get("b_h"), params.get("W_hy"),
                                 params.get("b_y"), targets, ignore_index)
        if done is not None:
            return done
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    missing = [k for k in PARAM_SHAPES if k not in params]
    if missing:
        raise ValueError(f"params is missing the key(s) {missing}; expected "
                         f"{list(PARAM_SHAPES)}")
    unknown = [k for k in params if k not in PARAM_SHAPES]
    if unknown:
        raise ValueError(f"params has unknown key(s) {unknown}; expected "
                         f"{list(PARAM_SHAPES)}")
    args = Arguments()
    x, W_xh, W_hh, h0, lengths, padded = _recurrence_args(
        args, x, params["W_xh"], params["W_hh"], h0, lengths
    )
    b_h = args.floats("b_h", params["b_h"], PARAM_SHAPES["b_h"])
    W_hy = args.floats("W_hy", params["W_hy"], PARAM_SHAPES["W_hy"])
    b_y = args.floats("b_y", params["b_y"], PARAM_SHAPES["b_y"])
    targets = args.ints("targets", targets, ("T", "B") if seq else ("B",))
    args.check_sizes()
    targets = check_targets(targets, args.dims["C"], ignore_index)
    if seq and padded is not None:
        targets = np.where(padded.reshape(-1), ignore_index, targets)
    return _train_step(seq, x, W_xh, W_hh, b_h, W_hy, b_y, targets,
                       args.dims["C"], ignore_index, h0, lengths, args.empty)


def _plain_train_step(seq, x, W_xh, W_hh, b_h, W_hy, b_y, targets, ignore_index,
                      sizes=None):
    """loss_and_grads without h0 or lengths, on arrays that need no
    conversion and no message (rnncore/_plain.pyx), with the sizes (D, H, C)
    unless `sizes` is None, and targets in range: (loss, grads keyed W_xh,
    W_hh, b_h, W_hy, b_y, h_last).  None for any other call, for the full
    checks to convert the arrays or name the problem.  Also rnncore.model's
    path for a one-layer model."""
    dims = plain_train_dims(x, W_xh, W_hh, b_h, W_hy, b_y, targets, seq)
    if dims is None or (sizes is not None and dims[2:] != sizes):
        return None
    C = dims[4]
    targets = targets.reshape(-1)
    if not targets_in_range(targets, C, ignore_index):
        return None
    dtype = x.dtype
    return _train_step(seq, x, W_xh, W_hh, b_h, W_hy, b_y, targets, C,
                       ignore_index, _ABSENT[dtype], _NO_LENGTHS,
                       _unchecked_empty(dtype))


def _train_step(seq, x, W_xh, W_hh, b_h, W_hy, b_y, targets, C, ignore_index,
                h0, lengths, empty):
    """The compiled step on checked arrays; new gradients and h_last.
    empty(*shape) allocates an array of the call's dtype."""
    T, B, D = x.shape
    H = W_hh.shape[0]
    grads = {"W_xh": empty(H, D), "W_hh": empty(H, H), "b_h": empty(H),
             "W_hy": empty(C, H), "b_y": empty(C)}
    h_last = empty(B, H)
    loss = guarded(
        _training.train_step,
        seq, x, targets, ignore_index, W_xh, W_hh, b_h, W_hy, b_y, h0, lengths,
        grads["W_xh"], grads["W_hh"], grads["b_h"], grads["W_hy"], grads["b_y"],
        h_last,
        *scratch("loss_and_grads", train_step_shapes(
            seq, T, B, D, H, C, x.dtype.itemsize), x.dtype, empty))
    return loss, grads, h_last

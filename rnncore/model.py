"""A stacked, optionally bidirectional Elman RNN with a softmax output layer.

``RNN`` owns its parameters (a dict of NumPy arrays in PyTorch's layout) and
arranges calls to the compiled kernels: one call per layer and direction for
the whole sequence, never a Python loop over time steps.

Layer k's input is layer k-1's hidden states (the two directions'
concatenated); the reverse direction reads each sequence backwards within
its own length, so padding stays at the end.  The output layer reads the top
layer's states at every step (``mode="seq"``) or each sequence's final state
(``mode="last"``; for the reverse direction that is its state after reading
step 0, as in PyTorch's ``h_n``).
"""
import numpy as np

from rnncore import _output, _recurrence, _training, serialization, torch_interop
from rnncore._plain import plain_recurrence_dims
from rnncore._threads import guarded
from rnncore._validation import (
    BLAS_INT_MAX,
    FLOAT_DTYPES,
    Arguments,
    as_array,
    check_index,
    check_lengths,
    check_nbytes,
    check_targets,
)
from rnncore._workspace import Workspace, train_step_shapes
from rnncore.functional import _plain_train_step, softmax, softmax_cross_entropy

__all__ = ["RNN"]

INPUT_INITS = ("uniform", "xavier")
RECURRENT_INITS = ("uniform", "orthogonal")
MODES = ("seq", "last")
# Steps per kernel call on the inference path: memory O(CHUNK·B·H), with
# the input projection still one GEMM per chunk.
CHUNK = 64
_NO_LENGTHS = np.empty(0, np.intp)
_NO_LENGTHS.flags.writeable = False


def _positive_int(name, value, minimum=1):
    value = check_index(name, value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _choice(name, value, options):
    # a str test first: `in` would compare an array element-wise
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def _weight_buffer_len(H, dtype):
    """Elements of the kernels' W_hh workspace (see _recurrence)."""
    return _recurrence.weight_buffer_len(H, np.dtype(dtype).itemsize)


def _layer_suffix(layer, direction):
    return f"_l{layer}" + ("_reverse" if direction else "")


class RNN:
    """Elman RNN: ``h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)`` per layer and
    direction, then ``y = W_hy h + b_y`` and a softmax over ``output_size``
    classes.

    Parameters
    ----------
    input_size : int
        Features per step, D. Inputs may also be integer token ids in
        ``[0, input_size)``, which are one-hot encoded.
    hidden_size : int
        Hidden units per layer and direction, H.
    output_size : int
        Number of classes, C.
    num_layers : int, default 1
        Stacked layers; layer k reads layer k-1's hidden states.
    bidirectional : bool, default False
        Add a second recurrence per layer that reads each sequence reversed
        within its length; the two directions' states are concatenated.
    dtype : {"float32", "float64"} or NumPy dtype, default float32
    input_init : {"uniform", "xavier"}, default "uniform"
        ``"uniform"``: PyTorch's U(-1/√H, 1/√H); ``"xavier"``: Glorot
        uniform U(-a, a) with a = √(6 / (fan_in + H)).
    recurrent_init : {"uniform", "orthogonal"}, default "uniform"
        ``"orthogonal"``: W_hh a random orthogonal matrix.
    seed : int or None
        Seed of the initialisation; equal seeds give bit-identical models.

    Attributes
    ----------
    params : dict of str to ndarray
        ``W_xh_l{k}`` (H, D or num_directions·H), ``W_hh_l{k}`` (H, H),
        ``b_h_l{k}`` (H,), the same with a ``_reverse`` suffix for the second
        direction, ``W_hy`` (C, num_directions·H) and ``b_y`` (C,). Biases
        and the output layer start at U(-1/√fan_in, 1/√fan_in). Optimisers
        update these arrays in place.
    """

    def __init__(self, input_size, hidden_size, output_size, *, num_layers=1,
                 bidirectional=False, dtype="float32", input_init="uniform",
                 recurrent_init="uniform", seed=None):
        self.input_size = _positive_int("input_size", input_size)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.output_size = _positive_int("output_size", output_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError(
                f"bidirectional must be a bool, got {type(bidirectional).__name__}")
        self.bidirectional = bool(bidirectional)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(
                f"dtype must be float32 or float64, got {dtype!r}") from None
        if self.dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.input_init = _choice("input_init", input_init, INPUT_INITS)
        self.recurrent_init = _choice("recurrent_init", recurrent_init,
                                      RECURRENT_INITS)
        self.seed = seed
        self._check_sizes()
        self.params = self._init_params(np.random.default_rng(seed))

    # ---- configuration -------------------------------------------------

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def config(self):
        """The constructor arguments (without the seed), as plain values."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "dtype": self.dtype.name,
            "input_init": self.input_init,
            "recurrent_init": self.recurrent_init,
        }

    def param_shapes(self):
        """Dict of parameter name to shape, in the order of ``params``."""
        H, nd = self.hidden_size, self.num_directions
        shapes = {}
        for k in range(self.num_layers):
            d_in = self.input_size if k == 0 else nd * H
            for d in range(nd):
                s = _layer_suffix(k, d)
                shapes["W_xh" + s] = (H, d_in)
                shapes["W_hh" + s] = (H, H)
                shapes["b_h" + s] = (H,)
        shapes["W_hy"] = (self.output_size, nd * H)
        shapes["b_y"] = (self.output_size,)
        return shapes

    def _check_sizes(self):
        """Refuses, before any parameter is allocated, sizes that the kernels
        cannot take (every matrix dimension is a 32-bit BLAS int) or that no
        array could hold (beyond the address space)."""
        D, H, C = self.input_size, self.hidden_size, self.output_size
        L, nd = self.num_layers, self.num_directions
        F = nd * H  # the features of layers 1, 2, ... and of the output layer
        for name, size in (("input_size", D), ("hidden_size", H),
                           ("output_size", C),
                           (f"num_directions * hidden_size = {nd} * {H}", F)):
            if size > BLAS_INT_MAX:
                raise ValueError(f"{name} ({size}) exceeds the BLAS integer limit "
                                 f"{BLAS_INT_MAX}")
        # each matrix is drawn in float64 and then cast to the model's dtype
        f64 = np.dtype(np.float64)
        check_nbytes(f"W_xh_l0 (hidden_size, input_size) = ({H}, {D})", (H, D), f64)
        check_nbytes(f"W_hh_l0 (hidden_size, hidden_size) = ({H}, {H})", (H, H),
                     f64)
        if L > 1:
            check_nbytes(f"W_xh_l1 (hidden_size, num_directions * hidden_size) = "
                         f"({H}, {F})", (H, F), f64)
        check_nbytes(f"W_hy (output_size, num_directions * hidden_size) = "
                     f"({C}, {F})", (C, F), f64)
        total = nd * (H * D + (L - 1) * H * F + L * (H * H + H)) + C * F + C
        check_nbytes(f"the {total} parameters of input_size = {D}, hidden_size = "
                     f"{H}, output_size = {C}, num_layers = {L} and "
                     f"num_directions = {nd}", (total,), self.dtype)

    def _init_params(self, rng):
        H = self.hidden_size
        bound = 1.0 / np.sqrt(H)
        params = {}
        for name, shape in self.param_shapes().items():
            if name.startswith("W_xh") and self.input_init == "xavier":
                a = np.sqrt(6.0 / (shape[0] + shape[1]))
                value = rng.uniform(-a, a, shape)
            elif name.startswith("W_hh") and self.recurrent_init == "orthogonal":
                q, r = np.linalg.qr(rng.standard_normal(shape))
                value = q * np.where(np.diag(r) < 0, -1.0, 1.0)  # Haar measure
            elif name in ("W_hy", "b_y"):
                fan_in = self.num_directions * H
                value = rng.uniform(-1 / np.sqrt(fan_in), 1 / np.sqrt(fan_in), shape)
            else:
                value = rng.uniform(-bound, bound, shape)
            params[name] = np.ascontiguousarray(value, dtype=self.dtype)
        return params

    def _layer(self, k, d):
        s = _layer_suffix(k, d)
        p = self.params
        return p["W_xh" + s], p["W_hh" + s], p["b_h" + s]

    def __repr__(self):
        extra = ", bidirectional=True" if self.bidirectional else ""
        return (f"RNN({self.input_size}, {self.hidden_size}, {self.output_size}, "
                f"num_layers={self.num_layers}{extra}, dtype={self.dtype.name})")

    # ---- files and PyTorch: rnncore.serialization, rnncore.torch_interop --

    save = serialization.save
    load = staticmethod(serialization.load)
    from_torch = staticmethod(torch_interop.from_torch)
    to_torch = torch_interop.to_torch

    # ---- input checking ------------------------------------------------

    def _check_params(self):
        """The parameters may have been replaced by the user: recheck them."""
        for name, shape in self.param_shapes().items():
            value = self.params.get(name)
            if (not isinstance(value, np.ndarray) or value.shape != shape
                    or value.dtype != self.dtype or not value.flags.c_contiguous):
                got = (f"{type(value).__name__}" if not isinstance(value, np.ndarray)
                       else f"{value.dtype} array of shape {value.shape}")
                raise ValueError(
                    f"params[{name!r}] must be a C-contiguous {self.dtype} array of "
                    f"shape {shape}, got {got}")

    def _floats(self, args, name, value, symbols):
        """A float array cast to the model's dtype (other kinds are left for
        Arguments to refuse)."""
        arr = as_array(name, value) if value is not None else None
        if arr is not None and arr.dtype.kind == "f" and arr.dtype != self.dtype:
            arr = arr.astype(self.dtype)
        return args.floats(name, arr, symbols)

    def _inputs(self, x, symbols=("T", "B", "D")):
        """x as floats of the model's dtype; integer token ids are one-hot
        encoded.  Returns (args, x) with T, B (and D) bound."""
        args = Arguments(self.dtype, "the model")
        arr = as_array("x", x) if x is not None else None
        if arr is not None and arr.dtype.kind in "iu" and arr.ndim == len(symbols) - 1:
            ids = args.ints("x", arr, symbols[:-1])
            D = self.input_size
            check_nbytes(f"one-hot encoding the token ids x of shape {ids.shape} "
                         f"over input_size = {D} classes", (*ids.shape, D),
                         self.dtype)
            if ids.size and (ids.min() < 0 or ids.max() >= D):
                raise ValueError(
                    f"token ids in x must lie in [0, input_size) = [0, {D}), got "
                    f"values in [{ids.min()}, {ids.max()}]")
            onehot = np.zeros((*ids.shape, D), dtype=self.dtype)
            np.put_along_axis(onehot, ids[..., None].astype(np.intp), 1, axis=-1)
            arr = onehot
        arr = self._floats(args, "x", arr, symbols)
        if args.dims[symbols[-1]] != self.input_size:
            raise ValueError(
                f"x must have {self.input_size} features (input_size) on its last "
                f"axis, got shape {arr.shape}")
        return args, arr

    def _plain_inputs(self, x):
        """Whether x is a (T, B, input_size) array of the model's dtype that
        _sequence_args would take as it is, with no h0 or lengths
        (rnncore/_plain.pyx, against the first layer's parameters)."""
        p = self.params
        dims = plain_recurrence_dims(x, p.get("W_xh_l0"), p.get("W_hh_l0"),
                                     p.get("b_h_l0"))
        return (dims is not None and x.dtype == self.dtype
                and dims[2:] == (self.input_size, self.hidden_size))

    def _sequence_args(self, x, h0, lengths):
        """Validated (args, x, h0s, lengths, padded) for a whole-sequence call;
        h0s is a list indexed [layer·num_directions + direction] or None."""
        self._check_params()
        args, x = self._inputs(x)
        args.fix("H", self.hidden_size, "hidden_size")
        h0s = None
        if h0 is not None:
            h0 = self._floats(args, "h0", h0, ("S", "B", "H"))
            S = self.num_layers * self.num_directions
            if h0.shape[0] != S:
                raise ValueError(
                    f"h0 must have shape (num_layers * num_directions, B, H) = "
                    f"({S}, B, {self.hidden_size}), got shape {h0.shape}")
            h0s = list(np.array(h0))  # a copy: h0 may alias a buffer we write
        if lengths is None:
            lengths = np.empty(0, dtype=np.intp)
        else:
            lengths = check_lengths(args.ints("lengths", lengths, ("B",)),
                                    args.dims["T"])
        args.check_sizes()
        padded = None
        if lengths.size:
            padded = np.arange(args.dims["T"])[:, None] >= lengths[None, :]
            if padded.any():
                # padding is never read: a NaN there cannot leak into gradients
                x = np.where(padded[:, :, None], x.dtype.type(0), x)
            else:
                padded = None
        return args, x, h0s, lengths, padded

    # ---- helpers over (T, B, ...) arrays --------------------------------

    @staticmethod
    def _reversal(T, B, lengths):
        """Index (T, B) reversing each sequence within its length; None when
        every sequence has T steps (then a plain flip does it)."""
        if not lengths.size:
            return None
        t = np.arange(T)[:, None]
        return np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)

    @staticmethod
    def _reverse(a, rev):
        if rev is None:
            return np.ascontiguousarray(a[::-1])
        return np.ascontiguousarray(a[rev, np.arange(a.shape[1])[None, :]])

    @staticmethod
    def _last(hs, lengths):
        """Each sequence's state at its last step: hs[lengths[b] - 1, b]."""
        if not lengths.size:
            return hs[-1].copy()
        return hs[lengths - 1, np.arange(hs.shape[1])]

    # ---- training path --------------------------------------------------

    def loss_and_grads(self, x, targets, *, mode="seq", h0=None, lengths=None,
                       ignore_index=-100):
        """Mean softmax cross-entropy and the gradient of every parameter.

        Parameters
        ----------
        x : ndarray, shape (T, B, D), or integer ids of shape (T, B)
            Inputs, time-major. Float inputs (and ``h0``) are cast to the
            model's dtype; integer ids in [0, input_size) are one-hot encoded.
        targets : array of int
            ``mode="seq"``: (T, B), a class per step; ``mode="last"``: (B,).
            Values in [0, output_size) or ``ignore_index``.
        mode : {"seq", "last"}
            Loss at every step (many-to-many) or on each sequence's final
            state (many-to-one).
        h0 : ndarray, shape (num_layers·num_directions, B, H), optional
            Initial states (PyTorch's ``h_0`` layout); zeros when None. No
            gradient flows into it: carrying the returned ``h_n`` into the
            next chunk is truncated backpropagation through time.
        lengths : array of int, shape (B,), optional
            Sequence lengths in [1, T], any order; padded steps take no loss.
        ignore_index : int, default -100

        Returns
        -------
        loss : float
            Mean cross-entropy over the targets that count (0.0 if none).
        grads : dict
            New arrays keyed like ``params``.
        h_n : ndarray, shape (num_layers·num_directions, B, H)
            Final states, to carry into the next chunk.

        Raises
        ------
        ValueError, TypeError
            Bad shapes, dtypes, modes, lengths or targets, naming the argument.
        """
        return self._step(x, targets, mode, h0, lengths, ignore_index)

    def _step(self, x, targets, mode, h0, lengths, ignore_index, ws=None):
        """loss_and_grads: _plain_step where it applies, else _train_step
        on the workspace ``ws`` (a new one when None)."""
        if h0 is None and lengths is None and self.num_layers == 1:
            done = self._plain_step(x, targets, mode, ignore_index)
            if done is not None:
                return done
        return self._train_step(x, targets, mode, h0, lengths, ignore_index,
                                Workspace() if ws is None else ws)

    def _plain_step(self, x, targets, mode, ignore_index):
        """loss_and_grads of a one-layer, one-direction model whose arguments
        and parameters need no conversion: the path of
        rnncore.loss_and_grads, without Arguments (for the tiny workload,
        60 µs instead of 74); None for any other call."""
        _choice("mode", mode, MODES)
        ignore_index = check_index("ignore_index", ignore_index)
        if (self.bidirectional or not isinstance(x, np.ndarray)
                or x.dtype != self.dtype):
            return None
        p = self.params
        done = _plain_train_step(
            mode == "seq", x, p.get("W_xh_l0"), p.get("W_hh_l0"), p.get("b_h_l0"),
            p.get("W_hy"), p.get("b_y"), targets, ignore_index,
            (self.input_size, self.hidden_size, self.output_size))
        if done is None:
            return None
        loss, grads, h_last = done
        return loss, {name + suffix: grads[name] for name, suffix in (
            ("W_xh", "_l0"), ("W_hh", "_l0"), ("b_h", "_l0"), ("W_hy", ""),
            ("b_y", ""))}, h_last[None]

    def _train_step(self, x, targets, mode, h0, lengths, ignore_index, ws):
        """loss_and_grads with every array taken from the workspace ``ws``
        (a training loop passes the same one each step, so that steady state
        allocates no new buffers; the returned grads live in ``ws``)."""
        _choice("mode", mode, MODES)
        args, x, h0s, lengths, padded = self._sequence_args(x, h0, lengths)
        seq = mode == "seq"
        args.fix("C", self.output_size, "output_size")
        targets = args.ints("targets", targets, ("T", "B") if seq else ("B",))
        ignore_index = check_index("ignore_index", ignore_index)
        targets = check_targets(targets, self.output_size, ignore_index)
        if seq and padded is not None:
            targets = np.where(padded.reshape(-1), ignore_index, targets)
        grads = {name: ws.get("grad " + name, shape, self.dtype)
                 for name, shape in self.param_shapes().items()}
        if self.num_layers == 1 and not self.bidirectional:
            loss, h_n = self._fused_step(seq, x, targets, ignore_index, h0s,
                                         lengths, grads, ws)
        else:
            loss, h_n = self._layered_step(seq, x, targets, ignore_index, h0s,
                                           lengths, grads, ws)
        return loss, grads, h_n

    def _fused_step(self, seq, x, targets, ignore_index, h0s, lengths, grads, ws):
        """One layer, one direction: the whole step in one compiled call."""
        T, B, _ = x.shape
        H, C, dt = self.hidden_size, self.output_size, self.dtype
        h0 = h0s[0] if h0s is not None else ws.get("empty", (0, 0), dt)
        h_n = ws.get("h_n", (1, B, H), dt)
        s = _layer_suffix(0, 0)
        p = self.params
        names = ("hs", "work", "wbuf", "logits", "dh_last", "dh0")
        shapes = train_step_shapes(seq, T, B, x.shape[2], H, C,
                                   np.dtype(dt).itemsize)
        loss = guarded(
            _training.train_step,
            seq, x, targets, ignore_index, p["W_xh" + s], p["W_hh" + s],
            p["b_h" + s], p["W_hy"], p["b_y"], h0, lengths, grads["W_xh" + s],
            grads["W_hh" + s], grads["b_h" + s], grads["W_hy"], grads["b_y"],
            h_n[0], *(ws.get(name, shape, dt)
                      for name, shape in zip(names, shapes, strict=True)))
        return loss, h_n

    def _layered_step(self, seq, x, targets, ignore_index, h0s, lengths, grads, ws):
        T, B, _ = x.shape
        H, C = self.hidden_size, self.output_size
        nd, dt = self.num_directions, self.dtype
        F = nd * H
        rev = self._reversal(T, B, lengths) if self.bidirectional else None
        empty = ws.get("empty", (0, 0), dt)
        wbuf = ws.get("wbuf", (_weight_buffer_len(H, dt),), dt)

        # forward, keeping each direction's input and states (in its own
        # reading order) for the backward pass
        runs = []  # runs[k][d] = (xin, hs)
        inp = x
        for k in range(self.num_layers):
            layer = []
            for d in range(nd):
                W_xh, W_hh, b_h = self._layer(k, d)
                xin = inp if d == 0 else self._reverse(inp, rev)
                hs = ws.get(f"hs {k} {d}", (T, B, H), dt)
                h0 = h0s[k * nd + d] if h0s is not None else empty
                guarded(_recurrence.forward, xin, W_xh, W_hh, b_h, h0, lengths,
                        wbuf, hs)
                layer.append((xin, hs))
            runs.append(layer)
            if nd == 1:
                inp = layer[0][1]
            else:
                inp = np.concatenate(
                    [layer[0][1], self._reverse(layer[1][1], rev)], axis=2)
        h_n = np.stack([self._last(hs, lengths) for layer in runs for _, hs in layer])

        dh0 = ws.get("dh0", (B, H), dt)
        # One direction in mode "seq": the top layer's backward pass runs the
        # output layer chunk by chunk (as the one-layer step does), so neither
        # all T·B·C logits nor ∂L/∂(top states) exist at once.  Otherwise the
        # output layer first: its gradient with respect to the features it
        # read, `upstream` (T, B, F) in mode "seq", dfeats (B, F) in "last".
        fold = seq and nd == 1
        K = _recurrence.backward_steps(T, B, max(x.shape[2], F), H,
                                       np.dtype(dt).itemsize, C if fold else 0)
        work = ws.get("work", (K, B, H), dt)
        W_hy, b_y = self.params["W_hy"], self.params["b_y"]
        loss = upstream = dfeats = None
        if not fold:
            feats = (inp.reshape(T * B, F) if seq
                     else np.concatenate(list(h_n[-nd:]), axis=1))
            dfeats = ws.get("dfeats", feats.shape, dt)
            logits = ws.get("logits", (_output.output_workspace_rows(
                feats.shape[0]), C), dt)
            loss = guarded(_output.loss_grads, feats, targets, ignore_index,
                           W_hy, b_y, logits, grads["W_hy"], grads["b_y"], dfeats)
            upstream = dfeats.reshape(T, B, F) if seq else None

        # backward, top layer first
        for k in range(self.num_layers - 1, -1, -1):
            below = None
            for d in range(nd):
                s = _layer_suffix(k, d)
                W_xh, W_hh, _ = self._layer(k, d)
                xin, hs = runs[k][d]
                # layer k's dx is read by layer k-1 while that writes its own;
                # layer 0 computes none
                dx = (ws.get(f"dx {k % 2} {d}", (T, B, xin.shape[2]), dt) if k > 0
                      else ws.get("empty3", (0, 0, 0), dt))
                h0 = h0s[k * nd + d] if h0s is not None else empty
                layer_grads = (grads["W_xh" + s], grads["W_hh" + s],
                               grads["b_h" + s])
                if fold and k == self.num_layers - 1:
                    logits = ws.get("logits", (min(K, T) * B, C), dt)
                    loss = guarded(_training.top_backward, xin, targets,
                                   ignore_index, W_xh, W_hh, W_hy, b_y, h0,
                                   lengths, hs, dx, *layer_grads, grads["W_hy"],
                                   grads["b_y"], work, wbuf, logits, dh0)
                else:
                    cols = slice(d * H, (d + 1) * H)
                    if upstream is None:  # top layer, mode "last"
                        dhs = ws.get("empty3", (0, 0, 0), dt)
                        dh_last = np.ascontiguousarray(dfeats[:, cols])
                    else:
                        part = upstream[:, :, cols]
                        dhs = (np.ascontiguousarray(part) if d == 0
                               else self._reverse(part, rev))
                        dh_last = empty
                    guarded(_recurrence.backward, dhs, dh_last, hs, xin, W_xh,
                            W_hh, h0, lengths, dx, dh0, *layer_grads, work, wbuf)
                if k > 0:
                    dx = dx if d == 0 else self._reverse(dx, rev)
                    below = dx if below is None else below + dx
            upstream = below
        return loss, h_n

    # ---- inference path -------------------------------------------------

    def forward(self, x, *, mode="seq", h0=None, lengths=None, return_state=False):
        """Logits of the output layer, keeping no activations for training.

        Parameters
        ----------
        x, h0, lengths
            As for :meth:`loss_and_grads`.
        mode : {"seq", "last"}
            Logits at every step, shape (T, B, C), or one row per sequence
            from its final state, shape (B, C).
        return_state : bool, default False
            Also return the final states ``h_n``.

        Returns
        -------
        logits : ndarray, shape (T, B, C) or (B, C)
        h_n : ndarray, shape (num_layers·num_directions, B, H)
            Only with ``return_state=True``.

        Notes
        -----
        Memory: a unidirectional model runs in chunks of a few dozen steps
        through all layers, so ``mode="last"`` needs O(B·H) beyond the input,
        whatever T. A bidirectional model needs each layer's states below
        the top one in full, O(T·B·H). At padded steps (``t >= lengths[b]``)
        the states are zero, so those logits equal ``b_y``.
        """
        _choice("mode", mode, MODES)
        if h0 is None and lengths is None and self._plain_inputs(x):
            self._check_params()
            h0s, lengths = None, _NO_LENGTHS
        else:
            _args, x, h0s, lengths, _ = self._sequence_args(x, h0, lengths)
        T, B, _ = x.shape
        H, C = self.hidden_size, self.output_size
        nd, dt = self.num_directions, self.dtype
        S = self.num_layers * nd
        h = np.zeros((S, B, H), dt) if h0s is None else np.stack(h0s)
        seq = mode == "seq"
        logits = np.empty((T, B, C) if seq else (B, C), dt)
        wbuf = np.empty(_weight_buffer_len(H, dt), dt)
        W_hy, b_y = self.params["W_hy"], self.params["b_y"]

        if not self.bidirectional:
            # all layers chunk by chunk: only CHUNK steps of states are alive
            K = min(T, CHUNK)
            bufs = [np.empty((K, B, H), dt) for _ in range(self.num_layers)]
            for t0 in range(0, T, K):
                inp = x[t0:t0 + K]
                for k in range(self.num_layers):
                    out = bufs[k][:inp.shape[0]]
                    guarded(_recurrence.advance, inp, *self._layer(k, 0), lengths,
                            t0, h[k], wbuf, out)
                    inp = out
                if seq:
                    guarded(_output.logits, inp.reshape(-1, H), W_hy, b_y,
                            logits[t0:t0 + K].reshape(-1, C))
        else:
            rev = self._reversal(T, B, lengths)
            inp = x
            for k in range(self.num_layers):
                top_last = k == self.num_layers - 1 and not seq
                outs = []
                for d in range(nd):
                    xin = inp if d == 0 else self._reverse(inp, rev)
                    if top_last:  # only the final state is needed
                        self._advance_chunks(xin, k, d, lengths, h[k * nd + d], wbuf)
                    else:
                        out = np.empty((T, B, H), dt)
                        guarded(_recurrence.advance, xin, *self._layer(k, d),
                                lengths, 0, h[k * nd + d], wbuf, out)
                        outs.append(out if d == 0 else self._reverse(out, rev))
                if not top_last:
                    inp = np.concatenate(outs, axis=2)
            if seq:
                guarded(_output.logits, inp.reshape(T * B, nd * H), W_hy, b_y,
                        logits.reshape(T * B, C))
        if not seq:
            guarded(_output.logits,
                    np.ascontiguousarray(np.concatenate(list(h[-nd:]), axis=1)),
                    W_hy, b_y, logits)
        return (logits, h) if return_state else logits

    def _advance_chunks(self, xin, k, d, lengths, h, wbuf):
        """Runs layer k, direction d over xin keeping only the state h."""
        T, B, _ = xin.shape
        K = min(T, CHUNK)
        buf = np.empty((K, B, self.hidden_size), self.dtype)
        for t0 in range(0, T, K):
            chunk = xin[t0:t0 + K]
            guarded(_recurrence.advance, chunk, *self._layer(k, d), lengths, t0, h,
                    wbuf, buf[:chunk.shape[0]])

    def predict_proba(self, x, *, mode="seq", h0=None, lengths=None):
        """Class probabilities, shape (T, B, C) or (B, C); see :meth:`forward`."""
        return softmax(self.forward(x, mode=mode, h0=h0, lengths=lengths), axis=-1)

    def predict(self, x, *, mode="seq", h0=None, lengths=None):
        """The most probable class, shape (T, B) or (B,); see :meth:`forward`."""
        return np.argmax(self.forward(x, mode=mode, h0=h0, lengths=lengths), axis=-1)

    def step(self, x_t, h=None):
        """Advance a unidirectional model by one step, for streaming.

        Parameters
        ----------
        x_t : ndarray, shape (B, D), or integer ids of shape (B,)
        h : ndarray, shape (num_layers, B, H), optional
            The state from the previous call (zeros when None); not modified.

        Returns
        -------
        logits : ndarray, shape (B, C)
        h : ndarray, shape (num_layers, B, H)
            The new state, a new array.
        """
        if self.bidirectional:
            raise ValueError("step() needs a unidirectional model: the reverse "
                             "direction reads the sequence from its end")
        self._check_params()
        H, dt = self.hidden_size, self.dtype
        x = self._plain_step_input(x_t)
        shape = None if x is None else (self.num_layers, x.shape[0], H)
        if x is not None and h is None:
            h = np.zeros(shape, dt)
        elif (x is not None and type(h) is np.ndarray and h.dtype == dt
              and h.shape == shape):
            h = h.copy()  # ours to update
        else:
            args, x = self._inputs(x_t, ("B", "D"))
            B = x.shape[0]
            if h is None:
                h = np.zeros((self.num_layers, B, H), dt)
            else:
                # ours to update
                h = np.array(self._floats(args, "h", h, ("L", "B", "H")))
                if h.shape[::2] != (self.num_layers, H):
                    raise ValueError(f"h must have shape (num_layers, B, H) = "
                                     f"({self.num_layers}, {B}, {H}), got {h.shape}")
            args.check_sizes()
        B = x.shape[0]
        wbuf = np.empty(_weight_buffer_len(H, dt), dt)
        no_lengths = np.empty(0, dtype=np.intp)
        inp = x[None]
        for k in range(self.num_layers):
            out = np.empty((1, B, H), dt)
            guarded(_recurrence.advance, inp, *self._layer(k, 0), no_lengths, 0,
                    h[k], wbuf, out)
            inp = out
        logits = np.empty((B, self.output_size), dt)
        guarded(_output.logits, inp[0], self.params["W_hy"], self.params["b_y"],
                logits)
        return logits, h

    def _plain_step_input(self, x_t):
        """x_t as step's (B, D) floats when it needs no conversion: a
        C-contiguous (B, input_size) array of the model's dtype, or up to 64
        np.intp token ids in range, one-hot encoded here.  None for any
        other x_t, for _inputs to convert or to name the problem (generating
        a token took 25 µs through it, most of it checks)."""
        if type(x_t) is not np.ndarray or x_t.size == 0:
            return None
        D = self.input_size
        if x_t.dtype == np.intp and x_t.ndim == 1 and x_t.size <= 64:
            ids = x_t.tolist()
            if min(ids) < 0 or max(ids) >= D:
                return None
            x = np.zeros((len(ids), D), self.dtype)
            x[range(len(ids)), ids] = 1
            return x
        if (x_t.dtype == self.dtype and x_t.ndim == 2 and x_t.shape[1] == D
                and x_t.shape[0] <= BLAS_INT_MAX and x_t.flags.c_contiguous):
            return x_t
        return None

    def evaluate(self, x, targets, *, mode="seq", h0=None, lengths=None,
                 ignore_index=-100):
        """Mean cross-entropy (nats per target) without gradients, on the
        inference path; arguments as for :meth:`loss_and_grads`."""
        logits = self.forward(x, mode=mode, h0=h0, lengths=lengths)
        C = self.output_size
        targets = np.asarray(targets)
        if targets.shape != logits.shape[:-1]:
            raise ValueError(f"targets must have shape {logits.shape[:-1]}, got "
                             f"{targets.shape}")
        if mode == "seq" and lengths is not None and targets.dtype.kind in "iu":
            T = logits.shape[0]
            padded = np.arange(T)[:, None] >= np.asarray(lengths)[None, :]
            targets = np.where(padded, ignore_index, targets)
        loss, _ = softmax_cross_entropy(logits.reshape(-1, C), targets.reshape(-1),
                                        ignore_index)
        return loss

    # ---- training and generation (see rnncore.training, rnncore.generation)

    def fit(self, x, targets, **kwargs):
        """Train on minibatches of independent sequences.

        The same as :func:`rnncore.training.fit` with this model.

        Parameters
        ----------
        x : ndarray, shape (T, N, D), or integer ids of shape (T, N)
            All N sequences, time-major; minibatches are taken along axis 1.
            Float inputs are cast to the model's dtype; integer ids in
            ``[0, input_size)`` are one-hot encoded.
        targets : array of int, shape (T, N) or (N,)
            A class per step (``mode="seq"``) or per sequence
            (``mode="last"``), in ``[0, output_size)`` or ``ignore_index``.
        mode : {"seq", "last"}, default "seq"
            Loss at every step or on each sequence's final state.
        lengths : array of int, shape (N,), optional
            Sequence lengths in [1, T]; padded steps take no loss.
        epochs : int, default 1
            Passes over the N sequences.
        batch_size : int, default 32
            Sequences per update; the last minibatch of an epoch may be
            smaller.
        optimizer : {"adam", "adamw", "adagrad", "sgd"} or optimiser, default "adam"
            A name, built over ``params`` with ``lr``, or an object with a
            ``step(grads)`` method (e.g. :class:`rnncore.optim.Adam` with a
            schedule), used as it is.
        lr : float, optional
            Learning rate for an optimiser given by name (its default when
            None; ``"sgd"`` needs one).
        clip_norm : float, optional
            Clip the gradients to this global 2-norm before each update.
        clip_value : float, optional
            Clip every gradient element to ``[-clip_value, clip_value]``.
        shuffle : bool, default True
            Visit the sequences in a new random order each epoch.
        seed : int, optional
            Seed of the shuffling; same seed, model and BLAS thread count,
            same result bit for bit.
        ignore_index : int, default -100
            Target value that takes no loss.
        validation_data : tuple, optional
            ``(x, targets)`` or ``(x, targets, lengths)`` shaped like the
            training data, scored with :meth:`evaluate` after each epoch.
        progress : bool, default True
            Show a progress bar (tqdm's when installed).

        Returns
        -------
        history : dict of str to list of float
            ``"loss"`` and ``"grad_norm"`` (before clipping) per update,
            ``"epoch_loss"`` per epoch (weighted by minibatch size) and, with
            ``validation_data``, ``"val_loss"`` per epoch.

        Raises
        ------
        ValueError
            Bad shapes, modes, lengths or targets, ``epochs`` or
            ``batch_size`` below 1, an unknown optimiser name, ``"sgd"``
            without ``lr``, ``lr`` with an optimiser object, or a
            non-positive ``clip_norm``/``clip_value``.
        TypeError
            A non-integer count, inputs of a wrong kind, or an optimiser
            without a ``step`` method.
        FloatingPointError
            The loss became NaN or infinite (that update is not applied).
        """
        from rnncore.training import fit
        return fit(self, x, targets, **kwargs)

    def fit_stream(self, x, targets, **kwargs):
        """Train on one long stream with truncated backpropagation through
        time.

        The same as :func:`rnncore.training.fit_stream` with this model. The
        stream is split into ``batch_size`` parallel streams read in
        consecutive chunks of ``seq_len`` steps; each chunk starts from the
        final state of the one before, with no gradient across the boundary,
        and the state starts at zero each epoch.

        Parameters
        ----------
        x : ndarray, shape (N, D), or integer ids of shape (N,)
            The stream. Float inputs are cast to the model's dtype; integer
            ids in ``[0, input_size)`` are one-hot encoded.
        targets : array of int, shape (N,)
            A class per step (for a language model, ``x`` shifted by one),
            in ``[0, output_size)`` or ``ignore_index``.
        seq_len : int, default 64
            Steps per chunk: how far back gradients flow.
        batch_size : int, default 32
            Parallel streams; the last ``N % batch_size`` steps are dropped.
        epochs : int, default 1
            Passes over the stream.
        optimizer, lr, clip_value, ignore_index, progress
            As for :meth:`fit`.
        clip_norm : float or None, default 5.0
            Clip the gradients to this global 2-norm before each update.
        max_steps : int, optional
            Stop after this many updates in total (>= 0).

        Returns
        -------
        history : dict of str to list of float
            ``"loss"`` and ``"grad_norm"`` per update, ``"epoch_loss"`` per
            epoch (weighted by chunk length).

        Raises
        ------
        ValueError
            A bidirectional model, shapes other than (N, D) or (N,) with
            targets (N,), a 1-D ``x`` that is not integer ids, a stream
            shorter than ``batch_size``, ``seq_len``, ``batch_size`` or
            ``epochs`` below 1, a negative ``max_steps``, or a bad optimiser
            or clipping argument (as for :meth:`fit`).
        TypeError
            A non-integer count, inputs of a wrong kind, or an optimiser
            without a ``step`` method.
        FloatingPointError
            The loss became NaN or infinite (that update is not applied).
        """
        from rnncore.training import fit_stream
        return fit_stream(self, x, targets, **kwargs)

    def sample(self, length, **kwargs):
        """Generate tokens, each drawn from the softmax and fed back in.

        The same as :func:`rnncore.generation.sample` with this model, which
        must be unidirectional with ``input_size == output_size``.

        Parameters
        ----------
        length : int
            Number of tokens to generate (>= 0).
        prime : sequence of int, shape (P,), optional
            Token ids in ``[0, input_size)`` read first to set the state;
            generation continues after the last one. Without it the first
            token is drawn from the output layer at the zero state.
        temperature : float, default 1.0
            The logits are divided by it: below 1 sharper, above 1 more
            varied; 0 is greedy decoding (the most likely token every time).
        top_k : int, optional
            Draw only among the ``top_k`` most likely tokens.
        seed : int or numpy.random.Generator, optional
            Same seed, same tokens.

        Returns
        -------
        tokens : ndarray of intp, shape (length,)
            The generated ids (not including ``prime``).

        Raises
        ------
        ValueError
            A bidirectional model, ``input_size != output_size``, a negative
            ``length``, a negative or non-finite ``temperature``, ``top_k``
            below 1, or ``prime`` ids out of range.
        TypeError
            A non-integer ``length`` or ``top_k``, or ``prime`` not a 1-D
            sequence of integers.
        """
        from rnncore.generation import sample
        return sample(self, length, **kwargs)

"""Training loops for :class:`rnncore.RNN`: minibatches of independent
sequences (:func:`fit`) and one long stream in chunks with the state carried
across them (:func:`fit_stream`, truncated backpropagation through time).

Both pass one workspace to every step and are deterministic for a given
seed and BLAS thread count.  What the workspace holds is reused from step
to step, reallocated only when the batch shape changes (the last, smaller
minibatch of an epoch, the shorter last chunk of a stream): the gradients
and, for a single-layer unidirectional model, every buffer of the step
(hidden states, deltas, logits, final state).  The optimiser allocates its
state once.  Each step still allocates

- the inputs as the kernels read them: token ids one-hot encoded, float
  inputs cast to the model's dtype or made contiguous, the targets made
  contiguous;
- in :func:`fit`, the minibatch copies ``x[:, idx]`` and its targets; in
  :func:`fit_stream`, a copy of the carried state;
- for a stacked or bidirectional model, the reversed, concatenated and
  per-direction copies of states and gradients, ``h_n``.
"""
import math

import numpy as np

from rnncore import optim
from rnncore._progress import Progress
from rnncore._validation import check_index
from rnncore._workspace import Workspace

__all__ = ["fit", "fit_stream", "make_optimizer"]

OPTIMIZERS = {
    "sgd": optim.SGD,
    "adagrad": optim.Adagrad,
    "adam": optim.Adam,
    "adamw": optim.AdamW,
}


def make_optimizer(optimizer, params, lr=None):
    """An optimiser over ``params``: a name from ``OPTIMIZERS`` (with ``lr``,
    or the optimiser's default), or an optimiser object used as it is."""
    if isinstance(optimizer, str):
        name = optimizer.lower()
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an "
                             f"optimiser object, got {optimizer!r}")
        if name == "sgd" and lr is None:
            raise ValueError("optimizer='sgd' needs a learning rate: pass lr=")
        return OPTIMIZERS[name](params, **({} if lr is None else {"lr": lr}))
    if not hasattr(optimizer, "step"):
        raise TypeError(f"optimizer must be a name or an object with a step(grads) "
                        f"method, got {type(optimizer).__name__}")
    if lr is not None:
        raise ValueError("lr= applies to an optimiser given by name; set the "
                         "learning rate on the optimiser object instead")
    return optimizer


class _Updater:
    """Clipping, the optimiser step and the loss history, shared by both
    loops."""

    def __init__(self, model, optimizer, lr, clip_norm, clip_value):
        self.opt = make_optimizer(optimizer, model.params, lr)
        for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
            if value is not None and not (isinstance(value, (int, float))
                                          and value > 0):
                raise ValueError(f"{name} must be a positive number or None, "
                                 f"got {value!r}")
        self.clip_norm, self.clip_value = clip_norm, clip_value
        self.history = {"loss": [], "grad_norm": [], "epoch_loss": []}

    def __call__(self, loss, grads):
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"the training loss became {loss} at step {len(self.history['loss'])}"
                "; lower the learning rate or clip the gradients (clip_norm=)")
        if self.clip_value is not None:
            optim.clip_grad_value(grads, self.clip_value)
        # the norm before clipping, reported either way (inf: never clip)
        norm = optim.clip_grad_norm(
            grads, math.inf if self.clip_norm is None else self.clip_norm)
        self.opt.step(grads)
        self.history["loss"].append(loss)
        self.history["grad_norm"].append(norm)
        return norm

    def end_epoch(self, n_steps, weights=None):
        losses = self.history["loss"][-n_steps:]
        self.history["epoch_loss"].append(float(np.average(losses, weights=weights)))


def _epochs(epochs):
    epochs = check_index("epochs", epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    return epochs


def fit(model, x, targets, *, mode="seq", lengths=None, epochs=1, batch_size=32,
        optimizer="adam", lr=None, clip_norm=None, clip_value=None, shuffle=True,
        seed=None, ignore_index=-100, validation_data=None, progress=True):
    """Train on a set of independent sequences in minibatches.

    Parameters
    ----------
    model : RNN
    x : ndarray, shape (T, N, D), or integer ids of shape (T, N)
        All N sequences, time-major (batches are taken along axis 1).
    targets : array of int, shape (T, N) for ``mode="seq"`` or (N,) for
        ``mode="last"``.
    mode, lengths, ignore_index
        As for :meth:`RNN.loss_and_grads`; ``lengths`` has shape (N,).
    epochs : int, default 1
    batch_size : int, default 32
    optimizer : {"adam", "adamw", "adagrad", "sgd"} or optimiser object
        By name it is built over ``model.params`` with ``lr`` (or that
        optimiser's default); an object (e.g. ``rnncore.optim.Adam(...,
        schedule=...)``) is used as given.
    lr : float, optional
    clip_norm : float, optional
        Clip the gradients to this global 2-norm before each update.
    clip_value : float, optional
        Clip every gradient element to [-clip_value, clip_value].
    shuffle : bool, default True
        Visit the sequences in a new random order each epoch.
    seed : int, optional
        Seed of the shuffling; with the same seed, model and thread count
        training is bit-for-bit repeatable.
    validation_data : tuple, optional
        ``(x, targets)`` or ``(x, targets, lengths)``, scored with
        :meth:`RNN.evaluate` after each epoch.
    progress : bool, default True
        Show a progress bar with the running loss (tqdm when installed).

    Returns
    -------
    history : dict
        ``"loss"`` and ``"grad_norm"`` per step (the norm before clipping),
        ``"epoch_loss"`` per epoch and, with validation data,
        ``"val_loss"`` per epoch.

    Raises
    ------
    ValueError, TypeError
        Bad arguments (as for :meth:`RNN.loss_and_grads`).
    FloatingPointError
        The loss became NaN or infinite (the update is not applied).
    """
    epochs = _epochs(epochs)
    batch_size = check_index("batch_size", batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x, targets = np.asarray(x), np.asarray(targets)
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be (T, N, D) inputs or (T, N) token ids, got "
                         f"shape {x.shape}")
    N = x.shape[1]
    seq = mode == "seq"
    if targets.shape[-1:] != (N,) or targets.ndim != (2 if seq else 1):
        raise ValueError(f"targets must have shape {'(T, N)' if seq else '(N,)'} with "
                         f"N = {N} (from x.shape[1]), got shape {targets.shape}")
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (N,):
            raise ValueError(f"lengths must have shape (N,) = ({N},), got "
                             f"{lengths.shape}")
    update = _Updater(model, optimizer, lr, clip_norm, clip_value)
    if validation_data is not None:
        update.history["val_loss"] = []
    rng = np.random.default_rng(seed)
    ws = Workspace()
    n_batches = -(-N // batch_size)
    with Progress(epochs * n_batches, "fit", progress) as bar:
        for epoch in range(epochs):
            order = rng.permutation(N) if shuffle else np.arange(N)
            sizes = []
            for start in range(0, N, batch_size):
                idx = order[start:start + batch_size]
                # (x[:, idx] and targets[:, idx] come out batch-major; the
                # step reads them time-major, and would copy them anyway)
                xb = np.ascontiguousarray(x[:, idx])
                tb = np.ascontiguousarray(targets[:, idx] if seq else targets[idx])
                # so that a one-layer model on arrays that need no conversion
                # takes the path of loss_and_grads that skips its Arguments
                # (about 30 µs a step for the tiny model); the same bits
                loss, grads, _ = model._step(
                    xb, tb, mode, None, None if lengths is None else lengths[idx],
                    ignore_index, ws)
                norm = update(loss, grads)
                sizes.append(len(idx))
                bar.update(1, epoch=epoch + 1, loss=loss, grad_norm=norm)
            update.end_epoch(len(sizes), weights=sizes)
            if validation_data is not None:
                val = model.evaluate(*validation_data[:2], mode=mode,
                                     lengths=(validation_data[2]
                                              if len(validation_data) > 2 else None),
                                     ignore_index=ignore_index)
                update.history["val_loss"].append(val)
    return update.history


def stream_chunks(x, targets, batch_size, seq_len):
    """Splits one stream into ``batch_size`` parallel streams and yields their
    consecutive chunks time-major: (x (L, B, ...), targets (L, B)), L <=
    seq_len.  The tail that does not fill every stream is dropped."""
    n = len(x) // batch_size
    if n < 1:
        raise ValueError(f"the stream of {len(x)} steps is shorter than "
                         f"batch_size = {batch_size}")
    xs = np.swapaxes(x[:n * batch_size].reshape((batch_size, n, *x.shape[1:])), 0, 1)
    ts = targets[:n * batch_size].reshape(batch_size, n).T
    for start in range(0, n, seq_len):
        yield xs[start:start + seq_len], ts[start:start + seq_len]


def fit_stream(model, x, targets, *, seq_len=64, batch_size=32, epochs=1,
               optimizer="adam", lr=None, clip_norm=5.0, clip_value=None,
               ignore_index=-100, progress=True, max_steps=None):
    """Train on one long sequence with truncated backpropagation through time.

    The stream is cut into ``batch_size`` parallel streams, which are read in
    consecutive chunks of ``seq_len`` steps.  Each chunk starts from the
    final state of the chunk before (no gradient crosses the boundary); the
    state starts at zero each epoch.  This is how a character-level
    language model is trained (``targets`` is ``x`` shifted by one).

    Parameters
    ----------
    model : RNN
        A unidirectional model (the reverse direction cannot be carried
        forward across chunks).
    x : ndarray, shape (N, D), or integer ids of shape (N,)
        The stream; float inputs are cast to the model's dtype, integer ids
        in ``[0, input_size)`` one-hot encoded.
    targets : array of int, shape (N,)
        A class per step in ``[0, output_size)`` or ``ignore_index``.
    seq_len : int, default 64
        Steps per chunk: how far back gradients flow.
    batch_size : int, default 32
        Parallel streams; the last ``N % batch_size`` steps are dropped.
    epochs : int, default 1
    optimizer, lr, clip_norm, clip_value, ignore_index, progress
        As for :func:`fit`; gradients are clipped to norm 5 by default, the
        usual guard against exploding gradients in long recurrences.
    max_steps : int, optional
        Stop after this many updates in total (>= 0).

    Returns
    -------
    history : dict
        ``"loss"`` and ``"grad_norm"`` per update, ``"epoch_loss"`` per
        epoch (weighted by chunk length).

    Raises
    ------
    ValueError
        A bidirectional model, shapes other than (N, D) or (N,) with
        targets (N,), a 1-D ``x`` that is not integer ids, a stream
        shorter than ``batch_size``, ``seq_len``, ``batch_size`` or
        ``epochs`` below 1, a negative ``max_steps``, or a bad optimiser or
        clipping argument (as for :func:`fit`).
    TypeError
        A non-integer count, inputs of a wrong kind, or an optimiser
        without a ``step`` method.
    FloatingPointError
        The loss became NaN or infinite (the update is not applied).
    """
    if model.bidirectional:
        raise ValueError("fit_stream needs a unidirectional model: a bidirectional "
                         "state cannot be carried across chunks")
    epochs = _epochs(epochs)
    seq_len = check_index("seq_len", seq_len)
    batch_size = check_index("batch_size", batch_size)
    if seq_len < 1 or batch_size < 1:
        raise ValueError(f"seq_len and batch_size must be >= 1, got {seq_len} and "
                         f"{batch_size}")
    x, targets = np.asarray(x), np.asarray(targets)
    if x.ndim not in (1, 2) or targets.shape != x.shape[:1]:
        raise ValueError(f"x must be (N, D) inputs or (N,) token ids and targets "
                         f"(N,), got shapes {x.shape} and {targets.shape}")
    if x.ndim == 1 and x.dtype.kind not in "iu":
        raise ValueError(f"x of shape (N,) must be integer token ids, got dtype "
                         f"{x.dtype}; give float inputs as (N, D)")
    if max_steps is not None:
        max_steps = check_index("max_steps", max_steps)
        if max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    update = _Updater(model, optimizer, lr, clip_norm, clip_value)
    ws = Workspace()
    n_chunks = -(-(len(x) // batch_size) // seq_len)
    total = epochs * n_chunks if max_steps is None else min(epochs * n_chunks,
                                                             max_steps)
    steps = 0
    with Progress(total, "fit", progress) as bar:
        for epoch in range(epochs):
            h, chunk_steps, epoch_steps = None, [], 0
            for xc, tc in stream_chunks(x, targets, batch_size, seq_len):
                if steps == total:
                    break
                loss, grads, h = model._train_step(xc, tc, "seq", h, None,
                                                   ignore_index, ws)
                norm = update(loss, grads)
                steps += 1
                epoch_steps += 1
                chunk_steps.append(len(xc))
                bar.update(1, epoch=epoch + 1, loss=loss, grad_norm=norm)
            if epoch_steps:
                update.end_epoch(epoch_steps, weights=chunk_steps)
            if steps == total:
                break
    return update.history

"""Sampling from a token-level model (characters, words): the model's input
and output vocabularies are the same, and each sampled token is fed back in.
"""
import numpy as np

from rnncore._validation import check_index

__all__ = ["sample"]


def _next_token(logits, temperature, top_k, rng):
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.size:
        cut = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= cut, z, -np.inf)
    p = np.exp(z - z.max())
    return int(rng.choice(z.size, p=p / p.sum()))


def sample(model, length, *, prime=None, temperature=1.0, top_k=None, seed=None):
    """Generate ``length`` tokens, each drawn from the model's softmax and fed
    back as the next input.

    Parameters
    ----------
    model : RNN
        Unidirectional, with ``input_size == output_size`` (token ids in,
        one-hot encoded; the same ids out).
    length : int
        Number of tokens to generate (>= 0).
    prime : sequence of int, optional
        Tokens read first to set the state; generation continues after the
        last one. Without it the first token is drawn from the output layer
        at the zero state.
    temperature : float, default 1.0
        Logits are divided by it: below 1 sharper, above 1 more varied; 0
        picks the most likely token every time (greedy).
    top_k : int, optional
        Draw only among the k most likely tokens.
    seed : int or numpy.random.Generator, optional
        Same seed, same tokens.

    Returns
    -------
    ndarray of int, shape (length,)
        The generated tokens (not including the prime).

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
    if model.bidirectional:
        raise ValueError("sample() needs a unidirectional model")
    if model.input_size != model.output_size:
        raise ValueError(
            f"sample() needs a token model with input_size == output_size, got "
            f"{model.input_size} and {model.output_size}")
    length = check_index("length", length)
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if not (isinstance(temperature, (int, float)) and temperature >= 0
            and np.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number >= 0, got "
                         f"{temperature!r}")
    if top_k is not None:
        top_k = check_index("top_k", top_k)
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
    rng = np.random.default_rng(seed)
    out = np.empty(length, dtype=np.intp)
    if prime is not None and len(prime):
        prime = np.asarray(prime)
        if prime.ndim != 1 or prime.dtype.kind not in "iu":
            raise TypeError(f"prime must be a 1-D sequence of token ids, got "
                            f"{prime.dtype} array of shape {prime.shape}")
        logits, h = model.forward(prime[:, None], return_state=True)
        logits = logits[-1, 0]
    else:  # the zero state: the output layer sees only its bias
        h = None
        logits = model.params["b_y"].astype(np.float64)
    for i in range(length):
        out[i] = _next_token(logits, temperature, top_k, rng)
        if i + 1 < length:
            y, h = model.step(out[i:i + 1], h)
            logits = y[0]
    return out

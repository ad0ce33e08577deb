"""The implementations compared with rnncore, one module each.

Every peer module defines ``LIBRARY`` (the package it needs, or None),
``limit_threads(n)`` (called once, after the environment already fixed the
thread count) and ``Peer(problem)``, whose ``train(mode)`` and
``forward(mode)`` return a zero-argument callable running one training
step or one inference pass to completion, and whose ``to_numpy(op, out)``
turns that callable's result into a dict of NumPy values for the
correctness cross-check:

- training step: ``loss`` and one gradient per parameter (``W_xh``, ...),
- forward: ``hs`` (T, B, H) and ``logits`` ((T, B, C) or (B, C)).
"""

import importlib
import importlib.util

PEERS = ("rnncore", "numpy", "torch", "jax")
REFERENCE = "rnncore"

_LIBRARY = {"rnncore": "rnncore", "numpy": "numpy", "torch": "torch", "jax": "jax"}


def is_installed(name):
    """Whether the peer's library can be found, without importing it."""
    return importlib.util.find_spec(_LIBRARY[name]) is not None


def load(name):
    return importlib.import_module(f"peers.{name}_peer")

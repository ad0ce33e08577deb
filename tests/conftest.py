"""Shared fixtures for the rnncore test suite.

The directory holding this file is put on sys.path so that the test modules
can ``import reference`` and ``import rnn_util`` regardless of pytest's
import mode.
"""

import os
import sys

import numpy as np
import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import rnn_util  # noqa: E402

try:
    from hypothesis import settings
except ImportError:  # the property tests are then skipped
    pass
else:
    # "dev" (the default) keeps a plain `pytest` run fast; CI sets
    # HYPOTHESIS_PROFILE=ci for more examples.  No deadline: a shared
    # machine's timing varies, and no test here is about speed.
    settings.register_profile("dev", max_examples=40, deadline=None)
    settings.register_profile("ci", max_examples=300, deadline=None,
                              print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def rng(request):
    """A NumPy Generator seeded from the test's node id (stable across runs)."""
    return np.random.default_rng(rnn_util.seed_for(request.node.nodeid))


@pytest.fixture
def make_params():
    return rnn_util.make_params


@pytest.fixture
def make_problem():
    return rnn_util.make_problem

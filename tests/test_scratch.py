"""The scratch space rnncore.functional keeps per thread between calls
(rnncore/_workspace.py): reused only for calls of the same shapes and
dtype, never handed to the caller, bounded in size."""
import threading

import numpy as np
import pytest

import rnncore
from rnn_util import make_problem
from rnncore import _workspace


def in_new_thread(fn):
    """fn() on a thread whose scratch cache starts empty."""
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", fn()))
    thread.start()
    thread.join()
    return out["r"]


def train(problem):
    params, x, targets, kwargs = problem
    loss, grads, h_last = rnncore.loss_and_grads(params, x, targets, **kwargs)
    return [np.float64(loss), h_last, *grads.values()]


def forward(problem):
    params, x, _, _ = problem
    return [rnncore.rnn_forward(x, params["W_xh"], params["W_hh"], params["b_h"])]


def backward(problem):
    params, x, _, _ = problem
    hs = rnncore.rnn_forward(x, params["W_xh"], params["W_hh"], params["b_h"])
    dhs = np.cos(hs)
    return list(rnncore.rnn_backward(dhs, hs, x, params["W_xh"], params["W_hh"]))


def problems(rng):
    """Shapes and dtypes that change between calls, and come back."""
    shapes = [(5, 3, 4, 6, 3), (7, 2, 3, 40, 5), (5, 3, 4, 6, 3), (4, 40, 3, 9, 2)]
    return [make_problem(rng, *shape, dtype=dtype, mode=mode)
            for shape in shapes for dtype in (np.float32, np.float64)
            for mode in ("seq", "last")]


@pytest.mark.parametrize("task", [train, forward, backward], ids=lambda t: t.__name__)
def test_reused_scratch_gives_the_results_of_a_fresh_one(rng, task):
    items = problems(rng)
    results = [task(p) for p in items] + [task(p) for p in reversed(items)]
    fresh = [in_new_thread(lambda p=p: task(p)) for p in items]
    for got, want in zip(results, fresh + fresh[::-1], strict=True):
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_results_outlive_the_next_call(rng):
    """Nothing returned lives in the scratch space."""
    problem = make_problem(rng, 6, 4, 3, 8, 5, dtype=np.float32)
    first = train(problem)
    kept = [np.array(a, copy=True) for a in first]
    second = train(problem)
    for a, b, c in zip(first, kept, second, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a is not c and not np.shares_memory(a, c)


def test_calls_beyond_the_bound_keep_nothing(rng, monkeypatch):
    monkeypatch.setattr(_workspace, "SCRATCH_MAX_BYTES", 0)
    problem = make_problem(rng, 6, 4, 3, 8, 5)

    def run():
        result = train(problem)
        return result, dict(_workspace._threads.__dict__)

    result, cache = in_new_thread(run)
    assert cache == {}
    for a, b in zip(result, in_new_thread(lambda: train(problem)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_scratch_is_per_thread(rng):
    problem = make_problem(rng, 6, 4, 3, 8, 5)
    train(problem)
    assert "loss_and_grads" in _workspace._threads.__dict__
    assert in_new_thread(lambda: dict(_workspace._threads.__dict__)) == {}

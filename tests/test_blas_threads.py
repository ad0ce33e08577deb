"""rnncore.threads, and calls from several threads at once."""

import sys
import threading

import numpy as np
import pytest

import rnncore
from rnn_util import make_problem


def blas_threads():
    """Thread counts of the BLAS pools threadpoolctl sees (skips if none:
    it does not see every BLAS, e.g. Apple's Accelerate)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pools = [p["num_threads"] for p in threadpoolctl.threadpool_info()
             if p["user_api"] == "blas"]
    if not pools:
        pytest.skip("threadpoolctl sees no BLAS in this process")
    return pools


def test_limits_blas_inside_the_block_only():
    before = blas_threads()
    with rnncore.threads(1):
        assert set(blas_threads()) == {1}
    assert blas_threads() == before


def test_restores_after_an_exception():
    before = blas_threads()
    with pytest.raises(KeyError), rnncore.threads(1):
        raise KeyError("inside")
    assert blas_threads() == before


@pytest.mark.parametrize("n,error", [(0, ValueError), (-2, ValueError),
                                     (1.5, TypeError), ("1", TypeError),
                                     (True, TypeError), (None, TypeError)])
def test_bad_n(n, error):
    with pytest.raises(error, match="n"), rnncore.threads(n):
        pass


def test_without_threadpoolctl(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    with pytest.raises(ImportError, match="pip install threadpoolctl"), \
            rnncore.threads(1):
        pass


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("limit", [None, 1])
def test_concurrent_calls_match_serial_calls(rng, dtype, limit):
    """Calls that run at once from several threads (the GIL released) give
    the results of the same calls made one after another."""
    problems = [make_problem(rng, 12, 40, 24, 64, 10, dtype, with_lengths=True)
                for _ in range(4)]
    results = [None] * (3 * len(problems))
    start = threading.Barrier(len(results))

    def work(i):
        start.wait()
        p, x, t, kw = problems[i % len(problems)]
        results[i] = rnncore.loss_and_grads(p, x, t, **kw)

    def run():
        # The same BLAS thread count as the threads' calls: the last bits of
        # a BLAS product may depend on it.
        serial = [rnncore.loss_and_grads(p, x, t, **kw) for p, x, t, kw in problems]
        workers = [threading.Thread(target=work, args=(i,))
                   for i in range(len(results))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return serial

    if limit is None:
        serial = run()
    else:
        pytest.importorskip("threadpoolctl")
        with rnncore.threads(limit):
            serial = run()
    for i, (loss, grads, h_last) in enumerate(results):
        want_loss, want_grads, want_h = serial[i % len(problems)]
        assert loss == want_loss
        np.testing.assert_array_equal(h_last, want_h)
        for k in want_grads:
            np.testing.assert_array_equal(grads[k], want_grads[k])

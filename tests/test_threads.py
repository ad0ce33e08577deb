"""The same weights used from 8 threads at once give bit-identical results
to serial calls, and stay unchanged.

Every call releases the GIL for its whole computation, so the threads'
kernels really do run at the same time (all eight at once, most of the
time, with these sizes).  BLAS is limited to one thread with threadpoolctl,
so that no product's summation order, and hence no bit of a result, can
depend on how busy BLAS's own thread pool is.
"""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import rnncore
from rnn_util import (
    PARAM_KEYS,
    assert_unchanged,
    copies,
    make_problem,
    random_lengths,
)

threadpoolctl = pytest.importorskip("threadpoolctl")

THREADS = 8
CALLS_PER_THREAD = 15
DTYPES = [np.float32, np.float64]


def blas_single_thread():
    return threadpoolctl.threadpool_limits(1, user_api="blas")


def problems(dtype):
    """Small batches (rnncore's own per-step kernel) and larger ones (BLAS),
    with and without lengths and h0; the arrays are shared by all threads."""
    rng = np.random.default_rng(7)
    out = []
    for B, extras in [(3, {}), (24, dict(with_lengths=True, with_h0=True)),
                      (5, dict(with_lengths=True, ignore_index=0))]:
        for mode in ("seq", "last"):
            out.append(make_problem(rng, T=60, B=B, D=16, H=64, C=10,
                                    dtype=dtype, mode=mode, **extras))
    return out


def arrays_of(problem):
    params, x, targets, kw = problem
    return [*params.values(), x, targets,
            *(v for v in kw.values() if isinstance(v, np.ndarray))]


def forward(problem):
    params, x, _, kw = problem
    return rnncore.rnn_forward(x, params["W_xh"], params["W_hh"],
                               params["b_h"], h0=kw.get("h0"),
                               lengths=kw.get("lengths"))


def backward(problem):
    params, x, _, kw = problem
    hs = forward(problem)
    dhs = np.cos(hs)  # any fixed function of the states
    return (hs, *rnncore.rnn_backward(dhs, hs, x, params["W_xh"],
                                      params["W_hh"], h0=kw.get("h0"),
                                      lengths=kw.get("lengths"),
                                      dh_last=hs[-1]))


def loss_and_grads(problem):
    params, x, targets, kw = problem
    loss, grads, h_last = rnncore.loss_and_grads(params, x, targets, **kw)
    return (np.array(loss), *(grads[k] for k in PARAM_KEYS), h_last)


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def assert_bit_identical(got, want):
    for g, w in zip(as_tuple(got), as_tuple(want), strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        # bit for bit, NaN included (there should be none)
        assert g.tobytes() == w.tobytes()


def run_concurrently(task, items):
    """Each of THREADS threads runs `task` on every item of its share of
    `items`, all threads starting together; returns the results by item."""
    start = threading.Barrier(THREADS)

    def worker(share):
        start.wait()
        return [(i, task(items[i])) for i in share]

    shares = [[(t + k) % len(items) for k in range(CALLS_PER_THREAD)]
              for t in range(THREADS)]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return [r for rs in pool.map(worker, shares) for r in rs]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("task", [forward, backward, loss_and_grads],
                         ids=lambda t: t.__name__)
def test_threads_match_serial_bit_for_bit(task, dtype):
    items = problems(dtype)
    before = [copies(*arrays_of(p)) for p in items]
    with blas_single_thread():
        serial = [task(p) for p in items]
        results = run_concurrently(task, items)
    assert len(results) == THREADS * CALLS_PER_THREAD
    for i, result in results:
        assert_bit_identical(result, serial[i])
    for p, b in zip(items, before, strict=True):
        assert_unchanged(b, arrays_of(p))


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_mixing_functions(dtype):
    """Different functions at once on the same weights."""
    items = [(task, p) for p in problems(dtype)
             for task in (forward, backward, loss_and_grads)]
    with blas_single_thread():
        serial = [task(p) for task, p in items]
        results = run_concurrently(lambda item: item[0](item[1]), items)
    for i, result in results:
        assert_bit_identical(result, serial[i])


def model_problems(dtype):
    """One model per configuration, shared by all threads, with calls in
    both modes (token ids and floats, with and without lengths and h0)."""
    rng = np.random.default_rng(11)
    out = []
    for num_layers, bidirectional in [(1, False), (2, False), (2, True)]:
        model = rnncore.RNN(16, 32, 10, num_layers=num_layers,
                            bidirectional=bidirectional, dtype=dtype, seed=3)
        S = num_layers * model.num_directions
        for B, mode in [(3, "seq"), (24, "last")]:
            T = 2 * rnncore.model.CHUNK + 5  # several inference chunks
            kw = {"mode": mode, "lengths": random_lengths(rng, T, B),
                  "h0": rng.uniform(-0.8, 0.8, (S, B, 32)).astype(dtype)}
            out.append((model, rng.standard_normal((T, B, 16)).astype(dtype), kw))
            out.append((model, rng.integers(0, 16, (T, B)), {"mode": mode}))
    return out


def model_forward(problem):
    model, x, kw = problem
    logits, h_n = model.forward(x, **kw, return_state=True)
    return logits, h_n


def model_predict(problem):
    model, x, kw = problem
    return model.predict(x, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("task", [model_forward, model_predict],
                         ids=lambda t: t.__name__)
def test_one_model_from_threads_matches_serial_bit_for_bit(task, dtype):
    """An RNN used from 8 threads at once (forward and predict) gives the
    serial results bit for bit and keeps its parameters unchanged."""
    items = model_problems(dtype)
    models = {id(m): m for m, _, _ in items}.values()
    before = [{k: v.copy() for k, v in m.params.items()} for m in models]
    with blas_single_thread():
        serial = [task(p) for p in items]
        results = run_concurrently(task, items)
    assert len(results) == THREADS * CALLS_PER_THREAD
    for i, result in results:
        assert_bit_identical(result, serial[i])
    for m, b in zip(models, before, strict=True):
        for k, v in m.params.items():
            assert v.tobytes() == b[k].tobytes(), k

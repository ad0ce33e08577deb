"""Repeated calls keep memory flat: 10,000 training steps, and thousands of
forward and backward passes and rejected calls, leave no resident memory
(RSS) behind, nor any Python allocation (tracemalloc, which also sees
NumPy's array buffers).

Each loop first runs a warm-up (NumPy's and Python's caches, BLAS's
buffers) and then measures: RSS over all the calls, tracemalloc over the
last TRACED_CALLS of them (tracing makes each call several times slower),
after as many traced calls again.
A leak of even 16 bytes a call exceeds the tracemalloc bound; RSS catches
leaks that tracemalloc cannot see (C allocations) from a few hundred bytes
a call.  Under AddressSanitizer (tools/sanitize.sh) RSS also holds ASan's
quarantine of freed memory, so only tracemalloc is checked there.
"""
import gc
import os
import sys
import threading
import tracemalloc

import numpy as np
import pytest

import rnncore
from rnn_util import make_problem, random_lengths
from rnncore import optim
from rnncore._workspace import Workspace

try:
    import resource
except ImportError:  # Windows: rss_bytes reads /proc or resource, neither there
    resource = None

WARMUP = 500
TRACED_CALLS = 500
TRACED_BOUND = 8 * 2**10  # bytes still allocated after TRACED_CALLS calls
RSS_BOUND = 4 * 2**20
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")


def rss_bytes():
    """Resident set size now (Linux), or the peak so far elsewhere (which
    can only grow, so a bound on its growth is a bound on any leak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        if resource is None:
            pytest.skip("no way to read the resident set size here")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def assert_flat(step, calls):
    for _ in range(WARMUP):
        step()
    rss_before = rss_bytes()
    for _ in range(calls - 2 * TRACED_CALLS):
        step()
    tracemalloc.start()
    try:
        # A first traced stretch refills, now traced, what Python keeps for
        # reuse (free lists of tuples and frames, caches): bounded, but it
        # would look like growth.  The second stretch must not grow.  Garbage
        # in reference cycles (exceptions, tracebacks) is collected first.
        for _ in range(TRACED_CALLS):
            step()
        gc.collect()
        traced_before, _ = tracemalloc.get_traced_memory()
        for _ in range(TRACED_CALLS):
            step()
        gc.collect()
        traced_after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_after = rss_bytes()
    assert UNDER_ASAN or rss_after - rss_before < RSS_BOUND, (
        f"resident memory grew by {rss_after - rss_before} bytes over {calls} calls")
    assert traced_after - traced_before < TRACED_BOUND, (
        f"{traced_after - traced_before} bytes still traced after "
        f"{TRACED_CALLS} calls")


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def problem(request):
    rng = np.random.default_rng(5)
    return make_problem(rng, T=6, B=3, D=4, H=5, C=4, dtype=request.param,
                        with_lengths=True, with_h0=True, ignore_index=-1)


def test_training_steps_keep_memory_flat(problem):
    """10,000 steps, alternating the two modes, updating the weights like a
    real training loop."""
    params, x, targets, kw = problem
    kw = {k: v for k, v in kw.items() if k != "mode"}
    modes = [("seq", targets), ("last", targets[0])]
    count = iter(range(10**9))

    def step():
        mode, t = modes[next(count) % 2]
        _loss, grads, _h_last = rnncore.loss_and_grads(params, x, t, mode=mode,
                                                       **kw)
        for k in params:
            params[k] -= 1e-3 * grads[k]

    assert_flat(step, 10_000)


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (1, True)],
                         ids=["1layer", "1layer-bi"])
def test_model_training_steps_keep_memory_flat(num_layers, bidirectional):
    """10,000 steps of the model's own training loop: its training step
    with one workspace (as fit and fit_stream run it), clip_grad_norm and
    an Adam step, alternating the two modes.  One layer takes the fused
    kernel, a bidirectional one the per-layer kernels and the output
    layer's."""
    rng = np.random.default_rng(6)
    T, B, D, H, C = 6, 3, 4, 5, 4
    model = rnncore.RNN(D, H, C, num_layers=num_layers,
                        bidirectional=bidirectional, seed=0)
    x = rng.integers(0, D, (T, B))  # token ids: the one-hot path too
    lengths = random_lengths(rng, T, B)
    targets = rng.integers(0, C, (T, B))
    targets[0, 1] = -100
    modes = [("seq", targets), ("last", targets[0])]
    opt = optim.Adam(model.params, lr=1e-3)
    ws = Workspace()
    count = iter(range(10**9))

    def step():
        mode, t = modes[next(count) % 2]
        _, grads, _ = model._train_step(x, t, mode, None, lengths, -100, ws)
        optim.clip_grad_norm(grads, 1.0)
        opt.step(grads)

    assert_flat(step, 10_000)
    assert all(np.isfinite(p).all() for p in model.params.values())


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, False),
                                                    (3, False), (3, True)],
                         ids=["1layer", "2layers", "3layers", "3layers-bi"])
@pytest.mark.parametrize("mode", ["seq", "last"])
def test_model_training_steps_reuse_their_workspace(num_layers, bidirectional,
                                                    mode):
    """Once a shape has run, further steps take every buffer from the
    workspace as it is: none is replaced (layers that share a buffer's
    name with different shapes would reallocate it at every step)."""
    rng = np.random.default_rng(7)
    T, B, D, H, C = 6, 3, 4, 5, 4
    model = rnncore.RNN(D, H, C, num_layers=num_layers,
                        bidirectional=bidirectional, seed=0)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    targets = rng.integers(0, C, (T, B) if mode == "seq" else (B,))
    ws = Workspace()
    model._train_step(x, targets, mode, None, None, -100, ws)
    held = dict(ws._arrays)
    for _ in range(2):
        model._train_step(x, targets, mode, None, None, -100, ws)
        assert ws._arrays.keys() == held.keys()
        replaced = [k for k, a in ws._arrays.items() if a is not held[k]]
        assert not replaced, replaced


def test_forward_backward_keep_memory_flat(problem):
    params, x, _, kw = problem
    W_xh, W_hh, b_h = params["W_xh"], params["W_hh"], params["b_h"]
    h0, lengths = kw["h0"], kw["lengths"]

    def step():
        hs = rnncore.rnn_forward(x, W_xh, W_hh, b_h, h0=h0, lengths=lengths)
        rnncore.rnn_backward(hs, hs, x, W_xh, W_hh, h0=h0, lengths=lengths,
                             dh_last=hs[-1])

    assert_flat(step, 5_000)


def test_rejected_calls_keep_memory_flat(problem):
    """The error paths (exceptions raised after some arguments were already
    converted) free what they took too."""
    params, x, targets, kw = problem
    bad_targets = targets.copy()
    bad_targets[0, 0] = 99
    # (a shape error, not a dtype one: formatting a NumPy dtype into the
    # message leaves blocks in tracemalloc's count under PYTHONMALLOC=malloc,
    # in NumPy's dtype.name, even when no rnncore code runs)
    wrong_shape = params["b_h"][:, None]
    calls = [lambda: rnncore.loss_and_grads(params, x, bad_targets, **kw),
             lambda: rnncore.rnn_forward(x, params["W_xh"], params["W_hh"],
                                         wrong_shape),
             lambda: rnncore.softmax_cross_entropy(x[0], [0, 1])]

    def step():
        for call in calls:
            try:
                call()
            except (ValueError, TypeError):
                pass
            else:
                raise AssertionError("a rejected call returned")

    assert_flat(step, 3_000)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_training_step_holds_one_chunk_of_logits(dtype):
    """In mode "seq" the output layer runs chunk by chunk inside the backward
    pass: a step's peak allocation (its workspace included: a new thread has
    none yet) stays far below the T·B·C logits of the whole sequence."""
    rng = np.random.default_rng(8)
    T, B, D, H, C = 200, 8, 4, 8, 1024
    params, x, targets, kw = make_problem(rng, T, B, D, H, C, dtype=dtype)
    whole = T * B * C * np.dtype(dtype).itemsize
    peak, failed = [], []

    def step():
        tracemalloc.start()
        try:
            loss, grads, _ = rnncore.loss_and_grads(params, x, targets, **kw)
            peak.append(tracemalloc.get_traced_memory()[1])
            assert np.isfinite(loss) and grads["W_hy"].shape == (C, H)
        except BaseException as exc:  # re-raised on the test's thread
            failed.append(exc)
        finally:
            tracemalloc.stop()

    thread = threading.Thread(target=step)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    assert peak[0] < whole / 4, (
        f"a step allocated {peak[0]} bytes at its peak; the whole sequence's "
        f"logits are {whole}")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["2layers", "2layers-bi"])
def test_stacked_training_step_holds_no_logits_of_the_whole_sequence(bidirectional):
    """A stack's output layer keeps one chunk's logits (one direction: the
    top layer's backward pass runs it) or one block's (bidirectional: it
    runs first, in blocks of 512 rows), never the T·B·C of the whole
    sequence (which the step held until the output layer ran in chunks)."""
    rng = np.random.default_rng(9)
    T, B, D, H, C = 800, 8, 4, 8, 1024
    model = rnncore.RNN(D, H, C, num_layers=2, bidirectional=bidirectional, seed=0)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    targets = rng.integers(0, C, (T, B))
    whole = T * B * C * 4
    model.loss_and_grads(x[:2], targets[:2])  # warm-up: imports, caches
    tracemalloc.start()
    try:
        loss, grads, _ = model.loss_and_grads(x, targets)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.isfinite(loss) and grads["W_hy"].shape == (C, model.num_directions * H)
    assert peak < whole / 3, (
        f"a step allocated {peak} bytes at its peak; the whole sequence's "
        f"logits are {whole}")


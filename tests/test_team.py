"""The team of helper threads (rnncore/_team.h) that shares a call's
products when SciPy's BLAS may run several threads: the results match the
float64 reference and the one-thread results, the team is really used,
BLAS gets its thread count back, and calls from several threads at once and
in a forked child still work."""

import multiprocessing
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import reference
import rnncore
from rnn_util import assert_close, make_problem, run_python, seed_for
from rnncore import _parallel, _recurrence, _threads
from test_blas_threads import blas_threads
from test_kernel_shapes import np_backward, np_forward

pytestmark = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="the team needs two CPUs")

# (T, B, D, H, C): per-step products of at least 2**19 multiply-adds, with
# H a multiple of the packed panels: every one takes the team.  B = 8 is a
# batch whose backward pass reads W_hh unpacked, on the caller alone; the
# first has enough logits in each backward chunk (4 steps: 160 rows × C >=
# 2**15) for the team to share the softmax.
SHAPES = [(20, 40, 12, 128, 256), (4, 33, 7, 160, 5), (3, 8, 5, 256, 4)]
CASES = [(shape, dtype, variant) for shape in SHAPES
         for dtype in (np.float32, np.float64)
         for variant in ("plain", "lengths", "h0")]


def problem(shape, dtype, variant, mode="seq"):
    rng = np.random.default_rng(seed_for(f"team {shape} {variant} {mode}"))
    return make_problem(rng, *shape, dtype=dtype, mode=mode,
                        with_lengths=variant == "lengths",
                        with_h0=variant == "h0")


def one_and_two_threads(fn):
    with rnncore.threads(1):
        one = fn()
    with rnncore.threads(2):
        two = fn()
    return one, two


def assert_same(one, two, dtype):
    """Two threads against one: the products split by rows, so only BLAS's
    blocking of the smaller row blocks may round differently (OpenBLAS's
    edge kernels round differently from its full ones), by a few units in
    the last place of the array's largest elements, of which a small one
    may be a sum."""
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(one, two, strict=True):
        scale = max(1.0, float(np.max(np.abs(a), initial=0.0)))
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("mode", ["seq", "last"])
@pytest.mark.parametrize("shape,dtype,variant", CASES)
def test_training_step(shape, dtype, variant, mode):
    params, x, targets, kw = problem(shape, dtype, variant, mode)
    one, two = one_and_two_threads(
        lambda: rnncore.loss_and_grads(params, x, targets, **kw))
    if shape == SHAPES[-1]:  # the loop-by-loop reference is slow on the others
        loss, grads, _, _ = reference.loss_and_grads(params, x, targets, **kw)
        assert_close(two[0], loss, dtype, name="loss")
        for key, want in grads.items():
            assert_close(two[1][key], want, dtype, name=key)
    assert_same([one[0], *one[1].values(), one[2]],
                [two[0], *two[1].values(), two[2]], dtype)


@pytest.mark.parametrize("shape,dtype,variant", CASES)
def test_forward_and_backward(shape, dtype, variant):
    params, x, _, kw = problem(shape, dtype, variant)
    W = params["W_xh"], params["W_hh"], params["b_h"]
    h0, lengths = kw.get("h0"), kw.get("lengths")
    rng = np.random.default_rng(seed_for(f"team dhs {shape}"))
    dhs = rng.standard_normal((x.shape[0], x.shape[1], W[1].shape[0])).astype(dtype)

    def run():
        hs = rnncore.rnn_forward(x, *W, h0=h0, lengths=lengths)
        return (hs, *rnncore.rnn_backward(dhs, hs, x, W[0], W[1], h0=h0,
                                          lengths=lengths))

    one, two = one_and_two_threads(run)
    W64 = [w.astype(np.float64) for w in W]
    h0_64 = None if h0 is None else h0.astype(np.float64)
    lens = np.full(x.shape[1], x.shape[0]) if lengths is None else lengths
    want_hs = np_forward(x.astype(np.float64), *W64, h0_64, lens)
    assert_close(two[0], want_hs, dtype, name="hs")
    want = np_backward(dhs.astype(np.float64), two[0].astype(np.float64),
                       x.astype(np.float64), W64[0], W64[1], h0_64, lens)
    for got, name in zip(two[1:], ("dx", "dh0", "dW_xh", "dW_hh", "db_h"),
                         strict=True):
        assert_close(got, want[name], dtype, name=name)
    assert_same(one, two, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_model_forward_in_chunks(dtype):
    """RNN.forward runs the recurrence chunk by chunk (the advance kernel)."""
    model = rnncore.RNN(7, 128, 5, num_layers=2, dtype=np.dtype(dtype).name, seed=3)
    x = np.random.default_rng(4).standard_normal((70, 40, 7)).astype(dtype)
    one, two = one_and_two_threads(lambda: [model.forward(x)])
    assert_same(one, two, dtype)


TEAM_USE = """
import numpy as np, rnncore
from rnncore import _parallel, _threads
rng = np.random.default_rng(0)
x = rng.standard_normal((3, 8, 5)).astype(np.float32)
W = [rng.uniform(-0.1, 0.1, s).astype(np.float32)
     for s in ((256, 5), (256, 256), (256,))]
with rnncore.threads(1):
    rnncore.rnn_forward(x, *W)
print(_parallel.helper_threads())
with rnncore.threads(2):
    rnncore.rnn_forward(x[:, :1], *W)  # one row per step: not worth a team
print(_parallel.helper_threads())
with rnncore.threads(2):
    rnncore.rnn_forward(x, *W)
print(_parallel.helper_threads())
"""


@pytest.mark.parametrize("mode", ["seq", "last"])
def test_model_training_step(mode):
    """RNN.loss_and_grads takes the output layer's gradients in a call of
    its own (which takes the team too)."""
    model = rnncore.RNN(7, 128, 40, num_layers=2, seed=5)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((30, 40, 7)).astype(np.float32)
    targets = rng.integers(0, 40, (30, 40) if mode == "seq" else 40)

    def run():
        loss, grads = model.loss_and_grads(x, targets, mode=mode)[:2]
        return [loss, *(grads[k] for k in sorted(grads))]

    one, two = one_and_two_threads(run)
    assert_same(one, two, np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy(dtype):
    """From 2**15 logits the team shares the rows: each row's gradient as on
    one thread, the loss summed by parts."""
    rng = np.random.default_rng(seed_for("team softmax"))
    logits = (5 * rng.standard_normal((700, 50))).astype(dtype)
    targets = rng.integers(0, 50, 700)
    targets[::7] = -100
    one, two = one_and_two_threads(
        lambda: rnncore.softmax_cross_entropy(logits, targets))
    np.testing.assert_array_equal(two[1], one[1])
    assert two[0] == pytest.approx(one[0], rel=1e-12)
    loss, dlogits = reference.cross_entropy(logits, targets)
    assert_close(two[0], loss, dtype, name="loss")
    assert_close(two[1], dlogits, dtype, name="dlogits")


SOFTMAX_TEAM_USE = """
import numpy as np, rnncore
from rnncore import _parallel
targets = np.zeros(700, np.intp)
with rnncore.threads(2):
    rnncore.softmax_cross_entropy(np.zeros((700, 46)), targets)  # < 2**15
print(_parallel.helper_threads())
with rnncore.threads(1):
    rnncore.softmax_cross_entropy(np.zeros((700, 47)), targets)
print(_parallel.helper_threads())
with rnncore.threads(2):
    rnncore.softmax_cross_entropy(np.zeros((700, 47)), targets)
print(_parallel.helper_threads())
"""


@pytest.mark.parametrize("script", [TEAM_USE, SOFTMAX_TEAM_USE],
                         ids=["recurrence", "softmax_cross_entropy"])
def test_team_is_used_only_where_it_pays(tmp_path, script):
    """No helper thread for a call too small to share, nor on one thread;
    one for a call that pays."""
    blas = _threads.blas_library()
    if blas is None or not blas.set_address:
        pytest.skip("SciPy's BLAS thread count is not reachable here")
    result = run_python(["-c", script], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0", "1"]


def test_first_shape_shares_the_softmax():
    """Every backward chunk, the shortest (first) one too, is one block of
    the output layer's (at most 512 rows) with at least 2**15 logits."""
    T, B, D, H, C = SHAPES[0]
    for itemsize in (4, 8):
        K = _recurrence.backward_steps(T, B, D, H, itemsize)
        shortest = ((T - 1) % K + 1) * B
        assert K * B <= 512 and shortest * C >= 2**15, (itemsize, K)


def test_blas_threads_come_back():
    before = blas_threads()
    params, x, targets, kw = problem(SHAPES[0], np.float32, "plain")
    with rnncore.threads(2):
        rnncore.loss_and_grads(params, x, targets, **kw)
        assert set(blas_threads()) == {2}
    assert blas_threads() == before


def test_calls_from_several_threads():
    """Bit-identical to a call on its own: a call that finds the team taken
    splits its work the same way and runs every part itself."""
    params, x, targets, kw = problem(SHAPES[0], np.float32, "lengths")
    with rnncore.threads(2):
        want = rnncore.loss_and_grads(params, x, targets, **kw)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(rnncore.loss_and_grads(params, x, targets, **kw))
        except Exception as e:  # reported below
            errors.append(e)

    before = blas_threads()
    with rnncore.threads(2):
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
    assert not errors
    assert len(results) == 20
    for got in results:
        assert got[0] == want[0]
        for key in want[1]:
            np.testing.assert_array_equal(got[1][key], want[1][key], err_msg=key)
    assert blas_threads() == before


def test_the_overlap_limit_and_a_team_call_count_together():
    """BLAS's count comes back once neither the limit for overlapping calls
    (rnncore/_threads.py) nor a call sharing its work holds it at one
    thread, whichever ends first."""
    blas = _threads.blas_library()
    if blas is None or not blas.set_address:
        pytest.skip("the kernels do not set SciPy's BLAS thread count here")
    params, x, targets, kw = problem(SHAPES[0], np.float32, "plain")
    x = np.concatenate([x] * 50)  # long enough to overlap with the limit
    targets = np.concatenate([targets] * 50)
    with rnncore.threads(2):
        started = threading.Event()

        def call():
            started.set()
            rnncore.loss_and_grads(params, x, targets, **kw)

        worker = threading.Thread(target=call)
        worker.start()
        started.wait()
        while blas.get() != 1 and worker.is_alive():
            pass  # until the call has claimed the team
        assert worker.is_alive(), "the call ended before the limit began"
        saved = _parallel.lower_blas_threads()
        try:
            worker.join()
            assert saved == 2
            assert blas.get() == 1  # the limit still holds it
        finally:
            _parallel.restore_blas_threads()
        assert blas.get() == 2


def _child_call(conn, params, x, targets, kw):
    with rnncore.threads(2):
        conn.send(rnncore.loss_and_grads(params, x, targets, **kw)[0])
    conn.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="fork without exec is safe only on Linux")
def test_after_fork():
    """A child forked after the team ran makes a team of its own."""
    params, x, targets, kw = problem(SHAPES[1], np.float64, "plain")
    with rnncore.threads(2):
        want = rnncore.loss_and_grads(params, x, targets, **kw)[0]
    assert _parallel.helper_threads() >= 1
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child_call, args=(child, params, x, targets, kw))
    proc.start()
    try:
        assert parent.poll(120), "the child's call did not finish"
        got = parent.recv()
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
    np.testing.assert_allclose(got, want, rtol=1e-12)


HOG = "while True: pass"


def test_correct_while_the_cores_are_busy():
    """With every core busy, the helpers run only now and then: the caller
    takes the parts they have not started, or goes on alone."""
    params, x, targets, kw = problem(SHAPES[0], np.float32, "plain")
    with rnncore.threads(1):
        want = rnncore.loss_and_grads(params, x, targets, **kw)
    hogs = [subprocess.Popen([sys.executable, "-c", HOG])
            for _ in range(os.cpu_count() or 2)]
    try:
        with rnncore.threads(2):
            got = [rnncore.loss_and_grads(params, x, targets, **kw)
                   for _ in range(20)]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    for g in got:
        assert_same([want[0], *want[1].values()], [g[0], *g[1].values()],
                    np.float32)

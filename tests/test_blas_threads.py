"""rnncore.threads, the automatic BLAS limit while calls overlap, and calls
from several threads at once."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnn_util import make_problem
from rnncore import _threads


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


# ---- the guard around compiled calls, on a stand-in for the BLAS ---------


class FakeBlas:
    """Records the thread counts set; starts at 4 threads."""

    def __init__(self):
        self.n = 4
        self.sets = []

    def get(self):
        return self.n

    def set(self, n):
        self.sets.append(n)
        self.n = n


@pytest.fixture
def fake(monkeypatch):
    blas = FakeBlas()
    monkeypatch.setattr(_threads, "_looked_up", True)
    monkeypatch.setattr(_threads, "_blas", _threads.BlasThreads(
        blas.get, blas.set, "fake", "fake"))
    monkeypatch.setattr(_threads, "_auto", True)
    assert _threads._in_flight == 0 and _threads._saved is None
    yield blas
    assert _threads._in_flight == 0 and _threads._saved is None


def overlapping(first, second):
    """Runs first() in a thread, guarded; while it is in flight, runs
    second(), guarded, in another thread; returns their results and the
    BLAS state (of `fake`) seen between the second's end and the first's."""
    started, release = threading.Event(), threading.Event()
    out = {}

    def hold():
        started.set()
        release.wait(10)
        return first()

    def run(key, fn):
        try:
            out[key] = _threads.guarded(fn)
        except Exception as exc:
            out[key + " raised"] = exc

    t1 = threading.Thread(target=run, args=("first", hold))
    t1.start()
    assert started.wait(10)
    t2 = threading.Thread(target=run, args=("second", second))
    t2.start()
    t2.join(10)
    out["between"] = _threads._saved
    release.set()
    t1.join(10)
    return out


def test_a_call_on_its_own_keeps_the_threads(fake):
    assert _threads.guarded(fake.get) == 4
    assert fake.sets == []


def test_overlapping_calls_get_one_thread_until_all_are_done(fake):
    out = overlapping(fake.get, fake.get)
    assert out["second"] == 1  # the limit is on while both are in flight
    assert out["between"] == 4  # still on while the first runs
    assert out["first"] == 1
    assert fake.sets == [1, 4] and fake.n == 4  # the old count is back


def test_the_count_comes_back_after_an_exception(fake):
    def fail():
        raise KeyError("inside")

    with pytest.raises(KeyError):
        _threads.guarded(fail)
    out = overlapping(fake.get, lambda: fail() if fake.n == 1 else None)
    assert isinstance(out["second raised"], KeyError) and out["first"] == 1
    assert fake.n == 4


def test_one_thread_already_is_left_alone(fake):
    fake.n = 1
    assert overlapping(fake.get, fake.get)["second"] == 1
    assert fake.sets == []


def test_switched_off(fake):
    rnncore.set_auto_threads(False)
    try:
        assert overlapping(fake.get, fake.get)["second"] == 4
        assert fake.sets == []
    finally:
        rnncore.set_auto_threads(True)
    assert overlapping(fake.get, fake.get)["second"] == 1


def test_switched_off_while_limited_still_restores(fake):
    out = overlapping(fake.get, lambda: rnncore.set_auto_threads(False))
    try:
        assert out["first"] == 1 and fake.n == 4
        assert overlapping(fake.get, fake.get)["second"] == 4
    finally:
        rnncore.set_auto_threads(True)


@pytest.mark.parametrize("value", [1, 0, None, "off"])
def test_set_auto_threads_takes_a_bool(value):
    with pytest.raises(TypeError, match="bool"):
        rnncore.set_auto_threads(value)


@pytest.mark.parametrize("value,auto", [("0", False), ("off", False),
                                        ("1", True), ("", True)])
def test_environment_switch(value, auto):
    env = {**os.environ, "RNNCORE_AUTO_BLAS_THREADS": value}
    code = "from rnncore import _threads; print(_threads._auto)"
    root = str(Path(rnncore.__file__).parents[1])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, cwd=root, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(auto)


def test_a_threads_block_is_respected(fake):
    pytest.importorskip("threadpoolctl")
    with rnncore.threads(3):
        assert overlapping(fake.get, fake.get)["second"] == 4
    assert fake.sets == []


def test_a_threads_block_starts_from_the_restored_count(fake):
    """A block opened while rnncore's limit is on first lifts it, so that the
    block's exit brings back BLAS's own count, and rnncore does not restore
    over the block's."""
    pytest.importorskip("threadpoolctl")
    seen = {}

    def open_block():
        seen["block"] = rnncore.threads(2)
        seen["block"].__enter__()
        seen["n"] = fake.n

    out = overlapping(fake.get, open_block)
    try:
        assert seen["n"] == 4 and out["between"] is None and out["first"] == 4
        assert fake.sets == [1, 4]
    finally:
        seen["block"].__exit__(None, None, None)


# ---- SciPy's own BLAS -------------------------------------------------------


@pytest.fixture
def scipy_blas():
    blas = _threads.blas_library()
    if blas is None:
        pytest.skip("no controllable BLAS behind SciPy in this process")
    if blas.get() < 2:
        pytest.skip("SciPy's BLAS runs one thread here already")
    assert _threads._auto, "RNNCORE_AUTO_BLAS_THREADS switches it off"
    return blas


def scipy_pool_threads():
    """SciPy's BLAS thread count as threadpoolctl reports it, independently of
    the handle rnncore keeps."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from rnncore._config import _scipy_blas_pool

    pool = _scipy_blas_pool(threadpoolctl.threadpool_info())
    if pool is None:
        pytest.skip("threadpoolctl does not identify SciPy's BLAS")
    return pool["num_threads"]


def test_the_lookups_find_scipys_blas(scipy_blas):
    assert scipy_blas.get() == scipy_pool_threads()
    if sys.platform.startswith("linux"):
        maps = _threads._via_proc_maps()
        if maps is None:
            pytest.skip("no libscipy_openblas loaded (SciPy not from a wheel)")
        assert maps.filepath == scipy_blas.filepath
        assert maps.get() == scipy_blas.get()


def test_real_blas_is_limited_while_calls_overlap(scipy_blas):
    before = scipy_blas.get()
    out = overlapping(scipy_pool_threads, scipy_pool_threads)
    assert out["second"] == 1 and out["first"] == 1
    assert scipy_blas.get() == before == scipy_pool_threads()


def test_real_blas_is_limited_while_threadpoolctl_holds_it(scipy_blas):
    """threadpoolctl ignores OpenBLAS limits set from other threads while one
    of its limits is held (here, at the same count) by this thread; the
    limit set from the overlapping call's thread must still take effect."""
    before = scipy_blas.get()
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(before, user_api="blas"):
        out = overlapping(scipy_blas.get, scipy_blas.get)
    assert out["second"] == 1 and out["first"] == 1
    assert scipy_blas.get() == before


def test_real_calls_overlap_with_one_blas_thread(rng, scipy_blas):
    """Two threads calling loss_and_grads on a problem big enough for their
    calls to overlap; a third watches SciPy's BLAS while both are in flight."""
    before = scipy_blas.get()
    p, x, t, kw = make_problem(rng, 100, 64, 128, 256, 64, np.float32)
    stop = threading.Event()
    seen = []

    def work():
        while not stop.is_set():
            rnncore.loss_and_grads(p, x, t, **kw)

    workers = [threading.Thread(target=work) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for _ in range(20000):
            with _threads._lock:
                if _threads._in_flight == 2 and _threads._saved is not None:
                    seen.append(scipy_blas.get())
            if len(seen) >= 5:
                break
            stop.wait(0.001)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert seen and set(seen) == {1}
    assert scipy_blas.get() == before


# ---- results ----------------------------------------------------------------


def test_the_guard_changes_no_bit(rng):
    p, x, t, kw = make_problem(rng, 12, 40, 24, 64, 10, np.float64,
                               with_lengths=True)
    rnncore.set_auto_threads(False)
    try:
        want = rnncore.loss_and_grads(p, x, t, **kw)
    finally:
        rnncore.set_auto_threads(True)
    got = rnncore.loss_and_grads(p, x, t, **kw)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[2], want[2])
    for k in want[1]:
        np.testing.assert_array_equal(got[1][k], want[1][k])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("setting", ["auto", "auto off", "threads(1)"])
def test_concurrent_calls_match_serial_calls(rng, dtype, setting):
    """Calls that run at once from several threads (the GIL released) give
    the results of the same calls made one after another: bit for bit when
    the BLAS thread count is the same for both; with the automatic limit a
    call may run on fewer BLAS threads than the serial one, which may change
    the last bits."""
    problems = [make_problem(rng, 12, 40, 24, 64, 10, dtype, with_lengths=True)
                for _ in range(4)]
    results = [None] * (3 * len(problems))
    start = threading.Barrier(len(results))

    def work(i):
        start.wait()
        p, x, t, kw = problems[i % len(problems)]
        results[i] = rnncore.loss_and_grads(p, x, t, **kw)

    def run():
        serial = [rnncore.loss_and_grads(p, x, t, **kw) for p, x, t, kw in problems]
        workers = [threading.Thread(target=work, args=(i,))
                   for i in range(len(results))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return serial

    if setting == "auto":
        serial = run()
    elif setting == "auto off":
        rnncore.set_auto_threads(False)
        try:
            serial = run()
        finally:
            rnncore.set_auto_threads(True)
    else:
        pytest.importorskip("threadpoolctl")
        with rnncore.threads(1):
            serial = run()
    if setting == "auto":
        tol = {"rtol": 1e-5 if dtype == np.float32 else 1e-12, "atol": 1e-7}
        check = lambda a, b: np.testing.assert_allclose(a, b, **tol)  # noqa: E731
    else:
        check = np.testing.assert_array_equal
    for i, (loss, grads, h_last) in enumerate(results):
        want_loss, want_grads, want_h = serial[i % len(problems)]
        check(loss, want_loss)
        check(h_last, want_h)
        for k in want_grads:
            check(grads[k], want_grads[k])

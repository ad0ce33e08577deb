"""BLAS threads: rnncore.threads, and the automatic limit while calls overlap.

Every compiled rnncore call runs through :func:`guarded`, which counts the calls
in flight. When a call starts while another is still running, SciPy's BLAS
(the one rnncore's products run on) is limited to one thread, and its
previous thread count comes back once no call is left in flight: calls that
overlap take their parallelism from the Python threads that made them, and a
call on its own keeps BLAS's threads.
"""

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

from rnncore._validation import check_index

ENV_SWITCH = "RNNCORE_AUTO_BLAS_THREADS"
R = TypeVar("R")


class BlasThreads(NamedTuple):
    """How to read and set the thread count of SciPy's BLAS."""

    get: Callable[[], int]
    set: Callable[[int], Any]
    filepath: str
    via: str  # "threadpoolctl" or "ctypes"
    get_address: int = 0  # of get, when it is the library's C function
    set_address: int = 0  # of set, likewise


_lock = threading.Lock()
# All below change only with _lock held.
_in_flight = 0  # compiled calls running now
_saved: int | None = None  # BLAS's thread count before the limit; None: no limit
_user_blocks = 0  # rnncore.threads blocks open
_OFF = {"0", "false", "off", "no"}
_auto = os.environ.get(ENV_SWITCH, "1").strip().lower() not in _OFF
_looked_up = False
_blas: BlasThreads | None = None


def _openblas(path: str, via: str, suffixes=("", "64_", "_64")) -> BlasThreads | None:
    """The thread-count functions an OpenBLAS exports, called directly (for
    SciPy's wheels they carry a scipy_ prefix)."""
    try:
        lib = ctypes.CDLL(path)  # already loaded: the same handle
    except OSError:
        return None
    for prefix in ("scipy_", ""):
        for suffix in suffixes:
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                get.argtypes, get.restype = [], ctypes.c_int
                set_.argtypes, set_.restype = [ctypes.c_int], None
                return BlasThreads(get, set_, path, via, _address(get), _address(set_))
    return None


def _address(fn) -> int:
    """The address of a ctypes function of a loaded library."""
    return ctypes.cast(fn, ctypes.c_void_p).value or 0


def _via_threadpoolctl() -> BlasThreads | None:
    """SciPy's BLAS among those threadpoolctl finds. Its thread count is set
    directly, not through threadpoolctl's controller: for OpenBLAS that
    ignores limits set from any thread but the first one that set one, and a
    limit here is set from whichever thread's call overlaps another."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    from rnncore._config import _scipy_blas_pool

    controllers = [c for c in ThreadpoolController().lib_controllers
                   if c.user_api == "blas"]
    pool = _scipy_blas_pool([c.info() for c in controllers])
    if pool is None:
        return None
    c = next(c for c in controllers if c.filepath == pool["filepath"])
    if c.internal_api == "openblas" and c.threading_layer == "pthreads":
        return _openblas(c.filepath, "threadpoolctl")
    if c.internal_api == "blis":  # a process-wide count, as OpenBLAS's
        return BlasThreads(c.get_num_threads, c.set_num_threads, c.filepath,
                           "threadpoolctl")
    # OpenMP builds and MKL count threads per calling thread: a limit set
    # from one thread would not reach the others.
    return None


def _via_proc_maps() -> BlasThreads | None:
    """SciPy's OpenBLAS (libscipy_openblas, as its wheels ship it) among the
    libraries mapped into this process. NumPy's copy exports its functions
    with a 64_ suffix, so it is never picked."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps") as f:
            paths = {fields[5] for fields in (line.split(None, 5) for line in f)
                     if len(fields) == 6}
    except OSError:
        return None
    for path in sorted(p.strip() for p in paths):
        if os.path.basename(path).startswith("libscipy_openblas"):
            found = _openblas(path, "ctypes", suffixes=("",))
            if found is not None:
                return found
    return None


def blas_library() -> BlasThreads | None:
    """SciPy's BLAS, if its thread count can be controlled; looked up once
    per process (threadpoolctl if installed, else /proc/self/maps on
    Linux), None if neither finds it (e.g. Apple's Accelerate)."""
    global _looked_up, _blas
    if not _looked_up:
        found = None
        for lookup in (_via_threadpoolctl, _via_proc_maps):
            try:
                found = lookup()
            except Exception:  # a lookup that fails finds nothing
                found = None
            if found is not None:
                break
        _blas, _looked_up = found, True
    return _blas


def share_thread_count() -> None:
    """Give the compiled kernels the addresses of SciPy's BLAS thread-count
    functions, so that a call decides for itself whether its per-step
    products are better on rnncore's one-thread kernel, on its team of
    helper threads (which sets BLAS to one thread while a call holds it:
    rnncore/_team.h) or on BLAS's threads (rnncore/_blas.pxd).  Without
    them they always take their own thread."""
    from rnncore import _parallel

    blas = blas_library()
    if blas is not None:
        _parallel.set_blas_thread_functions(blas.get_address, blas.set_address)


def _limit() -> None:
    """Lower SciPy's BLAS to one thread (with _lock held, after the lookup).
    Where the compiled kernels know its thread-count functions, through them,
    so that this limit and theirs (a call sharing its work lowers BLAS too:
    rnncore/_team.h) are counted together and neither restores BLAS's count
    while the other still holds it."""
    global _saved
    blas = _blas
    if blas is None:
        return
    if blas.get_address and blas.set_address:
        from rnncore import _parallel

        _saved = _parallel.lower_blas_threads()
        return
    n = blas.get()
    if isinstance(n, int) and n > 1:
        blas.set(1)
        _saved = n


def _restore() -> None:
    """Give SciPy's BLAS back the thread count _limit found (with _lock held)."""
    global _saved
    if _saved is not None and _blas is not None:
        if _blas.get_address and _blas.set_address:
            from rnncore import _parallel

            _parallel.restore_blas_threads()
        else:
            _blas.set(_saved)
    _saved = None


def _overlap() -> None:
    """A call started while another runs: limit BLAS unless told not to."""
    if not _looked_up:
        blas_library()  # once per process; it imports, so not under _lock
    with _lock:
        if _in_flight > 1 and _saved is None and _auto and not _user_blocks:
            _limit()


def _all_done() -> None:
    with _lock:
        if not _in_flight:
            _restore()


_acquire, _release = _lock.acquire, _lock.release


def guarded(fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)``, counted among the compiled calls in flight (see the
    module docstring). Costs two uncontended lock round trips when calls do
    not overlap; the rare paths take the lock again and look afresh."""
    global _in_flight
    _acquire()
    _in_flight += 1
    overlap = _in_flight > 1 and _saved is None
    _release()
    if overlap:
        _overlap()
    try:
        return fn(*args)
    finally:
        _acquire()
        _in_flight -= 1
        done = not _in_flight and _saved is not None
        _release()
        if done:
            _all_done()


def set_auto_threads(enabled: bool) -> None:
    """Switch the automatic BLAS thread limit for overlapping calls on or off.

    By default, when an rnncore call starts while another is still running
    (calls from several Python threads), rnncore limits SciPy's BLAS to one
    thread until no call is left running, then restores its previous thread
    count; a call on its own keeps BLAS's default threads. The environment
    variable ``RNNCORE_AUTO_BLAS_THREADS=0`` switches it off from the start.
    See :func:`threads` and docs/guide.md.

    Parameters
    ----------
    enabled : bool
        False: never change BLAS's thread count (a limit in place is lifted
        when the calls running now have finished). True: the default.

    Raises
    ------
    TypeError
        ``enabled`` is not a bool.
    """
    global _auto
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
    with _lock:
        _auto = enabled


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Limit every BLAS in the process to ``n`` threads inside a with block.

    rnncore's matrix products run on SciPy's BLAS (OpenBLAS in SciPy's
    wheels), which by default uses one thread per core. By default rnncore
    already limits it to one thread while two or more rnncore calls run at
    once (from several Python threads), and restores the previous count
    when they are done, so that the calls' BLAS threads do not compete for
    the cores (two threads calling ``loss_and_grads`` on a busy 2-core
    machine: 5 calls/s without that limit, 248 with it, 286 with
    ``threads(1)``; see docs/guide.md); :func:`set_auto_threads` or
    ``RNNCORE_AUTO_BLAS_THREADS=0`` switch that off. Inside this block
    rnncore leaves the count at ``n``: use it to choose the count yourself,
    e.g. one BLAS thread for a single call on a machine that other
    processes keep busy.

    Built on threadpoolctl's ``threadpool_limits(n, user_api="blas")``: the
    limit is process-wide (it applies to every thread while the block runs,
    and to NumPy's BLAS as well), and the previous limits come back when the
    block exits.

    Parameters
    ----------
    n : int
        Number of BLAS threads, >= 1.

    Raises
    ------
    ImportError
        threadpoolctl is not installed.
    TypeError
        ``n`` is not an integer.
    ValueError
        ``n`` < 1.

    Examples
    --------
    >>> import rnncore
    >>> with rnncore.threads(1):  # doctest: +SKIP
    ...     loss, grads, h_last = rnncore.loss_and_grads(params, x, targets)
    """
    global _user_blocks
    n = check_index("n", n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as exc:
        raise ImportError(
            "rnncore.threads needs threadpoolctl: python -m pip install threadpoolctl"
        ) from exc
    with _lock:
        # The block's "previous" count must be BLAS's own, not rnncore's limit.
        _user_blocks += 1
        _restore()
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        with _lock:
            _user_blocks -= 1

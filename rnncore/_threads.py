"""rnncore.threads: how many threads BLAS may use inside a with block."""

import contextlib
from collections.abc import Iterator

from rnncore._validation import check_index


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Limit every BLAS in the process to ``n`` threads inside a with block.

    rnncore's matrix products run on SciPy's BLAS (OpenBLAS in SciPy's
    wheels), which by default uses one thread per core. A pipeline that runs
    several rnncore calls at once from its own threads should give each
    call one BLAS thread: otherwise the calls' BLAS threads compete for the
    cores and the whole runs several times slower (see docs/guide.md).

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
    n = check_index("n", n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as exc:
        raise ImportError(
            "rnncore.threads needs threadpoolctl: python -m pip install threadpoolctl"
        ) from exc
    with threadpool_limits(limits=n, user_api="blas"):
        yield

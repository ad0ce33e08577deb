"""rnncore.show_config: the versions, BLAS and SIMD kernels in use."""

import os
import platform
from typing import Any, Literal

import numpy as np
import scipy

from rnncore import _cpu
from rnncore._version import __version__

NO_THREADPOOLCTL = "install threadpoolctl for BLAS details"
# threadpoolctl's fields reported for SciPy's BLAS
POOL_FIELDS = (
    "internal_api", "version", "architecture", "num_threads", "threading_layer",
    "filepath",
)


def _scipy_build_blas() -> dict[str, Any]:
    """Name and version of the BLAS SciPy was built with, from SciPy's own
    build record."""
    try:
        blas = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (AttributeError, KeyError, TypeError):  # no record in this SciPy
        return {"name": "unknown", "version": "unknown"}
    return {"name": blas.get("name", "unknown"),
            "version": blas.get("version", "unknown")}


def _shipped_with(path: str, package: Any) -> bool:
    """Whether a loaded library lies in a package's folder or in the folder
    its wheels keep their shared libraries in (e.g. scipy.libs)."""
    root = os.path.normcase(os.path.realpath(os.path.dirname(package.__file__)))
    path = os.path.normcase(os.path.realpath(path))
    return path.startswith((root + os.sep, root + ".libs" + os.sep))


def _scipy_blas_pool(pools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The thread pool of the BLAS behind scipy.linalg.cython_blas, which
    rnncore calls, among threadpoolctl's: the one shipped with SciPy; else
    (SciPy linked to a shared BLAS, as in conda) the only one left once
    NumPy's own is set aside; else None."""
    blas = [p for p in pools if p.get("user_api") == "blas"]
    ours = [p for p in blas if _shipped_with(p.get("filepath", ""), scipy)]
    if len(ours) == 1:
        return ours[0]
    others = [p for p in blas if not _shipped_with(p.get("filepath", ""), np)]
    return others[0] if len(others) == 1 and not ours else None


def _blas_section() -> dict[str, Any]:
    section = _scipy_build_blas()
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        section["details"] = NO_THREADPOOLCTL
        return section
    pool = _scipy_blas_pool(threadpool_info())
    if pool is None:
        section["details"] = "threadpoolctl does not identify SciPy's BLAS"
    else:
        section.update({k: pool.get(k) for k in POOL_FIELDS})
    return section


def show_config(
    mode: Literal["stdout", "dicts"] = "stdout",
) -> dict[str, dict[str, Any]] | None:
    """Show the versions, the BLAS and the SIMD kernels rnncore runs with.

    Parameters
    ----------
    mode : {"stdout", "dicts"}, default "stdout"
        ``"stdout"`` prints the configuration; ``"dicts"`` returns it.

    Returns
    -------
    dict or None
        With ``mode="dicts"``, a dict of dicts keyed ``"rnncore"``
        (``version``, ``simd_isa``: the instruction set the element-wise
        kernels chose on this CPU), ``"python"``, ``"numpy"``, ``"scipy"``
        (each with ``version``) and ``"blas"``: the BLAS that rnncore calls
        (SciPy's) with ``name`` and ``version`` from SciPy's build record
        and, when threadpoolctl is installed, its run-time ``internal_api``,
        ``version``, ``architecture`` (the kernel core type OpenBLAS chose),
        ``num_threads``, ``threading_layer`` and ``filepath``; without
        threadpoolctl, ``details`` says to install it. None otherwise.

    Raises
    ------
    ValueError
        ``mode`` is neither ``"stdout"`` nor ``"dicts"``.

    Examples
    --------
    >>> import rnncore
    >>> rnncore.show_config()  # doctest: +SKIP
    >>> rnncore.show_config(mode="dicts")["blas"]["num_threads"]  # doctest: +SKIP
    2
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"mode must be 'stdout' or 'dicts', got {mode!r}")
    config = {
        "rnncore": {"version": __version__, "simd_isa": _cpu.simd_isa()},
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
        },
        "numpy": {"version": np.__version__},
        "scipy": {"version": scipy.__version__},
        "blas": _blas_section(),
    }
    if mode == "dicts":
        return config
    for section, entries in config.items():
        print(f"{section}:")
        for key, value in entries.items():
            print(f"  {key}: {value}")
    return None

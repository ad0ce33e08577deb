"""The team of helper threads that shares a call's products (_team.h).

A call that splits its work claims the team once (claim_team returns the
number of parts: positive, over the team; negative, the same parts run one
by one on the calling thread, when another call holds the team; 1 for no
split), passes that number down to its kernels, and releases it when
done.  See _team.h for why, and rnncore/_blas.pxd for which
products split.
"""

cdef extern from "_team.h" nogil:
    enum: RNC_TEAM_MAX
    void rnc_set_blas_thread_functions(size_t get, size_t set)
    int rnc_blas_threads()
    int rnc_team_claim()
    void rnc_team_release(int parts)
    void rnc_team_split(int parts, team_fn fn, void *arg)
    int rnc_team_helpers()
    int rnc_blas_lower(int python)
    void rnc_blas_restore(int python)


# the bound the other modules size their per-part arrays by
if RNC_TEAM_MAX != TEAM_MAX_PARTS:
    raise ImportError("rnncore/_parallel.pxd: TEAM_MAX_PARTS must equal RNC_TEAM_MAX")


cdef int blas_threads() noexcept nogil:
    """SciPy's BLAS thread count (1 while unknown)."""
    return rnc_blas_threads()


cdef int claim_team() noexcept nogil:
    """Parts for this call's work (see above); release_team(parts) when
    done."""
    return rnc_team_claim()


cdef void release_team(int parts) noexcept nogil:
    rnc_team_release(parts)


cdef void team_split(int parts, team_fn fn, void *arg) noexcept nogil:
    """fn(arg, p, |parts|) for p < |parts|, parts from claim_team."""
    rnc_team_split(parts, fn, arg)


def set_blas_thread_functions(size_t get_address, size_t set_address):
    """The addresses of SciPy's BLAS openblas_get_num_threads and
    openblas_set_num_threads (0: unknown, and no team)."""
    rnc_set_blas_thread_functions(get_address, set_address)


def lower_blas_threads():
    """Lower SciPy's BLAS to one thread for calls that overlap (the Python
    side's limit, rnncore/_threads.py), counted with the compiled calls that
    lower it (_team.h: rnc_blas_lower), so that none restores it while
    another still needs it; returns the thread count before.  Only after
    set_blas_thread_functions gave nonzero addresses."""
    return rnc_blas_lower(1)


def restore_blas_threads():
    """Undo lower_blas_threads: BLAS gets its count back once no compiled
    call still holds it at one thread."""
    rnc_blas_restore(1)


def helper_threads():
    """How many helper threads the team has made so far in this process."""
    return rnc_team_helpers()

# The process's one team of helper threads (_team.h, compiled into
# _parallel only) and SciPy's BLAS thread count, for the other modules.

cdef enum:
    TEAM_MAX_PARTS = 16  # RNC_TEAM_MAX: claim_team never returns more

ctypedef void (*team_fn)(void *arg, int part, int parts) noexcept nogil

cdef int blas_threads() noexcept nogil
cdef int claim_team() noexcept nogil
cdef void release_team(int parts) noexcept nogil
cdef void team_split(int parts, team_fn fn, void *arg) noexcept nogil

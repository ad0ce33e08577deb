"""Softmax, log-softmax and the fused softmax cross-entropy, row by row.

Every row is shifted by its maximum before exp, so any finite logits give a
finite result; the loss is accumulated in double precision.
"""
from libc.string cimport memset
cimport cython
from cython cimport floating

from rnncore._parallel cimport (TEAM_MAX_PARTS, blas_threads, claim_team,
                                release_team, team_split)
from rnncore._simd cimport softmax_row


cdef enum:
    # Rows × classes from which the team shares the rows (rnncore/_parallel.pyx;
    # a task costs about 0.4 µs, softmax about 0.5 ns per element).
    SPLIT_SOFTMAX_MIN_ELEMENTS = 1 << 15


ctypedef struct RowsTask:
    Py_ssize_t N, C, ignore_index
    const void *logits
    void *z
    const Py_ssize_t *targets
    double scale
    bint single
    double loss[TEAM_MAX_PARTS]  # each part's sum


cdef double ce_rows(Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C,
                    const floating *logits, floating *z,
                    const Py_ssize_t *targets, Py_ssize_t ignore_index,
                    floating scale) noexcept nogil:
    """Rows [r0, r1) of softmax_ce_sum: their summed loss; z <- gradient
    (z may be logits)."""
    cdef Py_ssize_t n
    cdef floating zmax
    cdef const floating *x_n
    cdef floating *z_n
    cdef double zt, loss = 0
    for n in range(r0, r1):
        x_n, z_n = logits + n * C, z + n * C
        if targets[n] == ignore_index:
            memset(z_n, 0, C * sizeof(floating))
            continue
        zt = x_n[targets[n]]
        # loss_n = logsumexp(x_n) - x_n[m];  ∂loss/∂x_n = (softmax(x_n) - 1_m) / valid
        loss += softmax_row(x_n, z_n, C, scale, &zmax)
        loss += zmax - zt
        z_n[targets[n]] -= scale
    return loss


cdef void ce_part(void *arg, int part, int parts) noexcept nogil:
    cdef RowsTask *t = <RowsTask *>arg
    cdef Py_ssize_t r0 = t.N * part // parts, r1 = t.N * (part + 1) // parts
    if t.single:
        t.loss[part] = ce_rows(r0, r1, t.C, <const float *>t.logits,
                               <float *>t.z, t.targets, t.ignore_index,
                               <float>t.scale)
    else:
        t.loss[part] = ce_rows(r0, r1, t.C, <const double *>t.logits,
                               <double *>t.z, t.targets, t.ignore_index,
                               t.scale)


cdef Py_ssize_t count_valid(Py_ssize_t N, const Py_ssize_t *targets,
                            Py_ssize_t ignore_index) noexcept nogil:
    """How many of the N targets are not ignore_index."""
    cdef Py_ssize_t n, valid = 0
    for n in range(N):
        valid += targets[n] != ignore_index
    return valid


cdef double softmax_ce_sum(Py_ssize_t N, Py_ssize_t C, const floating *logits,
                           floating *z, const Py_ssize_t *targets,
                           Py_ssize_t ignore_index, Py_ssize_t valid,
                           int parts) noexcept nogil:
    """Summed cross-entropy of the rows of logits (N, C), some of a batch
    whose rows not ignored number ``valid``; z (N, C; may be logits itself)
    receives the gradient of the batch's mean, (softmax(logits) - 1_m) /
    valid, and ignored rows zero (all of them, and the sum is 0, when valid
    is 0).  parts: of the team the call holds, 1 for none (the rows are
    shared)."""
    cdef int p
    cdef double loss = 0
    cdef RowsTask task
    if valid == 0:
        memset(z, 0, N * C * sizeof(floating))
        return 0.0
    if abs(parts) < 2 or N < abs(parts) or N * C < SPLIT_SOFTMAX_MIN_ELEMENTS:
        parts = 1
    parts = max(-TEAM_MAX_PARTS, min(parts, TEAM_MAX_PARTS))
    task.N, task.C, task.ignore_index, task.targets = N, C, ignore_index, targets
    task.logits, task.z = logits, z
    # the scale rounded to the dtype, as ce_rows applies it
    task.scale, task.single = <floating>(1.0 / valid), floating is float
    team_split(parts, ce_part, &task)
    for p in range(abs(parts)):
        loss += task.loss[p]
    return loss


cdef double softmax_ce_core(Py_ssize_t N, Py_ssize_t C, const floating *logits,
                            floating *z, const Py_ssize_t *targets,
                            Py_ssize_t ignore_index, int parts) noexcept nogil:
    """Mean cross-entropy of logits (N, C) over rows whose target is not
    ignore_index; z (may be logits) receives the gradient (softmax(logits) -
    1_m) / n.  parts: as for softmax_ce_sum.

    Ignored rows get a zero gradient.  With no row left the loss is 0.
    """
    cdef Py_ssize_t valid = count_valid(N, targets, ignore_index)
    cdef double loss = softmax_ce_sum(N, C, logits, z, targets, ignore_index,
                                      valid, parts)
    return mean_loss(loss, valid)


# No bounds checks on the data-pointer addresses: see _recurrence.pyx.
@cython.boundscheck(False)
@cython.wraparound(False)
def cross_entropy(const floating[:, ::1] logits not None,
                  const Py_ssize_t[::1] targets not None, Py_ssize_t ignore_index,
                  floating[:, ::1] dlogits not None):
    """Returns the mean loss and writes its gradient into dlogits."""
    cdef Py_ssize_t N = logits.shape[0], C = logits.shape[1]
    cdef double loss
    cdef int parts
    with nogil:
        # the team for as many logits as a training step's output layer
        # shares (softmax_ce_sum splits from SPLIT_SOFTMAX_MIN_ELEMENTS)
        parts = (claim_team() if N >= 2 and N * C >= SPLIT_SOFTMAX_MIN_ELEMENTS
                 and blas_threads() > 1 else 1)
        loss = softmax_ce_core(N, C, &logits[0, 0], &dlogits[0, 0], &targets[0],
                               ignore_index, parts)
        release_team(parts)
    return loss


def softmax(const floating[:, ::1] z not None, floating[:, ::1] out not None,
            bint log):
    """out = softmax(z) or log_softmax(z), row by row."""
    cdef Py_ssize_t n, i, N = z.shape[0], C = z.shape[1]
    cdef floating log_sum, zmax
    with nogil:
        for n in range(N):
            log_sum = <floating>softmax_row(&z[n, 0], &out[n, 0], C, 1, &zmax)
            if log:
                for i in range(C):
                    out[n, i] = (z[n, i] - zmax) - log_sum


@cython.boundscheck(False)
@cython.wraparound(False)
def targets_in_range(const Py_ssize_t[::1] targets not None, Py_ssize_t C,
                     Py_ssize_t ignore_index):
    """Whether every target lies in [0, C) or equals ignore_index: one pass,
    without the temporaries of NumPy's min and max."""
    cdef Py_ssize_t n, t
    cdef bint ok = True
    with nogil:
        for n in range(targets.shape[0]):
            t = targets[n]
            if (t < 0 or t >= C) and t != ignore_index:
                ok = False
                break
    return ok

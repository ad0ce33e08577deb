"""The output layer ``y = W_hy h + b_y`` and its softmax cross-entropy.

feats (N, H) are the hidden states the layer reads (every step's, or each
sequence's last), W_hy (C, H), b_y (C,), logits (N, C).
"""
from libc.string cimport memset
cimport cython
from cython cimport floating

from rnncore._blas cimport pgemm, pgemm_bias, team_for_product
from rnncore._parallel cimport release_team
from rnncore._softmax cimport softmax_ce_core


cdef void logits_core(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                      const floating *feats, const floating *W_hy,
                      const floating *b_y, floating *logits,
                      int parts) noexcept nogil:
    """logits = feats·W_hyᵀ + b_y: (N × H)·(H × C).  parts: of the team
    the call holds (rnncore/_parallel.pyx), 1 for none."""
    pgemm_bias(parts, False, True, N, C, H, 1, feats, H, W_hy, H, 1, b_y, logits, C)


cdef double loss_grads_core(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                            const floating *feats, const Py_ssize_t *targets,
                            Py_ssize_t ignore_index, const floating *W_hy,
                            const floating *b_y, floating *logits,
                            floating *dW_hy, floating *db_y,
                            floating *dfeats, int parts) noexcept nogil:
    """Mean cross-entropy of the output layer; writes dW_hy, db_y and
    dfeats = ∂L/∂feats (N, H) unless dfeats is NULL.  logits is workspace
    (ends as dlogits)."""
    cdef Py_ssize_t r, c
    cdef double loss
    logits_core(N, C, H, feats, W_hy, b_y, logits, parts)
    loss = softmax_ce_core(N, C, logits, targets, ignore_index, parts)  # -> dlogits
    # dW_hy = dlogitsᵀ·feats: (C × N)·(N × H);  db_y = Σ_rows dlogits
    pgemm(parts, True, False, C, H, N, 1, logits, C, feats, H, 0, dW_hy, H)
    memset(db_y, 0, C * sizeof(floating))
    for r in range(N):
        for c in range(C):
            db_y[c] += logits[r * C + c]
    if dfeats != NULL:
        # dfeats = dlogits·W_hy: (N × C)·(C × H)
        pgemm(parts, False, False, N, H, C, 1, logits, C, W_hy, H, 0, dfeats, H)
    return loss


# ---- Python entry points: arrays already validated, C-contiguous, one dtype.
# &a[0, ...] is taken only as a data pointer, which zero-size arrays have too:
# the debug build's bounds checks must not reject it.

@cython.boundscheck(False)
@cython.wraparound(False)
def logits(const floating[:, ::1] feats not None,
           const floating[:, ::1] W_hy not None, const floating[::1] b_y not None,
           floating[:, ::1] out not None):
    """out = feats·W_hyᵀ + b_y"""
    cdef Py_ssize_t N = feats.shape[0], H = feats.shape[1], C = W_hy.shape[0]
    cdef int parts
    with nogil:
        parts = team_for_product(N, C, H)
        logits_core(N, C, H, &feats[0, 0], &W_hy[0, 0], &b_y[0], &out[0, 0], parts)
        release_team(parts)


@cython.boundscheck(False)
@cython.wraparound(False)
def loss_grads(const floating[:, ::1] feats not None,
               const Py_ssize_t[::1] targets not None, Py_ssize_t ignore_index,
               const floating[:, ::1] W_hy not None, const floating[::1] b_y not None,
               floating[:, ::1] logits not None, floating[:, ::1] dW_hy not None,
               floating[::1] db_y not None, floating[:, ::1] dfeats not None):
    """Returns the mean loss; writes dW_hy, db_y, dfeats (logits: workspace)."""
    cdef Py_ssize_t N = feats.shape[0], H = feats.shape[1], C = W_hy.shape[0]
    cdef double loss
    cdef int parts
    with nogil:
        parts = team_for_product(N, C, H)
        loss = loss_grads_core(N, C, H, &feats[0, 0], &targets[0], ignore_index,
                               &W_hy[0, 0], &b_y[0], &logits[0, 0], &dW_hy[0, 0],
                               &db_y[0], &dfeats[0, 0], parts)
        release_team(parts)
    return loss

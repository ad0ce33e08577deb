"""The output layer ``y = W_hy h + b_y`` and its softmax cross-entropy.

feats (N, H) are the hidden states the layer reads (every step's, or each
sequence's last), W_hy (C, H), b_y (C,); logits (N, C) at inference, and
in training a workspace of one chunk's or one block's rows (output_rows).
"""
from libc.string cimport memset
cimport numpy as cnp
from cython cimport floating

from rnncore._arrays cimport dim, float_type, reads, reads_index, writes
from rnncore._blas cimport pgemm, pgemm_bias, team_for_product
from rnncore._parallel cimport release_team
from rnncore._softmax cimport count_valid, mean_loss, softmax_ce_sum

cnp.import_array()


cdef void logits_core(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                      const floating *feats, const floating *W_hy,
                      const floating *b_y, floating *logits,
                      int parts) noexcept nogil:
    """logits = feats·W_hyᵀ + b_y: (N × H)·(H × C).  parts: of the team
    the call holds (rnncore/_parallel.pyx), 1 for none."""
    pgemm_bias(parts, False, True, N, C, H, 1, feats, H, W_hy, H, 1, b_y, logits, C)


cdef enum:
    # Rows of the output layer per block in training: a block's logits,
    # softmax and share of dW_hy run while its rows are in cache.  The
    # medium workload's training step took 4% less time than with one pass
    # over all rows for each; larger H and fewer rows did not change
    # (docs/performance-notes.md).
    OUTPUT_BLOCK_ROWS = 512


cdef double output_rows(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                        const floating *feats, const Py_ssize_t *targets,
                        Py_ssize_t ignore_index, Py_ssize_t valid,
                        const floating *W_hy, const floating *b_y,
                        floating *logits, floating *dW_hy, floating *db_y,
                        bint accumulate, floating *dfeats,
                        int parts) noexcept nogil:
    """Summed cross-entropy of N rows of the output layer, some of a batch
    whose rows not ignored number ``valid``.  Their share of the batch
    mean's dW_hy and db_y is added to those (accumulate) or written to them;
    dfeats = ∂L/∂feats (N, H) unless dfeats is NULL.  logits is workspace:
    when dfeats is NULL it holds all N rows and ends as their dlogits (for
    the caller's dlogits·W_hy); else it holds one block, which each block
    reuses (output_workspace_rows(N) rows)."""
    cdef Py_ssize_t r, c, i, n, r0 = 0
    # blocks of equal size, so that none is much smaller than the others;
    # at least one, whose GEMM writes dW_hy also when N is 0
    cdef Py_ssize_t blocks = max(1, (N + OUTPUT_BLOCK_ROWS - 1) // OUTPUT_BLOCK_ROWS)
    cdef double loss = 0
    cdef floating *z
    if not accumulate:
        memset(db_y, 0, C * sizeof(floating))
    for i in range(blocks):
        n = (N - r0 + blocks - i - 1) // (blocks - i)
        z = logits + r0 * C if dfeats == NULL else logits
        logits_core(n, C, H, feats + r0 * H, W_hy, b_y, z, parts)
        loss += softmax_ce_sum(n, C, z, z, targets + r0, ignore_index, valid,
                               parts)  # -> dlogits
        # dW_hy += dlogitsᵀ·feats: (C × n)·(n × H);  db_y += Σ_rows dlogits
        pgemm(parts, True, False, C, H, n, 1, z, C, feats + r0 * H, H,
              1 if accumulate or r0 > 0 else 0, dW_hy, H)
        for r in range(n):
            for c in range(C):
                db_y[c] += z[r * C + c]
        if dfeats != NULL:
            # dfeats = dlogits·W_hy: (n × C)·(C × H)
            pgemm(parts, False, False, n, H, C, 1, z, C, W_hy, H, 0,
                  dfeats + r0 * H, H)
        r0 += n
    return loss


cdef int check_logits(Py_ssize_t n, Py_ssize_t c, Py_ssize_t rows,
                      Py_ssize_t C) except -1:
    """The logits workspace, of shape (n, c), must hold at least ``rows``
    rows of C."""
    if n < rows or c != C:
        raise ValueError(f"logits must have shape (>= {rows}, {C}), got "
                         f"{(n, c)}")
    return 0


cpdef Py_ssize_t output_workspace_rows(Py_ssize_t N):
    """Rows of the logits workspace of loss_grads for N rows: enough for
    its largest block (which may have fewer rows: N = 513 makes two blocks
    of 257 and 256)."""
    return min(N, OUTPUT_BLOCK_ROWS)


cdef double loss_grads_core(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                            const floating *feats, const Py_ssize_t *targets,
                            Py_ssize_t ignore_index, const floating *W_hy,
                            const floating *b_y, floating *logits,
                            floating *dW_hy, floating *db_y,
                            floating *dfeats, int parts) noexcept nogil:
    """Mean cross-entropy of the output layer; writes dW_hy, db_y and
    dfeats = ∂L/∂feats (N, H) unless dfeats is NULL.  logits is workspace:
    see output_rows."""
    cdef Py_ssize_t valid = count_valid(N, targets, ignore_index)
    cdef double loss = output_rows(N, C, H, feats, targets, ignore_index, valid,
                                   W_hy, b_y, logits, dW_hy, db_y, False,
                                   dfeats, parts)
    return mean_loss(loss, valid)


cdef void output_chunks_init(OutputChunks *o, Py_ssize_t N, Py_ssize_t C,
                             Py_ssize_t H, const floating *feats,
                             const Py_ssize_t *targets, Py_ssize_t ignore_index,
                             const floating *W_hy, const floating *b_y,
                             floating *logits, floating *dW_hy, floating *db_y,
                             int parts) noexcept nogil:
    """The output layer over feats (N, H), for output_chunk; logits holds
    the rows of the largest chunk."""
    o.C, o.H, o.ignore_index, o.parts = C, H, ignore_index, parts
    o.valid = count_valid(N, targets, ignore_index)
    o.feats, o.targets, o.W_hy, o.b_y = feats, targets, W_hy, b_y
    o.logits, o.dW_hy, o.db_y = logits, dW_hy, db_y
    o.loss, o.started, o.single = 0, False, floating is float


cdef const void *output_chunk(void *ctx, Py_ssize_t r0,
                              Py_ssize_t rows) noexcept nogil:
    """The output layer for rows [r0, r0 + rows) of an OutputChunks: adds
    their loss to its sum and their share to dW_hy and db_y (written by the
    first call); returns their dlogits (rows, C)."""
    cdef OutputChunks *o = <OutputChunks *>ctx
    if o.single:
        o.loss += output_rows(
            rows, o.C, o.H, <const float *>o.feats + r0 * o.H, o.targets + r0,
            o.ignore_index, o.valid, <const float *>o.W_hy,
            <const float *>o.b_y, <float *>o.logits, <float *>o.dW_hy,
            <float *>o.db_y, o.started, <float *>NULL, o.parts)
    else:
        o.loss += output_rows(
            rows, o.C, o.H, <const double *>o.feats + r0 * o.H, o.targets + r0,
            o.ignore_index, o.valid, <const double *>o.W_hy,
            <const double *>o.b_y, <double *>o.logits, <double *>o.dW_hy,
            <double *>o.db_y, o.started, <double *>NULL, o.parts)
    o.started = True
    return o.logits


cdef double output_chunks_loss(OutputChunks *o) noexcept nogil:
    """The mean loss once every row has been through output_chunk (writing
    the gradients first if none has: no rows)."""
    if not o.started:
        output_chunk(o, 0, 0)
    return mean_loss(o.loss, o.valid)


# ---- Python entry points: arrays already validated, C-contiguous, one dtype,
# read through NumPy's C API (rnncore/_arrays.pxd).

def logits(feats, W_hy, b_y, out):
    """out = feats·W_hyᵀ + b_y"""
    if float_type(feats) == cnp.NPY_FLOAT32:
        run_logits(<float>0, feats, W_hy, b_y, out)
    else:
        run_logits(<double>0, feats, W_hy, b_y, out)


cdef int run_logits(floating kind, feats, W_hy, b_y, out) except -1:
    """logits for the dtype of `kind`"""
    cdef const floating *feats_p = reads(kind, feats, "feats", 2)
    cdef const floating *W_hy_p = reads(kind, W_hy, "W_hy", 2)
    cdef const floating *b_y_p = reads(kind, b_y, "b_y", 1)
    cdef floating *out_p = writes(kind, out, "out", 2)
    cdef Py_ssize_t N = dim(feats, 0), H = dim(feats, 1), C = dim(W_hy, 0)
    cdef int parts
    with nogil:
        parts = team_for_product(N, C, H)
        logits_core(N, C, H, feats_p, W_hy_p, b_y_p, out_p, parts)
        release_team(parts)
    return 0


def loss_grads(feats, targets, Py_ssize_t ignore_index, W_hy, b_y, logits, dW_hy,
               db_y, dfeats):
    """Returns the mean loss; writes dW_hy, db_y, dfeats (logits: workspace
    of (output_workspace_rows(N), C))."""
    if float_type(feats) == cnp.NPY_FLOAT32:
        return run_loss_grads(<float>0, feats, targets, ignore_index, W_hy, b_y,
                              logits, dW_hy, db_y, dfeats)
    return run_loss_grads(<double>0, feats, targets, ignore_index, W_hy, b_y,
                          logits, dW_hy, db_y, dfeats)


cdef double run_loss_grads(floating kind, feats, targets, Py_ssize_t ignore_index,
                           W_hy, b_y, logits, dW_hy, db_y, dfeats) except? -1:
    """loss_grads for the dtype of `kind`"""
    cdef const floating *feats_p = reads(kind, feats, "feats", 2)
    cdef const Py_ssize_t *targets_p = reads_index(targets, "targets")
    cdef const floating *W_hy_p = reads(kind, W_hy, "W_hy", 2)
    cdef const floating *b_y_p = reads(kind, b_y, "b_y", 1)
    cdef floating *logits_p = writes(kind, logits, "logits", 2)
    cdef floating *dW_hy_p = writes(kind, dW_hy, "dW_hy", 2)
    cdef floating *db_y_p = writes(kind, db_y, "db_y", 1)
    cdef floating *dfeats_p = writes(kind, dfeats, "dfeats", 2)
    cdef Py_ssize_t N = dim(feats, 0), H = dim(feats, 1), C = dim(W_hy, 0)
    cdef double loss
    cdef int parts
    check_logits(dim(logits, 0), dim(logits, 1), output_workspace_rows(N), C)
    with nogil:
        parts = team_for_product(N, C, H)
        loss = loss_grads_core(N, C, H, feats_p, targets_p, ignore_index, W_hy_p,
                               b_y_p, logits_p, dW_hy_p, db_y_p, dfeats_p, parts)
        release_team(parts)
    return loss

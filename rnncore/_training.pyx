"""One training step in one call: forward, output layer, softmax
cross-entropy and backpropagation through time, in a single nogil region.

mode "seq": logits at every step, from hs (T·B rows), targets (T·B,) with
padded steps already set to ignore_index; the backward pass runs the output
layer for each chunk of steps as it reaches it, so logits holds one chunk's
rows.  mode "last": logits from each sequence's final state (B rows),
targets (B,).  top_backward is the seq backward pass alone, for the top
layer of a stack.
"""
cimport numpy as cnp
from cython cimport floating

from rnncore._arrays cimport (dim, float_type, optional_index, optional_reads,
                              optional_writes, reads, reads_index, writes)
from rnncore._blas cimport team_for_steps
from rnncore._output cimport (OutputChunks, check_logits, loss_grads_core,
                              output_chunk, output_chunks_init,
                              output_chunks_loss)
from rnncore._parallel cimport release_team
from rnncore._recurrence cimport (backward_core, backward_wbuf_len, check_work,
                                  forward_core, gather_last)

cnp.import_array()


cdef double backward_with_output(
        Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H, Py_ssize_t C,
        const floating *x, const Py_ssize_t *targets, Py_ssize_t ignore_index,
        const floating *W_xh, const floating *W_hh, const floating *W_hy,
        const floating *b_y, const floating *h0, const Py_ssize_t *lengths,
        const floating *hs, floating *dx, floating *dW_xh, floating *dW_hh,
        floating *db_h, floating *dW_hy, floating *db_y, Py_ssize_t K,
        floating *work, floating *wbuf, Py_ssize_t wbuf_len, floating *logits,
        floating *dh0, int parts) noexcept nogil:
    """Mode "seq": the backward pass over hs with the output layer at every
    step.  Each chunk's logits, softmax, share of dW_hy and db_y, and
    ∂L/∂h_t = dlogits_t·W_hy run while its hidden states are in cache, so
    logits holds one chunk's rows.  Returns the mean loss; dx may be NULL."""
    cdef OutputChunks out
    output_chunks_init(&out, T * B, C, H, hs, targets, ignore_index, W_hy, b_y,
                       logits, dW_hy, db_y, parts)
    backward_core(T, B, D, H, <floating *>NULL, C, W_hy, output_chunk, &out,
                  <floating *>NULL, hs, x, W_xh, W_hh, h0, lengths, K, work, wbuf,
                  wbuf_len, dh0, dx, dW_xh, dW_hh, db_h, parts)
    return output_chunks_loss(&out)


cdef double train_step_core(
        bint seq, Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
        Py_ssize_t C, const floating *x, const Py_ssize_t *targets,
        Py_ssize_t ignore_index, const floating *W_xh, const floating *W_hh,
        const floating *b_h, const floating *W_hy, const floating *b_y,
        const floating *h0, const Py_ssize_t *lengths,
        floating *dW_xh, floating *dW_hh, floating *db_h, floating *dW_hy,
        floating *db_y, floating *h_last, floating *hs, Py_ssize_t K,
        floating *work, floating *wbuf, Py_ssize_t wbuf_len, floating *logits,
        floating *dh_last,
        floating *dh0, int parts) noexcept nogil:
    """Returns the mean loss; writes the five gradients and h_last.

    wbuf is NULL for batches of up to SMALL_GEMM_MAX_ROWS: dW_hh is not
    written before the backward pass, so until then it holds the forward
    pass's copy of W_hhᵀ (transposed, or packed where the packed layout
    fits H·H), and the backward pass reads W_hh as it is.  Larger batches
    pack W_hh into wbuf (wbuf_len elements), once for each pass.  parts: of
    the team the call holds (rnncore/_parallel.pyx), 1 for none.
    """
    cdef double loss
    if wbuf != NULL:
        forward_core(T, B, D, H, x, W_xh, W_hh, b_h, h0, lengths, wbuf,
                     wbuf_len, hs, parts)
    else:
        forward_core(T, B, D, H, x, W_xh, W_hh, b_h, h0, lengths, dW_hh, H * H,
                     hs, parts)
    gather_last(T, B, H, hs, lengths, h_last)
    if seq:
        return backward_with_output(
            T, B, D, H, C, x, targets, ignore_index, W_xh, W_hh, W_hy, b_y, h0,
            lengths, hs, <floating *>NULL, dW_xh, dW_hh, db_h, dW_hy, db_y, K,
            work, wbuf, wbuf_len, logits, dh0, parts)
    # "last": the output layer's ∂L/∂h of the last states into dh_last
    loss = loss_grads_core(B, C, H, h_last, targets, ignore_index, W_hy, b_y,
                           logits, dW_hy, db_y, dh_last, parts)
    backward_core(T, B, D, H, <floating *>NULL, H, <floating *>NULL, NULL, NULL,
                  dh_last, hs, x, W_xh, W_hh, h0, lengths, K, work, wbuf,
                  wbuf_len, dh0, <floating *>NULL, dW_xh, dW_hh, db_h, parts)
    return loss


def train_step(bint seq, x, targets, Py_ssize_t ignore_index, W_xh, W_hh, b_h,
               W_hy, b_y, h0, lengths, dW_xh, dW_hh, db_h, dW_hy, db_y, h_last,
               hs, work, wbuf, logits, dh_last, dh0):
    """Arrays validated, C-contiguous, one dtype; h0 and lengths are empty
    arrays when absent.  The last six arrays are workspace; work is
    (K, B, H) with K = backward_steps(T, B, D, H, itemsize), wbuf
    (weight_buffer_len(H, itemsize),) when needs_weight_buffer(B), else may
    be empty, logits (min(K, T)·B, C) in mode seq, (B, C) in mode last,
    dh_last (B, H) in mode last, unread in mode seq."""
    if float_type(x) == cnp.NPY_FLOAT32:
        return run_train_step(<float>0, seq, x, targets, ignore_index, W_xh, W_hh,
                              b_h, W_hy, b_y, h0, lengths, dW_xh, dW_hh, db_h,
                              dW_hy, db_y, h_last, hs, work, wbuf, logits,
                              dh_last, dh0)
    return run_train_step(<double>0, seq, x, targets, ignore_index, W_xh, W_hh,
                          b_h, W_hy, b_y, h0, lengths, dW_xh, dW_hh, db_h, dW_hy,
                          db_y, h_last, hs, work, wbuf, logits, dh_last, dh0)


cdef double run_train_step(
        floating kind, bint seq, x, targets, Py_ssize_t ignore_index, W_xh, W_hh,
        b_h, W_hy, b_y, h0, lengths, dW_xh, dW_hh, db_h, dW_hy, db_y, h_last, hs,
        work, wbuf, logits, dh_last, dh0) except? -1:
    """train_step for the dtype of `kind`"""
    cdef const floating *x_p = reads(kind, x, "x", 3)
    cdef const Py_ssize_t *targets_p = reads_index(targets, "targets")
    cdef const floating *W_xh_p = reads(kind, W_xh, "W_xh", 2)
    cdef const floating *W_hh_p = reads(kind, W_hh, "W_hh", 2)
    cdef const floating *b_h_p = reads(kind, b_h, "b_h", 1)
    cdef const floating *W_hy_p = reads(kind, W_hy, "W_hy", 2)
    cdef const floating *b_y_p = reads(kind, b_y, "b_y", 1)
    cdef const floating *h0_p = optional_reads(kind, h0, "h0", 2)
    cdef const Py_ssize_t *len_p = optional_index(lengths, "lengths")
    cdef floating *dW_xh_p = writes(kind, dW_xh, "dW_xh", 2)
    cdef floating *dW_hh_p = writes(kind, dW_hh, "dW_hh", 2)
    cdef floating *db_h_p = writes(kind, db_h, "db_h", 1)
    cdef floating *dW_hy_p = writes(kind, dW_hy, "dW_hy", 2)
    cdef floating *db_y_p = writes(kind, db_y, "db_y", 1)
    cdef floating *h_last_p = writes(kind, h_last, "h_last", 2)
    cdef floating *hs_p = writes(kind, hs, "hs", 3)
    cdef floating *work_p = writes(kind, work, "work", 3)
    cdef floating *wbuf_p = writes(kind, wbuf, "wbuf", 1)
    cdef floating *logits_p = writes(kind, logits, "logits", 2)
    cdef floating *dh_last_p = writes(kind, dh_last, "dh_last", 2)
    cdef floating *dh0_p = writes(kind, dh0, "dh0", 2)
    cdef Py_ssize_t T = dim(x, 0), B = dim(x, 1), D = dim(x, 2)
    cdef Py_ssize_t H = dim(W_hh, 0), C = dim(W_hy, 0), K = dim(work, 0)
    cdef double loss
    check_work(K, dim(work, 1), dim(work, 2), B, H)
    # the rows of one chunk of steps (seq) or of the last states
    check_logits(dim(logits, 0), dim(logits, 1), min(K, T) * B if seq else B, C)
    if not seq and (dim(dh_last, 0) != B or dim(dh_last, 1) != H):
        raise ValueError(f"dh_last must have shape {(B, H)} in mode last, got "
                         f"{(dim(dh_last, 0), dim(dh_last, 1))}")
    cdef Py_ssize_t wbuf_len = backward_wbuf_len(dim(wbuf, 0), B, H,
                                                 sizeof(floating))
    if wbuf_len == 0:
        wbuf_p = NULL
    cdef int parts
    with nogil:
        # the forward pass packs W_hh into dW_hh when there is no wbuf
        parts = team_for_steps(B, H, wbuf_p if wbuf_p != NULL else dW_hh_p,
                               wbuf_len if wbuf_p != NULL else H * H)
        loss = train_step_core(
            seq, T, B, D, H, C, x_p, targets_p, ignore_index, W_xh_p, W_hh_p,
            b_h_p, W_hy_p, b_y_p, h0_p, len_p, dW_xh_p, dW_hh_p, db_h_p, dW_hy_p,
            db_y_p, h_last_p, hs_p, K, work_p, wbuf_p, wbuf_len, logits_p,
            dh_last_p, dh0_p, parts)
        release_team(parts)
    return loss


def top_backward(x, targets, Py_ssize_t ignore_index, W_xh, W_hh, W_hy, b_y, h0,
                 lengths, hs, dx, dW_xh, dW_hh, db_h, dW_hy, db_y, work, wbuf,
                 logits, dh0):
    """The top layer of a stack in mode seq: its backward pass over its
    input x and states hs with the output layer inside (backward_with_output).
    Returns the mean loss; writes dx (or nothing when it is (0, 0, 0)), dh0
    and the layer's and the output layer's gradients.  work, wbuf and logits
    are workspace as for train_step; they are checked here, the other
    arrays' shapes by rnncore.model, its one caller."""
    if float_type(x) == cnp.NPY_FLOAT32:
        return run_top_backward(<float>0, x, targets, ignore_index, W_xh, W_hh,
                                W_hy, b_y, h0, lengths, hs, dx, dW_xh, dW_hh,
                                db_h, dW_hy, db_y, work, wbuf, logits, dh0)
    return run_top_backward(<double>0, x, targets, ignore_index, W_xh, W_hh, W_hy,
                            b_y, h0, lengths, hs, dx, dW_xh, dW_hh, db_h, dW_hy,
                            db_y, work, wbuf, logits, dh0)


cdef double run_top_backward(
        floating kind, x, targets, Py_ssize_t ignore_index, W_xh, W_hh, W_hy, b_y,
        h0, lengths, hs, dx, dW_xh, dW_hh, db_h, dW_hy, db_y, work, wbuf, logits,
        dh0) except? -1:
    """top_backward for the dtype of `kind`"""
    cdef const floating *x_p = reads(kind, x, "x", 3)
    cdef const Py_ssize_t *targets_p = reads_index(targets, "targets")
    cdef const floating *W_xh_p = reads(kind, W_xh, "W_xh", 2)
    cdef const floating *W_hh_p = reads(kind, W_hh, "W_hh", 2)
    cdef const floating *W_hy_p = reads(kind, W_hy, "W_hy", 2)
    cdef const floating *b_y_p = reads(kind, b_y, "b_y", 1)
    cdef const floating *h0_p = optional_reads(kind, h0, "h0", 2)
    cdef const Py_ssize_t *len_p = optional_index(lengths, "lengths")
    cdef const floating *hs_p = reads(kind, hs, "hs", 3)
    cdef floating *dx_p = optional_writes(kind, dx, "dx", 3)
    cdef floating *dW_xh_p = writes(kind, dW_xh, "dW_xh", 2)
    cdef floating *dW_hh_p = writes(kind, dW_hh, "dW_hh", 2)
    cdef floating *db_h_p = writes(kind, db_h, "db_h", 1)
    cdef floating *dW_hy_p = writes(kind, dW_hy, "dW_hy", 2)
    cdef floating *db_y_p = writes(kind, db_y, "db_y", 1)
    cdef floating *work_p = writes(kind, work, "work", 3)
    cdef floating *wbuf_p = writes(kind, wbuf, "wbuf", 1)
    cdef floating *logits_p = writes(kind, logits, "logits", 2)
    cdef floating *dh0_p = writes(kind, dh0, "dh0", 2)
    cdef Py_ssize_t T = dim(x, 0), B = dim(x, 1), D = dim(x, 2)
    cdef Py_ssize_t H = dim(W_hh, 0), C = dim(W_hy, 0), K = dim(work, 0)
    cdef double loss
    check_work(K, dim(work, 1), dim(work, 2), B, H)
    check_logits(dim(logits, 0), dim(logits, 1), min(K, T) * B, C)
    cdef Py_ssize_t wbuf_len = backward_wbuf_len(dim(wbuf, 0), B, H,
                                                 sizeof(floating))
    if wbuf_len == 0:
        wbuf_p = NULL
    cdef int parts
    with nogil:
        parts = team_for_steps(B, H, wbuf_p, wbuf_len)
        loss = backward_with_output(
            T, B, D, H, C, x_p, targets_p, ignore_index, W_xh_p, W_hh_p, W_hy_p,
            b_y_p, h0_p, len_p, hs_p, dx_p, dW_xh_p, dW_hh_p, db_h_p, dW_hy_p,
            db_y_p, K, work_p, wbuf_p, wbuf_len, logits_p, dh0_p, parts)
        release_team(parts)
    return loss

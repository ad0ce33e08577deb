"""The Elman recurrence and its backpropagation through time.

Shapes (time-major, row-major): x (T, B, D), hs (T, B, H), W_xh (H, D),
W_hh (H, H), b_h (H,), h0 (B, H), lengths (B,).  ``lengths`` may be NULL
(every sequence has T steps) and so may ``h0`` (a zero initial state).

Where lengths are given, step t of sequence b is active when t < lengths[b].
Inactive steps output zeros, take no gradient and leave the state frozen, so
sequence b's final state is hs[lengths[b] - 1, b].
"""
from libc.string cimport memcpy, memset
cimport numpy as cnp
from cython cimport floating

from rnncore._arrays cimport (dim, float_type, optional_index, optional_reads,
                              optional_writes, reads, writes)
from rnncore._blas cimport (SMALL_GEMM_MAX_ROWS, StepKind, pgemm, pgemm_bias,
                            step_carry, step_gemm, step_kind, step_tanh,
                            step_weights, team_for_steps)
from rnncore._parallel cimport release_team
from rnncore._simd cimport (rnc_packed_len_f32, rnc_packed_len_f64, tanh_inplace,
                            tanh_backward)

cnp.import_array()


cdef inline void project(int parts, Py_ssize_t rows, Py_ssize_t D, Py_ssize_t H,
                         const floating *x, const floating *W_xh,
                         const floating *b_h, floating *out) noexcept nogil:
    """out = x·W_xhᵀ + b_h for all rows (steps × batch) at once:
    (rows × D)·(D × H), one GEMM instead of one per step."""
    pgemm_bias(parts, False, True, rows, H, D, 1, x, D, W_xh, D, 1, b_h, out, H)


cdef void forward_core(Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                       const floating *x, const floating *W_xh,
                       const floating *W_hh, const floating *b_h,
                       const floating *h0, const Py_ssize_t *lengths,
                       floating *wbuf, Py_ssize_t wbuf_len,
                       floating *hs, int parts) noexcept nogil:
    """hs[t] = tanh(x[t]·W_xhᵀ + b_h + hs[t-1]·W_hhᵀ), hs[-1] = h0.

    wbuf (wbuf_len >= H·H elements; weight_buffer_len(H) when B >
    SMALL_GEMM_MAX_ROWS) is workspace for W_hhᵀ in the per-step kernel's
    layout: transposed, so that the product is a plain, non-transposed one,
    or packed once for the whole sequence.  parts: of the team the call
    holds (claim_team), 1 for none; likewise below.
    """
    cdef Py_ssize_t t, b, BH = B * H
    cdef floating *h_t
    cdef const floating *h_prev
    cdef StepKind kind = step_kind(B, H, wbuf, wbuf_len, parts)
    cdef const floating *w = step_weights(kind, H, W_hh, True, wbuf)
    project(parts, T * B, D, H, x, W_xh, b_h, hs)
    for t in range(T):
        h_t = hs + t * BH
        h_prev = h0
        if t > 0:
            h_prev = hs + (t - 1) * BH
        if h_prev != NULL:
            # h_t = tanh(h_t + h_{t-1}·W_hhᵀ): (B × H)·(H × H)
            step_tanh(kind, parts, B, H, h_prev, w, h_t)
        else:
            tanh_inplace(h_t, BH)
        if lengths != NULL:
            for b in range(B):
                if t >= lengths[b]:
                    memset(h_t + b * H, 0, H * sizeof(floating))


cdef void advance_core(Py_ssize_t K, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                       const floating *x, const floating *W_xh,
                       const floating *W_hh, const floating *b_h,
                       const Py_ssize_t *lengths, Py_ssize_t t0, floating *h,
                       floating *wbuf, Py_ssize_t wbuf_len,
                       floating *out, int parts) noexcept nogil:
    """K steps of the recurrence from the state h (B, H), which it updates.

    The inference path: it keeps only the current state, so a long sequence
    can run in chunks of K steps (out (K, B, H) holds the chunk's states).
    The chunk starts at time t0, so sequence b is active while
    t0 + k < lengths[b]; past that its state stays frozen and out is zero.
    """
    cdef Py_ssize_t k, b, BH = B * H
    cdef floating *o_k
    cdef StepKind kind = step_kind(B, H, wbuf, wbuf_len, parts)
    cdef const floating *w = step_weights(kind, H, W_hh, True, wbuf)
    project(parts, K * B, D, H, x, W_xh, b_h, out)
    for k in range(K):
        o_k = out + k * BH
        # o_k = tanh(o_k + h·W_hhᵀ): (B × H)·(H × H)
        step_tanh(kind, parts, B, H, h, w, o_k)
        if lengths == NULL:
            memcpy(h, o_k, BH * sizeof(floating))
            continue
        for b in range(B):
            if t0 + k < lengths[b]:
                memcpy(h + b * H, o_k + b * H, H * sizeof(floating))
            else:
                memset(o_k + b * H, 0, H * sizeof(floating))


cdef enum:
    # Rows (steps × batch) of δ that backward_core keeps at once.  At least
    # MIN_ROWS (fewer make each chunk's weight-gradient GEMMs slow and their
    # fixed costs add up), at most MAX_ROWS (more gain nothing), and in
    # between as many steps as keep a chunk's δ, and its logits when the
    # output layer runs chunk by chunk, within an eighth of the T·B·H hidden
    # states the backward pass must keep anyway.
    BACKWARD_MIN_ROWS = 128
    BACKWARD_MAX_ROWS = 1024
    # Also no more rows than keep a chunk's δ, h_{t-1} and x (the operands of
    # its weight-gradient GEMMs) within this many bytes, so that they are
    # still in L2 when those GEMMs read them, but never fewer than H rows:
    # below that the GEMMs' passes over the H × H dW_hh cost more than the
    # cache saves (docs/performance-notes.md).
    BACKWARD_CACHE_BYTES = 1 << 20


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    # a >= 0, b >= 1: the modules compile with C division, under which
    # -(-a // b) truncates instead of rounding up
    return (a + b - 1) // b


def backward_steps(Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                   Py_ssize_t itemsize, Py_ssize_t C=0):
    """How many time steps of δ backward_core holds at once: the first
    dimension of its ``work`` array (K, B, H), for inputs of D features
    (the widest layer input of a stack), elements of itemsize bytes and,
    when each chunk also holds its rows of logits, C classes (else 0)."""
    if B <= 0:
        return T
    cdef Py_ssize_t K = max(T * H // max(1, 8 * (H + C)),
                            ceil_div(BACKWARD_MIN_ROWS, B))
    cdef Py_ssize_t cached = max(
        BACKWARD_CACHE_BYTES // max(1, (2 * H + D) * itemsize), H,
        BACKWARD_MIN_ROWS)
    K = min(K, ceil_div(BACKWARD_MAX_ROWS, B), cached // B)
    return max(1, min(K, T))


cdef int check_work(Py_ssize_t K, Py_ssize_t b, Py_ssize_t h, Py_ssize_t B,
                    Py_ssize_t H) except -1:
    """backward_core's δ buffer, of shape (K, b, h), must hold at least one
    step of (B, H)."""
    if K < 1 or b != B or h != H:
        raise ValueError(f"work must have shape (K >= 1, {B}, {H}), got "
                         f"{(K, b, h)}")
    return 0


cdef inline Py_ssize_t wbuf_need(Py_ssize_t H, Py_ssize_t itemsize) noexcept:
    """weight_buffer_len, for the kernels' own checks"""
    cdef Py_ssize_t n = (rnc_packed_len_f32(H, H) if itemsize == 4
                         else rnc_packed_len_f64(H, H))
    return max(n, H * H)


def weight_buffer_len(Py_ssize_t H, Py_ssize_t itemsize):
    """Elements of the W_hh workspace (``wbuf``) of forward, advance and
    backward for hidden size H and float32 (4) or float64 (8): the packed
    layout pads W_hh's columns to whole panels."""
    return wbuf_need(H, itemsize)


def needs_weight_buffer(Py_ssize_t B):
    """Whether backward and a training step of batch B need ``wbuf``
    (weight_buffer_len elements).  Smaller batches read W_hh as it is in the
    backward pass, and a training step keeps W_hhᵀ in dW_hh until then."""
    return B > SMALL_GEMM_MAX_ROWS


def backward_weight_buffer_len(Py_ssize_t B, Py_ssize_t H, Py_ssize_t itemsize):
    """Elements of ``wbuf`` that backward and a training step need:
    weight_buffer_len(H, itemsize) when needs_weight_buffer(B), else 0."""
    return weight_buffer_len(H, itemsize) if needs_weight_buffer(B) else 0


cdef int check_wbuf(Py_ssize_t n, Py_ssize_t H, Py_ssize_t itemsize) except -1:
    """The W_hh workspace, of n elements, must hold weight_buffer_len(H)."""
    cdef Py_ssize_t need = wbuf_need(H, itemsize)
    if n < need:
        raise ValueError(f"wbuf must have at least {need} elements, got {n}")
    return 0


cdef Py_ssize_t backward_wbuf_len(Py_ssize_t n, Py_ssize_t B, Py_ssize_t H,
                                  Py_ssize_t itemsize) except -1:
    """How much of wbuf (n elements) backward_core may use: none for batches
    of up to SMALL_GEMM_MAX_ROWS (they need none), else all of it, once
    checked."""
    if B <= SMALL_GEMM_MAX_ROWS:  # not needs_weight_buffer(B)
        return 0
    check_wbuf(n, H, itemsize)
    return n


cdef void backward_core(Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                        const floating *ext, Py_ssize_t E, const floating *W_ext,
                        ExtRows ext_rows, void *ext_ctx,
                        const floating *dh_last, const floating *hs,
                        const floating *x, const floating *W_xh,
                        const floating *W_hh, const floating *h0,
                        const Py_ssize_t *lengths, Py_ssize_t K, floating *work,
                        floating *wbuf, Py_ssize_t wbuf_len, floating *dh0,
                        floating *dx,
                        floating *dW_xh, floating *dW_hh,
                        floating *db_h, int parts) noexcept nogil:
    """Backpropagation through time, K steps at a time from the end.

    ∂L/∂h_t from outside the recurrence is ``ext`` (T·B, E) times
    ``W_ext`` (E, H) (an output layer's dlogits·W_hy), or ``ext`` itself
    (E = H) when W_ext is NULL, or zero when ext is NULL.  ``ext_rows``,
    when not NULL, computes each chunk's rows of ext instead (from ext_ctx,
    just before the chunk needs them, so ext need not exist as a whole).
    Each sequence's last step also receives ``dh_last`` (may be NULL).  For
    each chunk of K steps, ``work`` (K, B, H) receives δ_t = (1 - h_t²) ⊙
    (∂L/∂h_t + δ_{t+1}·W_hh), and the chunk's share of the weight gradients
    is one GEMM each.  ``dh0`` (B, H) doubles as the carry δ_{t+1}·W_hh and ends as
    ∂L/∂h0.  ``dx`` may be NULL (not wanted).  ``wbuf`` is workspace for
    W_hh packed (wbuf_len elements: weight_buffer_len(H) when B >
    SMALL_GEMM_MAX_ROWS; may be NULL with wbuf_len 0 otherwise).
    """
    cdef Py_ssize_t t, t0, t1, b, i, rows, BH = B * H
    cdef floating *d_t
    cdef const floating *h_t
    cdef const floating *e
    cdef StepKind kind = step_kind(B, H, wbuf, wbuf_len, parts)
    cdef const floating *w = step_weights(kind, H, W_hh, False, wbuf)
    if dh_last != NULL and lengths == NULL:
        memcpy(dh0, dh_last, BH * sizeof(floating))
    else:
        memset(dh0, 0, BH * sizeof(floating))
    memset(dW_xh, 0, H * D * sizeof(floating))
    memset(dW_hh, 0, H * H * sizeof(floating))
    memset(db_h, 0, H * sizeof(floating))
    t1 = T
    while t1 > 0:
        t0 = t1 - K if t1 > K else 0
        rows = (t1 - t0) * B
        # the chunk's gradient from outside the recurrence
        if ext_rows != NULL:
            e = <const floating *>ext_rows(ext_ctx, t0 * B, rows)
        else:
            e = ext + t0 * B * E if ext != NULL else NULL
        if e == NULL:
            memset(work, 0, rows * H * sizeof(floating))
        elif W_ext == NULL:
            memcpy(work, e, rows * H * sizeof(floating))
        else:
            # ext·W_ext: (rows × E)·(E × H)
            pgemm(parts, False, False, rows, H, E, 1, e, E, W_ext, H, 0, work, H)
        for t in range(t1 - 1, t0 - 1, -1):
            d_t = work + (t - t0) * BH
            h_t = hs + t * BH
            if lengths == NULL:
                # the chunk's first δ here, the others with the carry before
                if t == t1 - 1:
                    tanh_backward(d_t, h_t, dh0, BH)
                # ∂L/∂h_{t-1} += δ_t·W_hh: (B × H)·(H × H), then δ_{t-1}
                step_carry(kind, parts, B, H, d_t, w, dh0,
                           d_t - BH if t > t0 else NULL,
                           h_t - BH if t > t0 else NULL)
                continue
            for b in range(B):
                if t >= lengths[b]:
                    memset(d_t + b * H, 0, H * sizeof(floating))
                    continue
                if dh_last != NULL and t == lengths[b] - 1:
                    for i in range(H):
                        d_t[b * H + i] += dh_last[b * H + i]
                tanh_backward(d_t + b * H, h_t + b * H, dh0 + b * H, H)
            # carry to step t-1: ∂L/∂h_{t-1} += δ_t·W_hh: (B × H)·(H × H)
            step_gemm(kind, parts, B, H, d_t, w, False, dh0)

        # dW_xh += Σ_t δ_tᵀ·x_t: (H × rows)·(rows × D)
        pgemm(parts, True, False, H, D, rows, 1, work, H, x + t0 * B * D, D, 1,
              dW_xh, D)
        # dW_hh += Σ_t δ_tᵀ·h_{t-1}: (H × rows)·(rows × H), h_{-1} = h0
        if t0 > 0:
            pgemm(parts, True, False, H, H, rows, 1, work, H, hs + (t0 - 1) * BH,
                  H, 1, dW_hh, H)
        else:
            pgemm(parts, True, False, H, H, rows - B, 1, work + BH, H, hs, H, 1,
                  dW_hh, H)
            if h0 != NULL:
                pgemm(parts, True, False, H, H, B, 1, work, H, h0, H, 1, dW_hh, H)
        # db_h += Σ_t Σ_b δ_t
        for b in range(rows):
            for i in range(H):
                db_h[i] += work[b * H + i]
        if dx != NULL:
            # dx_t = δ_t·W_xh: (rows × H)·(H × D)
            pgemm(parts, False, False, rows, D, H, 1, work, H, W_xh, D, 0,
                  dx + t0 * B * D, D)
        t1 = t0


cdef void gather_last(Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                      const floating *hs, const Py_ssize_t *lengths,
                      floating *h_last) noexcept nogil:
    """h_last[b] = hs[lengths[b] - 1, b] (hs[T - 1, b] without lengths)."""
    cdef Py_ssize_t b, t
    for b in range(B):
        t = lengths[b] - 1 if lengths != NULL else T - 1
        memcpy(h_last + b * H, hs + (t * B + b) * H, H * sizeof(floating))


# ---- Python entry points: arrays already validated, C-contiguous, one dtype,
# read through NumPy's C API (rnncore/_arrays.pxd).  Optional arrays (h0,
# dh_last, lengths, dx) are passed as empty arrays when absent.

def forward(x, W_xh, W_hh, b_h, h0, lengths, wbuf, hs):
    """hs = the recurrence over x from h0 (h0 (0, 0) for a zero state,
    lengths (0,) for full sequences), with wbuf (at least
    weight_buffer_len(H) elements) for W_hh."""
    if float_type(x) == cnp.NPY_FLOAT32:
        run_forward(<float>0, x, W_xh, W_hh, b_h, h0, lengths, wbuf, hs)
    else:
        run_forward(<double>0, x, W_xh, W_hh, b_h, h0, lengths, wbuf, hs)


cdef int run_forward(floating kind, x, W_xh, W_hh, b_h, h0, lengths, wbuf,
                     hs) except -1:
    """forward for the dtype of `kind`"""
    cdef const floating *x_p = reads(kind, x, "x", 3)
    cdef const floating *W_xh_p = reads(kind, W_xh, "W_xh", 2)
    cdef const floating *W_hh_p = reads(kind, W_hh, "W_hh", 2)
    cdef const floating *b_h_p = reads(kind, b_h, "b_h", 1)
    cdef const floating *h0_p = optional_reads(kind, h0, "h0", 2)
    cdef const Py_ssize_t *len_p = optional_index(lengths, "lengths")
    cdef floating *wbuf_p = writes(kind, wbuf, "wbuf", 1)
    cdef floating *hs_p = writes(kind, hs, "hs", 3)
    cdef Py_ssize_t T = dim(x, 0), B = dim(x, 1), D = dim(x, 2), H = dim(W_hh, 0)
    cdef Py_ssize_t wbuf_len = dim(wbuf, 0)
    cdef int parts
    check_wbuf(wbuf_len, H, sizeof(floating))
    with nogil:
        parts = team_for_steps(B, H, wbuf_p, wbuf_len)
        forward_core(T, B, D, H, x_p, W_xh_p, W_hh_p, b_h_p, h0_p, len_p, wbuf_p,
                     wbuf_len, hs_p, parts)
        release_team(parts)
    return 0


def advance(x, W_xh, W_hh, b_h, lengths, Py_ssize_t t0, h, wbuf, out):
    """K = x.shape[0] steps from the state h (B, H), which it updates; out
    (K, B, H) gets the chunk's states (see advance_core)."""
    if float_type(x) == cnp.NPY_FLOAT32:
        run_advance(<float>0, x, W_xh, W_hh, b_h, lengths, t0, h, wbuf, out)
    else:
        run_advance(<double>0, x, W_xh, W_hh, b_h, lengths, t0, h, wbuf, out)


cdef int run_advance(floating kind, x, W_xh, W_hh, b_h, lengths, Py_ssize_t t0,
                     h, wbuf, out) except -1:
    """advance for the dtype of `kind`"""
    cdef const floating *x_p = reads(kind, x, "x", 3)
    cdef const floating *W_xh_p = reads(kind, W_xh, "W_xh", 2)
    cdef const floating *W_hh_p = reads(kind, W_hh, "W_hh", 2)
    cdef const floating *b_h_p = reads(kind, b_h, "b_h", 1)
    cdef const Py_ssize_t *len_p = optional_index(lengths, "lengths")
    cdef floating *h_p = writes(kind, h, "h", 2)
    cdef floating *wbuf_p = writes(kind, wbuf, "wbuf", 1)
    cdef floating *out_p = writes(kind, out, "out", 3)
    cdef Py_ssize_t K = dim(x, 0), B = dim(x, 1), D = dim(x, 2), H = dim(W_hh, 0)
    cdef Py_ssize_t wbuf_len = dim(wbuf, 0)
    cdef int parts
    check_wbuf(wbuf_len, H, sizeof(floating))
    with nogil:
        parts = team_for_steps(B, H, wbuf_p, wbuf_len)
        advance_core(K, B, D, H, x_p, W_xh_p, W_hh_p, b_h_p, len_p, t0, h_p,
                     wbuf_p, wbuf_len, out_p, parts)
        release_team(parts)
    return 0


def backward(dhs, dh_last, hs, x, W_xh, W_hh, h0, lengths, dx, dh0, dW_xh, dW_hh,
             db_h, work, wbuf):
    """dhs (T, B, H), or (0, 0, 0) for zeros; dh_last (B, H) or (0, 0);
    dx (T, B, D), or (0, 0, 0) when not wanted; work (backward_steps(T, B),
    B, H); wbuf (weight_buffer_len(H, itemsize),) when
    needs_weight_buffer(B), else may be empty."""
    if float_type(x) == cnp.NPY_FLOAT32:
        run_backward(<float>0, dhs, dh_last, hs, x, W_xh, W_hh, h0, lengths, dx,
                     dh0, dW_xh, dW_hh, db_h, work, wbuf)
    else:
        run_backward(<double>0, dhs, dh_last, hs, x, W_xh, W_hh, h0, lengths, dx,
                     dh0, dW_xh, dW_hh, db_h, work, wbuf)


cdef int run_backward(floating kind, dhs, dh_last, hs, x, W_xh, W_hh, h0,
                      lengths, dx, dh0, dW_xh, dW_hh, db_h, work,
                      wbuf) except -1:
    """backward for the dtype of `kind`"""
    cdef const floating *dhs_p = optional_reads(kind, dhs, "dhs", 3)
    cdef const floating *dhl_p = optional_reads(kind, dh_last, "dh_last", 2)
    cdef const floating *hs_p = reads(kind, hs, "hs", 3)
    cdef const floating *x_p = reads(kind, x, "x", 3)
    cdef const floating *W_xh_p = reads(kind, W_xh, "W_xh", 2)
    cdef const floating *W_hh_p = reads(kind, W_hh, "W_hh", 2)
    cdef const floating *h0_p = optional_reads(kind, h0, "h0", 2)
    cdef const Py_ssize_t *len_p = optional_index(lengths, "lengths")
    cdef floating *dx_p = optional_writes(kind, dx, "dx", 3)
    cdef floating *dh0_p = writes(kind, dh0, "dh0", 2)
    cdef floating *dW_xh_p = writes(kind, dW_xh, "dW_xh", 2)
    cdef floating *dW_hh_p = writes(kind, dW_hh, "dW_hh", 2)
    cdef floating *db_h_p = writes(kind, db_h, "db_h", 1)
    cdef floating *work_p = writes(kind, work, "work", 3)
    cdef floating *wbuf_p = writes(kind, wbuf, "wbuf", 1)
    cdef Py_ssize_t T = dim(x, 0), B = dim(x, 1), D = dim(x, 2), H = dim(W_hh, 0)
    cdef Py_ssize_t K = dim(work, 0)
    check_work(K, dim(work, 1), dim(work, 2), B, H)
    cdef Py_ssize_t wbuf_len = backward_wbuf_len(dim(wbuf, 0), B, H,
                                                 sizeof(floating))
    if wbuf_len == 0:
        wbuf_p = NULL
    cdef int parts
    with nogil:
        parts = team_for_steps(B, H, wbuf_p, wbuf_len)
        backward_core(T, B, D, H, dhs_p, H, <floating *>NULL, NULL, NULL, dhl_p,
                      hs_p, x_p, W_xh_p, W_hh_p, h0_p, len_p, K, work_p, wbuf_p,
                      wbuf_len, dh0_p, dx_p, dW_xh_p, dW_hh_p, db_h_p, parts)
        release_team(parts)
    return 0

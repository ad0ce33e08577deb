from cython cimport floating


cdef void logits_core(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                      const floating *feats, const floating *W_hy,
                      const floating *b_y, floating *logits,
                      int parts) noexcept nogil

cdef int check_logits(Py_ssize_t n, Py_ssize_t c, Py_ssize_t rows,
                      Py_ssize_t C) except -1

cdef double loss_grads_core(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                            const floating *feats, const Py_ssize_t *targets,
                            Py_ssize_t ignore_index, const floating *W_hy,
                            const floating *b_y, floating *logits,
                            floating *dW_hy, floating *db_y,
                            floating *dfeats, int parts) noexcept nogil


ctypedef struct OutputChunks:
    # The output layer of a training step, run chunk by chunk of rows
    # (output_chunk) by the backward pass as it reaches them, so that only a
    # chunk's logits exist at once.  Pointers to the dtype's arrays.
    Py_ssize_t C, H, ignore_index, valid
    const void *feats
    const Py_ssize_t *targets
    const void *W_hy
    const void *b_y
    void *logits
    void *dW_hy
    void *db_y
    double loss
    bint started, single
    int parts

cdef void output_chunks_init(OutputChunks *o, Py_ssize_t N, Py_ssize_t C,
                             Py_ssize_t H, const floating *feats,
                             const Py_ssize_t *targets, Py_ssize_t ignore_index,
                             const floating *W_hy, const floating *b_y,
                             floating *logits, floating *dW_hy, floating *db_y,
                             int parts) noexcept nogil

cdef const void *output_chunk(void *ctx, Py_ssize_t r0,
                              Py_ssize_t rows) noexcept nogil

cdef double output_chunks_loss(OutputChunks *o) noexcept nogil

from cython cimport floating


cdef void logits_core(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                      const floating *feats, const floating *W_hy,
                      const floating *b_y, floating *logits,
                      int parts) noexcept nogil

cdef double loss_grads_core(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H,
                            const floating *feats, const Py_ssize_t *targets,
                            Py_ssize_t ignore_index, const floating *W_hy,
                            const floating *b_y, floating *logits,
                            floating *dW_hy, floating *db_y,
                            floating *dfeats, int parts) noexcept nogil

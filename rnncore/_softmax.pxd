from cython cimport floating


cdef inline double mean_loss(double loss, Py_ssize_t valid) noexcept nogil:
    # the mean over the rows that count; 0 when none does
    return loss / valid if valid > 0 else 0.0


cdef Py_ssize_t count_valid(Py_ssize_t N, const Py_ssize_t *targets,
                            Py_ssize_t ignore_index) noexcept nogil

cdef double softmax_ce_sum(Py_ssize_t N, Py_ssize_t C, const floating *logits,
                           floating *z, const Py_ssize_t *targets,
                           Py_ssize_t ignore_index, Py_ssize_t valid,
                           int parts) noexcept nogil

cdef double softmax_ce_core(Py_ssize_t N, Py_ssize_t C, const floating *logits,
                            floating *z, const Py_ssize_t *targets,
                            Py_ssize_t ignore_index, int parts) noexcept nogil

from cython cimport floating


cdef double softmax_ce_core(Py_ssize_t N, Py_ssize_t C, floating *z,
                            const Py_ssize_t *targets,
                            Py_ssize_t ignore_index, int parts) noexcept nogil

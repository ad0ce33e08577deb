from cython cimport floating


cdef void forward_core(Py_ssize_t T, Py_ssize_t B, Py_ssize_t D, Py_ssize_t H,
                       const floating *x, const floating *W_xh,
                       const floating *W_hh, const floating *b_h,
                       const floating *h0, const Py_ssize_t *lengths,
                       floating *wbuf, Py_ssize_t wbuf_len,
                       floating *hs, int parts) noexcept nogil

cdef int check_work(Py_ssize_t K, Py_ssize_t b, Py_ssize_t h, Py_ssize_t B,
                    Py_ssize_t H) except -1

cdef int check_wbuf(Py_ssize_t n, Py_ssize_t H, Py_ssize_t itemsize) except -1

cdef Py_ssize_t backward_wbuf_len(Py_ssize_t n, Py_ssize_t B, Py_ssize_t H,
                                  Py_ssize_t itemsize) except -1

# backward_core's source of a chunk's rows [r0, r0 + rows) of ``ext``
# (rows, E), computed when the backward pass reaches them.
ctypedef const void *(*ExtRows)(void *ctx, Py_ssize_t r0,
                                Py_ssize_t rows) noexcept nogil

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
                        floating *db_h, int parts) noexcept nogil

cdef void gather_last(Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                      const floating *hs, const Py_ssize_t *lengths,
                      floating *h_last) noexcept nogil

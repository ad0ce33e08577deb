"""Element-wise optimiser updates and gradient clipping: one typed loop per
array, with the GIL released over the whole list of arrays.

rnncore/optim.py validates every array and computes the step's scalars (bias
corrections, the decayed learning rate, ...) as Python floats; these kernels
only do the arithmetic.  Each scalar is rounded once to the arrays' dtype, so
float32 parameters are updated in float32 arithmetic, as torch.optim updates
them, and the loops vectorise at the dtype's width.  The operations follow
torch.optim's single-tensor code in the same order (except that Adam's
second bias correction is folded into its step size and eps, saving a
division per element), so the two agree to rounding.  The loops with
square roots, divisions or a long sum (Adam's, Adagrad's, the 2-norm's) are
in _simd.h, cloned per instruction set like the other element-wise kernels.
"""
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE,
                             PyBuffer_Release, PyObject_GetBuffer)
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cython cimport floating
from libc.math cimport INFINITY, fabs, pow

from rnncore._simd cimport (rnc_adagrad_f32, rnc_adagrad_f64, rnc_adam_f32,
                            rnc_adam_f64, rnc_sum_squares_f32,
                            rnc_sum_squares_f64)


cdef class Arrays:
    """A fixed list of writeable C-contiguous arrays of one float dtype,
    pinned for the kernels.

    Holds a buffer export of every array for its own lifetime, so the data
    pointers stay valid (NumPy refuses to resize an exported array) and the
    kernels write into the very arrays given.  Also holds room for the views
    of one step's gradients, so a step allocates nothing.
    """
    cdef Py_buffer *views
    cdef Py_buffer *grads
    cdef Py_ssize_t n_grads  # gradient views currently held
    cdef readonly Py_ssize_t count
    cdef readonly bint is_double

    def __cinit__(self, arrays, bint is_double):
        cdef Py_ssize_t n = len(arrays), itemsize = 8 if is_double else 4
        self.is_double = is_double
        self.views = <Py_buffer *>PyMem_Calloc(max(n, 1), sizeof(Py_buffer))
        self.grads = <Py_buffer *>PyMem_Calloc(max(n, 1), sizeof(Py_buffer))
        if self.views == NULL or self.grads == NULL:
            raise MemoryError()
        for arr in arrays:
            PyObject_GetBuffer(arr, &self.views[self.count],
                               PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE)
            self.count += 1
            if self.views[self.count - 1].itemsize != itemsize:
                raise ValueError(f"array {self.count - 1} has itemsize "
                                 f"{self.views[self.count - 1].itemsize}, "
                                 f"expected {itemsize}")

    def __dealloc__(self):
        cdef Py_ssize_t i
        self.release_grads()
        if self.views != NULL:
            for i in range(self.count):
                PyBuffer_Release(&self.views[i])
        PyMem_Free(self.views)
        PyMem_Free(self.grads)

    def overlap(self):
        """(i, j), i < j, of the first two arrays that share memory, or None.
        (The arrays are contiguous, so sharing means overlapping ranges.)"""
        cdef Py_ssize_t i, j
        cdef char *a
        cdef char *b
        for j in range(self.count):
            b = <char *>self.views[j].buf
            for i in range(j):
                a = <char *>self.views[i].buf
                if (self.views[i].len and self.views[j].len
                        and a < b + self.views[j].len and b < a + self.views[i].len):
                    return i, j
        return None

    cdef inline Py_ssize_t size(self, Py_ssize_t i) noexcept nogil:
        return self.views[i].len // self.views[i].itemsize

    cdef int match(self, Arrays other) except -1:
        """other holds arrays of the same sizes and dtype (state buffers)."""
        cdef Py_ssize_t i
        if other.count != self.count or other.is_double != self.is_double:
            raise ValueError("state buffers do not match the parameters")
        for i in range(self.count):
            if other.views[i].len != self.views[i].len:
                raise ValueError(f"state buffer {i} does not match its parameter")
        return 0

    cdef int hold_grads(self, list grads) except -1:
        """Exports one step's gradients, one per array, each of the same
        size and dtype as its array (checked in Python; enforced here)."""
        cdef Py_ssize_t i
        if self.n_grads:
            # the views of a step still running in another thread (it released
            # the GIL): overwriting them would release its buffers twice
            raise RuntimeError("another thread is stepping the same optimiser")
        if len(grads) != self.count:
            raise ValueError(f"expected {self.count} gradients, got {len(grads)}")
        try:
            for i in range(self.count):
                PyObject_GetBuffer(grads[i], &self.grads[i], PyBUF_C_CONTIGUOUS)
                self.n_grads = i + 1
                if (self.grads[i].len != self.views[i].len
                        or self.grads[i].itemsize != self.views[i].itemsize):
                    raise ValueError(f"gradient {i} does not match its parameter")
        except BaseException:
            self.release_grads()
            raise
        return 0

    cdef void release_grads(self) noexcept:
        cdef Py_ssize_t i
        for i in range(self.n_grads):
            PyBuffer_Release(&self.grads[i])
        self.n_grads = 0


# ---- SGD -------------------------------------------------------------------

cdef void sgd_array(Py_ssize_t n, floating *p, const floating *g, floating *buf,
                    floating neg_lr, floating l2, floating momentum,
                    floating keep, bint first, bint nesterov) noexcept nogil:
    """d = g + l2·p;  buf = d (first step) or momentum·buf + keep·d;
    d = d + momentum·buf (nesterov) or buf;  p += neg_lr·d.
    buf is NULL without momentum.  One loop per case, so that each
    vectorises."""
    cdef Py_ssize_t i
    cdef floating d, b
    if buf == NULL:
        for i in range(n):
            d = g[i]
            if l2 != 0:
                d = d + l2 * p[i]
            p[i] = p[i] + neg_lr * d
    elif first:
        for i in range(n):
            d = g[i]
            if l2 != 0:
                d = d + l2 * p[i]
            buf[i] = d
            p[i] = p[i] + neg_lr * (d + momentum * d if nesterov else d)
    else:
        for i in range(n):
            d = g[i]
            if l2 != 0:
                d = d + l2 * p[i]
            b = buf[i] * momentum + keep * d
            buf[i] = b
            p[i] = p[i] + neg_lr * (d + momentum * b if nesterov else b)


cdef void sgd_all(Arrays params, Arrays bufs, floating neg_lr, floating l2,
                  floating momentum, floating keep, bint first,
                  bint nesterov) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating *buf = NULL
    for i in range(params.count):
        if bufs is not None:
            buf = <floating *>bufs.views[i].buf
        sgd_array(params.size(i), <floating *>params.views[i].buf,
                  <const floating *>params.grads[i].buf, buf, neg_lr, l2,
                  momentum, keep, first, nesterov)


def sgd(Arrays params not None, list grads not None, Arrays bufs,
        double neg_lr, double l2, double momentum, double keep, bint first,
        bint nesterov):
    """One SGD step over every array; bufs is None without momentum."""
    if bufs is not None:
        params.match(bufs)
    params.hold_grads(grads)
    with nogil:
        if params.is_double:
            sgd_all[double](params, bufs, neg_lr, l2, momentum, keep, first,
                            nesterov)
        else:
            sgd_all[float](params, bufs, neg_lr, l2, momentum, keep, first,
                           nesterov)
    params.release_grads()


# ---- Adagrad ---------------------------------------------------------------

cdef inline void adagrad_array(Py_ssize_t n, floating *p, const floating *g,
                               floating *s, floating neg_clr, floating l2,
                               floating eps) noexcept nogil:
    """d = g + l2·p;  s += d²;  p += neg_clr·d / (√s + eps): rnc_adagrad_*
    in _simd.h, whose clones run at the CPU's SIMD width."""
    if floating is float:
        rnc_adagrad_f32(n, p, g, s, neg_clr, l2, eps)
    else:
        rnc_adagrad_f64(n, p, g, s, neg_clr, l2, eps)


cdef void adagrad_all(Arrays params, Arrays sums, floating neg_clr,
                      floating l2, floating eps) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(params.count):
        adagrad_array(params.size(i), <floating *>params.views[i].buf,
                      <const floating *>params.grads[i].buf,
                      <floating *>sums.views[i].buf, neg_clr, l2, eps)


def adagrad(Arrays params not None, list grads not None, Arrays sums not None,
            double neg_clr, double l2, double eps):
    """One Adagrad step over every array."""
    params.match(sums)
    params.hold_grads(grads)
    with nogil:
        if params.is_double:
            adagrad_all[double](params, sums, neg_clr, l2, eps)
        else:
            adagrad_all[float](params, sums, neg_clr, l2, eps)
    params.release_grads()


# ---- Adam / AdamW ----------------------------------------------------------

cdef inline void adam_array(Py_ssize_t n, floating *p, const floating *g,
                            floating *m, floating *v, floating decay,
                            floating l2, floating w1, floating beta2,
                            floating c2, floating neg_step,
                            floating eps) noexcept nogil:
    """d = g + l2·p;  m = lerp(m, d, w1);  v = β₂·v + c2·d²;
    p = decay·p + neg_step·m / (√v + eps): rnc_adam_* in _simd.h, whose
    clones run at the CPU's SIMD width."""
    if floating is float:
        rnc_adam_f32(n, p, g, m, v, decay, l2, w1, beta2, c2, neg_step, eps)
    else:
        rnc_adam_f64(n, p, g, m, v, decay, l2, w1, beta2, c2, neg_step, eps)


cdef void adam_all(Arrays params, Arrays exp_avg, Arrays exp_avg_sq,
                   floating decay, floating l2, floating w1, floating beta2,
                   floating c2, floating neg_step, floating eps) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(params.count):
        adam_array(params.size(i), <floating *>params.views[i].buf,
                   <const floating *>params.grads[i].buf,
                   <floating *>exp_avg.views[i].buf,
                   <floating *>exp_avg_sq.views[i].buf, decay, l2, w1, beta2,
                   c2, neg_step, eps)


def adam(Arrays params not None, list grads not None, Arrays exp_avg not None,
         Arrays exp_avg_sq not None, double decay, double l2, double w1,
         double beta2, double c2, double neg_step, double eps):
    """One Adam step over every array (decay = 1 - lr·wd for AdamW, else 1;
    l2 = wd for Adam, else 0; the bias corrections are in neg_step and
    eps)."""
    params.match(exp_avg)
    params.match(exp_avg_sq)
    params.hold_grads(grads)
    with nogil:
        if params.is_double:
            adam_all[double](params, exp_avg, exp_avg_sq, decay, l2, w1, beta2,
                             c2, neg_step, eps)
        else:
            adam_all[float](params, exp_avg, exp_avg_sq, decay, l2, w1, beta2,
                            c2, neg_step, eps)
    params.release_grads()


# ---- gradient clipping -----------------------------------------------------

cdef double max_abs(Py_ssize_t n, const floating *g) noexcept nogil:
    """max |g|, NaN if any element is NaN; 0 for n == 0."""
    cdef Py_ssize_t i
    cdef double a, m = 0
    for i in range(n):
        a = fabs(g[i])
        if a > m or a != a:
            m = a
        if m != m:
            break
    return m


cdef double pow_sum_array(Py_ssize_t n, const floating *g,
                          double p) noexcept nogil:
    """Σ |g|^p in double.  p = 2 (the default norm) is rnc_sum_squares_* in
    _simd.h, at the CPU's SIMD width; for p = 1 four partial sums break the
    dependency chain of the additions (a single accumulator runs at one add
    per latency)."""
    cdef Py_ssize_t i, n4 = n - n % 4
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    if p == 2:
        if floating is float:
            return rnc_sum_squares_f32(n, g)
        else:
            return rnc_sum_squares_f64(n, g)
    if p == 1:
        for i in range(0, n4, 4):
            s0 += fabs(g[i])
            s1 += fabs(g[i + 1])
            s2 += fabs(g[i + 2])
            s3 += fabs(g[i + 3])
        for i in range(n4, n):
            s0 += fabs(g[i])
    else:
        for i in range(n):
            s0 += pow(fabs(g[i]), p)
    return (s0 + s1) + (s2 + s3)


cdef double norm_part(Py_ssize_t n, const floating *g, double p) noexcept nogil:
    """max |g| for p = inf, else Σ |g|^p."""
    if p == INFINITY:
        return max_abs(n, g)
    return pow_sum_array(n, g, p)


def pow_sum(Arrays arrays not None, double p):
    """Σ |g|^p over every element of every array, in double precision
    (p > 0); max |g| for p = inf.  NaN propagates."""
    cdef Py_ssize_t i
    cdef double part, total = 0
    with nogil:
        for i in range(arrays.count):
            if arrays.is_double:
                part = norm_part(arrays.size(i),
                                 <const double *>arrays.views[i].buf, p)
            else:
                part = norm_part(arrays.size(i),
                                 <const float *>arrays.views[i].buf, p)
            if p != INFINITY:
                total += part
            elif part > total or part != part:
                total = part
    return total


cdef void scale_all(Arrays arrays, floating f) noexcept nogil:
    cdef Py_ssize_t i, j, n
    cdef floating *g
    for i in range(arrays.count):
        g = <floating *>arrays.views[i].buf
        n = arrays.size(i)
        for j in range(n):
            g[j] = g[j] * f


def scale(Arrays arrays not None, double factor):
    """g *= factor (rounded to the arrays' dtype) for every array."""
    with nogil:
        if arrays.is_double:
            scale_all[double](arrays, factor)
        else:
            scale_all[float](arrays, factor)


cdef void clamp_all(Arrays arrays, floating lo, floating hi) noexcept nogil:
    cdef Py_ssize_t i, j, n
    cdef floating *g
    cdef floating x
    for i in range(arrays.count):
        g = <floating *>arrays.views[i].buf
        n = arrays.size(i)
        for j in range(n):
            # NaN fails both comparisons and stays NaN, as with torch.clamp
            x = g[j]
            x = lo if x < lo else x
            x = hi if x > hi else x
            g[j] = x


def clamp(Arrays arrays not None, double low, double high):
    """g = min(max(g, low), high) for every array; NaN stays NaN."""
    with nogil:
        if arrays.is_double:
            clamp_all[double](arrays, low, high)
        else:
            clamp_all[float](arrays, low, high)

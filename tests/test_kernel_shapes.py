"""The compiled kernels at the sizes where their code paths change.

The per-step product (rnncore/_step_gemm.h) works on blocks of 4 rows (6
with AVX-512) and of several SIMD vectors of columns, then narrower vectors,
then single columns.  Batches above its row limit go to the packed kernel
(rnncore/_packed_gemm.h: blocks of up to 12 rows, panels of 32 float or 16
double columns, slabs of 256 rows of W_hh, or of up to 1024 where it reads
the rows of h in place (AVX2); on CPUs that run AVX-512 at half
rate, only up to 15 rows), or to BLAS when BLAS runs several threads and
the product is large.  The two own kernels give the same bits.  The
backward pass keeps δ for a chunk of steps at a time
(``_recurrence.backward_steps``).  The reference here is a vectorised
float64 NumPy recurrence, so the sizes can be large enough to reach every
one of those paths.
"""

import inspect
import math

import numpy as np
import pytest

import reference
import rnncore
from rnn_util import assert_close, make_params, make_problem, random_lengths
from rnncore import _output, _recurrence, _training
from rnncore._workspace import train_step_shapes

DTYPES = [np.float32, np.float64]
# every row remainder (B mod 4 and mod 6, the blocks of AVX2 and AVX-512),
# up to and past the own kernel's limit
BATCHES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]
# column counts around multiples of 2, 4, 8, 16, 32 and 64 lanes
HIDDEN = [1, 3, 8, 17, 31, 64, 100, 130]


def np_forward(x, W_xh, W_hh, b_h, h0, lens):
    T, B, _ = x.shape
    h = np.zeros((B, W_hh.shape[0])) if h0 is None else h0.astype(np.float64)
    hs = np.zeros((T, B, W_hh.shape[0]))
    for t in range(T):
        new = np.tanh(x[t] @ W_xh.T + h @ W_hh.T + b_h)
        active = (t < lens)[:, None]
        hs[t] = np.where(active, new, 0.0)
        h = np.where(active, new, h)
    return hs


def np_backward(dhs, hs, x, W_xh, W_hh, h0, lens):
    T, B, _ = x.shape
    H = W_hh.shape[0]
    carry = np.zeros((B, H))
    delta = np.zeros((T, B, H))
    for t in range(T - 1, -1, -1):
        active = (t < lens)[:, None]
        d = np.where(active, (1 - hs[t] ** 2) * (dhs[t] + carry), 0.0)
        delta[t] = d
        carry = np.where(active, d @ W_hh, carry)
    prev = np.concatenate([(np.zeros((1, B, H)) if h0 is None else h0[None]),
                           hs[:-1]])
    return {
        "dx": delta @ W_xh,
        "dh0": carry,
        "dW_xh": np.einsum("tbh,tbd->hd", delta, x),
        "dW_hh": np.einsum("tbh,tbk->hk", delta, prev),
        "db_h": delta.sum(axis=(0, 1)),
    }


def problem(rng, T, B, D, H, dtype, with_lengths, with_h0):
    p = make_params(rng, D, H, 2, np.float64)
    x = rng.standard_normal((T, B, D))
    h0 = rng.uniform(-0.8, 0.8, (B, H)) if with_h0 else None
    lens = random_lengths(rng, T, B) if with_lengths else np.full(B, T)
    cast = {k: p[k].astype(dtype) for k in ("W_xh", "W_hh", "b_h")}
    return p, x, h0, lens, cast


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("H", HIDDEN)
def test_forward_and_backward_at_every_block_shape(rng, dtype, B, H):
    T, D = 4, 3
    p, x, h0, lens, w = problem(rng, T, B, D, H, dtype, True, True)
    hs = rnncore.rnn_forward(x.astype(dtype), w["W_xh"], w["W_hh"], w["b_h"],
                             h0=h0.astype(dtype), lengths=lens)
    want = np_forward(x, p["W_xh"], p["W_hh"], p["b_h"], h0, lens)
    assert_close(hs, want, dtype, name="hs")

    dhs = rng.standard_normal((T, B, H))
    got = rnncore.rnn_backward(dhs.astype(dtype), hs, x.astype(dtype),
                               w["W_xh"], w["W_hh"], h0=h0.astype(dtype),
                               lengths=lens)
    # the reference runs on rnncore's states so that only BPTT is compared
    grads = np_backward(np.where((np.arange(T)[:, None] < lens)[:, :, None],
                                 dhs, 0.0),
                        hs.astype(np.float64), x, p["W_xh"], p["W_hh"], h0,
                        lens)
    for name, value in grads.items():
        if name == "dx":
            value = np.where((np.arange(T)[:, None] < lens)[:, :, None], value,
                             0.0)
        assert_close(getattr(got, name), value, dtype, name=name)


def check_forward_and_backward(rng, dtype, T, B, D, H):
    """rnn_forward and rnn_backward against the float64 NumPy recurrence."""
    p, x, h0, lens, w = problem(rng, T, B, D, H, dtype, True, True)
    hs = rnncore.rnn_forward(x.astype(dtype), w["W_xh"], w["W_hh"], w["b_h"],
                             h0=h0.astype(dtype), lengths=lens)
    want = np_forward(x, p["W_xh"], p["W_hh"], p["b_h"], h0, lens)
    assert_close(hs, want, dtype, name="hs")
    active = (np.arange(T)[:, None] < lens)[:, :, None]
    dhs = rng.standard_normal((T, B, H))
    got = rnncore.rnn_backward(dhs.astype(dtype), hs, x.astype(dtype),
                               w["W_xh"], w["W_hh"], h0=h0.astype(dtype),
                               lengths=lens)
    grads = np_backward(np.where(active, dhs, 0.0), hs.astype(np.float64), x,
                        p["W_xh"], p["W_hh"], h0, lens)
    grads["dx"] = np.where(active, grads["dx"], 0.0)
    for name, value in grads.items():
        assert_close(getattr(got, name), value, dtype, name=name)


# the packed kernel's row remainders (mod 12), below and past 32 rows
PACKED_BATCHES = [4, 8, 13, 33, 47]
# one column, panel and vector boundaries, two 256-row slabs (300, where the
# kernel copies the rows of h: AVX-512, the baseline); the
# packed kernel takes H >= 128 (and then small batches too) unless its
# padding wastes more than 1/8 (100 and 130 stay on the other kernels)
PACKED_HIDDEN = [1, 16, 17, 40, 100, 128, 130, 256, 300]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", PACKED_BATCHES)
@pytest.mark.parametrize("H", PACKED_HIDDEN)
def test_forward_and_backward_on_the_packed_kernel(rng, dtype, B, H):
    check_forward_and_backward(rng, dtype, 3, B, 2, H)


# The packed kernel reads the rows of h in place while they lie less than
# 8 KiB apart (with AVX2), in slabs of up to 1024 rows of W, and copies them
# otherwise, in slabs of 256: both sides of that, and two slabs in place
# (1100: 1024 + 76).
@pytest.mark.parametrize("dtype,H", [(np.float32, 1100), (np.float32, 2047),
                                     (np.float32, 2048), (np.float64, 1023),
                                     (np.float64, 1024)])
def test_the_packed_kernel_reads_rows_in_place_or_copied(rng, dtype, H):
    with rnncore.threads(1):
        check_forward_and_backward(rng, dtype, 2, 13, 2, H)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H", [128, 256, 300, 512, 1024, 1100])
@pytest.mark.parametrize("B", [8, 40])
def test_the_per_step_kernels_round_alike(rng, dtype, B, H):
    """With x = 0 the per-step products alone make the states and, going
    back, dh0.  A batch runs in the packed kernel (or, on CPUs where it is
    faster, in the small kernel's blocks of rows), each sequence alone in
    the small kernel's one-row block: the same bits either way.  (300: a
    tail vector of the small kernel, and two slabs of the packed kernel
    where it copies the rows (AVX-512, the baseline); 1100: two slabs where
    it reads them in place (AVX2); 1024 in float64: rows 8 KiB apart, which
    it copies.)"""
    with rnncore.threads(1):
        T = 3
        p = make_params(rng, 2, H, 1, dtype)
        W_xh, W_hh, b_h = p["W_xh"], p["W_hh"], p["b_h"]
        x = np.zeros((T, B, 2), dtype)
        h0 = np.tanh(rng.standard_normal((B, H))).astype(dtype)
        dhs = rng.standard_normal((T, B, H)).astype(dtype)
        hs = rnncore.rnn_forward(x, W_xh, W_hh, b_h, h0=h0)
        dh0 = rnncore.rnn_backward(dhs, hs, x, W_xh, W_hh, h0=h0).dh0
        for b in (0, B // 2, B - 1):
            one = slice(b, b + 1)
            alone = rnncore.rnn_forward(x[:, one], W_xh, W_hh, b_h, h0=h0[one])
            assert alone.tobytes() == hs[:, one].tobytes()
            dh0_alone = rnncore.rnn_backward(dhs[:, one], alone, x[:, one], W_xh,
                                             W_hh, h0=h0[one]).dh0
            assert dh0_alone.tobytes() == dh0[one].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_large_steps_on_one_or_more_blas_threads(rng, dtype, n_threads):
    """64 rows at H = 512 is where a multi-threaded BLAS takes the per-step
    product over from the one-thread packed kernel: both give the same."""
    with rnncore.threads(n_threads):
        check_forward_and_backward(rng, dtype, 2, 64, 2, 512)


# A backward chunk's weight gradients δᵀ·x, δᵀ·h_{t-1} and dlogitsᵀ·h, past
# the small kernel's limits, run in float32 (with AVX2) in rnc_gemm_tn_f32
# (rnncore/_packed_gemm.h), which copies δ in groups of 24 columns and x
# and h in panels of 16: H = 250 ends in a group of 10 columns, a block of
# 4 rows and a partial panel, D = 5 in a panel of one vector and D = 13 in
# a partial one, and chunks of more than 256 rows take two slabs.  B = 40
# packs W_hh, so on two threads the call holds the team, and each thread
# takes a run of the gradients' rows (its left operand wider than its
# part).  float64 runs BLAS there.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [5, 13])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_weight_gradients_of_chunks_of_many_rows(rng, dtype, D, n_threads):
    T, B, H = 120, 40, 250
    assert _recurrence.backward_steps(T, B, D, H, 4) * B > 256
    with rnncore.threads(n_threads):
        check_forward_and_backward(rng, dtype, T, B, D, H)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_output_gradients_of_chunks_of_many_rows(rng, dtype, n_threads):
    """The training step's dW_hy = dlogitsᵀ·h (C = 70 rows: a group of 22
    columns of dlogits, a block of 4 rows), written by its first chunk and
    added to by the others, with the layer's gradients as above."""
    T, B, D, H, C = 120, 40, 13, 250, 70
    assert _recurrence.backward_steps(T, B, D, H, 4, C) * B > 256
    params, x, targets, kw = make_problem(rng, T, B, D, H, C, dtype,
                                          with_h0=True)
    with rnncore.threads(n_threads):
        loss, grads, _ = rnncore.loss_and_grads(params, x, targets, **kw)

    p = {k: v.astype(np.float64) for k, v in params.items()}
    x64, h0 = x.astype(np.float64), kw["h0"].astype(np.float64)
    lens = np.full(B, T)
    hs = np_forward(x64, p["W_xh"], p["W_hh"], p["b_h"], h0, lens)
    feats = hs.reshape(T * B, H)
    want_loss, dlogits = reference.cross_entropy(feats @ p["W_hy"].T + p["b_y"],
                                                 targets)
    want = np_backward((dlogits @ p["W_hy"]).reshape(T, B, H), hs, x64,
                       p["W_xh"], p["W_hh"], h0, lens)
    assert_close(loss, want_loss, dtype, name="loss")
    assert_close(grads["W_hy"], dlogits.T @ feats, dtype, name="W_hy")
    assert_close(grads["b_y"], dlogits.sum(axis=0), dtype, name="b_y")
    for name in ("W_xh", "W_hh", "b_h"):
        assert_close(grads[name], want["d" + name], dtype, name=name)


def test_the_kernels_know_the_blas_thread_count():
    """SciPy's OpenBLAS exports its thread count, which the kernels read."""
    from rnncore import _threads

    blas = _threads.blas_library()
    if blas is None or "openblas" not in blas.filepath.lower():
        pytest.skip("SciPy's BLAS is not an OpenBLAS found here")
    assert blas.get_address != 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,B", [(1500, 1), (700, 3), (40, 64)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_backward_over_several_chunks(rng, dtype, T, B, with_lengths):
    """More rows than one chunk of δ holds: gradients sum over the chunks
    and the carry crosses their boundaries."""
    D, H = 2, 5
    assert _recurrence.backward_steps(T, B, D, H, np.dtype(dtype).itemsize) < T
    p, x, h0, lens, w = problem(rng, T, B, D, H, dtype, with_lengths, True)
    xd = x.astype(dtype)
    hs = rnncore.rnn_forward(xd, w["W_xh"], w["W_hh"], w["b_h"],
                             h0=h0.astype(dtype), lengths=lens)
    dhs = 0.1 * rng.standard_normal((T, B, H))
    got = rnncore.rnn_backward(dhs.astype(dtype), hs, xd, w["W_xh"], w["W_hh"],
                               h0=h0.astype(dtype), lengths=lens)
    active = (np.arange(T)[:, None] < lens)[:, :, None]
    grads = np_backward(np.where(active, dhs, 0.0), hs.astype(np.float64), x,
                        p["W_xh"], p["W_hh"], h0, lens)
    grads["dx"] = np.where(active, grads["dx"], 0.0)
    for name, value in grads.items():
        assert_close(getattr(got, name), value, dtype, name=name)


@pytest.mark.parametrize("mode", ["seq", "last"])
# small kernel; BLAS; packed forward in dW_hh, small backward; packed both
@pytest.mark.parametrize("B,H", [(5, 7), (40, 7), (8, 128), (40, 128)])
def test_training_step_over_several_chunks(rng, mode, B, H):
    """loss_and_grads, whose backward pass forms ∂L/∂h_t chunk by chunk from
    the output layer, against the chunk-free rnn_backward route."""
    T, D, C = 300, 3, 4
    assert _recurrence.backward_steps(T, B, D, H, 8) < T
    p = make_params(rng, D, H, C, np.float64)
    x = rng.standard_normal((T, B, D))
    lens = random_lengths(rng, T, B)
    targets = rng.integers(0, C, (T, B) if mode == "seq" else (B,))
    loss, grads, h_last = rnncore.loss_and_grads(p, x, targets, mode=mode,
                                                 lengths=lens)

    hs = rnncore.rnn_forward(x, p["W_xh"], p["W_hh"], p["b_h"], lengths=lens)
    active = np.arange(T)[:, None] < lens
    if mode == "seq":
        feats = hs.reshape(T * B, H)
        tg = np.where(active, targets, -100).reshape(-1)
    else:
        feats = h_last
        tg = targets
    want_loss, dlogits = rnncore.softmax_cross_entropy(
        feats @ p["W_hy"].T + p["b_y"], tg)
    dfeats = dlogits @ p["W_hy"]
    bw = rnncore.rnn_backward(dfeats.reshape(T, B, H) if mode == "seq" else None,
                              hs, x, p["W_xh"], p["W_hh"], lengths=lens,
                              dh_last=None if mode == "seq" else dfeats)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    assert_close(grads["W_hy"], dlogits.T @ feats, name="W_hy")
    assert_close(grads["b_y"], dlogits.sum(axis=0), name="b_y")
    for name in ("W_xh", "W_hh", "b_h"):
        assert_close(grads[name], getattr(bw, "d" + name), name=name)


@pytest.mark.parametrize("shape", [(0, 2, 4), (3, 1, 4), (3, 2, 5)])
def test_kernels_refuse_a_wrong_work_buffer(shape):
    """The δ buffer comes from the callers in rnncore; a wrong one must be
    refused before the kernel runs (a zero-step chunk would never end)."""
    e = np.zeros
    lengths = np.empty(0, np.intp)
    with pytest.raises(ValueError, match="work must have shape"):
        _recurrence.backward(e((0, 0, 0)), e((0, 0)), e((3, 2, 4)), e((3, 2, 1)),
                             e((4, 1)), e((4, 4)), e((0, 0)), lengths,
                             e((0, 0, 0)), e((2, 4)), e((4, 1)), e((4, 4)),
                             e(4), e(shape), e(0))
    with pytest.raises(ValueError, match="work must have shape"):
        _training.train_step(True, e((3, 2, 1)), np.zeros(6, np.intp), -100,
                             e((4, 1)), e((4, 4)), e(4), e((3, 4)), e(3),
                             e((0, 0)), lengths, e((4, 1)), e((4, 4)), e(4),
                             e((3, 4)), e(3), e((2, 4)), e((3, 2, 4)), e(shape),
                             e(0), e((6, 3)), e((2, 4)), e((2, 4)))


def check_logits_rows(call, rows, wide_rows, C, ok):
    """call(logits) runs with zero inputs on a logits workspace of ``rows``
    rows (loss log C) or refuses it (not ok); it always refuses a wrong
    number of columns, even on ``wide_rows`` rows."""
    e = np.zeros
    if ok:
        assert call(e((rows, C))) == pytest.approx(np.log(C))
    else:
        with pytest.raises(ValueError, match="logits must have shape"):
            call(e((rows, C)))
    with pytest.raises(ValueError, match="logits must have shape"):
        call(e((wide_rows, C + 1)))


@pytest.mark.parametrize("seq,K,rows,ok", [
    (True, 2, 3, False), (True, 2, 4, True), (True, 5, 6, True),
    (True, 5, 5, False), (False, 2, 1, False), (False, 2, 2, True)])
def test_training_step_checks_the_logits_buffer(seq, K, rows, ok):
    """logits holds one chunk's rows in mode "seq" (min(K, T)·B: the chunk
    is never longer than the sequence), the last states' in "last" (B)."""
    e = np.zeros
    lengths = np.empty(0, np.intp)
    T, B, H, C = 3, 2, 4, 3
    targets = np.zeros(T * B if seq else B, np.intp)

    def step(logits):
        return _training.train_step(
            seq, e((T, B, 1)), targets, -100, e((H, 1)), e((H, H)), e(H),
            e((C, H)), e(C), e((0, 0)), lengths, e((H, 1)), e((H, H)), e(H),
            e((C, H)), e(C), e((B, H)), e((T, B, H)), e((K, B, H)), e(0),
            logits, e((B, H)), e((B, H)))

    check_logits_rows(step, rows, T * B, C, ok)


def test_training_step_checks_dh_last_in_mode_last():
    """Mode "last" writes ∂L/∂h of the last states into dh_last (B, H); mode
    "seq" never reads it (its workspace holds none)."""
    e = np.zeros
    T, B, H, C = 3, 2, 4, 3

    def step(seq, dh_last):
        return _training.train_step(
            seq, e((T, B, 1)), np.zeros(T * B if seq else B, np.intp), -100,
            e((H, 1)), e((H, H)), e(H), e((C, H)), e(C), e((0, 0)),
            np.empty(0, np.intp), e((H, 1)), e((H, H)), e(H), e((C, H)), e(C),
            e((B, H)), e((T, B, H)), e((T, B, H)), e(0),
            e((T * B if seq else B, C)), dh_last, e((B, H)))

    assert step(False, e((B, H))) == pytest.approx(np.log(C))
    assert step(True, e((0, H))) == pytest.approx(np.log(C))
    for shape in [(0, H), (B - 1, H), (B, H + 1)]:
        with pytest.raises(ValueError, match="dh_last must have shape"):
            step(False, e(shape))


@pytest.mark.parametrize("K,rows,ok", [(2, 3, False), (2, 4, True), (5, 6, True),
                                       (5, 5, False)])
def test_top_layer_backward_checks_the_logits_buffer(K, rows, ok):
    """A stack's top layer in mode "seq" holds one chunk's rows, as the
    one-layer step does."""
    e = np.zeros
    T, B, H, C = 3, 2, 4, 3

    def top(logits):
        return _training.top_backward(
            e((T, B, 1)), np.zeros(T * B, np.intp), -100, e((H, 1)), e((H, H)),
            e((C, H)), e(C), e((0, 0)), np.empty(0, np.intp), e((T, B, H)),
            e((T, B, 1)), e((H, 1)), e((H, H)), e(H), e((C, H)), e(C),
            e((K, B, H)), e(0), logits, e((B, H)))

    check_logits_rows(top, rows, T * B, C, ok)


@pytest.mark.parametrize("N,rows,ok", [(3, 2, False), (3, 3, True),
                                       (1100, 511, False), (1100, 512, True)])
def test_output_layer_checks_its_block_of_logits(N, rows, ok):
    """The output layer before the backward pass holds one block of rows
    (at most 512), whatever the number of rows N."""
    e = np.zeros
    H, C = 4, 3

    def loss(logits):
        return _output.loss_grads(e((N, H)), np.zeros(N, np.intp), -100,
                                  e((C, H)), e(C), logits, e((C, H)), e(C),
                                  e((N, H)))

    check_logits_rows(loss, rows, N, C, ok)


def test_kernels_refuse_a_short_weight_buffer():
    """The packed W_hh needs whole panels: a buffer of H·H is too short."""
    e = np.zeros
    lengths = np.empty(0, np.intp)
    T, B, H = 2, 33, 20
    assert _recurrence.needs_weight_buffer(B)
    assert _recurrence.weight_buffer_len(H, 8) > H * H
    with pytest.raises(ValueError, match="wbuf must have at least"):
        _recurrence.forward(e((T, B, 1)), e((H, 1)), e((H, H)), e(H), e((0, 0)),
                            lengths, e(H * H), e((T, B, H)))
    with pytest.raises(ValueError, match="wbuf must have at least"):
        _training.train_step(True, e((T, B, 1)), np.zeros(T * B, np.intp), -100,
                             e((H, 1)), e((H, H)), e(H), e((3, H)), e(3),
                             e((0, 0)), lengths, e((H, 1)), e((H, H)), e(H),
                             e((3, H)), e(3), e((B, H)), e((T, B, H)),
                             e((1, B, H)), e(0), e((T * B, 3)), e((B, H)),
                             e((B, H)))


@pytest.mark.parametrize("T,B", [(50, 32), (100, 64), (25, 1), (3, 100), (50, 48),
                                 (1500, 1), (100, 128), (7, 5000), (0, 4)])
@pytest.mark.parametrize("D,H,itemsize", [(64, 128, 4), (128, 256, 4),
                                          (128, 256, 8), (512, 1024, 4),
                                          (0, 0, 8), (3000, 10, 8)])
@pytest.mark.parametrize("C", [0, 64, 1000])
def test_backward_chunk_size(T, B, D, H, itemsize, C):
    """As many steps as keep a chunk's δ and C logits a row within an eighth
    of the T·B·H states, rounded down, but at least 128 rows; at most 1024
    rows (rounded up to whole steps), and at most the rows whose δ, h and x
    fit in 1 MiB, rounded down, unless those are fewer than max(H, 128);
    never more steps than T nor fewer than 1."""
    K = _recurrence.backward_steps(T, B, D, H, itemsize, C)
    if C == 0:
        assert K == _recurrence.backward_steps(T, B, D, H, itemsize)
    want = max(T * H // max(1, 8 * (H + C)), math.ceil(128 / B))
    cached = max(2**20 // max(1, (2 * H + D) * itemsize), H, 128)
    want = max(1, min(want, math.ceil(1024 / B), cached // B, T))
    assert K == want


# the benchmark workloads (T, B, D, H, C): within an eighth of the states
# (small), the whole sequence for the 128-row floor (tiny), unless the chunk
# would not fit in cache (medium), or the 1024-row cap (large); C = 0 for
# mode "last", whose chunks hold no logits
@pytest.mark.parametrize("T,B,D,H,C,itemsize,steps", [
    (25, 1, 65, 100, 65, 4, 25), (50, 32, 64, 128, 64, 4, 4),
    (50, 32, 64, 128, 0, 4, 6), (50, 32, 64, 128, 64, 8, 4),
    (100, 64, 128, 256, 128, 4, 6), (100, 64, 128, 256, 128, 8, 4),
    (100, 128, 512, 1024, 512, 4, 8), (100, 128, 512, 1024, 0, 4, 8)])
def test_backward_chunk_size_of_workloads(T, B, D, H, C, itemsize, steps):
    assert _recurrence.backward_steps(T, B, D, H, itemsize, C) == steps


def test_training_step_chunks_hold_their_logits_within_an_eighth_of_the_states():
    """In mode seq each chunk of the step also holds its rows of logits, so
    its workspace sizes K for both; mode last's chunks hold δ only."""
    T, B, D, H, C = 50, 32, 64, 128, 64
    seq = train_step_shapes(True, T, B, D, H, C, 4)
    last = train_step_shapes(False, T, B, D, H, C, 4)
    K_seq, K_last = seq[1][0], last[1][0]
    assert seq[3] == (K_seq * B, C) and last[3] == (B, C)
    assert K_seq * (H + C) <= T * H / 8 < (K_seq + 1) * (H + C)
    assert K_last * H <= T * H / 8 < (K_last + 1) * H


def check_training_step(p, x, targets, mode, dtype):
    """rnncore's training step in ``dtype`` against a float64 NumPy forward,
    softmax cross-entropy and BPTT on the same float64 parameters p."""
    T, B, _ = x.shape
    H = p["W_hh"].shape[0]
    loss, grads, _ = rnncore.loss_and_grads(
        {k: v.astype(dtype) for k, v in p.items()}, x.astype(dtype), targets,
        mode=mode)

    hs = np_forward(x, p["W_xh"], p["W_hh"], p["b_h"], None, np.full(B, T))
    feats = hs.reshape(T * B, H) if mode == "seq" else hs[-1]
    want_loss, dlogits = reference.cross_entropy(feats @ p["W_hy"].T + p["b_y"],
                                                 targets)
    dhs = np.zeros((T, B, H))
    dhs.reshape(-1, H)[-len(feats):] = dlogits @ p["W_hy"]
    want = np_backward(dhs, hs, x, p["W_xh"], p["W_hh"], None, np.full(B, T))
    assert loss == pytest.approx(want_loss, rel=1e-4 if dtype == np.float32 else 1e-11)
    assert_close(grads["W_hy"], dlogits.T @ feats, dtype, name="W_hy")
    assert_close(grads["b_y"], dlogits.sum(axis=0), dtype, name="b_y")
    for name in ("W_xh", "W_hh", "b_h"):
        assert_close(grads[name], want["d" + name], dtype, name=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["seq", "last"])
# float32 with rows of B at most 128 wide and operands inside
# SMALL_GEMM_MAX_BYTES: a chunk's δᵀ·x, δᵀ·h and dlogits·W_hy run on the small
# kernel with k in the hundreds (float64 stays on BLAS); D = 1 and C = 200
# keep some products on BLAS beside them.  With AVX2 alone, k >= 128 and D
# a multiple of 8 take blocks of 3 vectors (RNC_WIDE_MIN_K): H = 66 and 67
# leave 2 and 3 rows of δᵀ·x after its blocks of 4, D = 72 is 3 such blocks
@pytest.mark.parametrize("B,D,H,C", [(32, 64, 128, 64), (16, 64, 64, 128),
                                     (8, 1, 128, 200), (33, 128, 64, 3),
                                     (32, 64, 66, 64), (24, 72, 67, 40)])
def test_training_step_with_wide_chunk_products(rng, dtype, mode, B, D, H, C):
    T = 40
    p = make_params(rng, D, H, C, np.float64)
    x = rng.standard_normal((T, B, D))
    targets = rng.integers(0, C, (T, B) if mode == "seq" else (B,))
    check_training_step(p, x, targets, mode, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
# A·Bᵀ (the logits h·W_hyᵀ, the input projection x·W_xhᵀ) in float32 runs
# on the small kernel over a copy of Bᵀ from 16 rows, up to 2^18
# multiply-adds and a copy of 64 KiB (rnncore/_blas.pxd: gemm): rows either
# side of 16, B's 8 × 8 tiles and their edges (65 × 100, 7 × 3), the copy's
# limit (128 × 128) and one column past it, the multiply-add limit
# (16 × 128 × 128) and one row past it
@pytest.mark.parametrize("N,C,H", [(15, 65, 100), (16, 65, 100), (25, 65, 100),
                                   (25, 100, 65), (40, 7, 3), (16, 128, 128),
                                   (17, 128, 128), (16, 129, 128), (200, 5, 9)])
def test_products_with_a_transposed_weight(rng, dtype, N, C, H):
    feats = rng.uniform(-1, 1, (N, H))
    W = rng.standard_normal((C, H))
    b = rng.standard_normal(C)
    args = [a.astype(dtype) for a in (feats, W, b)]
    before = [a.copy() for a in args]
    assert_close(rnncore.output_layer(*args), feats @ W.T + b, dtype,
                 name="logits")
    # the same product as the input projection of one step of N sequences
    # (W_hh = 0 leaves tanh(x·W_xhᵀ + b_h))
    x = args[0][None]
    hs = rnncore.rnn_forward(x, args[1], np.zeros((C, C), dtype), args[2])
    assert_close(hs[0], np.tanh(feats @ W.T + b), dtype, name="hs")
    for got, want in zip(args, before, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
# rows of the output layer (T·B in mode "seq", B in "last") around the
# blocks it trains in (_output.OUTPUT_BLOCK_ROWS = 512, split evenly): one
# block, one row past it, several; "first" and "last" leave the first or
# the last 600 rows (whole blocks and chunks) without a target, so the loss
# is the mean over the other rows ("last": the backward pass's first chunk,
# which writes dW_hy and db_y, has no row left)
@pytest.mark.parametrize("mode,T,B", [("seq", 8, 64), ("seq", 1, 513),
                                      ("seq", 9, 171), ("last", 2, 1100)])
@pytest.mark.parametrize("ignored", [None, "first", "last"])
def test_training_step_with_output_layer_in_blocks(rng, dtype, mode, T, B,
                                                   ignored):
    D, H, C = 5, 24, 7
    p = make_params(rng, D, H, C, np.float64)
    x = rng.standard_normal((T, B, D))
    targets = rng.integers(0, C, (T, B) if mode == "seq" else (B,))
    if ignored == "first":
        targets.reshape(-1)[:600] = -100
    elif ignored == "last":
        targets.reshape(-1)[-600:] = -100
    check_training_step(p, x, targets, mode, dtype)


def entry_calls():
    """A valid call of each entry point that reads its arrays through NumPy's
    C API (rnncore/_arrays.pxd), as (name, fn, args, index of an output)."""
    e = np.zeros
    none = np.empty(0, np.intp)
    T, B, H, C = 3, 2, 4, 3
    yield ("forward", _recurrence.forward,
           [e((T, B, 1)), e((H, 1)), e((H, H)), e(H), e((0, 0)), none,
            e(_recurrence.weight_buffer_len(H, 8)), e((T, B, H))], 7)
    yield ("advance", _recurrence.advance,
           [e((T, B, 1)), e((H, 1)), e((H, H)), e(H), none, 0, e((B, H)),
            e(_recurrence.weight_buffer_len(H, 8)), e((T, B, H))], 6)
    yield ("backward", _recurrence.backward,
           [e((T, B, H)), e((0, 0)), e((T, B, H)), e((T, B, 1)), e((H, 1)),
            e((H, H)), e((0, 0)), none, e((T, B, 1)), e((B, H)), e((H, 1)),
            e((H, H)), e(H), e((T, B, H)), e(0)], 9)
    yield ("logits", _output.logits, [e((T, H)), e((C, H)), e(C), e((T, C))], 3)
    yield ("loss_grads", _output.loss_grads,
           [e((T, H)), np.zeros(T, np.intp), -100, e((C, H)), e(C), e((T, C)),
            e((C, H)), e(C), e((T, H))], 8)
    yield ("top_backward", _training.top_backward,
           [e((T, B, 1)), np.zeros(T * B, np.intp), -100, e((H, 1)), e((H, H)),
            e((C, H)), e(C), e((0, 0)), none, e((T, B, H)), e((T, B, 1)),
            e((H, 1)), e((H, H)), e(H), e((C, H)), e(C), e((T, B, H)), e(0),
            e((T * B, C)), e((B, H))], 19)
    yield ("train_step", _training.train_step,
           [True, e((T, B, 1)), np.zeros(T * B, np.intp), -100, e((H, 1)),
            e((H, H)), e(H), e((C, H)), e(C), e((0, 0)), none, e((H, 1)),
            e((H, H)), e(H), e((C, H)), e(C), e((B, H)), e((T, B, H)),
            e((T, B, H)), e(0), e((T * B, C)), e((B, H)), e((B, H))], 11)


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("name,fn,args,out", list(entry_calls()),
                         ids=[c[0] for c in entry_calls()])
def test_entry_points_refuse_what_a_memoryview_would(name, fn, args, out):
    """Arrays of another dtype, shape rank, layout or byte order, and
    read-only outputs, raise before the kernel runs."""
    fn(*args)
    arrays = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]
    # the array whose dtype picks the kernel: x, else the first
    first = (list(inspect.signature(fn).parameters).index("x")
             if "x" in inspect.signature(fn).parameters else arrays[0])
    bad = [(first, args[first].tolist(), TypeError, "float32 or float64"),
           (first, args[first].astype(np.int64), TypeError, "float32 or float64"),
           (out, read_only(args[out]), ValueError, "writeable")]
    for i in arrays:
        if i == first:
            continue
        a = args[i]
        wrong = np.float64 if a.dtype == np.intp else np.float32
        bad += [(i, a.astype(wrong), ValueError, "must be a C-contiguous"),
                (i, a[..., None], ValueError, "must be a C-contiguous"),
                (i, a.astype(a.dtype.newbyteorder()), ValueError,
                 "must be a C-contiguous")]
        if a.ndim == 2 and min(a.shape) > 1:
            bad.append((i, np.asfortranarray(a), ValueError,
                        "must be a C-contiguous"))
    for i, value, error, match in bad:
        with pytest.raises(error, match=match):
            fn(*args[:i], value, *args[i + 1:])

"""Training loops, generation, the progress bar and the demo."""

import io

import numpy as np
import pytest

import reference
import rnncore
from rnncore._progress import Progress, _TextBar
from rnncore.demo import CharVocab, NGram
from rnncore.training import stream_chunks


def sign_task(rng, N=256, T=6):
    """Many-to-one: is the sum of a sequence's inputs positive?"""
    x = rng.standard_normal((T, N, 2))
    return x, (x.sum(axis=(0, 2)) > 0).astype(int)


def test_fit_learns_a_many_to_one_task(rng):
    x, y = sign_task(rng)
    model = rnncore.RNN(2, 16, 2, seed=0)
    history = model.fit(x, y, mode="last", epochs=15, batch_size=32, lr=1e-2,
                        seed=0, progress=False, validation_data=(x, y))
    assert len(history["loss"]) == 15 * 8 and len(history["epoch_loss"]) == 15
    assert history["epoch_loss"][-1] < 0.3 < history["epoch_loss"][0]
    assert history["val_loss"][-1] < 0.3
    assert np.mean(model.predict(x, mode="last") == y) > 0.9


def test_fit_is_deterministic_for_a_seed(rng):
    x, y = sign_task(rng, N=64)
    runs = []
    for _ in range(2):
        model = rnncore.RNN(2, 8, 2, num_layers=2, bidirectional=True, seed=3)
        history = model.fit(x, y, mode="last", epochs=2, batch_size=10, seed=5,
                            optimizer="adamw", progress=False)
        runs.append((history["loss"], model.params))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][k], runs[1][1][k])


@pytest.mark.parametrize("mode", ["seq", "last"])
def test_fit_takes_the_same_steps_on_either_path(rng, mode):
    # float32 inputs to a float32 one-layer model take loss_and_grads' path
    # without Arguments; the same values as float64 need a cast and take the
    # general one: both must train to the same bits
    x, y = sign_task(rng, N=40)
    if mode == "seq":
        y = (np.cumsum(x.sum(axis=2), axis=0) > 0).astype(int)
    x = x.astype(np.float32)
    runs = []
    for inputs in (x, x.astype(np.float64)):
        model = rnncore.RNN(2, 8, 2, dtype=np.float32, seed=3)
        history = model.fit(inputs, y, mode=mode, epochs=2, batch_size=8, seed=5,
                            optimizer="adam", progress=False)
        runs.append((history["loss"], model.params))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][k], runs[1][1][k])


def test_fit_with_lengths_in_seq_mode_ignores_padding(rng):
    x = rng.standard_normal((7, 40, 3))
    y = (x[..., 0] > 0).astype(int)  # copy the sign of the first feature
    lengths = rng.integers(1, 8, 40)
    y[np.arange(7)[:, None] >= lengths] = -100  # padding: takes no loss
    model = rnncore.RNN(3, 8, 2, seed=0)
    history = model.fit(x, y, lengths=lengths, epochs=30, batch_size=8, lr=1e-2,
                        clip_norm=1.0, progress=False)
    assert history["epoch_loss"][-1] < 0.5 * history["epoch_loss"][0]
    assert max(history["grad_norm"]) > 0


def test_fit_stream_learns_a_periodic_sequence():
    ids = np.tile(np.array([0, 1, 2, 3, 2, 1]), 400)
    model = rnncore.RNN(4, 16, 4, seed=0)
    history = model.fit_stream(ids[:-1], ids[1:], seq_len=12, batch_size=8,
                               epochs=10, lr=1e-2, progress=False)
    assert history["loss"][-1] < 0.05 < history["loss"][0]
    assert model.sample(12, prime=[0, 1, 2], temperature=0).tolist() == \
        [3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]


def test_fit_stream_max_steps_and_errors():
    ids = np.arange(100) % 5
    model = rnncore.RNN(5, 4, 5, seed=0)
    history = model.fit_stream(ids[:-1], ids[1:], seq_len=5, batch_size=2,
                               epochs=50, max_steps=7, progress=False)
    assert len(history["loss"]) == 7
    with pytest.raises(ValueError, match="unidirectional"):
        rnncore.RNN(5, 4, 5, bidirectional=True).fit_stream(ids, ids)
    with pytest.raises(ValueError, match="shorter than batch_size"):
        model.fit_stream(ids[:3], ids[:3], batch_size=4)
    with pytest.raises(ValueError, match="shapes"):
        model.fit_stream(ids, ids[:-1])
    with pytest.raises(ValueError, match="integer token ids"):
        model.fit_stream(ids.astype(float), ids)
    with pytest.raises(ValueError, match="max_steps"):
        model.fit_stream(ids[:-1], ids[1:], max_steps=-1)
    assert model.fit_stream(ids[:-1], ids[1:], batch_size=2, max_steps=0,
                            progress=False)["loss"] == []


def test_stream_chunks_layout():
    """batch_size parallel streams, read in consecutive chunks, time-major."""
    x = np.arange(29) * 10  # 3 streams of 9 steps; the last 2 steps dropped
    targets = x + 1
    chunks = list(stream_chunks(x, targets, batch_size=3, seq_len=4))
    assert [len(xc) for xc, _ in chunks] == [4, 4, 1]
    streams = x[:27].reshape(3, 9)  # stream b is x[9b:9b+9], unbroken
    for k, (xc, tc) in enumerate(chunks):
        assert xc.shape[1:] == (3,) and tc.shape == xc.shape
        np.testing.assert_array_equal(xc, streams[:, 4 * k:4 * k + 4].T)
        np.testing.assert_array_equal(tc, xc + 1)  # targets cut the same way
    # chunk k+1 starts where chunk k ended, in every stream
    np.testing.assert_array_equal(np.concatenate([xc for xc, _ in chunks]),
                                  streams.T)
    # feature vectors (N, D) are cut along the first axis only
    feats = np.stack([x, -x], axis=1)
    feat_chunks = list(stream_chunks(feats, targets, 3, 4))
    assert len(feat_chunks) == len(chunks)
    for (fc, _), (xc, _) in zip(feat_chunks, chunks, strict=True):
        assert fc.shape == (*xc.shape, 2)
        np.testing.assert_array_equal(fc[..., 0], xc)
        np.testing.assert_array_equal(fc[..., 1], -xc)
    with pytest.raises(ValueError, match="shorter than batch_size"):
        next(stream_chunks(x[:2], targets[:2], batch_size=3, seq_len=4))


class RecordingOptimizer:
    """Keeps a copy of the gradients of every step and leaves the parameters
    alone, so every chunk of a fit_stream run sees the same weights."""

    def __init__(self):
        self.grads = []

    def step(self, grads):
        self.grads.append({k: v.copy() for k, v in grads.items()})


def assert_grads_equal(actual, expected, rtol=1e-12, atol=1e-14):
    assert actual.keys() == expected.keys()
    for k in expected:
        np.testing.assert_allclose(actual[k], expected[k], rtol=rtol, atol=atol,
                                   err_msg=k)


def assert_grads_differ(a, b):
    assert any(not np.allclose(a[k], b[k], rtol=1e-6, atol=1e-9) for k in a)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_fit_stream_carries_the_state_and_cuts_the_gradient(rng, num_layers):
    V, H, B, L = 5, 6, 3, 7
    ids = rng.integers(0, V, 62)
    x, targets = ids[:-1], ids[1:]          # 61 steps: 3 streams of 20
    model = rnncore.RNN(V, H, V, num_layers=num_layers, dtype="float64", seed=2)
    opt = RecordingOptimizer()
    history = model.fit_stream(x, targets, seq_len=L, batch_size=B, epochs=2,
                               optimizer=opt, clip_norm=None, progress=False)
    assert len(opt.grads) == len(history["loss"]) == 2 * 3   # chunks 7, 7, 6

    # the same chunks by hand: each starts from the final state of the one
    # before, which loss_and_grads takes as a constant h0
    xs, ts = x[:60].reshape(B, 20).T, targets[:60].reshape(B, 20).T
    h, bounds = None, [(0, 7), (7, 14), (14, 20)]
    for k, (a, b) in enumerate(bounds):
        loss, grads, h_next = model.loss_and_grads(xs[a:b], ts[a:b], h0=h)
        assert history["loss"][k] == pytest.approx(loss, rel=1e-12)
        assert_grads_equal(opt.grads[k], grads)
        if h is not None:
            # a fresh zero state would have given other gradients
            assert_grads_differ(opt.grads[k],
                                model.loss_and_grads(xs[a:b], ts[a:b])[1])
        # the carried state is the state of the whole stream so far
        _, h_stream = model.forward(xs[:b], return_state=True)
        np.testing.assert_allclose(h_next, h_stream, rtol=1e-12, atol=1e-13)
        h = h_next
    # each epoch starts again from the zero state
    for k in range(3):
        assert_grads_equal(opt.grads[3 + k], opt.grads[k])

    # no gradient crosses a boundary: full BPTT of chunk 1's loss back
    # through chunk 0 (chunk 0's targets ignored, so the loss is the same)
    # differs from what fit_stream used
    masked = ts[:14].copy()
    masked[:7] = -100
    loss_full, grads_full, _ = model.loss_and_grads(xs[:14], masked)
    assert loss_full == pytest.approx(history["loss"][1], rel=1e-12)
    assert_grads_differ(grads_full, opt.grads[1])


def test_fit_stream_first_chunk_is_full_bptt_of_that_chunk(rng):
    V, H, B, L = 6, 5, 4, 9
    ids = rng.integers(0, V, 4 * 30 + 1)
    model = rnncore.RNN(V, H, V, dtype="float64", seed=3)
    opt = RecordingOptimizer()
    model.fit_stream(ids[:-1], ids[1:], seq_len=L, batch_size=B, optimizer=opt,
                     clip_norm=None, progress=False, max_steps=1)
    x0 = ids[:-1][:120].reshape(B, 30).T[:L]     # the first chunk, (L, B)
    t0 = ids[1:][:120].reshape(B, 30).T[:L]
    onehot = np.eye(V)[x0]
    params = {k: model.params[k + "_l0"] for k in ("W_xh", "W_hh", "b_h")}
    params.update(W_hy=model.params["W_hy"], b_y=model.params["b_y"])
    expected = {
        # the compiled full-BPTT step of the functional API
        "functional": rnncore.loss_and_grads(params, onehot, t0)[1],
        # and the plain NumPy implementation, one step at a time
        "reference": reference.loss_and_grads(params, onehot, t0)[1],
    }
    got = {k: opt.grads[0][k + "_l0" if k in ("W_xh", "W_hh", "b_h") else k]
           for k in params}
    assert_grads_equal(got, expected["functional"])
    assert_grads_equal(got, expected["reference"], rtol=1e-10, atol=1e-13)
    assert_grads_equal(opt.grads[0], model.loss_and_grads(x0, t0)[1])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
    ({"optimizer": "sgd"}, ValueError, "lr"),
    ({"optimizer": object()}, TypeError, "optimizer"),
    ({"epochs": 0}, ValueError, "epochs"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"clip_norm": -1.0}, ValueError, "clip_norm"),
    ({"mode": "last"}, ValueError, "targets"),
])
def test_fit_errors(rng, kwargs, error, match):
    model = rnncore.RNN(2, 4, 2)
    x = rng.standard_normal((3, 5, 2))
    with pytest.raises(error, match=match):
        model.fit(x, np.zeros((3, 5), int), progress=False, **kwargs)


def test_fit_refuses_a_diverging_loss(rng):
    model = rnncore.RNN(2, 4, 2, seed=0)
    model.params["W_hy"][:] = np.nan
    with pytest.raises(FloatingPointError, match="loss"):
        model.fit(rng.standard_normal((3, 5, 2)), np.zeros((3, 5), int),
                  progress=False)


def test_fit_accepts_an_optimiser_object(rng):
    x, y = sign_task(rng, N=32)
    model = rnncore.RNN(2, 4, 2, seed=0)
    opt = rnncore.optim.SGD(model.params, lr=0.1, momentum=0.9)
    before = model.params["W_hh_l0"].copy()
    model.fit(x, y, mode="last", optimizer=opt, progress=False)
    assert not np.array_equal(before, model.params["W_hh_l0"])
    with pytest.raises(ValueError, match="lr"):
        model.fit(x, y, mode="last", optimizer=opt, lr=0.1, progress=False)


def test_sample_options():
    model = rnncore.RNN(6, 8, 6, seed=1)
    a = model.sample(30, seed=4)
    assert a.shape == (30,) and a.min() >= 0 and a.max() < 6
    np.testing.assert_array_equal(a, model.sample(30, seed=4))
    assert not np.array_equal(a, model.sample(30, seed=5))
    greedy = model.sample(10, prime=[1, 2], temperature=0)
    np.testing.assert_array_equal(greedy, model.sample(10, prime=[1, 2], top_k=1,
                                                       seed=9))
    # greedy decoding is the argmax chain of the model's own forward pass
    seq = np.concatenate([[1, 2], greedy])
    logits = model.forward(seq[:-1, None])[:, 0]
    np.testing.assert_array_equal(np.argmax(logits[1:], axis=1), greedy)
    top2 = model.sample(200, top_k=2, prime=[0], seed=0)
    assert len(np.unique(top2)) <= 6
    assert model.sample(0).shape == (0,)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(3, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        model.sample(3, top_k=0)
    with pytest.raises(ValueError, match="input_size == output_size"):
        rnncore.RNN(3, 4, 5).sample(3)


def test_progress_bar_without_tqdm_writes_one_line():
    out = io.StringIO()
    bar = _TextBar(4, "fit", out)
    for i in range(4):
        bar.set_postfix({"loss": f"{1 / (i + 1):.3g}"})
        bar.update(1)
    bar.close()
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    assert "4/4" in text and "loss=0.25" in text and "100%" in text


def test_progress_disabled_prints_nothing(capsys):
    with Progress(10, "fit", enabled=False) as bar:
        bar.update(3, loss=1.0)
    assert capsys.readouterr() == ("", "")


def test_char_vocab_round_trip():
    vocab = CharVocab("hello, world")
    ids = vocab.encode("world")
    assert vocab.decode(ids) == "world" and len(vocab) == 9
    with pytest.raises(ValueError, match="'z'"):
        vocab.encode("z")


def test_ngram_is_a_normalised_distribution(rng):
    V = 4
    train = rng.integers(0, V, 300)
    model = NGram(3, V, train[:200], train[200:])
    for context in ([0, 1], [3, 3], [2, 0]):
        total = sum(np.exp(-model.nats(np.array([*context, c]))) for c in range(V))
        assert total == pytest.approx(1.0, rel=1e-12)
    # a deterministic sequence: the trigram model beats the uniform distribution
    cyc = np.tile([0, 1, 2, 3, 1], 100)
    assert NGram(3, V, cyc[:300], cyc[300:400]).nats(cyc[400:]) < 0.2 * np.log(V)


def ngram_nats_by_counting(order, V, train, dev, test, lambdas):
    """NGram's formula with plain dictionaries of counts (test[order-1:]
    scored; `dev` is unused but for the signature)."""
    from collections import Counter

    train = [int(t) for t in train]
    grams = [Counter(tuple(train[i:i + n]) for i in range(len(train) - n + 1))
             for n in range(1, order + 1)]
    followed = [Counter() for _ in range(order)]
    for n in range(2, order + 1):
        for gram, c in grams[n - 1].items():
            followed[n - 1][gram[:-1]] += c
    total = 0.0
    test = [int(t) for t in test]
    for i in range(order - 1, len(test)):
        p = 1.0 / V
        for n in range(1, order + 1):
            gram = tuple(test[i - n + 1:i + 1])
            den = len(train) if n == 1 else followed[n - 1][gram[:-1]]
            if den:
                lam = lambdas[n - 1]
                p = lam * grams[n - 1][gram] / den + (1 - lam) * p
        total -= np.log(p)
    return total / (len(test) - order + 1)


@pytest.mark.parametrize("order, V", [(1, 6), (2, 5), (3, 4), (4, 3)])
def test_ngram_matches_counting(rng, order, V):
    ids = rng.integers(0, V, 700)
    train, dev, test = ids[:400], ids[400:550], ids[550:]
    test[:3] = V - 1  # contexts unseen in training
    model = NGram(order, V, train, dev)
    assert model.nats(test) == pytest.approx(
        ngram_nats_by_counting(order, V, train, dev, test, model.lambdas),
        rel=1e-12)


def test_ngram_memory_grows_with_the_text_not_the_vocabulary():
    import tracemalloc

    # 3000 distinct characters: dense trigram tables would need V**3 = 2.7e10
    # entries (over 200 GB), even a dense bigram table 72 MB
    rng = np.random.default_rng(0)
    alphabet = [chr(0x4E00 + i) for i in range(3000)]
    text = "".join(rng.choice(alphabet, 30_000)) + "".join(alphabet)
    vocab = CharVocab(text)
    ids = vocab.encode(text)
    assert len(vocab) == 3000
    tracemalloc.start()
    try:
        for order in (2, 3):
            model = NGram(order, len(vocab), ids[:20_000], ids[20_000:25_000])
            nats = model.nats(ids[25_000:])
            assert 0 < nats < np.log(len(vocab)) + 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MB"


def test_demo_runs_with_a_tiny_budget(capsys):
    assert rnncore.demo.main(["--steps", "3", "--hidden", "8", "--batch", "4",
                              "--seq-len", "8", "--sample-length", "20",
                              "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "nats/char" in out and "bigram baseline" in out and "sample:" in out


def test_demo_command_runs_as_a_module(tmp_path):
    import os
    import subprocess
    import sys

    # from an empty directory, as users run it (not from a source tree), with
    # the rnncore under test first on the path
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
        rnncore.__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "rnncore", "demo", "--steps", "2", "--hidden", "8",
         "--batch", "4", "--seq-len", "8", "--sample-length", "10", "--quiet"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "held-out" in result.stdout

"""Training loops, generation, the progress bar and the demo."""

import io

import numpy as np
import pytest

import rnncore
from rnncore._progress import Progress, _TextBar
from rnncore.demo import CharVocab, NGram


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

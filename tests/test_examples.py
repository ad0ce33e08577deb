"""The scripts in examples/ run and reach their stated results (skipped when
the tests run outside the source tree, where examples/ is absent)."""

import importlib.util
import os

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")


def load_example(name):
    path = os.path.join(EXAMPLES, name + ".py")
    if not os.path.exists(path):
        pytest.skip("examples/ is not next to the tests")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_reaches_97_percent():
    pytest.importorskip("sklearn")
    accuracy = load_example("digits").main(["--quiet"])
    assert accuracy >= 0.97


def test_char_lm_runs_and_saves(tmp_path, capsys):
    path = tmp_path / "model.npz"
    nats, trigram = load_example("char_lm").main(
        ["--steps", "2", "--hidden", "8", "--batch", "4", "--seq-len", "8",
         "--save", str(path), "--quiet"])
    assert 0 < nats < 10 and 0 < trigram < 5
    assert "interpolated trigram" in capsys.readouterr().out
    import rnncore
    assert rnncore.load(path).hidden_size == 8


def test_char_lm_on_a_text_of_thousands_of_distinct_characters(tmp_path, capsys):
    # the trigram baseline's tables must not grow as V**3 (2.7e10 entries)
    import numpy as np

    rng = np.random.default_rng(0)
    alphabet = [chr(0x4E00 + i) for i in range(3000)]
    path = tmp_path / "text.txt"
    path.write_text("".join(alphabet) + "".join(rng.choice(alphabet, 20_000)),
                    encoding="utf-8")
    nats, trigram = load_example("char_lm").main(
        [str(path), "--steps", "2", "--hidden", "8", "--batch", "4",
         "--seq-len", "8", "--quiet"])
    assert 0 < nats < 10 and 0 < trigram < np.log(3000) + 1
    assert "interpolated trigram" in capsys.readouterr().out

"""``python -m rnncore demo``: a character-level language model trained on
text that every Python installation has, the help topics of ``pydoc``.

It shows the training loss falling, scores held-out text in nats per
character against an n-gram baseline and prints a generated sample.
"""
import argparse
import importlib.util
import os
import sys
import time

import numpy as np

__all__ = ["CharVocab", "NGram", "load_text", "main"]


def load_text(path=None):
    """The text of ``path``, or by default the source of the standard
    library's ``pydoc_data/topics.py`` (about 700 kB of English prose and
    Python); when a distribution leaves that out, a few standard library
    modules' sources stand in."""
    if path is not None:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    spec = importlib.util.find_spec("pydoc_data.topics")
    if spec is not None and spec.origin and os.path.exists(spec.origin):
        with open(spec.origin, encoding="utf-8") as f:
            return f.read()
    import collections
    import inspect
    return "\n".join(inspect.getsource(m) for m in (argparse, collections, inspect))


class CharVocab:
    """The characters of a text, as ids 0..V-1 in code-point order."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self._index = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        """Ids of the characters of `text` (unknown characters are refused)."""
        try:
            return np.fromiter((self._index[ch] for ch in text), dtype=np.intp,
                               count=len(text))
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the "
                             f"vocabulary") from None

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


class NGram:
    """Interpolated n-gram model of token ids (Jelinek-Mercer smoothing):
    ``p_n = λ_n·count-ratio_n + (1 - λ_n)·p_{n-1}`` where the context was
    seen, ``p_{n-1}`` where not, down to the uniform ``1/V``.  The λ are
    chosen on held-out `dev` ids."""

    LAMBDAS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)

    def __init__(self, order, V, train, dev):
        self.order, self.V = order, V
        self.counts = [np.bincount(self._codes(train, n), minlength=V ** n)
                       for n in range(1, order + 1)]
        # how often each (n-1)-gram is followed by something: the n-gram
        # counts summed over their last token (not the (n-1)-gram counts,
        # which also count the text's final (n-1)-gram)
        self.contexts = [None] + [c.reshape(-1, V).sum(axis=1) for c in self.counts[1:]]
        self.total = len(train)
        self.lambdas = [0.5] * order
        for n in range(order):  # lowest order first, each given the others
            self.lambdas[n] = min(self.LAMBDAS, key=lambda lam: self._with(
                n, lam).nats(dev))

    def _with(self, n, lam):
        self.lambdas[n] = lam
        return self

    def _codes(self, ids, n):
        """Each n-gram of `ids` as one integer (base V)."""
        ids = np.asarray(ids, dtype=np.int64)
        code = np.zeros(len(ids) - n + 1, dtype=np.int64)
        for j in range(n):
            code = code * self.V + ids[j:len(ids) - n + 1 + j]
        return code

    def nats(self, ids):
        """Mean -log p of ids[order-1:] given the ids before each."""
        ids = np.asarray(ids)
        k = self.order - 1
        p = np.full(len(ids) - k, 1.0 / self.V)
        for n in range(1, self.order + 1):
            grams = self._codes(ids[k - n + 1:], n)
            num = self.counts[n - 1][grams].astype(np.float64)
            if n == 1:
                den = np.full(len(grams), float(self.total))
            else:
                den = self.contexts[n - 1][grams // self.V].astype(np.float64)
            seen = den > 0
            lam = self.lambdas[n - 1]
            ratio = np.divide(num, den, out=np.zeros_like(num), where=seen)
            p = np.where(seen, lam * ratio + (1 - lam) * p, p)
        return float(-np.mean(np.log(p)))


def _parser():
    ap = argparse.ArgumentParser(
        prog="rnncore demo",
        description="Train a character-level language model and sample from it.")
    ap.add_argument("--text", help="a UTF-8 text file (default: pydoc's topics)")
    ap.add_argument("--steps", type=int, default=600,
                    help="training steps (default 600: about half a minute)")
    ap.add_argument("--hidden", type=int, default=192, help="hidden units")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=64,
                    help="steps per truncated-BPTT chunk")
    ap.add_argument("--batch", type=int, default=32, help="parallel streams")
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-length", type=int, default=400)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--prime", default="The ")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv=None):
    from rnncore import RNN

    args = _parser().parse_args(argv)
    text = load_text(args.text)
    vocab = CharVocab(text)
    ids = vocab.encode(text)
    split = int(0.9 * len(ids))
    train, held_out = ids[:split], ids[split:]
    print(f"text: {len(text):,} characters, {len(vocab)} distinct; "
          f"{len(train):,} to train on, {len(held_out):,} held out")

    model = RNN(len(vocab), args.hidden, len(vocab), num_layers=args.layers,
                seed=args.seed)
    print(f"model: {model}, {sum(p.size for p in model.params.values()):,} "
          f"parameters")
    n_chunk = args.batch * args.seq_len
    epochs = max(1, -(-args.steps * n_chunk // len(train)))
    start = time.perf_counter()
    history = model.fit_stream(train[:-1], train[1:], seq_len=args.seq_len,
                               batch_size=args.batch, epochs=epochs, lr=args.lr,
                               max_steps=args.steps, progress=not args.quiet)
    seconds = time.perf_counter() - start
    steps = len(history["loss"])
    print(f"trained {steps} steps in {seconds:.1f} s "
          f"({steps * n_chunk / seconds:,.0f} characters/s); training loss "
          f"{np.mean(history['loss'][:10]):.3f} -> "
          f"{np.mean(history['loss'][-10:]):.3f}")

    dev = train[-len(held_out):]
    bigram = NGram(2, len(vocab), train[:-len(dev)], dev).nats(held_out)
    rnn = model.evaluate(held_out[:-1, None], held_out[1:, None])
    print(f"held-out: {rnn:.3f} nats/char (bigram baseline {bigram:.3f})")

    prime = "".join(ch for ch in args.prime if ch in vocab._index)
    tokens = model.sample(args.sample_length, prime=vocab.encode(prime),
                          temperature=args.temperature, seed=args.seed)
    print("sample:\n" + prime + vocab.decode(tokens))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

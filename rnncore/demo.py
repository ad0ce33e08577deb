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
    chosen on held-out `dev` ids.

    The counts are stored sparsely, one entry per distinct n-gram of
    `train`, so memory grows with the text, not with ``V ** order``.
    """

    LAMBDAS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)

    def __init__(self, order, V, train, dev):
        self.order, self.V = order, V
        train = np.asarray(train, dtype=np.int64)
        # keys[n-1]: the sorted codes of the distinct n-grams of `train`,
        # counts[n-1] how often each occurs.  An n-gram's code is
        # (index of its first n-1 tokens in keys[n-2])·V + its last token, so
        # codes stay below len(train)·V whatever the order.
        self.keys, self.counts, self.contexts = [], [], [None]
        index = None  # index of each position's (n-1)-gram in keys[n-2]
        for n in range(1, order + 1):
            m = len(train) - n + 1
            code = train[n - 1:] if n == 1 else index[:m] * V + train[n - 1:]
            keys, inverse, counts = np.unique(code, return_inverse=True,
                                              return_counts=True)
            self.keys.append(keys)
            self.counts.append(counts)
            if n > 1:
                # how often each (n-1)-gram is followed by something: the
                # n-gram counts summed over their last token (not the
                # (n-1)-gram counts, which also count the text's final
                # (n-1)-gram)
                self.contexts.append(np.bincount(keys // V, weights=counts,
                                                 minlength=len(self.keys[n - 2])))
            index = inverse.reshape(-1)
        self.total = len(train)
        self.lambdas = [0.5] * order
        ratios = self._ratios(dev)
        for n in range(order):  # lowest order first, each given the others
            self.lambdas[n] = min(self.LAMBDAS, key=lambda lam: self._with(
                n, lam)._nats(ratios))

    def _with(self, n, lam):
        self.lambdas[n] = lam
        return self

    @staticmethod
    def _find(keys, codes):
        """Index of each code in the sorted `keys`, and whether it is there."""
        pos = np.searchsorted(keys, codes)
        found = pos < len(keys)
        found[found] = keys[pos[found]] == codes[found]
        return np.where(found, pos, 0), found

    def _ratios(self, ids):
        """For each order n, the count ratio of the n-gram ending at each of
        ids[order-1:] and whether its context was seen."""
        ids = np.asarray(ids, dtype=np.int64)
        k, V = self.order - 1, self.V
        out = []
        index, known = None, None  # the (n-1)-gram before each predicted id
        for n in range(1, self.order + 1):
            last = ids[k:]
            if n == 1:
                den = np.full(len(last), float(self.total))
                seen = np.ones(len(last), dtype=bool)
                code = last
            else:
                den = self.contexts[n - 1][index]
                seen = known & (den > 0)
                code = index * V + last
            pos, found = self._find(self.keys[n - 1], code)
            found &= seen
            num = np.where(found, self.counts[n - 1][pos], 0).astype(np.float64)
            ratio = np.divide(num, den, out=np.zeros_like(num), where=seen)
            out.append((ratio, seen))
            # the n-gram just scored is the context of the (n+1)-gram, which
            # starts one token earlier
            if n < self.order:
                index, known = self._context(ids, n, k)
        return out

    def _context(self, ids, n, k):
        """Index in keys[n-1] of the n-gram ids[i-n:i] before each predicted
        ids[i], i >= k, and whether it occurs in the training text."""
        index = known = None
        for j in range(1, n + 1):  # grow it from the oldest token on
            tok = ids[k - n + j - 1:len(ids) - n + j - 1]
            code = tok if j == 1 else index * self.V + tok
            pos, found = self._find(self.keys[j - 1], code)
            index, known = pos, found if known is None else known & found
        return index, known

    def _nats(self, ratios):
        p = np.full(len(ratios[0][0]), 1.0 / self.V)
        for lam, (ratio, seen) in zip(self.lambdas, ratios, strict=True):
            p = np.where(seen, lam * ratio + (1 - lam) * p, p)
        return float(-np.mean(np.log(p)))

    def nats(self, ids):
        """Mean -log p of ids[order-1:] given the ids before each."""
        return self._nats(self._ratios(ids))


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
    steps, losses = len(history["loss"]), history["loss"]
    print(f"trained {steps} steps in {seconds:.1f} s "
          f"({steps * n_chunk / seconds:,.0f} characters/s); training loss "
          f"{np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f}")

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

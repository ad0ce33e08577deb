"""Classify scikit-learn's bundled 8x8 handwritten digits with a many-to-one
RNN that reads each image row by row: 8 steps of 8 pixels, one prediction
from the final state.

    python examples/digits.py [--epochs N] [--hidden H] [--seed S]

Needs scikit-learn (for the data set only): pip install scikit-learn
"""
import argparse
import sys
import time

import numpy as np

import rnncore


def load(seed):
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit("this example reads scikit-learn's digits: pip install scikit-learn")
    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).reshape(-1, 8, 8)  # pixels in [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, stratify=labels, random_state=seed)
    # time-major (T=8 rows, N images, D=8 pixels)
    return (np.transpose(x_train, (1, 0, 2)), y_train,
            np.transpose(x_test, (1, 0, 2)), y_test)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    x_train, y_train, x_test, y_test = load(args.seed)
    model = rnncore.RNN(8, args.hidden, 10, recurrent_init="orthogonal",
                        seed=args.seed)
    start = time.perf_counter()
    history = model.fit(x_train, y_train, mode="last", epochs=args.epochs,
                        batch_size=32, lr=args.lr, clip_norm=5.0, seed=args.seed,
                        progress=not args.quiet)
    seconds = time.perf_counter() - start
    accuracy = np.mean(model.predict(x_test, mode="last") == y_test)
    print(f"{model}: trained {args.epochs} epochs in {seconds:.1f} s, final "
          f"training loss {history['epoch_loss'][-1]:.4f}")
    print(f"test accuracy: {accuracy:.4f} ({len(y_test)} images)")
    return accuracy


if __name__ == "__main__":
    main()

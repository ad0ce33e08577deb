"""Command line: ``rnncore selfcheck`` (or ``python -m rnncore selfcheck``
outside the source tree).

Checks the installed build on this machine: every gradient against central
finite differences (float64), float32 against float64, and a short training
run that must drive the loss down.  Exits with status 1 on any failure.
"""
import argparse
import functools
import sys
import time

import numpy as np

import rnncore

GRAD_TOL = 1e-6


def _params(rng, D, H, C, dtype=np.float64):
    shapes = {
        "W_xh": (H, D), "W_hh": (H, H), "b_h": (H,), "W_hy": (C, H), "b_y": (C,)
    }
    return {
        k: (rng.uniform(-1, 1, s) / np.sqrt(H)).astype(dtype) for k, s in shapes.items()
    }


def _numerical_grad(f, arr, eps=1e-6):
    grad = np.zeros_like(arr)
    for i in np.ndindex(arr.shape):
        keep = arr[i]
        arr[i] = keep + eps
        up = f()
        arr[i] = keep - eps
        down = f()
        arr[i] = keep
        grad[i] = (up - down) / (2 * eps)
    return grad


def _rel_err(a, b):
    scale = max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300)
    return float(np.linalg.norm(a - b) / scale)


def _loss(params, x, targets, **kw):
    return rnncore.loss_and_grads(params, x, targets, **kw)[0]


def check_gradients(rng):
    T, B, D, H, C = 6, 3, 4, 5, 7
    x = rng.standard_normal((T, B, D))
    lengths = np.array([6, 2, 4])
    worst = 0.0
    for mode in ("seq", "last"):
        targets = rng.integers(0, C, (T, B) if mode == "seq" else (B,))
        for lens in (None, lengths):
            params = _params(rng, D, H, C)
            kw = dict(mode=mode, lengths=lens)
            _, grads, _ = rnncore.loss_and_grads(params, x, targets, **kw)
            loss = functools.partial(_loss, params, x, targets, **kw)
            for name, value in params.items():
                num = _numerical_grad(loss, value)
                err = _rel_err(num, grads[name])
                worst = max(worst, err)
                which = "lengths" if lens is not None else "full   "
                label = f"{mode:4s} {which} d{name}"
                print(f"  {label:24s} relative error {err:.1e}")
    return worst


def check_float32(rng):
    T, B, D, H, C = 20, 4, 8, 16, 10
    p64 = _params(rng, D, H, C)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    x = rng.standard_normal((T, B, D))
    targets = rng.integers(0, C, (T, B))
    l64, g64, _ = rnncore.loss_and_grads(p64, x, targets)
    l32, g32, _ = rnncore.loss_and_grads(p32, x.astype(np.float32), targets)
    return max([abs(l64 - l32) / abs(l64)] + [_rel_err(g64[k], g32[k]) for k in g64])


def train_toy(rng, steps=300, lr=0.5):
    """Next-character prediction on a repeating phrase: the loss must fall."""
    text = "hello rnncore! " * 8
    chars = sorted(set(text))
    idx = np.array([chars.index(c) for c in text])
    C, H = len(chars), 32
    eye = np.eye(C, dtype=np.float32)
    x = eye[idx[:-1]][:, None, :]          # (T, 1, C) one-hot
    targets = idx[1:][:, None]             # (T, 1)
    params = _params(rng, C, H, C, np.float32)
    first = None
    for _ in range(steps):
        loss, grads, _ = rnncore.loss_and_grads(params, x, targets)
        first = loss if first is None else first
        for k in params:
            params[k] -= lr * np.clip(grads[k], -5, 5)
    return first, loss


def selfcheck():
    rng = np.random.default_rng(0)
    ok = True
    print(f"rnncore {rnncore.__version__}")
    print("gradients against central finite differences (float64):")
    worst = check_gradients(rng)
    ok &= worst <= GRAD_TOL
    print(f"  worst relative error {worst:.1e} (tolerance {GRAD_TOL:.0e})")
    err32 = check_float32(rng)
    ok &= err32 <= 1e-4
    print(f"float32 against float64: worst relative difference {err32:.1e}")
    t0 = time.perf_counter()
    first, last = train_toy(rng)
    ok &= last < 0.1 * first
    print(f"toy training run: loss {first:.3f} -> {last:.4f} "
          f"in {time.perf_counter() - t0:.2f} s")
    print("selfcheck " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["demo"]:  # the demo parses its own options
        from rnncore import demo
        return demo.main(argv[1:])
    parser = argparse.ArgumentParser(prog="rnncore", description="rnncore command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("selfcheck", help="check gradients and a short training run")
    sub.add_parser("demo", help="train a character-level language model on "
                   "Python's own documentation and sample from it "
                   "(rnncore demo --help for options)")
    args = parser.parse_args(argv)
    if args.command == "selfcheck":
        return selfcheck()
    return 2


if __name__ == "__main__":
    sys.exit(main())

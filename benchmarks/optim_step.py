"""Time one optimiser step on a model's parameters: rnncore.optim against
the same update written as NumPy ufunc calls (in place, preallocated
temporaries: the fastest plain-NumPy form) and, when installed,
torch.optim on CPU tensors.

    python benchmarks/optim_step.py [--H 100] [--D 65] [--C 65]

Prints the median µs per step of each, float32 and float64, one thread.
"""
import argparse
import statistics
import time

import numpy as np

import rnncore


class NumpyAdam:
    """Adam (torch's formulas) as in-place NumPy ufunc calls."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}
        self.tmp = {k: np.empty_like(p) for k, p in params.items()}
        self.t = 0

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1 ** self.t)
        bc2_sqrt = (1 - b2 ** self.t) ** 0.5
        for k, p in self.params.items():
            g, m, v, tmp = grads[k], self.m[k], self.v[k], self.tmp[k]
            m *= b1                                  # m = β1 m + (1-β1) g
            np.multiply(g, 1 - b1, out=tmp)
            m += tmp
            v *= b2                                  # v = β2 v + (1-β2) g²
            np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            np.sqrt(v, out=tmp)                      # √v/√bc2 + ε
            tmp /= bc2_sqrt
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= -step_size
            p += tmp


def median_us(fn, seconds=0.5):
    for _ in range(20):
        fn()
    samples, spent = [], 0.0
    while spent < seconds or len(samples) < 50:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        samples.append(elapsed)
        spent += elapsed
    return statistics.median(samples) * 1e6


def model_params(rng, D, H, C, dtype):
    shapes = {"W_xh": (H, D), "W_hh": (H, H), "b_h": (H,), "W_hy": (C, H),
              "b_y": (C,)}
    return {k: rng.uniform(-0.1, 0.1, s).astype(dtype) for k, s in shapes.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--H", type=int, default=100)
    parser.add_argument("--D", type=int, default=65)
    parser.add_argument("--C", type=int, default=65)
    args = parser.parse_args()
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        params = model_params(rng, args.D, args.H, args.C, dtype)
        grads = {k: (1e-2 * rng.standard_normal(p.shape)).astype(dtype)
                 for k, p in params.items()}
        n = sum(p.size for p in params.values())
        rows = {}
        for name, make in [
            ("rnncore.optim.Adam", lambda p: rnncore.optim.Adam(p)),
            ("rnncore.optim.AdamW", lambda p: rnncore.optim.AdamW(p)),
            ("rnncore.optim.SGD(momentum=0.9)",
             lambda p: rnncore.optim.SGD(p, 0.01, momentum=0.9)),
            ("rnncore.optim.Adagrad", lambda p: rnncore.optim.Adagrad(p)),
            ("NumPy ufuncs, Adam", NumpyAdam),
        ]:
            opt = make({k: p.copy() for k, p in params.items()})
            rows[name] = median_us(lambda opt=opt, grads=grads: opt.step(grads))
        rows["rnncore.optim.clip_grad_norm (no-op)"] = median_us(
            lambda grads=grads: rnncore.optim.clip_grad_norm(grads, 1e9))
        if torch is not None:
            tparams = [torch.from_numpy(p.copy()).requires_grad_()
                       for p in params.values()]
            for tp, g in zip(tparams, grads.values(), strict=True):
                tp.grad = torch.from_numpy(g.copy())
            topt = torch.optim.Adam(tparams)
            rows["torch.optim.Adam (CPU)"] = median_us(topt.step)
        print(f"\n{np.dtype(dtype).name}, {len(params)} arrays, {n} elements "
              f"(D={args.D}, H={args.H}, C={args.C})")
        for name, us in rows.items():
            print(f"  {name:40s} {us:8.1f} µs/step")


if __name__ == "__main__":
    main()

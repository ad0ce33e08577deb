"""PyTorch on the CPU, as a PyTorch user would write it.

``torch.nn.RNN`` (tanh, one layer, time-major) + ``torch.nn.Linear`` +
``F.cross_entropy``; a training step zeroes the gradients (set to None,
PyTorch's default), runs the forward pass and ``loss.backward()``.  The
model's ``bias_hh_l0`` is zero (rnncore's single ``b_h`` is ``bias_ih_l0``),
but it stays trainable as in any ``nn.RNN``.  Inference runs under
``torch.inference_mode()``.
"""

import torch
import torch.nn.functional as F

LIBRARY = "torch"


def limit_threads(n):
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started
        pass


def build_model(params):
    H, D = params["W_xh"].shape
    C = params["W_hy"].shape[0]
    dtype = torch.from_numpy(params["W_xh"]).dtype
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh").to(dtype)
    linear = torch.nn.Linear(H, C).to(dtype)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(params["W_xh"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(params["W_hh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(params["b_h"]))
        rnn.bias_hh_l0.zero_()
        linear.weight.copy_(torch.from_numpy(params["W_hy"]))
        linear.bias.copy_(torch.from_numpy(params["b_y"]))
    return rnn, linear


class Peer:
    def __init__(self, problem):
        self.rnn, self.linear = build_model(problem["params"])
        self.x = torch.from_numpy(problem["x"])
        self.targets = {m: torch.from_numpy(t) for m, t in problem["targets"].items()}

    def _logits(self, mode):
        out, h_n = self.rnn(self.x)
        return out, self.linear(out if mode == "seq" else h_n[0])

    def train(self, mode):
        targets = self.targets[mode].reshape(-1)
        rnn, linear = self.rnn, self.linear

        def step():
            rnn.zero_grad()
            linear.zero_grad()
            _, logits = self._logits(mode)
            loss = F.cross_entropy(logits.reshape(targets.shape[0], -1), targets)
            loss.backward()
            return loss.item()

        return step

    def forward(self, mode):
        def run():
            with torch.inference_mode():
                return self._logits(mode)

        return run

    def to_numpy(self, op, out):
        if op == "train":
            rnn, lin = self.rnn, self.linear
            grads = {
                "W_xh": rnn.weight_ih_l0.grad,
                "W_hh": rnn.weight_hh_l0.grad,
                "b_h": rnn.bias_ih_l0.grad,
                "W_hy": lin.weight.grad,
                "b_y": lin.bias.grad,
            }
            return {"loss": float(out), **{k: g.numpy() for k, g in grads.items()}}
        hs, logits = out
        return {"hs": hs.numpy(), "logits": logits.numpy()}


def describe():
    """Version and the BLAS PyTorch was built with."""
    blas = next(
        (
            line.strip(" -")
            for line in torch.__config__.show().splitlines()
            if "Math Kernel Library" in line or "OpenBLAS" in line
        ),
        "BLAS unknown",
    )
    return (
        f"torch {torch.__version__}, {blas}, {torch.backends.cpu.get_cpu_capability()}"
    )

"""Run small rnncore calls under valgrind's memcheck and fail on any error in
rnncore's compiled code, or any invalid memory access at all.

    python tools/valgrind.py            # PYTHONPATH=. for an in-place build

It tests the rnncore that ``import rnncore`` finds.  The calls (``--calls``,
run by this script under valgrind) are training steps in both modes and both
dtypes, with lengths, h0 and ignored targets, the forward and backward
passes, the softmax functions, zero-size batches, and RNN models'
training steps (fused, and per layer with the output layer), each with
clipping and an optimiser step, and inference; every result is
printed, so that an uninitialised value in one reaches a branch (in the
printing) where memcheck reports it.

PYTHONMALLOC=malloc makes every Python allocation visible to memcheck.
Errors are read from memcheck's XML report: an invalid read, write or free
anywhere fails the run, and so does any error (uninitialised value, ...)
with a frame in one of rnncore's extension modules.  Errors elsewhere (in
CPython, NumPy or OpenBLAS) are counted but do not fail it; known false
positives outside rnncore are suppressed (tools/valgrind.supp), and what is
still allocated at exit is not looked at.  Exit status 0 when clean, 1
otherwise.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
FATAL_KINDS = {"InvalidRead", "InvalidWrite", "InvalidFree",
               "MismatchedFree", "InvalidMemPool", "Overlap"}
RNNCORE_MODULES = ("rnncore/_recurrence", "rnncore/_softmax", "rnncore/_training",
                   "rnncore/_optim", "rnncore/_output")


def calls():
    """The calls run under valgrind."""
    import numpy as np

    import rnncore

    print("rnncore from", rnncore.__file__)
    rng = np.random.default_rng(0)
    T, B, D, H, C = 5, 3, 4, 6, 5
    for dtype in (np.float32, np.float64):
        params = {
            "W_xh": rng.standard_normal((H, D)).astype(dtype) / 2,
            "W_hh": rng.standard_normal((H, H)).astype(dtype) / 3,
            "b_h": rng.standard_normal(H).astype(dtype),
            "W_hy": rng.standard_normal((C, H)).astype(dtype),
            "b_y": rng.standard_normal(C).astype(dtype),
        }
        x = rng.standard_normal((T, B, D)).astype(dtype)
        h0 = rng.standard_normal((B, H)).astype(dtype) / 2
        lengths = np.array([5, 2, 4])
        targets = rng.integers(0, C, (T, B))
        targets[1, 0] = -100
        for mode, t in (("seq", targets), ("last", targets[-1])):
            for kw in ({}, {"h0": h0, "lengths": lengths}):
                loss, grads, h_last = rnncore.loss_and_grads(params, x, t,
                                                             mode=mode, **kw)
                print(mode, dtype.__name__, f"{loss:.6f}",
                      *(f"{float(np.sum(g)):.6f}" for g in grads.values()),
                      f"{float(np.sum(h_last)):.6f}")
        hs = rnncore.rnn_forward(x, params["W_xh"], params["W_hh"],
                                 params["b_h"], h0=h0, lengths=lengths)
        g = rnncore.rnn_backward(np.cos(hs), hs, x, params["W_xh"],
                                 params["W_hh"], h0=h0, lengths=lengths,
                                 dh_last=hs[-1])
        print("backward", *(f"{float(np.sum(a)):.6f}" for a in (hs, *g)))
        # B = 8 and 9: both sides of the own-kernel / BLAS switch per step
        for batch in (8, 9):
            xb = rng.standard_normal((T, batch, D)).astype(dtype)
            hs = rnncore.rnn_forward(xb, params["W_xh"], params["W_hh"],
                                     params["b_h"])
            print("batch", batch, f"{float(np.sum(hs)):.6f}")
        logits = rng.standard_normal((7, C)).astype(dtype)
        loss, d = rnncore.softmax_cross_entropy(logits, targets.ravel()[:7])
        print("ce", f"{loss:.6f}", f"{float(np.sum(np.abs(d))):.6f}")
        for fn in (rnncore.softmax, rnncore.log_softmax):
            print(fn.__name__, f"{float(np.sum(fn(logits, axis=0))):.6f}")
        # zero-size batch and hidden size
        no_hidden = {"W_xh": params["W_xh"][:0], "W_hh": params["W_hh"][:0, :0],
                     "b_h": params["b_h"][:0], "W_hy": params["W_hy"][:, :0],
                     "b_y": params["b_y"]}
        loss, grads, _ = rnncore.loss_and_grads(no_hidden, x[:, :0],
                                                targets[:, :0])
        print("empty", loss, [a.shape for a in grads.values()])
        model_calls(rng, dtype, x, targets, lengths)


def model_calls(rng, dtype, x, targets, lengths):
    """RNN's training steps (the fused kernel for one layer, the per-layer
    kernels and the output layer's for two bidirectional ones), each
    followed by clipping and an optimiser step, and its inference path."""
    import numpy as np

    import rnncore
    from rnncore import optim

    T, B, D = x.shape
    for num_layers, bidirectional in ((1, False), (2, True)):
        model = rnncore.RNN(D, 6, 5, num_layers=num_layers,
                            bidirectional=bidirectional, dtype=dtype, seed=0)
        opts = [optim.SGD(model.params, lr=0.1, momentum=0.9, nesterov=True),
                optim.Adagrad(model.params), optim.Adam(model.params),
                optim.AdamW(model.params)]
        for i, (mode, t) in enumerate((("seq", targets), ("last", targets[-1]))):
            loss, grads, h_n = model.loss_and_grads(x, t, mode=mode,
                                                    lengths=lengths)
            norm = optim.clip_grad_norm(grads, 0.5)
            optim.clip_grad_value(grads, 0.01)
            for opt in opts[2 * i:2 * i + 2]:
                opt.step(grads)
            print("model", num_layers, bidirectional, mode, dtype.__name__,
                  f"{loss:.6f}", f"{norm:.6f}", f"{float(np.sum(h_n)):.6f}",
                  *(f"{float(np.sum(p)):.6f}" for p in model.params.values()))
        ids = rng.integers(0, D, (T, B))
        for mode in ("seq", "last"):
            logits = model.forward(ids, mode=mode, lengths=lengths)
            print("forward", mode, f"{float(np.sum(logits)):.6f}")
        if not bidirectional:
            logits, h = model.step(x[0])
            print("step", f"{float(np.sum(logits)):.6f}", f"{float(np.sum(h)):.6f}")


def parse(xml_path):
    """(fatal errors, other errors) from memcheck's XML report, each as
    (kind, description, frames)."""
    fatal, other = [], []
    for error in ET.parse(xml_path).getroot().iter("error"):
        kind = error.findtext("kind")
        if kind.startswith("Leak_"):
            continue  # what is still allocated at exit: CPython's business
        what = error.findtext("what") or error.findtext("xwhat/text") or ""
        frames = [f"{fr.findtext('fn') or '?'} ({fr.findtext('obj') or '?'}"
                  f"{':' + fr.findtext('line') if fr.findtext('line') else ''})"
                  for fr in error.iter("frame")]
        in_rnncore = any(m in fr for fr in frames for m in RNNCORE_MODULES)
        (fatal if kind in FATAL_KINDS or in_rnncore else other).append(
            (kind, what, frames))
    return fatal, other


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls:
        calls()
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        xml_path = os.path.join(tmp, "memcheck.xml")
        cmd = ["valgrind", "--tool=memcheck", "--track-origins=yes",
               "--num-callers=40", "--error-limit=no", "--xml=yes",
               f"--suppressions={os.path.join(HERE, 'valgrind.supp')}",
               f"--xml-file={xml_path}", sys.executable,
               os.path.abspath(__file__), "--calls"]
        env = dict(os.environ, PYTHONMALLOC="malloc")
        print("running:", " ".join(cmd[:-3]), "python tools/valgrind.py --calls")
        proc = subprocess.run(cmd, env=env)
        fatal, other = parse(xml_path)
    outside = Counter(f"{kind} in {frames[0]}" for kind, _, frames in other)
    for where, n in outside.most_common():
        print(f"outside rnncore (not failing): {n} x {where}")
    for kind, what, frames in fatal:
        print(f"ERROR {kind}: {what}")
        for fr in frames[:15]:
            print("   ", fr)
    print(f"memcheck: {len(fatal)} errors that fail the run, {len(other)} "
          f"outside rnncore; python exit status {proc.returncode}")
    return 1 if fatal or proc.returncode else 0


if __name__ == "__main__":
    sys.exit(main())

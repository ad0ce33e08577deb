"""Property-based tests: random valid calls of every public function agree
with the NumPy reference and leave their inputs alone; random invalid calls
raise ValueError or TypeError naming the culprit.

The calls come from calls.py (shared with tools/fuzz.py), with hypothesis
making every choice: sizes (B, D and H may be 0), dtype, memory layouts
(strided, negative strides, Fortran order, read-only, byte-swapped, nested
lists), lengths in any order, ignore_index, both modes of loss_and_grads,
and for invalid calls which argument to break and how.  A failure shrinks
to a small example whose call is printed.

The number of examples comes from the hypothesis profile (tests/conftest.py):
HYPOTHESIS_PROFILE=ci runs ten times as many as the default.
"""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import note  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import calls  # noqa: E402
import rnncore  # noqa: E402
from rnn_util import PARAM_KEYS, assert_close  # noqa: E402

DTYPES = [np.float32, np.float64]


class DrawChooser:
    """The chooser of calls.py, drawing from hypothesis (so that failures
    shrink: sizes towards 0 or 1, choices towards the first option)."""

    def __init__(self, draw):
        self.draw = draw

    def integer(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def choice(self, options):
        return self.draw(st.sampled_from(options))

    def boolean(self):
        return self.draw(st.booleans())


def _cases():
    for fn in calls.FUNCTIONS:
        modes = ["seq", "last"] if fn == "loss_and_grads" else [None]
        for dtype in DTYPES:
            for mode in modes:
                label = "-".join(filter(None, [fn, np.dtype(dtype).name, mode]))
                yield pytest.param(fn, dtype, mode, id=label)


@pytest.mark.parametrize("fn,dtype,mode", list(_cases()))
@hypothesis.given(data=st.data())
def test_valid_calls_agree_with_reference(fn, dtype, mode, data):
    call = calls.draw_valid(fn, DrawChooser(data.draw), dtype=dtype, mode=mode)
    note(call.describe())
    calls.run_valid(call)


@pytest.mark.parametrize("fn", calls.FUNCTIONS)
@hypothesis.given(data=st.data())
def test_invalid_calls_raise_naming_the_argument(fn, data):
    call, names = calls.draw_invalid(fn, DrawChooser(data.draw))
    note(f"{call.describe()}; the error must name one of {names}")
    calls.run_invalid(call, names)


@pytest.mark.parametrize("mode", ["seq", "last"])
@hypothesis.given(data=st.data())
def test_batch_order_does_not_matter(mode, data):
    """Permuting the sequences of a batch (with their lengths, h0 and
    targets) permutes h_last and leaves the loss and gradients unchanged."""
    call = calls.draw_valid("loss_and_grads", DrawChooser(data.draw), mode=mode)
    c, kw = call.clean, call.kwargs
    B = call.dims["B"]
    perm = np.asarray(data.draw(st.permutations(range(B))), dtype=np.intp)
    note(f"{call.describe()}; permutation {perm}")

    def run(order):
        def pick(a, axis):
            return None if a is None else np.take(a, order, axis=axis)
        targets = pick(c["targets"], 1 if mode == "seq" else 0)
        return rnncore.loss_and_grads(
            {k: c[k] for k in PARAM_KEYS}, pick(c["x"], 1), targets,
            mode=mode, h0=pick(c["h0"], 0), lengths=pick(c["lengths"], 0),
            ignore_index=kw.get("ignore_index", -100))

    loss, grads, h_last = run(np.arange(B))
    loss_p, grads_p, h_last_p = run(perm)
    tol = 1e-5 if call.dtype == np.float32 else 1e-12
    assert loss_p == pytest.approx(loss, rel=tol, abs=tol)
    for k in PARAM_KEYS:
        assert_close(grads_p[k], grads[k], call.dtype, name=k, floor=1.0)
    np.testing.assert_array_equal(h_last_p, h_last[perm])

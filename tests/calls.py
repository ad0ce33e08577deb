"""Random calls of rnncore's public functions, valid and invalid, and the
checks of what they do.

Shared by the property tests (test_properties.py, where hypothesis makes the
choices, so that a failure shrinks to a small example) and the fuzzer
(tools/fuzz.py, where a NumPy generator makes them).  A *chooser* makes every
structural choice (sizes, dtype, memory layouts, optional arguments, which
argument to break and how); the values in the arrays come from a NumPy
generator seeded by the chooser.

A valid call must agree with the NumPy reference (reference.py) within the
dtype's tolerance, return new C-contiguous arrays of the call's dtype and
leave its inputs as they were.  An invalid call must raise ValueError or
TypeError with a message naming the broken argument (or dimension), and
also leave its inputs as they were.
"""
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

import reference as ref
import rnncore
from rnn_util import (
    PARAM_KEYS,
    TOL,
    assert_close,
    fortran,
    random_lengths,
    readonly,
    strided,
)

FUNCTIONS = ("rnn_forward", "rnn_backward", "output_layer",
             "softmax_cross_entropy", "softmax", "log_softmax",
             "loss_and_grads")

# The array arguments of each function, in signature order, with their shapes
# in dimension symbols (targets of loss_and_grads depend on the mode, the
# leading axes of output_layer's hs are chosen per call; the x of softmax
# may have any shape).
SIGNATURES = {
    "rnn_forward": {"x": "TBD", "W_xh": "HD", "W_hh": "HH", "b_h": "H",
                    "h0": "BH", "lengths": "B"},
    "rnn_backward": {"dhs": "TBH", "hs": "TBH", "x": "TBD", "W_xh": "HD",
                     "W_hh": "HH", "h0": "BH", "lengths": "B",
                     "dh_last": "BH"},
    "output_layer": {"hs": "TBH", "W_hy": "CH", "b_y": "C"},
    "softmax_cross_entropy": {"logits": "NC", "targets": "N"},
    "softmax": {"x": None},
    "log_softmax": {"x": None},
    "loss_and_grads": {"x": "TBD", "W_xh": "HD", "W_hh": "HH", "b_h": "H",
                       "W_hy": "CH", "b_y": "C", "h0": "BH", "lengths": "B",
                       "targets": None},
}
INTEGER_ARGS = ("lengths", "targets")
NULLABLE_ARGS = ("dhs", "h0", "lengths", "dh_last")  # may be None
OMITTABLE_ARGS = ("h0", "lengths", "dh_last")  # have a default
# Arguments with any number of leading axes (at least one axis in all): one
# of another number of axes is valid, only a scalar is not.
LEADING_AXES_ARGS = {("output_layer", "hs")}
# Dimensions a function accepts empty, which _break_dimension must not empty.
EMPTY_OK = {"output_layer": "TC"}
BLAS_DIMS = "BDHCN"
BLAS_INT_MAX = 2**31 - 1

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INT_DTYPES = tuple(np.dtype(d) for d in (
    np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, ">i4", ">u8"))
FLOAT_LAYOUTS = ("contiguous", "strided", "fortran", "readonly", "reversed",
                 "byteswapped", "list")
INT_LAYOUTS = ("contiguous", "strided", "reversed", "readonly", "list")

# Wrong dtypes for float arguments and for integer ones.
BAD_FLOAT_DTYPES = ("int64", "int32", "uint8", "bool", "float16",
                    "longdouble", "complex64", "complex128", "object", "U3",
                    "M8[s]")
BAD_INT_DTYPES = ("float64", "float32", "float16", "bool", "complex128",
                  "object", "U3", "m8[s]")
RAGGED = [[1.0, 2.0], [3.0]]


class RandomChooser:
    """Choices from a NumPy generator."""

    def __init__(self, rng):
        self.rng = rng

    def integer(self, lo, hi):
        """An integer in [lo, hi]."""
        return int(self.rng.integers(lo, hi, endpoint=True))

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    def boolean(self):
        return bool(self.rng.integers(2))


@dataclass
class Call:
    """One call of a public function: ``getattr(rnncore, fn)(**kwargs)``.

    ``symbols`` gives the shape of each array argument in dimension symbols,
    ``dims`` their sizes; ``clean`` holds the values of a valid call as plain
    arrays of the call's dtype, for the reference.
    """
    fn: str
    kwargs: dict
    dims: dict
    symbols: dict
    dtype: np.dtype
    clean: dict = field(default=None, repr=False)

    def get(self, name):
        if self.fn == "loss_and_grads" and name in PARAM_KEYS:
            return self.kwargs["params"][name]
        return self.kwargs.get(name)

    def replace(self, **changes):
        """A new (invalid) call with some arguments replaced."""
        kwargs = dict(self.kwargs)
        if self.fn == "loss_and_grads":
            kwargs["params"] = dict(kwargs["params"])
        for name, value in changes.items():
            if self.fn == "loss_and_grads" and name in PARAM_KEYS:
                kwargs["params"][name] = value
            else:
                kwargs[name] = value
        return Call(self.fn, kwargs, self.dims, self.symbols, self.dtype)

    def arrays(self):
        """Names of the array arguments (params' keys for loss_and_grads)."""
        return list(self.symbols)

    def run(self):
        return getattr(rnncore, self.fn)(**self.kwargs)

    def describe(self):
        parts = [f"{k}={_describe(v)}" for k, v in self.kwargs.items()]
        return f"{self.fn}({', '.join(parts)})"


def _describe(value):
    if isinstance(value, np.ndarray):
        flags = [] if value.flags.c_contiguous else ["non-contiguous"]
        if not value.flags.writeable:
            flags.append("read-only")
        kind = type(value).__name__
        return f"{kind}{value.shape}:{value.dtype.str}" + (
            f"[{','.join(flags)}]" if flags else "")
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k!r}: {_describe(v)}" for k, v in value.items())
        return f"{type(value).__name__}({{{inner}}})"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------
# Valid calls
# ---------------------------------------------------------------------------

def _seeded_rng(choose):
    return np.random.default_rng(choose.integer(0, 2**32 - 1))


def _layout(choose, arr):
    """arr in a memory layout chosen from FLOAT_LAYOUTS / INT_LAYOUTS: the
    same values, as another kind of array or as a nested list."""
    is_float = arr.dtype.kind == "f"
    kind = choose.choice(FLOAT_LAYOUTS if is_float else INT_LAYOUTS)
    if kind == "strided":
        return strided(arr)
    if kind == "fortran":
        return fortran(arr)
    if kind == "readonly":
        return readonly(arr)
    if kind == "reversed":  # negative strides on every axis
        flip = (slice(None, None, -1),) * arr.ndim
        return np.ascontiguousarray(arr[flip])[flip]
    if kind == "byteswapped":
        return arr.astype(arr.dtype.newbyteorder())
    # a nested list keeps shape and values only when NumPy reads it back as
    # this dtype (Python floats are float64) and no inner axis is empty
    if (kind == "list" and 0 not in arr.shape[:-1]
            and (arr.dtype == np.float64 or not is_float)):
        return arr.tolist()
    return arr.copy()


def _int_array(choose, values):
    """values in an integer dtype able to hold them."""
    lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
    fits = [d for d in INT_DTYPES
            if np.iinfo(d).min <= lo and hi <= np.iinfo(d).max]
    return values.astype(choose.choice(fits))


def _floats(rng, dtype, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _with_non_finite(choose, rng, arr):
    """A copy of arr with NaN, +inf or -inf at a few places (when it has any)."""
    arr = arr.copy()
    if arr.size:
        for _ in range(choose.integer(1, 3)):
            arr.flat[rng.integers(arr.size)] = choose.choice(
                (np.nan, np.inf, -np.inf))
    return arr


def _recurrence_values(choose, rng, dims, dtype, backward):
    """Clean arrays for rnn_forward / rnn_backward / loss_and_grads."""
    T, B, D, H = (dims[s] for s in "TBDH")
    clean = {
        "x": _floats(rng, dtype, (T, B, D)),
        "W_xh": _floats(rng, dtype, (H, D), 1 / np.sqrt(max(D, 1))),
        "W_hh": _floats(rng, dtype, (H, H), 1 / np.sqrt(max(H, 1))),
        "b_h": _floats(rng, dtype, (H,), 0.5),
        "h0": (np.tanh(_floats(rng, dtype, (B, H))) if choose.boolean()
               else None),
        "lengths": (_int_array(choose, random_lengths(rng, T, B))
                    if choose.boolean() else None),
    }
    if backward:
        clean["hs"] = np.tanh(_floats(rng, dtype, (T, B, H)))
        clean["dhs"] = (_floats(rng, dtype, (T, B, H)) if choose.boolean()
                        else None)
        clean["dh_last"] = (_floats(rng, dtype, (B, H)) if choose.boolean()
                            else None)
    return clean


def _ignore_index(choose, C):
    """None (the default, -100) or a value: negative, a class id, or huge."""
    return choose.choice((None, -100, -1, C - 1, 2**62))


def _targets(choose, rng, shape, C, ignore_index):
    targets = rng.integers(0, C, size=shape)
    if ignore_index is not None or choose.boolean():
        value = -100 if ignore_index is None else ignore_index
        targets[rng.random(shape) < 0.3] = value
    return _int_array(choose, targets)


def draw_valid(fn, choose, dtype=None, mode=None):
    """A valid call of rnncore.<fn>, every choice made by ``choose`` except
    the dtype and the mode of loss_and_grads when given."""
    rng = _seeded_rng(choose)
    dtype = choose.choice(FLOAT_DTYPES) if dtype is None else np.dtype(dtype)
    dims = {"T": choose.integer(1, 5), "B": choose.integer(0, 4),
            "D": choose.integer(0, 4), "H": choose.integer(0, 5),
            "C": choose.integer(1, 5)}
    extra = {}
    symbols = dict(SIGNATURES[fn])
    if fn in ("rnn_forward", "rnn_backward", "loss_and_grads"):
        clean = _recurrence_values(choose, rng, dims, dtype,
                                   backward=fn == "rnn_backward")
        if fn == "rnn_forward" and choose.boolean():
            # NaN and inf propagate through the recurrence as through the
            # reference.  Not through the weights: without h0 the kernel
            # skips the product with the zero initial state, so a NaN in
            # W_hh does not reach hs[0] as it does in the reference (0·NaN).
            for name in ("x", "b_h", "h0"):
                if clean[name] is not None and choose.boolean():
                    clean[name] = _with_non_finite(choose, rng, clean[name])
        if fn == "loss_and_grads":
            C = dims["C"]
            clean["W_hy"] = _floats(rng, dtype, (C, dims["H"]),
                                    1 / np.sqrt(max(dims["H"], 1)))
            clean["b_y"] = _floats(rng, dtype, (C,), 0.5)
            mode = choose.choice(("seq", "last")) if mode is None else mode
            symbols["targets"] = "TB" if mode == "seq" else "B"
            ignore_index = _ignore_index(choose, C)
            clean["targets"] = _targets(
                choose, rng, tuple(dims[s] for s in symbols["targets"]), C,
                ignore_index)
            extra["mode"] = mode
            if ignore_index is not None:
                extra["ignore_index"] = ignore_index
    elif fn == "output_layer":
        # hs (T, B, H), (B, H) or (H,); any number of rows, C = 0 included
        symbols["hs"] = choose.choice(("TBH", "BH", "H"))
        dims["T"], dims["C"] = choose.integer(0, 3), choose.integer(0, 5)
        H, C = dims["H"], dims["C"]
        clean = {"hs": np.tanh(_floats(rng, dtype, tuple(
                     dims[s] for s in symbols["hs"]))),
                 "W_hy": _floats(rng, dtype, (C, H), 1 / np.sqrt(max(H, 1))),
                 "b_y": _floats(rng, dtype, (C,), 0.5)}
        if choose.boolean():
            name = choose.choice(("hs", "b_y"))
            clean[name] = _with_non_finite(choose, rng, clean[name])
    elif fn == "softmax_cross_entropy":
        dims = {"N": choose.integer(0, 6), "C": dims["C"]}
        scale = choose.choice((1.0, 30.0))
        clean = {"logits": _floats(rng, dtype, (dims["N"], dims["C"]), scale)}
        if choose.boolean():
            clean["logits"] = _with_non_finite(choose, rng, clean["logits"])
        ignore_index = _ignore_index(choose, dims["C"])
        clean["targets"] = _targets(choose, rng, (dims["N"],), dims["C"],
                                    ignore_index)
        if ignore_index is not None:
            extra["ignore_index"] = ignore_index
    else:  # softmax, log_softmax
        shape = tuple(choose.integer(0, 4) for _ in range(choose.integer(1, 3)))
        dims = {}
        clean = {"x": _floats(rng, dtype, shape, choose.choice((1.0, 30.0)))}
        if choose.boolean():
            clean["x"] = _with_non_finite(choose, rng, clean["x"])
        if choose.boolean():
            extra["axis"] = choose.integer(-len(shape), len(shape) - 1)

    used = "".join(syms for syms in symbols.values() if syms)
    dims = {s: size for s, size in dims.items() if s in used}
    given = {name: (None if clean.get(name) is None
                    else _layout(choose, clean[name]))
             for name in symbols}
    kwargs = {}
    if fn == "loss_and_grads":
        params = {k: given.pop(k) for k in PARAM_KEYS}
        kwargs["params"] = (types.MappingProxyType(params) if choose.boolean()
                            else params)
    for name, value in given.items():
        if value is not None or name not in OMITTABLE_ARGS or choose.boolean():
            kwargs[name] = value  # optional arguments: None or left out
    kwargs.update(extra)
    return Call(fn, kwargs, dims, symbols, dtype, clean=clean)


# ---------------------------------------------------------------------------
# Checking valid calls
# ---------------------------------------------------------------------------

def _check_array(name, got, want, dtype):
    assert type(got) is np.ndarray, (name, type(got))
    assert got.dtype == dtype, (name, got.dtype, dtype)
    assert got.flags.c_contiguous and got.flags.writeable, name
    # The sums behind these results have terms of order one: one whose terms
    # cancel (a weight gradient near 0, 1 - p for p ~ 1) keeps an absolute
    # error of that order times the rounding, hence the floor of 1.
    assert_close(got, want, dtype, name=name, floor=1.0)


def _reference(call):
    """The reference's results, in the order rnncore returns them, with
    the name of each."""
    c, kw = call.clean, call.kwargs
    if call.fn == "rnn_forward":
        return {"hs": ref.forward(c["x"], c["W_xh"], c["W_hh"], c["b_h"],
                                  c["h0"], c["lengths"])}
    if call.fn == "rnn_backward":
        want = ref.backward(c["dhs"], c["hs"], c["x"], c["W_xh"], c["W_hh"],
                            c["h0"], c["lengths"], c["dh_last"])
        return {k: want[k] for k in rnncore.RNNGrads._fields}
    if call.fn == "output_layer":
        return {"logits": ref.output_layer(c["hs"], c["W_hy"], c["b_y"])}
    ignore_index = kw.get("ignore_index", -100)
    if call.fn == "softmax_cross_entropy":
        loss, dlogits = ref.cross_entropy(c["logits"], c["targets"],
                                          ignore_index)
        return {"loss": loss, "dlogits": dlogits}
    if call.fn in ("softmax", "log_softmax"):
        x = c["x"]
        if x.size == 0:
            return {call.fn: np.zeros(x.shape)}
        return {call.fn: getattr(ref, call.fn)(x, kw.get("axis", -1))}
    loss, grads, h_last, _ = ref.loss_and_grads(
        c, c["x"], c["targets"], kw["mode"], c["h0"], c["lengths"],
        ignore_index)
    return {"loss": loss, **{"d" + k: grads[k] for k in PARAM_KEYS},
            "h_last": h_last}


def _results(call, result):
    """rnncore's results as a flat {name: value}, checking their types."""
    if call.fn == "rnn_backward":
        assert type(result) is rnncore.RNNGrads
        return result._asdict()
    if call.fn == "softmax_cross_entropy":
        loss, dlogits = result
        return {"loss": loss, "dlogits": dlogits}
    if call.fn == "loss_and_grads":
        loss, grads, h_last = result
        assert type(grads) is dict and list(grads) == list(PARAM_KEYS)
        return {"loss": loss, **{"d" + k: v for k, v in grads.items()},
                "h_last": h_last}
    name = {"rnn_forward": "hs", "output_layer": "logits"}.get(call.fn, call.fn)
    return {name: result}


def _input_arrays(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _input_arrays(v)


def check_result(call, result):
    """Asserts that ``result`` of the valid ``call`` is right."""
    got = _results(call, result)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf inputs
        want = _reference(call)
    assert list(got) == list(want), (list(got), list(want))
    outputs = []
    for name, value in got.items():
        if name == "loss":
            # a mean of log-probabilities: its error is absolute, of the
            # order of the dtype's rounding, however small the loss
            assert type(value) is float, type(value)
            tol = TOL[call.dtype]
            np.testing.assert_allclose(value, want[name], rtol=tol, atol=tol,
                                       err_msg=name)
        else:
            _check_array(name, value, want[name], call.dtype)
            outputs.append(value)
    # every output is a new array: no view of an input, nor of another output
    inputs = list(_input_arrays(call.kwargs))
    for i, out in enumerate(outputs):
        for other in inputs + outputs[:i]:
            assert not np.shares_memory(out, other), call.describe()


def _snapshot(value):
    if isinstance(value, np.ndarray):
        # the zero-stride views of _break_blas_limit are read-only and far
        # too big to copy: compared by identity only
        return value.copy() if value.nbytes <= 2**20 else value
    if isinstance(value, Mapping):
        return {k: _snapshot(v) for k, v in value.items()}
    return repr(value)  # lists and scalars, compared by their exact repr


def _assert_unchanged(before, after, name):
    if isinstance(before, np.ndarray):
        assert isinstance(after, np.ndarray), name
        if before is after:
            return
        assert before.dtype == after.dtype and before.shape == after.shape, name
        assert np.array_equal(before, after, equal_nan=before.dtype.kind in "fc"), (
            f"{name} was modified")
    elif isinstance(before, dict):
        assert list(before) == list(after), f"{name} keys changed"
        for k in before:
            _assert_unchanged(before[k], after[k], f"{name}[{k!r}]")
    else:
        assert before == repr(after), f"{name} was modified"


def run_valid(call):
    """Runs a valid call and checks its results and that its inputs are
    unchanged."""
    before = {k: _snapshot(v) for k, v in call.kwargs.items()}
    result = call.run()
    for k in before:
        _assert_unchanged(before[k], call.kwargs[k], k)
    check_result(call, result)
    return result


# ---------------------------------------------------------------------------
# Invalid calls
# ---------------------------------------------------------------------------

def _expected_shape(call, name):
    value = call.get(name)
    if call.symbols[name] is None:
        return np.shape(value)
    return tuple(call.dims[s] for s in call.symbols[name])


def _present_floats(call):
    return [n for n in call.arrays()
            if n not in INTEGER_ARGS and call.get(n) is not None]


def _bound_axes(call, name):
    """The axes of argument `name` whose size another present argument (or
    another axis of the same one) also fixes: changing one is a mismatch."""
    syms = call.symbols[name] or ""
    elsewhere = "".join(call.symbols[n] for n in call.arrays()
                        if n != name and call.symbols[n]
                        and call.get(n) is not None)
    return [axis for axis, s in enumerate(syms)
            if s in elsewhere or syms.count(s) > 1]


def _zeros(call, name, shape):
    dtype = np.int64 if name in INTEGER_ARGS else call.dtype
    return np.zeros(shape, dtype)


def _break_ndim(call, choose, name):
    shape = _expected_shape(call, name)
    if call.symbols[name] is None or (call.fn, name) in LEADING_AXES_ARGS:
        # any number of axes but none: only a scalar is wrong
        return call.replace(**{name: np.zeros((), call.dtype)}), [name]
    shape = (*shape, 1) if choose.boolean() or not shape else shape[:-1]
    return call.replace(**{name: _zeros(call, name, shape)}), [name]


def _break_size(call, choose, name):
    axes = _bound_axes(call, name)
    if not axes:
        return None
    shape = list(_expected_shape(call, name))
    shape[choose.choice(axes)] += 1
    return call.replace(**{name: _zeros(call, name, tuple(shape))}), [name]


def _break_dtype(call, choose, name):
    shape = _expected_shape(call, name)
    bad = BAD_INT_DTYPES if name in INTEGER_ARGS else BAD_FLOAT_DTYPES
    if name in INTEGER_ARGS and 0 in shape:
        # an empty float array holds no non-integer (it is what np.asarray
        # makes of an empty list), so it is accepted as integers
        bad = [d for d in bad if np.dtype(d).kind != "f"]
    dtype = np.dtype(choose.choice(bad))
    value = np.zeros(shape, dtype)
    if dtype.kind == "f" and value.size and choose.boolean():
        value.flat[0] = choose.choice((np.nan, np.inf))  # float lengths/targets
    return call.replace(**{name: value}), [name]


def _break_mixed(call, choose, name):
    if name in INTEGER_ARGS or len(_present_floats(call)) < 2:
        return None
    other = next(d for d in FLOAT_DTYPES if d != call.dtype)
    value = np.zeros(_expected_shape(call, name), other)
    return call.replace(**{name: value}), [name]


def _break_kind(call, choose, name):
    """Not an array of numbers: None (if required), text, a ragged list, a
    mapping, a masked array."""
    options = ["text", "ragged", "mapping", "masked"]
    if name not in NULLABLE_ARGS:
        options.append("none")
    kind = choose.choice(options)
    value = {"none": None, "text": "abc", "ragged": RAGGED, "mapping": {},
             "masked": None}[kind]
    if kind == "masked":
        value = np.ma.masked_array(_zeros(call, name, _expected_shape(call, name)))
    return call.replace(**{name: value}), [name]


ARGUMENT_BREAKERS = (_break_ndim, _break_size, _break_dtype, _break_mixed,
                     _break_kind)


def _break_lengths(call, choose):
    T, B = call.dims.get("T"), call.dims.get("B")
    if "lengths" not in call.symbols or not B:
        return None
    lengths = np.full(B, T, np.int64)
    lengths[choose.integer(0, B - 1)] = choose.choice((0, -1, T + 1, 2**40))
    return call.replace(lengths=lengths), ["lengths"]


def _break_targets(call, choose):
    targets = call.get("targets")
    if targets is None or np.size(targets) == 0:
        return None
    targets = np.array(targets, dtype=np.int64)  # also from a nested list
    ignore_index = call.kwargs.get("ignore_index", -100)
    C = call.dims["C"]
    bad = [v for v in (C, C + 3, -1, -2**40, 2**40) if v != ignore_index]
    # position 0 of every sequence is active whatever the lengths
    targets.flat[0] = choose.choice(bad)
    return call.replace(targets=targets), ["targets"]


def _break_dimension(call, choose):
    """T = 0 or C = 0 across every argument carrying it."""
    zeroable = [s for s in "TC" if s in call.dims
                and s not in EMPTY_OK.get(call.fn, "")]
    if not zeroable:
        return None
    sym = choose.choice(zeroable)
    changes, names = {}, [sym]
    for name in call.arrays():
        value, syms = call.get(name), call.symbols[name]
        if value is None or sym not in syms:
            continue
        index = tuple(slice(0, 0) if s == sym else slice(None) for s in syms)
        changes[name] = np.asarray(value)[index]
        names.append(name)
    return call.replace(**changes), names


def _no_rows_without(call, name, sym):
    """Whether a leading axis `sym` of an argument of LEADING_AXES_ARGS shares
    it with an empty one: its rows stay 0 however long that axis is."""
    lead = (call.symbols[name] or "")[:-1]
    return ((call.fn, name) in LEADING_AXES_ARGS and sym in lead
            and any(call.dims[s] == 0 for s in lead if s != sym))


def _break_blas_limit(call, choose):
    """A BLAS dimension of 2**31, in a zero-stride view of the argument that
    carries it (copying that view first would need gigabytes)."""
    options = [(name, s) for name in call.arrays()
               for s in (call.symbols[name] or "")
               if s in BLAS_DIMS and call.symbols[name].count(s) == 1
               and call.get(name) is not None and name not in INTEGER_ARGS
               and not _no_rows_without(call, name, s)]
    if not options:
        return None
    name, sym = choose.choice(options)
    shape = tuple(BLAS_INT_MAX + 1 if s == sym else call.dims[s]
                  for s in call.symbols[name])
    value = np.broadcast_to(np.zeros((), call.dtype), shape)
    return call.replace(**{name: value}), [name, sym]


def _break_scalar_argument(call, choose):
    """ignore_index, mode, axis or params of the wrong type or value."""
    options = []
    if call.fn in ("softmax_cross_entropy", "loss_and_grads"):
        options.append(("ignore_index", (1.5, float("nan"), "-100", None, True,
                                         2**63, -2**63 - 1, np.array([-1]))))
    if call.fn == "loss_and_grads":
        options.append(("mode", ("bogus", "SEQ", None, 1, np.array("seq"),
                                 np.array(["seq", "last"]))))
        options.append(("params", (None, [], "W_xh")))
    if call.fn in ("softmax", "log_softmax"):
        ndim = len(_expected_shape(call, "x"))
        options.append(("axis", (ndim, -ndim - 1, 2**70, 0.0, None, "0", True,
                                 (0,))))
    if not options:
        return None
    name, values = choose.choice(options)
    return call.replace(**{name: choose.choice(values)}), [name]


def _break_params_keys(call, choose):
    if call.fn != "loss_and_grads":
        return None
    params = dict(call.kwargs["params"])
    key = choose.choice(PARAM_KEYS)
    if choose.boolean():
        del params[key]
    else:
        key = choose.choice(("W_yh", "b_hh", "w_xh", "bias"))
        params[key] = np.zeros(1, call.dtype)
    broken = call.replace()
    broken.kwargs["params"] = params
    return broken, [key]


CALL_BREAKERS = (_break_lengths, _break_targets, _break_dimension,
                 _break_blas_limit, _break_scalar_argument, _break_params_keys)


def draw_invalid(fn, choose):
    """An invalid call of rnncore.<fn> and the names (of arguments or
    dimensions) of which its error message must mention at least one.

    A breaker that does not apply to the call returns None without making
    a choice; the next one is tried, so the choices stay few (and the
    smallest example hypothesis starts from stays small).
    """
    call = draw_valid(fn, choose)
    by_argument = [(breaker, name) for name in call.arrays()
                   for breaker in ARGUMENT_BREAKERS]
    whole_call = [(breaker, None) for breaker in CALL_BREAKERS]
    groups = [by_argument, whole_call]
    if choose.boolean():
        groups.reverse()
    for group in groups:
        start = choose.integer(0, len(group) - 1)
        for breaker, name in group[start:] + group[:start]:
            broken = (breaker(call, choose) if name is None
                      else breaker(call, choose, name))
            if broken is not None:
                return broken
    raise AssertionError(f"no way to break {call.describe()}")


def names_pattern(names):
    """A regex matching any of the names as a whole word (so "hs" does not
    match inside "dhs", nor "x" inside "W_xh")."""
    return "|".join(r"(?<![A-Za-z0-9_])" + re.escape(n) + r"(?![A-Za-z0-9_])"
                    for n in names)


def run_invalid(call, names):
    """Runs an invalid call: it must raise ValueError or TypeError whose
    message names one of ``names``, and leave its inputs unchanged.
    Returns the exception."""
    before = {k: _snapshot(v) for k, v in call.kwargs.items()}
    try:
        call.run()
    except (ValueError, TypeError) as exc:
        error = exc
    else:
        raise AssertionError(f"no error from {call.describe()}")
    assert re.search(names_pattern(names), str(error)), (
        f"{type(error).__name__}: {error!s:.300} -- names none of {names}; "
        f"{call.describe()}")
    for k in before:
        _assert_unchanged(before[k], call.kwargs[k], k)
    return error

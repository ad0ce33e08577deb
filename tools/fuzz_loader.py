"""Feed ``rnncore.load`` thousands of damaged model files.

    python tools/fuzz_loader.py --cases 5000 [--seed 0] [--memory-mb 512]

Valid files of several configurations, most with the state of a real
optimiser after two steps (SGD with momentum, Adagrad, Adam, AdamW) or a
generic flat state, are truncated, bit-flipped (raw, or inside a member with
the zip's checksums recomputed), given swapped, missing, extra, duplicated
or compressed members, lying configurations, lying ``.npy`` headers (giant
shapes, object and other dtypes), pickled object arrays whose unpickling
would create a marker file, or replaced by random bytes.  Every case must
end in one of:

- ``rnncore.ModelFileError``;
- a loaded model whose configuration is the one the file declares and whose
  parameters pass the model's own checks and run (a flip inside parameter
  values, say, is harmless to the loader); with the state of an rnncore
  optimiser, a new optimiser of that class over the loaded parameters then
  either takes the state and steps, or refuses it with ValueError or
  TypeError ("state refused": a flip inside a state value, say).

Anything else is a failure: another exception, a MemoryError under the
address-space limit this script sets (an attempt to allocate what the file
merely claims), or a crash.  The pickle marker must never appear.  Exits
with status 1 on any failure.  The rnncore tested is the one Python imports
(``PYTHONPATH=.`` from a source tree built in place).
"""
import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections import Counter
from functools import partial

import numpy as np

import rnncore

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "tests")
sys.path.insert(0, TESTS)
from model_files import (  # noqa: E402  (tests/model_files.py)
    Pickled,
    build_zip,
    header_of,
    members,
    npy_bytes,
    npy_header_text,
    npy_raw,
    split_npy,
    with_header,
)


class FlatState:
    """Stands in for any optimiser: a flat state of every kind save takes."""

    def __init__(self, params):
        self.state = {"step": 3, "lr": 0.01, "nesterov": True, "name": "flat",
                      "beta": np.float32(0.9), "count": np.int16(2),
                      **{f"m.{k}": np.full_like(v, 0.5) for k, v in params.items()}}

    def state_dict(self):
        return self.state


CONFIGS = [  # (constructor kwargs, optimiser over the params whose state is saved)
    (dict(input_size=3, hidden_size=4, output_size=5), None),
    (dict(input_size=2, hidden_size=3, output_size=2, num_layers=2, bidirectional=True,
          dtype="float64"), partial(rnncore.Adam, lr=0.01, betas=(0.8, 0.99))),
    (dict(input_size=4, hidden_size=5, output_size=3, num_layers=3,
          recurrent_init="orthogonal"),
     partial(rnncore.SGD, lr=0.1, momentum=0.9, nesterov=True)),
    (dict(input_size=1, hidden_size=1, output_size=1),
     partial(rnncore.Adagrad, lr_decay=0.01)),
    (dict(input_size=8, hidden_size=16, output_size=8, dtype="float64"),
     partial(rnncore.AdamW, weight_decay=0.1)),
    (dict(input_size=2, hidden_size=2, output_size=3), FlatState),
]
OPTIMIZERS = {cls.__name__: cls for cls in (rnncore.SGD, rnncore.Adagrad, rnncore.Adam,
                                            rnncore.AdamW)}
# values a lying configuration or header takes
LIES = [0, 1, 2, 3, -1, 7, 2**31 - 1, 2**31, 2**63, 10**12, 10**100, 1.0, 4.5, True,
        False, None, "", "4", "float16", "float64", "float32", "object", "xavier",
        [], [4], {}, {"a": 1}, float("nan")]
NPY_DESCRS = ["<f4", "<f8", ">f4", ">f8", "|O", "<f2", "|u1", "<i8", "|b1", "<c8",
              "|V8", "<U4", "<M8[s]", [("a", "<f4")], ("<f4", (2,)), "<f16"]
NPY_SHAPES = [(), (0,), (1,), (4,), (4, 4), (3, 4), (4, 3), (5, 8), (-1, 4),
              (10**6, 10**6), (2**62,), (2**31, 2**31), (10**12, 0), (1,) * 40,
              (2**64,)]


# ---- building files --------------------------------------------------------

def valid_file(config, make_optimizer, seed):
    """A model file, with the state of ``make_optimizer(params)`` after two
    steps of random gradients (if given)."""
    model = rnncore.RNN(**config, seed=seed)
    opt = None if make_optimizer is None else make_optimizer(model.params)
    if hasattr(opt, "step"):  # a real optimiser (not FlatState)
        rng = np.random.default_rng(seed)
        for _ in range(2):
            opt.step({k: rng.standard_normal(v.shape).astype(v.dtype)
                      for k, v in model.params.items()})
    buf = io.BytesIO()
    rnncore.save(model, buf, optimizer=opt)
    return buf.getvalue()


# ---- mutations: each maps (rng, valid file) to damaged bytes ----------------

def truncate(rng, data, ctx):
    return data[:rng.integers(0, len(data))]


def flip_raw(rng, data, ctx):
    out = bytearray(data)
    for pos in rng.integers(0, len(out), rng.integers(1, 9)):
        out[pos] ^= 1 << int(rng.integers(8))
    return bytes(out)


def flip_member(rng, data, ctx):
    """Bit flips inside one member, with valid checksums: anywhere in the
    member, or only in its payload (then a parameter's values change)."""
    items = members(data)
    i = int(rng.integers(len(items)))
    name, member = items[i]
    start = split_npy(member)[0] if rng.random() < 0.5 else 0
    if start >= len(member):
        start = 0
    out = bytearray(member)
    for pos in rng.integers(start, len(out), rng.integers(1, 5)):
        out[pos] ^= 1 << int(rng.integers(8))
    items[i] = name, bytes(out)
    return build_zip(items)


def swap_members(rng, data, ctx):
    items = members(data)
    i, j = rng.choice(len(items), 2, replace=False)
    (a, pa), (b, pb) = items[i], items[j]
    items[i], items[j] = (a, pb), (b, pa)
    return build_zip(items)


def edit_members(rng, data, ctx):
    """A member dropped, added, duplicated or renamed."""
    items = members(data)
    i = int(rng.integers(len(items)))
    action = rng.integers(5)
    if action == 0:
        del items[i]
    elif action == 1:
        extra = npy_bytes(np.zeros(int(rng.integers(0, 5)), np.float32))
        items.insert(i, (rng.choice(["params/extra.npy", "optimizer/x.npy", "junk.npy",
                                     "notes.txt", "params/W_hy.npy/"]), extra))
    elif action == 2:
        items.insert(int(rng.integers(len(items) + 1)), items[i])
    elif action == 3:
        items[i] = items[i][0].replace(".npy", ""), items[i][1]
    else:
        items[i] = items[i][0].replace("_l0", "_l7"), items[i][1]
    return build_zip(items)


def compress(rng, data, ctx):
    method = [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
              zipfile.ZIP_LZMA][rng.integers(3)]
    return build_zip(members(data), method)


def lie_config(rng, data, ctx):
    """The header JSON edited: a config or header value replaced, a key
    dropped or added, or the text made invalid."""
    items = members(data)
    header = header_of(items)
    target = header["config"] if rng.random() < 0.7 else header
    key = str(rng.choice(sorted(target)))
    action = rng.integers(8)
    if action <= 4:
        target[key] = LIES[rng.integers(len(LIES))]
    elif action == 5:
        del target[key]
    elif action == 6:
        target["unknown" if rng.random() < 0.5 else "seed"] = 1
    else:
        text = [b"{", b"[" * 100000, b"\xff\xfe", b"null",
                b'{"format": "rnncore-model"}', b"",
                json.dumps(header).encode()[:-1]][rng.integers(7)]
        return build_zip(with_header(items, text))
    return build_zip(with_header(items, json.dumps(header).encode()))


def lie_npy_header(rng, data, ctx):
    """One member's .npy header rewritten (dtype, shape, order), keeping its
    payload, or with a payload as long as the new header says."""
    items = members(data)
    i = int(rng.integers(len(items)))
    name, member = items[i]
    _, payload = split_npy(member)
    descr = NPY_DESCRS[rng.integers(len(NPY_DESCRS))]
    shape = NPY_SHAPES[rng.integers(len(NPY_SHAPES))]
    if rng.random() < 0.3:
        shape = tuple(int(n) for n in rng.integers(0, 9, rng.integers(0, 4)))
    if rng.random() < 0.3 and all(0 <= n < 100 for n in shape):
        try:
            nbytes = int(np.prod(shape)) * np.dtype(descr).itemsize
            payload = rng.bytes(nbytes)
        except TypeError:
            pass
    text = npy_header_text(descr, shape, bool(rng.random() < 0.2))
    if rng.random() < 0.1:  # not a literal dict, or not even text
        text = ["{'descr': '<f4', 'shape': (3,)}", "[1, 2]", "__import__('os')",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}",
                "(" * 5000, "\x00\xff", "{[1]: 2}", "-" * 5000 + "1",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3L,)}"
                ][rng.integers(9)]
    items[i] = name, npy_raw(text, payload)
    return build_zip(items)


def pickled(rng, data, ctx):
    """A member (or the whole file) replaced by a pickled object array."""
    obj = np.array([Pickled(ctx["marker"]), 1], dtype=object)
    payload = npy_bytes(obj, allow_pickle=True)
    if rng.random() < 0.2:
        return payload  # a bare .npy file
    items = members(data)
    i = int(rng.integers(len(items)))
    items[i] = items[i][0], payload
    return build_zip(items)


def random_bytes(rng, data, ctx):
    junk = rng.bytes(int(rng.integers(0, 4096)))
    prefix = [b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00"][rng.integers(4)]
    return prefix + junk


def splice(rng, data, ctx):
    """Two files joined, or bytes inserted in the middle."""
    if rng.random() < 0.5:
        return data + ctx["other"]
    pos = int(rng.integers(len(data)))
    return data[:pos] + rng.bytes(int(rng.integers(1, 64))) + data[pos:]


MUTATIONS = [truncate, flip_raw, flip_member, swap_members, edit_members, compress,
             lie_config, lie_npy_header, pickled, random_bytes, splice]


# ---- running ------------------------------------------------------------------

def declared_config(data):
    """The config a loadable file declares (read here independently)."""
    return header_of(members(data))["config"]


def check_loaded(loaded, data):
    """(outcome, why a loaded model or state is wrong or None) of what
    ``load(..., return_optimizer_state=True)`` returned."""
    model, state = loaded
    if not isinstance(model, rnncore.RNN):
        return "FAILED", f"load returned {type(model).__name__}"
    if model.config != declared_config(data):
        return "FAILED", f"config {model.config} differs from the file's"
    model._check_params()
    x = np.zeros((2, 1, model.input_size), model.dtype)
    if model.forward(x).shape != (2, 1, model.output_size):
        return "FAILED", "forward gave the wrong shape"
    if not (state is None or isinstance(state, dict)):
        return "FAILED", f"the optimiser state is a {type(state).__name__}"
    name = state.get("optimizer") if state else None
    cls = OPTIMIZERS.get(name) if isinstance(name, str) else None
    if cls is None:
        return "loaded", None
    opt = cls(model.params, lr=0.1)
    try:
        opt.load_state_dict(state)
    except (ValueError, TypeError):
        return "state refused", None
    opt.step({k: np.zeros_like(v) for k, v in model.params.items()})
    return "loaded", None


def limit_memory(megabytes):
    """Cap the address space at what is mapped now plus ``megabytes``."""
    import resource  # POSIX only

    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    limit = vm * 1024 + megabytes * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit


def run(cases, seed, memory_mb):
    rng = np.random.default_rng(seed)
    files = [valid_file(cfg, opt, i) for i, (cfg, opt) in enumerate(CONFIGS)]
    for data in files:  # the originals load, and warm up BLAS's buffers
        loaded = rnncore.load(io.BytesIO(data), return_optimizer_state=True)
        assert check_loaded(loaded, data) == ("loaded", None)
    limit = limit_memory(memory_mb) if sys.platform.startswith("linux") else None

    tmp = tempfile.mkdtemp(prefix="rnncore-fuzz-")
    marker = os.path.join(tmp, "pickle-payload-ran")
    outcomes = Counter()
    failures = []
    start = time.perf_counter()
    slowest = 0.0
    for case in range(cases):
        mutate = MUTATIONS[case % len(MUTATIONS)]
        i = int(rng.integers(len(files)))
        ctx = {"marker": marker, "other": files[(i + 1) % len(files)]}
        data = mutate(rng, files[i], ctx)
        t0 = time.perf_counter()
        try:
            outcome, problem = check_loaded(
                rnncore.load(io.BytesIO(data), return_optimizer_state=True), data)
        except rnncore.ModelFileError:
            outcome = "refused"
        except BaseException as exc:
            outcome = "FAILED"
            failures.append((case, mutate.__name__, "".join(
                traceback.format_exception_only(type(exc), exc)).strip(),
                traceback.format_exc()))
        else:
            if problem:
                failures.append((case, mutate.__name__, problem, ""))
        slowest = max(slowest, time.perf_counter() - t0)
        outcomes[mutate.__name__, outcome] += 1
    elapsed = time.perf_counter() - start
    if os.path.exists(marker):
        failures.append((-1, "pickled", "the pickle payload ran", ""))
    shutil.rmtree(tmp)
    return outcomes, failures, elapsed, slowest, limit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-mb", type=int, default=512,
                        help="address space allowed beyond the start-up mappings")
    args = parser.parse_args(argv)
    # numpy's note on Python-2 style .npy headers, which some cases forge
    warnings.filterwarnings("ignore", "Reading `.npy`", UserWarning)

    outcomes, failures, elapsed, slowest, limit = run(args.cases, args.seed,
                                                      args.memory_mb)
    print(f"rnncore {rnncore.__version__} from {os.path.dirname(rnncore.__file__)}")
    print(f"address-space limit: {limit // 2**20} MiB" if limit else
          "address-space limit: none (not Linux)")
    columns = ("refused", "loaded", "state refused", "FAILED")
    print(f"{'mutation':<16}{'cases':>7}" + "".join(f"{c:>15}" for c in columns))
    for mutate in MUTATIONS:
        row = [outcomes[mutate.__name__, c] for c in columns]
        print(f"{mutate.__name__:<16}{sum(row):>7}" + "".join(f"{n:>15}" for n in row))
    totals = Counter()
    for (_, outcome), n in outcomes.items():
        totals[outcome] += n
    print(f"{args.cases} cases in {elapsed:.1f} s (slowest {1e3 * slowest:.1f} ms): "
          f"{totals['refused']} refused, {totals['loaded']} loaded, "
          f"{totals['state refused']} loaded with the optimiser state refused by "
          f"load_state_dict, {len(failures)} failures")
    for case, name, summary, tb in failures[:20]:
        print(f"\ncase {case} ({name}): {summary}\n{tb}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

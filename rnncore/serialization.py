"""Saving and loading models: one ``.npz`` file, read without unpickling.

A model file (format ``"rnncore-model"``, version 1) is an uncompressed zip
of ``.npy`` members, as written by ``np.savez``:

``header``
    UTF-8 JSON as a uint8 array: ``{"format", "version", "rnncore_version",
    "config", "optimizer"}``; ``config`` is ``RNN.config``, ``optimizer``
    maps each saved optimiser-state key to its kind (or is null).
``params/<name>``
    Every parameter, in the model's dtype and ``RNN.param_shapes()``.
``optimizer/<key>``
    Optimiser state, when saved: the flat ``state_dict()`` of an rnncore
    optimiser (or any flat dict of the same kinds of value), one member per
    key.  Kind ``"array"``: the array as is; ``"scalar"``: a 0-d array of
    the NumPy scalar's dtype; ``"int"``, ``"float"``, ``"bool"``: a 0-d
    int64, float64 or bool array; ``"str"``: UTF-8 as a 1-D uint8 array.

The loader trusts nothing in the file.  Before any array is read it checks
the zip's directory and every member's ``.npy`` header: the member set, each
dtype (object arrays are refused, so nothing is ever unpickled) and shape
against the configuration, and that each member holds exactly the bytes its
header declares.  An array is therefore never allocated larger than the file
itself, whatever sizes the file claims.
"""
import io
import json
import math
import os
import secrets
import struct
import tokenize
import zipfile
from collections.abc import Mapping

import numpy as np
from numpy.lib import format as npy

from rnncore._assemble import blank_model, check_model
from rnncore._validation import BLAS_INT_MAX
from rnncore._version import __version__

__all__ = ["ModelFileError", "save", "load"]

FORMAT = "rnncore-model"
VERSION = 1
HEADER = "header"
PARAMS = "params/"
OPTIMIZER = "optimizer/"
HEADER_KEYS = {"format", "version", "rnncore_version", "config", "optimizer"}
# Format 1's configuration: RNN's constructor arguments but the seed.
CONFIG_TYPES = {
    "input_size": int,
    "hidden_size": int,
    "output_size": int,
    "num_layers": int,
    "bidirectional": bool,
    "dtype": str,
    "input_init": str,
    "recurrent_init": str,
}
MAX_HEADER_BYTES = 1 << 20
MAX_TEXT_LENGTH = 200  # characters of an optimiser-state key or text value
MAX_NDIM = 32
NPY_HEADER_READERS = {(1, 0): npy.read_array_header_1_0,
                      (2, 0): npy.read_array_header_2_0}
# what numpy's .npy header parser (ast.literal_eval, then a tokenize-based
# fallback) raises besides ValueError
NPY_HEADER_ERRORS = (TypeError, RecursionError, tokenize.TokenError)
ZIP_MAGIC = b"PK\x03\x04"
ZIP_ENCRYPTED, ZIP_PATCHED = 0x1, 0x20
# Optimiser-state values: how each kind is stored and read back.
STATE_KINDS = {"int": np.int64, "float": np.float64, "bool": np.bool_}
STATE_ARRAY_KINDS = "biuf"
TEXT_KIND = "str"
# What reading a damaged zip or .npy member raises (zipfile, struct, seeks,
# numpy's reader); each becomes a ModelFileError.
READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError,
               EOFError, struct.error, NotImplementedError, OverflowError,
               KeyError)


class ModelFileError(ValueError):
    """A file :func:`load` cannot read as an rnncore model: not a model file,
    truncated or corrupted, written by a newer rnncore, or inconsistent with
    itself.  The message names the file and what is wrong."""


# ---- saving ---------------------------------------------------------------

def save(model, file, *, optimizer=None):
    """Write a model (and optionally an optimiser's state) to one file.

    Parameters
    ----------
    model : RNN
    file : str, path-like or binary file object
        A path is written exactly as given (no ``.npz`` is appended) and
        atomically: the data goes to a temporary file in the same directory,
        which then replaces ``file``, so a crash or error leaves either the
        old file or the complete new one. A binary file object is written
        from its current position.
    optimizer : object with ``state_dict()``, optional
        Its state is saved too; read it back with ``load(file,
        return_optimizer_state=True)`` and give it to the optimiser's
        ``load_state_dict``. The state must be a flat dict of printable str
        keys (1 to 200 characters) to arrays (bool, int, unsigned or
        float), Python or NumPy numbers and printable str (1 to 200
        characters), as the ``state_dict()`` of every ``rnncore.optim``
        optimiser is.

    Raises
    ------
    ValueError, TypeError
        The model's parameters were replaced by arrays of the wrong shape or
        dtype, or the optimiser state holds something else (a nested dict,
        say); nothing is written then.

    Notes
    -----
    Loading gives back the configuration and every parameter bit for bit,
    NaN and inf included (they are stored, not refused). The seed is not
    saved.
    """
    check_model(model)
    manifest, state = None, {}
    if optimizer is not None:
        state = _optimizer_state(optimizer)
        manifest = {key: kind for key, (kind, _) in state.items()}
    header = {"format": FORMAT, "version": VERSION, "rnncore_version": __version__,
              "config": model.config, "optimizer": manifest}
    members = {HEADER: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    members.update((PARAMS + name, model.params[name]) for name in model.param_shapes())
    members.update((OPTIMIZER + key, value) for key, (_, value) in state.items())

    def write(fileobj):
        np.savez(fileobj, allow_pickle=False, **members)

    if hasattr(file, "read"):
        write(file)
    elif hasattr(file, "write"):  # np.savez wants a file it could read back
        buf = io.BytesIO()
        write(buf)
        file.write(buf.getvalue())
    else:
        _write_atomically(file, write)


def _optimizer_state(optimizer):
    """``optimizer.state_dict()`` as {key: (kind, array)}."""
    state = optimizer.state_dict()
    if not isinstance(state, Mapping):
        raise TypeError(f"optimizer.state_dict() must return a dict, got "
                        f"{type(state).__name__}")
    out = {}
    for key, value in state.items():
        if not _is_text(key):
            raise TypeError(f"optimizer state keys must be printable strings of 1 to "
                            f"{MAX_TEXT_LENGTH} characters, got {key!r}")
        where = f"optimizer state {key!r}"
        # NumPy scalars first: np.float64 is a float, np.str_ a str
        if isinstance(value, (np.ndarray, np.generic)):
            kind = "array" if isinstance(value, np.ndarray) else "scalar"
            array = np.asarray(value)
            if array.dtype.kind not in STATE_ARRAY_KINDS:
                raise TypeError(f"{where} must hold bool, integer or float values, "
                                f"got dtype {array.dtype}")
        elif isinstance(value, str):
            if not _is_text(value):
                raise ValueError(f"{where} must be printable text of 1 to "
                                 f"{MAX_TEXT_LENGTH} characters, got {value!r:.80}")
            kind, array = TEXT_KIND, np.frombuffer(value.encode(), dtype=np.uint8)
        elif isinstance(value, (bool, int, float)):
            kind = ("bool" if isinstance(value, bool)
                    else "int" if isinstance(value, int) else "float")
            try:
                array = np.array(value, dtype=STATE_KINDS[kind])
            except OverflowError:
                raise ValueError(f"{where} = {value} does not fit in int64") from None
        else:
            raise TypeError(f"{where} must be an array, a number or a str, got "
                            f"{type(value).__name__}")
        out[key] = kind, array
    return out


def _is_text(value):
    """A printable str of 1 to MAX_TEXT_LENGTH characters (a state key or
    text value)."""
    return (isinstance(value, str) and 0 < len(value) <= MAX_TEXT_LENGTH
            and value.isprintable())


def _write_atomically(path, write):
    path = os.fsdecode(os.fspath(path))
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    # 0o666 lets the umask decide the permissions, as for any new file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---- loading --------------------------------------------------------------

def load(file, *, return_optimizer_state=False):
    """Read a model written by :func:`save`.

    Parameters
    ----------
    file : str, path-like or binary file object
        A file object is read from its current position.
    return_optimizer_state : bool, default False
        Also return the saved optimiser state (None if none was saved), for
        the optimiser's ``load_state_dict``.

    Returns
    -------
    model : RNN
        The saved configuration and parameters, bit for bit (NaN and inf
        included); ``model.seed`` is None.
    optimizer_state : dict or None
        Only with ``return_optimizer_state=True``: the saved flat dict, for
        the optimiser's ``load_state_dict``. Arrays come back as arrays,
        Python and NumPy numbers as numbers of the same type, text as str.
        The loader checks how each value is stored, not what it means:
        ``load_state_dict`` checks that.

    Raises
    ------
    FileNotFoundError
        No file at ``file``.
    ModelFileError
        (a ValueError) The file is not an rnncore model file, is truncated
        or corrupted, was written by a newer rnncore, or disagrees with
        itself; the message says which. Arrays holding Python objects are
        refused, never unpickled.
    """
    if hasattr(file, "read"):
        source = _describe(file)
        if not getattr(file, "seekable", lambda: False)():
            # the zip directory sits at the end: buffer the stream
            file = io.BytesIO(file.read())
        model, state = _load(file, source)
    else:
        with open(file, "rb") as f:
            model, state = _load(f, repr(os.fsdecode(os.fspath(file))))
    return (model, state) if return_optimizer_state else model


def _describe(fileobj):
    name = getattr(fileobj, "name", None)
    return repr(name) if isinstance(name, str) else f"<{type(fileobj).__name__}>"


def _load(f, source):
    def fail(problem):
        return ModelFileError(f"cannot load {source}: {problem}")

    start = f.tell()
    size = f.seek(0, os.SEEK_END)  # zip offsets count from the file's start
    f.seek(start)
    if f.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
        raise fail("not an rnncore model file (not a zip archive)")
    try:
        f.seek(start)
        with zipfile.ZipFile(f) as zf:
            layout = _survey(zf, size, fail)
        f.seek(start)
        with np.load(f, allow_pickle=False) as npz:
            return _read(npz, layout, fail)
    except ModelFileError:
        raise
    except READ_ERRORS as exc:
        raise fail(f"damaged or truncated ({type(exc).__name__}: {exc})") from exc


def _survey(zf, size, fail):
    """{member: (shape, fortran_order, dtype)} from the zip directory and each
    member's .npy header, after checking that every member is stored whole."""
    infos = zf.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise fail("the zip lists a member name twice")
    layout = {}
    for info in infos:
        name = info.filename
        if not name.endswith(".npy"):
            raise fail(f"unexpected member {name!r} (not a .npy array)")
        key = name[:-len(".npy")]
        if info.flag_bits & (ZIP_ENCRYPTED | ZIP_PATCHED):
            raise fail(f"member {key!r} is encrypted or patched")
        if info.compress_type != zipfile.ZIP_STORED:
            raise fail(f"member {key!r} is compressed; rnncore model files "
                       f"are stored uncompressed (np.savez)")
        if (info.compress_size != info.file_size
                or info.header_offset + info.file_size > size):
            raise fail(f"member {key!r} claims {info.file_size} bytes, more than "
                       f"the file holds (truncated?)")
        with zf.open(info) as fp:
            try:
                version = npy.read_magic(fp)
                if version not in NPY_HEADER_READERS:
                    raise ValueError(f".npy version {version}, expected 1.0 or 2.0")
                shape, fortran_order, dtype = NPY_HEADER_READERS[version](fp)
            except (ValueError, *NPY_HEADER_ERRORS) as exc:
                raise fail(f"member {key!r} has an unreadable .npy header "
                           f"({type(exc).__name__}: {exc})") from exc
            data_start = fp.tell()
        if dtype.hasobject:
            raise fail(f"member {key!r} holds Python objects (dtype {dtype}); model "
                       f"files hold numbers only and are never unpickled")
        if (dtype.kind not in STATE_ARRAY_KINDS or dtype.subdtype is not None
                or len(shape) > MAX_NDIM
                or any(not 0 <= n <= BLAS_INT_MAX for n in shape)):
            raise fail(f"member {key!r} declares an unsupported array: dtype "
                       f"{dtype}, shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if data_start + nbytes != info.file_size:
            raise fail(f"member {key!r} declares shape {shape} of {dtype} "
                       f"({nbytes} bytes) but holds {info.file_size - data_start}")
        layout[key] = shape, fortran_order, dtype
    return layout


def _read(npz, layout, fail):
    """(model, optimizer_state) from a surveyed archive."""
    header = _read_header(npz, layout, fail)
    model = _blank(header["config"], layout, fail)
    manifest = _check_manifest(header["optimizer"], fail)
    expected = {HEADER, *(PARAMS + n for n in model.param_shapes()),
                *(OPTIMIZER + k for k in manifest or ())}
    _check_members(layout, expected, fail)

    def array(key):
        arr = npz[key]
        if (arr.shape, arr.dtype) != (layout[key][0], layout[key][2]):
            raise fail(f"member {key!r} changed while it was read")
        # native byte order and C order (a copy only if the file had others)
        return arr.astype(arr.dtype.newbyteorder("="), order="C", copy=False)

    for name, shape in model.param_shapes().items():
        got_shape, _, dtype = layout[PARAMS + name]
        if got_shape != shape or dtype.newbyteorder("=") != model.dtype:
            raise fail(f"parameter {name!r} is a {dtype} array of shape {got_shape}; "
                       f"the configuration {model!r} needs {model.dtype} "
                       f"of shape {shape}")
    model.params = {name: array(PARAMS + name) for name in model.param_shapes()}
    state = None
    if manifest is not None:
        converters = {key: _state_value(key, kind, layout[OPTIMIZER + key], fail)
                      for key, kind in manifest.items()}
        state = {key: convert(array(OPTIMIZER + key))
                 for key, convert in converters.items()}
    return model, state


def _read_header(npz, layout, fail):
    if HEADER not in layout:
        raise fail(f"not an rnncore model file (no {HEADER!r} member)")
    shape, _, dtype = layout[HEADER]
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_HEADER_BYTES:
        raise fail(f"member {HEADER!r} must be UTF-8 text (uint8, 1-D, at most "
                   f"{MAX_HEADER_BYTES} bytes), got {dtype} of shape {shape}")
    try:
        header = json.loads(npz[HEADER].tobytes().decode("utf-8"),
                            object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise fail(f"header is not valid UTF-8 JSON ({exc})") from None
    except ValueError as exc:  # from the hooks
        raise fail(f"header: {exc}") from None
    if not isinstance(header, dict):
        raise fail("not an rnncore model file (the header is not a JSON object)")
    if header.get("format") != FORMAT:
        raise fail(f"not an rnncore model file (format {header.get('format')!r}, "
                   f"expected {FORMAT!r})")
    version = header.get("version")
    if type(version) is not int or version < 1:
        raise fail(f"header version must be a positive integer, got {version!r}")
    if version > VERSION:
        raise fail(f"written by a newer rnncore (format version {version}); rnncore "
                   f"{__version__} reads versions up to {VERSION}: upgrade rnncore")
    _check_keys("header", header, HEADER_KEYS, fail)
    return header


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a JSON object repeats a key")
    return dict(pairs)


def _no_constant(name):
    raise ValueError(f"{name} is not a number the header may hold")


def _check_keys(what, mapping, expected, fail):
    missing, unknown = expected - mapping.keys(), mapping.keys() - expected
    if missing or unknown:
        raise fail(f"{what} has missing keys {sorted(missing)} and unknown keys "
                   f"{sorted(unknown)}")


def _blank(config, layout, fail):
    """The configured model with no parameters yet, its sizes checked
    against the file before anything depends on them."""
    if not isinstance(config, dict):
        raise fail(f"config must be a JSON object, got {config!r}")
    _check_keys("config", config, CONFIG_TYPES.keys(), fail)
    for key, kind in CONFIG_TYPES.items():
        value = config[key]
        if type(value) is not kind:
            raise fail(f"config {key!r} must be {kind.__name__}, got {value!r}")
        if kind is int and value > BLAS_INT_MAX:
            raise fail(f"config {key!r} = {value} exceeds the limit {BLAS_INT_MAX}")
    # param_shapes() loops over layers: bound them by the arrays present first
    stored = sum(name.startswith(PARAMS) for name in layout)
    if config["num_layers"] > stored:
        raise fail(f"config num_layers = {config['num_layers']} but the file holds "
                   f"{stored} parameter arrays")
    try:
        return blank_model(config)
    except (TypeError, ValueError) as exc:
        raise fail(f"config: {exc}") from None


def _check_manifest(manifest, fail):
    if manifest is None:
        return None
    if not isinstance(manifest, dict) or not all(
            _is_text(k) and v in ("array", "scalar", TEXT_KIND, *STATE_KINDS)
            for k, v in manifest.items()):
        raise fail("header 'optimizer' must map state keys to 'array', 'scalar', "
                   "'int', 'float', 'bool' or 'str'")
    return manifest


def _check_members(layout, expected, fail):
    missing, extra = expected - layout.keys(), layout.keys() - expected
    if missing:
        raise fail(f"missing members {sorted(missing)[:5]}")
    if extra:
        raise fail(f"unexpected members {sorted(extra)[:5]}")


def _state_value(key, kind, member, fail):
    """The function turning the stored array of optimiser-state ``key`` back
    into its value, after checking the member's declared shape and dtype."""
    shape, _, dtype = member
    if kind == "array":
        return lambda arr: arr
    if kind == TEXT_KIND:
        # at most 4 UTF-8 bytes a character
        if (dtype != np.uint8 or len(shape) != 1
                or not 0 < shape[0] <= 4 * MAX_TEXT_LENGTH):
            raise fail(f"optimizer state {key!r} (str) must be stored as UTF-8 "
                       f"(uint8, 1-D, 1 to {4 * MAX_TEXT_LENGTH} bytes), got "
                       f"{dtype} of shape {shape}")
        return lambda arr: _text(key, arr, fail)
    if shape != ():
        raise fail(f"optimizer state {key!r} ({kind}) must be stored 0-d, got "
                   f"shape {shape}")
    if kind == "scalar":
        return lambda arr: arr[()]
    if dtype.newbyteorder("=") != STATE_KINDS[kind]:
        raise fail(f"optimizer state {key!r} ({kind}) must be stored as "
                   f"{np.dtype(STATE_KINDS[kind])}, got {dtype}")
    return lambda arr: arr.item()


def _text(key, arr, fail):
    """The str stored in ``arr``, held to what :func:`save` allows."""
    try:
        value = arr.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise fail(f"optimizer state {key!r} (str) is not UTF-8 text") from None
    if not _is_text(value):
        raise fail(f"optimizer state {key!r} (str) must be printable text of 1 to "
                   f"{MAX_TEXT_LENGTH} characters, got {value!r:.80}")
    return value

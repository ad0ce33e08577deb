"""Builders of rnncore model files, byte by byte: the members of a zip, a
zip of given members (names repeated, any compression), ``.npy`` members
with any header text, and a pickle whose loading would leave a trace.
Shared by tests/test_io.py and tools/fuzz_loader.py.
"""
import io
import json
import warnings
import zipfile

import numpy as np


def members(data):
    """[(name, bytes)] of a zip, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def build_zip(items, compression=zipfile.ZIP_STORED):
    """A zip of [(name, bytes)], names repeated as given."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name"
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, payload in items:
                zf.writestr(name, payload)
    return buf.getvalue()


def npy_bytes(array, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_raw(header, payload=b""):
    """A version 1.0 .npy member with ``header`` (dict text) taken as is."""
    text = header.encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + payload


def npy_header_text(descr, shape, fortran_order=False):
    return repr({"descr": descr, "fortran_order": fortran_order, "shape": shape})


def split_npy(member):
    """(header length, payload) of a well-formed version 1.0 .npy member."""
    start = 10 + int.from_bytes(member[8:10], "little")
    return start, member[start:]


def header_of(items):
    return json.loads(bytes(np.load(io.BytesIO(dict(items)["header.npy"]))))


def with_header(items, header_text):
    payload = npy_bytes(np.frombuffer(header_text, dtype=np.uint8))
    return [(n, payload if n == "header.npy" else b) for n, b in items]


class Pickled:
    """Unpickling this creates the file ``path``: the side effect that must
    never happen."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")

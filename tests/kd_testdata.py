"""Test data in the real on-disk formats, and small in-memory datasets.

A plain module (not conftest.py) so tests can import it by name:
`from kd_testdata import make_dataset`. (Several folders have a conftest.py,
so `from conftest import ...` can pick up the wrong one.)
"""
from __future__ import annotations

import gzip
import io
import pickle
import struct

import numpy as np
import torch

from kd_utils.data import Dataset


class Py2Pickler(pickle._Pickler):
    """Pickles the way the real CIFAR-10 files were written (Python 2 cPickle,
    protocol 2): bytes as Python 2 str opcodes, numpy under its 1.x module name
    `numpy.core.multiarray`. Python 3's own protocol 2 would route bytes
    through `_codecs.encode`, which the real files never contain."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[type] = save_global


def py2_pickle(obj):
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue()


def write_cifar_batch(path, data, labels):
    """One batch in the format of the real `cifar-10-batches-py` files: a
    dict with bytes keys, b"data" a uint8 (N, 3072) array (each row 1024 red,
    1024 green, then 1024 blue values), b"labels" a list of ints."""
    d = {b"batch_label": b"test batch", b"labels": [int(v) for v in labels],
         b"data": np.ascontiguousarray(data, dtype=np.uint8),
         b"filenames": [b"img%d.png" % i for i in range(len(labels))]}
    path.write_bytes(py2_pickle(d))


def idx_bytes(array):
    """An unsigned-byte IDX file, written from the format's definition:
    two zero bytes, type 0x08, the number of dimensions, then each size as a
    big-endian uint32, then the values in C order."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.tobytes()


def write_idx(path, array, gz=False):
    data = idx_bytes(array)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def make_dataset(n_train=64, n_test=32, shape=(1, 28, 28), num_classes=10, seed=0, name="mnist"):
    """Random uint8 images with labels cycling through the classes."""
    g = torch.Generator().manual_seed(seed)
    return Dataset(
        name, [f"class{i}" for i in range(num_classes)],
        torch.randint(0, 256, (n_train, *shape), generator=g, dtype=torch.uint8),
        torch.arange(n_train) % num_classes,
        torch.randint(0, 256, (n_test, *shape), generator=g, dtype=torch.uint8),
        torch.arange(n_test) % num_classes,
    )

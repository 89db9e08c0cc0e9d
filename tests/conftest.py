"""Shared fixtures: tiny datasets in the real on-disk formats, made by the tests
themselves, and a guard so that no test ever reaches the network."""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import urllib.error

import numpy as np
import pytest
import torch

from kd_utils.data import Dataset


# ------------------------------------------------------------ no downloads

@pytest.fixture(autouse=True)
def no_dataset_downloads(monkeypatch):
    """torchvision's dataset downloads fail at once, as they do offline.

    Returns the list of URLs that were asked for, so a test can check that the
    download path was tried (and its failure handled)."""
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.mnist as tv_mnist

    asked = []

    def offline(url, *args, **kwargs):
        asked.append(url)
        raise urllib.error.URLError("no network in the tests")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    return asked


# ------------------------------------------------- CIFAR-10 python batches

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


@pytest.fixture
def tiny_cifar(tmp_path):
    """A tiny `cifar-10-batches-py` folder: 5 train batches of 4 images, a
    test batch of 3. Returns (root, x_train, y_train, x_test, y_test) with
    the expected arrays as numpy (N, 3, 32, 32) / (N,)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    xs, ys = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, 4)
        write_cifar_batch(folder / f"data_batch_{i}", x, y)
        xs.append(x)
        ys.append(y)
    x_test = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    y_test = rng.integers(0, 10, 3)
    write_cifar_batch(folder / "test_batch", x_test, y_test)
    return (tmp_path, np.concatenate(xs).reshape(-1, 3, 32, 32), np.concatenate(ys),
            x_test.reshape(-1, 3, 32, 32), y_test)


# --------------------------------------------------------------- IDX files

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


@pytest.fixture
def tiny_idx(tmp_path):
    """A tiny MNIST-style data set in torchvision's layout
    (<root>/<Folder>/raw/*-ubyte) for a dataset name. Returns a function
    make(name) -> (root, x_train, y_train, x_test, y_test)."""
    folders = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}

    def make(name, n_train=12, n_test=5):
        rng = np.random.default_rng(1)
        raw = tmp_path / folders[name] / "raw"
        raw.mkdir(parents=True)
        x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
        y_train = rng.integers(0, 10, n_train).astype(np.uint8)
        x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
        y_test = rng.integers(0, 10, n_test).astype(np.uint8)
        write_idx(raw / "train-images-idx3-ubyte", x_train)
        write_idx(raw / "train-labels-idx1-ubyte", y_train)
        write_idx(raw / "t10k-images-idx3-ubyte", x_test)
        write_idx(raw / "t10k-labels-idx1-ubyte", y_test)
        return tmp_path, x_train, y_train, x_test, y_test

    return make


# ------------------------------------------------------ in-memory datasets

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


@pytest.fixture
def tiny_data():
    return make_dataset()

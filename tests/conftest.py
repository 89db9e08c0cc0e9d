"""Shared fixtures: tiny datasets in the real on-disk formats, made by the tests
themselves, and a guard so that no test ever reaches the network."""
from __future__ import annotations

import urllib.error

import numpy as np
import pytest

# Re-exported for tests that import them from here; prefer `from kd_testdata import ...`.
from kd_testdata import make_dataset, write_cifar_batch, write_idx  # noqa: F401


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

@pytest.fixture
def tiny_data():
    return make_dataset()

"""Shared fixtures. Every test runs with its own runs/, data/ and figures/ folders,
no other KD_* variable set, and no network."""
from __future__ import annotations

import gzip
import os
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

import kd_utils.data as kd_data
from kd_testdata import make_dataset, toy_data, toy_teacher, write_idx

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """KD_RUNS_DIR, KD_DATA_DIR and KD_FIGURES_DIR in the test's tmp_path; every other
    KD_* variable unset except KD_THREADS=1 (our tiny models run fastest so, above all on a
    busy machine); torch's thread count restored afterwards (training sets it)."""
    for name in [k for k in os.environ if k.startswith("KD_")]:
        monkeypatch.delenv(name)
    for name in ("runs", "data", "figures"):
        monkeypatch.setenv(f"KD_{name.upper()}_DIR", str(tmp_path / name))
    monkeypatch.setenv("KD_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Downloads fail at once, as they do without a network. Returns the URLs asked for."""
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.mnist as tv_mnist

    asked = []

    def refuse(url, *args, **kwargs):
        asked.append(url)
        raise urllib.error.URLError("no network in the tests")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", refuse)
    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return asked


@pytest.fixture
def runs():
    """The test's runs folder (KD_RUNS_DIR)."""
    return Path(os.environ["KD_RUNS_DIR"])


@pytest.fixture
def data():
    """toy_data(): 96 + 32 images of 1x16x16 in 4 classes."""
    return toy_data()


@pytest.fixture
def tiny_data():
    """make_dataset(): 64 + 32 images of 1x28x28 in 10 classes."""
    return make_dataset()


@pytest.fixture
def teacher(data):
    return toy_teacher(data)


@pytest.fixture
def tiny_idx(tmp_path):
    """make(name): a tiny MNIST-style set in torchvision's layout (<root>/<Folder>/raw/*-ubyte),
    12 train and 5 test images. Returns (root, x_train, y_train, x_test, y_test) as numpy."""
    def make(name, n_train=12, n_test=5):
        rng = np.random.default_rng(1)
        raw = tmp_path / kd_data.TV_NAME[name] / "raw"
        raw.mkdir(parents=True)
        arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train),
                  rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test)]
        for base, a in zip(IDX_FILES, arrays):
            write_idx(raw / base, a)
        return (tmp_path, *arrays)

    return make


@pytest.fixture(scope="session")
def fashion_mnist_dir(tmp_path_factory):
    """A KD_DATA_DIR holding the real Fashion-MNIST (from Debian's dataset-fashion-mnist),
    decompressed once per session."""
    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("needs Fashion-MNIST: apt-get install dataset-fashion-mnist")
    root = tmp_path_factory.mktemp("fashion-mnist-data")
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for src in DEBIAN_FASHION_MNIST.glob("*-ubyte.gz"):
        with gzip.open(src) as f, open(raw / src.name[:-3], "wb") as out:
            shutil.copyfileobj(f, out)
    return root


@pytest.fixture
def cli(capsys, monkeypatch):
    """`python -m kd_utils ARGS` in this process, on the CPU (the same runs with or without
    a GPU): returns (exit code, stdout, stderr)."""
    from kd_utils.cli import main

    monkeypatch.setenv("KD_DEVICE", "cpu")

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def image_folder(tmp_path):
    """imagefolder:PATH of a small two-class image folder (12 train, 4 test images per class)."""
    from kd_testdata import make_image_folder

    return f"imagefolder:{make_image_folder(tmp_path / 'shapes')}"

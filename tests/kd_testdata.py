"""The tests' one data factory: small datasets in memory and in the real on-disk
formats, settings and a teacher for them, and two comparisons.

A plain module (not conftest.py), so tests import it by name:
`from kd_testdata import make_dataset`. (tests/browser/ has its own conftest.py,
so `from conftest import ...` can pick up the wrong one.)
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import pickle
import struct

import numpy as np
import torch

import os
from pathlib import Path

from kd_utils.data import Dataset
from kd_utils.losses import DistillationLoss
from kd_utils.models import freeze, make_cnn_teacher
from kd_utils.settings import Profile, Settings
from kd_utils.training import Trained

# ------------------------------------------------------------- in memory


def make_dataset(n_train=64, n_test=32, shape=(1, 28, 28), num_classes=10, seed=0, name="mnist"):
    """uint8 images, labels cycling through the classes. Each image is noise plus a
    bright band of rows whose place is its class, so a small model learns it in an epoch."""
    g = torch.Generator().manual_seed(seed)
    band = max(1, shape[1] // num_classes)

    def make(n):
        y = torch.arange(n) % num_classes
        x = torch.randint(0, 80, (n, *shape), generator=g)
        for c in range(num_classes):
            x[y == c, :, (c * band) % shape[1]:(c * band) % shape[1] + band] += 150
        return x.clamp(0, 255).to(torch.uint8), y

    return Dataset(name, [f"class{c}" for c in range(num_classes)], *make(n_train), *make(n_test))


def toy_data(**changes):
    """96 training images of 1x16x16 in 4 classes: 3 batches of 32 per epoch."""
    return make_dataset(**{**dict(n_train=96, n_test=32, shape=(1, 16, 16), num_classes=4, name="toy"),
                           **changes})


def toy_settings(epochs=2, **changes):
    """Settings for toy_data, built directly (settings() knows only real datasets):
    CPU, cached teacher outputs, no augmentation, fp32, batches of 32, one thread, the
    test's own folders (KD_*_DIR, set by conftest)."""
    runs = Path(os.environ.get("KD_RUNS_DIR", "runs"))
    s = Settings(dataset="toy", profile=Profile("toy", None, None, teacher_epochs=epochs, student_epochs=epochs,
                                                few_labels=24, few_label_epochs=epochs, batch_size=32),
                 seed=0, temperature=4.0, alphas=(0.0, 0.5, 1.0), formulation="hinton", teacher="train",
                 teacher_mode="cached", device=torch.device("cpu"), augment=False, precision="fp32", threads=1,
                 data_dir=Path(os.environ.get("KD_DATA_DIR", "data")), runs_dir=runs,
                 figures_dir=Path(os.environ.get("KD_FIGURES_DIR", runs / "figures")))
    return dataclasses.replace(s, **changes)


def toy_teacher(data, seed=1):
    """A random (untrained) frozen CNN teacher: its logits are all most tests need."""
    torch.manual_seed(seed)
    return Trained(freeze(make_cnn_teacher(data)), source=f"random teacher (seed {seed})")


def same_weights(a, b):
    """Bit-identical tensors under the same names."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def without_timing(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


# ------------------------------------------------------- real file formats


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
    """One batch as in `cifar-10-batches-py`: a dict with bytes keys, b"data" a uint8
    (N, 3072) array (each row 1024 red, 1024 green, then 1024 blue values), b"labels" ints."""
    d = {b"batch_label": b"test batch", b"labels": [int(v) for v in labels],
         b"data": np.ascontiguousarray(data, dtype=np.uint8),
         b"filenames": [b"img%d.png" % i for i in range(len(labels))]}
    path.write_bytes(py2_pickle(d))


def idx_bytes(array):
    """An unsigned-byte IDX file, from the format's definition: two zero bytes,
    type 0x08, the number of dimensions, each size as a big-endian uint32, the values."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.tobytes()


def write_idx(path, array, gz=False):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_image_folder(root, per_class=(12, 4), splits=("train", "test"), classes=("circles", "squares")):
    """torchvision's ImageFolder layout, root/<split>/<class>/<i>.png: colored squares
    or circles on a dark background, 24-40 px (so loading must resize)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        for ci, name in enumerate(classes if split in splits else ()):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                size = int(rng.integers(24, 41))
                img = Image.new("RGB", (size, size), (20, 20, 20))
                off = int(rng.integers(1, size // 5))
                box = [off, off, size - 1 - off, size - 1 - off]
                draw = ImageDraw.Draw(img)
                (draw.ellipse if ci % 2 == 0 else draw.rectangle)(box, fill=tuple(int(v) for v in
                                                                                  rng.integers(80, 256, 3)))
                img.save(root / split / name / f"{i}.png")
    return root


# ------------------------------------------------------------- interruptions

def count_calls(monkeypatch, owner, name, fail_on=None):
    """Wrap owner.name to count its calls; raise KeyboardInterrupt on call number fail_on."""
    original, calls = getattr(owner, name), {"n": 0, "fail_on": fail_on}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["fail_on"]:
            raise KeyboardInterrupt  # the learner pressed stop
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def loss_steps(monkeypatch, fail_on=None):
    """Counts training steps (calls of any DistillationLoss); KeyboardInterrupt on step fail_on."""
    return count_calls(monkeypatch, DistillationLoss, "forward", fail_on)

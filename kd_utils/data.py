"""Datasets as uint8 (N, C, H, W) tensors, loaded once and kept in memory (on the
GPU when there is one); augmentation works on whole batches. Each model normalises
its own input (models.Normalized), so one tensor feeds teacher and student alike."""
from __future__ import annotations

import gzip
import os
import pickle
import sys
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .settings import DATASETS, check_choice
from .storage import atomic_write_bytes, project_dir, tensor_hash

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

CLASSES = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
}

class DataUnavailableError(RuntimeError):
    """The data is not on disk and could not be downloaded."""

@dataclass
class Dataset:
    name: str
    classes: list
    x_train: torch.Tensor  # uint8 (N, C, H, W)
    y_train: torch.Tensor  # int64 (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def image_shape(self):
        return tuple(self.x_train.shape[1:])

    @cached_property
    def key(self):
        """A hash of the images and labels themselves: runs and caches are keyed by
        the data's content, so changed images can never reuse an old run."""
        return tensor_hash(self.x_train, self.y_train, self.x_test, self.y_test)[:16]

    def stats(self):
        """Per-channel mean and std of the training images, in [0, 1] units."""
        x = self.x_train.float().div_(255)
        return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()

    def to(self, device):
        return replace(self, **{k: getattr(self, k).to(device)
                                for k in ("x_train", "y_train", "x_test", "y_test")})

    def subset(self, n_train=None, n_test=None):
        """A deterministic, class-balanced subset (the same for every seed)."""
        tr = balanced_indices(self.y_train, n_train)
        te = balanced_indices(self.y_test, n_test)
        return replace(self, x_train=self.x_train[tr], y_train=self.y_train[tr],
                       x_test=self.x_test[te], y_test=self.y_test[te])

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={tuple(self.x_train.shape)}, test={tuple(self.x_test.shape)}, "
                f"classes={self.num_classes}, device={self.x_train.device})")

def balanced_indices(labels, n):
    """First n indices taking classes in turn, in a fixed shuffled order."""
    if n is None or n >= len(labels):
        return torch.arange(len(labels))
    g = torch.Generator().manual_seed(12345)  # fixed: the subset is part of the profile
    order = torch.randperm(len(labels), generator=g)
    y = labels.cpu()[order]
    # rank of each sample within its class, then sort by (rank, position)
    rank = torch.zeros_like(y)
    for c in y.unique():
        m = y == c
        rank[m] = torch.arange(int(m.sum()))
    keys = rank * len(y) + torch.arange(len(y))
    return order[torch.argsort(keys)[:n]].sort().values

def data_dir(root=None) -> Path:
    return Path(root or os.environ.get("KD_DATA_DIR") or project_dir() / "data")

def load_dataset(name="cifar10", root=None, download=True) -> Dataset:
    """Load a whole dataset as uint8 tensors (cpu). Names: cifar10, fashion-mnist,
    mnist, or imagefolder:PATH (a folder with train/ and test/ class folders)."""
    if isinstance(name, str) and name.startswith("imagefolder:"):
        from .extras.imagefolder import load_imagefolder

        return load_imagefolder(name.split(":", 1)[1])
    check_choice("dataset", name, DATASETS + ("imagefolder:PATH",))
    root = data_dir(root)
    if name == "cifar10":
        return load_cifar10(root, download)
    return load_idx_dataset(name, root, download)

def load_data(s) -> Dataset:
    """The dataset of settings s, cut to its profile's subset, on s.device."""
    return load_dataset(s.dataset).subset(s.profile.train_subset, s.profile.test_subset).to(s.device)

# ---------------------------------------------------------------- CIFAR-10

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR-10's python batches are pickles of numpy arrays and lists. Allow
    exactly the numpy reconstruction functions they need, nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}, which is not allowed")

def _read_cifar_batch(path):
    try:
        with open(path, "rb") as f:
            d = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(d[b"labels"], dtype=np.int64)
    except pickle.UnpicklingError:
        raise
    except Exception as e:  # noqa: BLE001 - a truncated pickle raises many types
        raise DataUnavailableError(f"{path} is damaged or truncated ({type(e).__name__}); delete "
                                   f"{Path(path).parent} to download CIFAR-10 again") from None
    return torch.from_numpy(x.copy()), torch.from_numpy(y)

def load_cifar10(root, download=True) -> Dataset:
    folder = Path(root) / "cifar-10-batches-py"
    files = [folder / f"data_batch_{i}" for i in range(1, 6)] + [folder / "test_batch"]
    if not all(f.exists() for f in files) and download:
        _download_with_torchvision("CIFAR10", root)
    if not all(f.exists() for f in files):
        raise DataUnavailableError(_missing_message("cifar10", folder))
    parts = [_read_cifar_batch(f) for f in files]
    x_train = torch.cat([p[0] for p in parts[:5]])
    y_train = torch.cat([p[1] for p in parts[:5]])
    return Dataset("cifar10", CLASSES["cifar10"], x_train, y_train, *parts[5])

# ---------------------------------------------------- Fashion-MNIST / MNIST

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TV_FOLDER = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}

def _copy_from_debian(raw):
    """Debian's dataset-fashion-mnist re-compresses the files, so torchvision's
    MD5 check of the .gz files fails; decompress them into torchvision's layout."""
    for base in IDX_FILES:
        src = DEBIAN_FASHION_MNIST / f"{base}.gz"
        if src.exists() and not (raw / base).exists():
            with gzip.open(src, "rb") as f:
                atomic_write_bytes(raw / base, f.read())

def load_idx_dataset(name, root, download=True) -> Dataset:
    """torchvision's (Fashion-)MNIST, read from root/<Folder>/raw/ (download=False
    once the files are there: Debian's copy, or torchvision's own download)."""
    import torchvision

    raw = Path(root) / TV_FOLDER[name] / "raw"
    if not all((raw / f).exists() for f in IDX_FILES) and name == "fashion-mnist" and DEBIAN_FASHION_MNIST.exists():
        _copy_from_debian(raw)
    if not all((raw / f).exists() for f in IDX_FILES) and download:
        _download_with_torchvision(TV_FOLDER[name], root)
    if not all((raw / f).exists() for f in IDX_FILES):
        raise DataUnavailableError(_missing_message(name, raw))
    cls = getattr(torchvision.datasets, TV_FOLDER[name])
    try:
        tr, te = (cls(str(root), train=t, download=False) for t in (True, False))
        out = (tr.data.unsqueeze(1), tr.targets.long(), te.data.unsqueeze(1), te.targets.long())
    except Exception as e:  # noqa: BLE001 - torchvision asserts on a truncated file
        raise DataUnavailableError(f"the {name} files in {raw} are damaged or truncated "
                                   f"({type(e).__name__}); delete that folder to fetch them again") from None
    if len(out[0]) != len(out[1]) or len(out[2]) != len(out[3]):
        raise DataUnavailableError(f"the {name} files in {raw} disagree on the number of images and "
                                   f"labels; delete that folder to fetch them again")
    return Dataset(name, CLASSES[name], *out)

# ------------------------------------------------------------- downloading

def _download_with_torchvision(cls_name, root):
    """torchvision's own download (with its MD5 checks); offline it fails fast."""
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as e:  # noqa: BLE001 - any network/IO failure means "not available"
        print(f"[kd_utils] could not download {cls_name}: {type(e).__name__}: {e}", file=sys.stderr)

def _missing_message(name, where):
    offline = ("`apt-get install dataset-fashion-mnist` puts it in /usr/share/datasets/fashion-mnist"
               if name == "fashion-mnist" else "`apt-get install dataset-fashion-mnist`, then KD_DATASET=fashion-mnist")
    return (f"The {name} data is not in {where} and could not be downloaded (no network?). With internet, run "
            f"again (torchvision downloads it into KD_DATA_DIR, now {data_dir()}); or copy the files there "
            f"yourself; offline: {offline}.")

# ----------------------------------------------------------- augmentation

def random_crop_flip(x, generator=None, padding=4, flip=True):
    """Random crop (after zero padding) and horizontal flip of a whole batch at once.

    Works on any device: we draw the offsets, then build one gather index per
    image, with the flip folded into the column index. No per-image loop.
    flip=False gives random translations only (digits must not be mirrored).
    """
    n, c, h, w = x.shape
    dev = x.device
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
    # drawn even when unused, so flip=False consumes the generator the same way
    flip = ((torch.rand(n, generator=generator) < 0.5) & flip).to(dev)
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    rows = oy[:, None] + torch.arange(h, device=dev)                     # (n, h)
    cols = torch.arange(w, device=dev).expand(n, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + ox[:, None]  # (n, w)
    b = torch.arange(n, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()

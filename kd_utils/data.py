"""Datasets as uint8 (N, C, H, W) tensors, loaded once and kept in memory (on the GPU
when there is one); augmentation works on whole batches. Each model normalises its own
input (models.Normalized), so one tensor feeds teacher and student alike."""
from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torchvision

from .storage import CorruptFileError, content_hash, load_torch, project_dir, save_torch, write_bytes

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CLASSES = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
}
TV_NAME = {"cifar10": "CIFAR10", "fashion-mnist": "FashionMNIST", "mnist": "MNIST"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

class DataUnavailableError(RuntimeError):
    """The data is not on disk and could not be downloaded, or cannot be read."""

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
        """A hash of the images and labels: runs and caches keyed by it never reuse another data's run."""
        return content_hash(self.x_train, self.y_train, self.x_test, self.y_test)[:16]

    def stats(self):
        """Per-channel mean and std of the training images, in [0, 1] units, from exact counts of each pixel value:
        float sums would change with the thread count, and so would every model normalised with them."""
        v, counts = torch.arange(256, dtype=torch.float64) / 255, [torch.bincount(self.x_train[:, c].flatten().cpu(),
                    minlength=256).double() for c in range(self.x_train.shape[1])]
        mean = [(h * v).sum() / h.sum() for h in counts]
        return [m.item() for m in mean], [((h * (v - m) ** 2).sum() / (h.sum() - 1)).sqrt().item() for h, m in zip(counts, mean)]

    def to(self, device):
        return replace(self, **{k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")})

    def subset(self, n_train=None, n_test=None):
        """A deterministic, class-balanced subset (the same for every seed)."""
        tr, te = (balanced_indices(y, n).to(y.device) for y, n in ((self.y_train, n_train), (self.y_test, n_test)))
        return replace(self, x_train=self.x_train[tr], y_train=self.y_train[tr], x_test=self.x_test[te], y_test=self.y_test[te])

    def validation_split(self, n_val):
        """(train, val): n_val class-balanced training images held out as val's test set,
        the rest to train on; the real test set is left alone. The same for every seed."""
        if not 0 < n_val < len(self.y_train):
            raise ValueError(f"n_val must be between 1 and {len(self.y_train) - 1}, got {n_val}")
        is_val = torch.zeros(len(self.y_train), dtype=torch.bool)
        is_val[balanced_indices(self.y_train, n_val)] = True
        is_val = is_val.to(self.x_train.device)
        train = replace(self, x_train=self.x_train[~is_val], y_train=self.y_train[~is_val])
        return train, replace(train, x_test=self.x_train[is_val], y_test=self.y_train[is_val])

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={tuple(self.x_train.shape)}, test={tuple(self.x_test.shape)}, "
                f"classes={self.num_classes}, device={self.x_train.device})")

def balanced_indices(labels, n):
    """The first n indices taking classes in turn, in a fixed shuffled order."""
    if n is None or n >= len(labels):
        return torch.arange(len(labels))
    y, order = labels.cpu(), torch.randperm(len(labels), generator=torch.Generator().manual_seed(12345))  # fixed
    rank = torch.zeros_like(y)  # rank of each image within its class, in that order
    for c in y.unique():
        rank[order[y[order] == c]] = torch.arange(int((y == c).sum()))
    return torch.argsort(rank * len(y) + torch.argsort(order))[:n].sort().values

def load_dataset(name, root, download=True) -> Dataset:
    """A whole dataset as uint8 tensors on the CPU: torchvision's (kept in root), or imagefolder:PATH."""
    if name.startswith("imagefolder:"):
        return load_image_folder((project_dir() / name.split(":", 1)[1]).resolve(), root)  # relative: to the project
    if name not in TV_NAME:
        raise ValueError(f"unknown dataset {name!r}; valid datasets are: {', '.join(TV_NAME)}, imagefolder:PATH")
    if name == "fashion-mnist":
        _copy_from_debian(Path(root) / "FashionMNIST" / "raw")
    try:
        parts = [getattr(torchvision.datasets, TV_NAME[name])(str(root), train=t, download=download) for t in (True, False)]
    except Exception as e:  # noqa: BLE001 - offline, a missing or a damaged file: all "not available"
        raise DataUnavailableError(f"The {name} data is not in {root} and could not be downloaded ({e!r:.200}); if its "
                                   f"files are there, they are damaged: delete them to fetch them again; offline: "
                                   f"`apt-get install dataset-fashion-mnist`, then KD_DATASET=fashion-mnist") from None
    x = [torch.as_tensor(p.data) for p in parts]  # (N, H, W, 3) for CIFAR-10, (N, H, W) for (Fashion-)MNIST: to NCHW
    x = [t.permute(0, 3, 1, 2).contiguous() if t.ndim == 4 else t.unsqueeze(1) for t in x]
    return Dataset(name, CLASSES[name], x[0], torch.as_tensor(parts[0].targets), x[1], torch.as_tensor(parts[1].targets))

def _copy_from_debian(raw):
    """Debian's re-compressed .gz files fail torchvision's MD5 check: decompress them into its raw/ layout."""
    for src in DEBIAN_FASHION_MNIST.glob("*-ubyte.gz"):
        if not (raw / src.name[:-3]).exists():
            with gzip.open(src, "rb") as f:
                write_bytes(raw / src.name[:-3], f.read())

def load_data(s) -> Dataset:
    """The dataset of settings s, cut to its profile's subset, on s.device."""
    data = load_dataset(s.dataset, s.data_dir).subset(s.profile.train_subset, s.profile.test_subset)
    return data.to(s.device)

def load_image_folder(path, cache_dir=None) -> Dataset:
    """Your own images in torchvision's ImageFolder layout, resized to 32x32 RGB. Class folders are train/'s
    (hidden ones such as .ipynb_checkpoints and __MACOSX skipped); test/ must have the same ones. Every unreadable
    file is named. The decoded tensors are cached in cache_dir, keyed by every file's name, size and time."""
    layout = f"expected {path}/train/<class>/*.png and {path}/test/<class>/*.png, one folder per class"
    folders = {}
    for split in ("train", "test"):
        if not (path / split).is_dir():
            raise DataUnavailableError(f"imagefolder:{path} has no {split}/ folder; {layout}")
        folders[split] = sorted(d.name for d in (path / split).iterdir() if d.is_dir() and not d.name.startswith((".", "__")))
    classes = folders["train"]
    if len(classes) < 2 or folders["test"] != classes:
        raise DataUnavailableError(f"imagefolder:{path}: train/ has the classes {classes} and test/ has "
                                   f"{folders['test']}; both need the same two or more; {layout}")
    files = {split: [(f, c) for c, name in enumerate(classes) for f in sorted((path / split / name).iterdir())
                     if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".") and f.is_file()]
             for split in ("train", "test")}
    for split, fs in files.items():
        if empty := sorted(set(classes) - {classes[c] for _, c in fs}):
            raise DataUnavailableError(f"imagefolder:{path}: no images in {split}/{empty[0]}; {layout}")
    key = content_hash([(str(f.relative_to(path)), st.st_size, st.st_mtime_ns) for fs in files.values()
                        for f, _ in fs for st in [f.stat()]])[:16]
    cache = Path(cache_dir) / "cache" / f"imagefolder-{path.name}-{key}.pt" if cache_dir else None
    try:
        tensors = load_torch(cache) if cache and cache.exists() else None
    except CorruptFileError:  # a damaged cache is decoded again
        tensors = None
    if tensors is None:
        tensors = [t for fs in files.values() for t in (torch.stack([_read_image(f) for f, _ in fs]),
                                                        torch.tensor([c for _, c in fs]))]
        if cache:
            save_torch(cache, tensors)
    return Dataset(path.name, classes, *tensors)

def _read_image(f):
    """One image as uint8 (3, 32, 32); 16-bit images scaled, not clipped to white."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                if im.mode.startswith("I"):  # 16- or 32-bit integer grey
                    im = Image.fromarray((np.asarray(im, dtype=np.float64) / 257).clip(0, 255).astype(np.uint8))
                im = im.convert("RGB")
                return torch.from_numpy(np.asarray(im if im.size == (32, 32) else im.resize((32, 32))).copy()).permute(2, 0, 1)
    except (OSError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise DataUnavailableError(f"cannot read image {f}: {str(e).splitlines()[0]}; remove or replace it") from None

def random_crop_flip(x, generator=None, padding=4, flip=True):
    """Random crop (after zero padding) and horizontal flip of a whole batch at once, on any
    device: one gather index per image, with the flip folded into the column index.
    flip=False gives random translations only (digits must not be mirrored)."""
    n, c, h, w = x.shape
    dev = x.device
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
    flip = ((torch.rand(n, generator=generator) < 0.5) & flip).to(dev)  # drawn even when unused: same stream
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    rows = oy[:, None] + torch.arange(h, device=dev)                      # (n, h)
    cols = torch.arange(w, device=dev).expand(n, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + ox[:, None]   # (n, w)
    b = torch.arange(n, device=dev)[:, None, None]
    return padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()

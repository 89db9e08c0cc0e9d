"""Your own images as a dataset: `KD_DATASET=imagefolder:PATH`, with torchvision's
ImageFolder layout (PATH/train/<class>/*.png, PATH/test/<class>/*.png). Every
unreadable file is named; 16-bit images are scaled, not clipped."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..data import DataUnavailableError, Dataset


def load_imagefolder(path) -> Dataset:
    """Your own data: PATH/train/<class>/*.png|jpg and PATH/test/<class>/*.
    Images are resized to 32x32 RGB, the student's input size."""
    path = Path(path)
    layout = (f"expected torchvision's ImageFolder layout: {path}/train/<class>/*.png and "
              f"{path}/test/<class>/*.png, one folder per class (.png .jpg .jpeg .bmp .gif)")
    missing = [split for split in ("train", "test") if not (path / split).is_dir()]
    if missing:
        raise DataUnavailableError(f"imagefolder:{path} has no {' or '.join(missing)} folder; {layout}")
    classes = sorted(d.name for d in (path / "train").iterdir() if d.is_dir())
    if len(classes) < 2:
        raise DataUnavailableError(f"{path}/train must hold at least two class folders; {layout}")
    extra = sorted(d.name for d in (path / "test").iterdir() if d.is_dir() and d.name not in classes)
    if extra:
        raise DataUnavailableError(f"{path}/test has classes that {path}/train lacks: {extra}; "
                                   f"the classes are the folders of train/: {classes}")

    def read(split):
        xs, ys = [], []
        for ci, c in enumerate(classes):
            for f in sorted((path / split / c).glob("*")):
                if f.is_file() and f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
                    xs.append(_read_image(f))
                    ys.append(ci)
        if not xs:
            raise DataUnavailableError(f"no images found under {path / split}; {layout}")
        return torch.stack(xs), torch.tensor(ys)

    return Dataset(f"imagefolder:{path}", classes, *read("train"), *read("test"))


def _read_image(f):
    """One image as uint8 (3, 32, 32). 16-bit images are scaled to 8 bits (PIL's
    convert("RGB") would clip them to almost white); any unreadable file is named."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
                    a = np.asarray(im, dtype=np.float64)
                    im = Image.fromarray((a * 255.0 / 65535.0).clip(0, 255).round().astype(np.uint8))
                im = im.convert("RGB").resize((32, 32))
                return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
    except (OSError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise DataUnavailableError(f"cannot read image {f}: {str(e).splitlines()[0]}; "
                                   f"remove or replace that file") from None

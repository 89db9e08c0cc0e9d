"""Teachers from weights files: the pre-trained CIFAR-10 vgg13_bn of two public
model zoos (their architectures written here so that their state_dicts load
strictly, the layout detected, the download hash-checked), and teachers saved by
this project. Every mismatch is reported with what was expected and found."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..data import data_dir
from ..models import Normalized, freeze, make_cnn_teacher
from ..settings import check_choice
from ..storage import CorruptFileError, load_torch, sha256_file
from ..teachers import TeacherMismatchError
from ..training import Trained

VGG13_CFG = [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]

# The two zoos publish vgg13_bn for CIFAR-10 with the same `features` but
# different heads and input statistics.
ZOO = {
    # github.com/chenyaofo/pytorch-cifar-models: 94.00%, 9.94M parameters.
    "chenyaofo": dict(
        hidden=512, avgpool=False,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010),
        url="https://github.com/chenyaofo/pytorch-cifar-models/releases/download/vgg/cifar10_vgg13_bn-c01e4a43.pt",
        # torch.hub convention: the 8 hex digits in the file name are the
        # start of the file's SHA-256.
        sha256="c01e4a43",
    ),
    # github.com/huyvnphan/PyTorch_CIFAR10: 94.22%, 28.3M parameters. Its zip
    # download is reported broken: load its vgg13_bn.pt from a local path.
    "pytorch_cifar10": dict(
        hidden=4096, avgpool=True,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2471, 0.2435, 0.2616),
        url=None, sha256=None,
    ),
}


class VGG(nn.Module):
    def __init__(self, cfg=VGG13_CFG, num_classes=10, hidden=512, avgpool=False):
        super().__init__()
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        if avgpool:  # only the PyTorch_CIFAR10 layout has it (1x1: a no-op at 32x32)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(
            nn.Linear(512, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        if hasattr(self, "avgpool"):
            x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


def vgg13_bn(layout="chenyaofo", num_classes=10) -> Normalized:
    """vgg13_bn in one zoo's layout, wrapped with that zoo's normalisation.
    `model.net.load_state_dict(zoo_state_dict)` loads strictly."""
    check_choice("vgg13_bn layout", layout, tuple(ZOO))
    z = ZOO[layout]
    net = VGG(VGG13_CFG, num_classes, hidden=z["hidden"], avgpool=z["avgpool"])
    return Normalized(net, z["mean"], z["std"])


def detect_vgg_layout(state_dict):
    """Which zoo a vgg13_bn state_dict comes from, from its first head layer."""
    w = state_dict.get("classifier.0.weight")
    if w is None:
        raise ValueError(
            "not a vgg13_bn state_dict: no 'classifier.0.weight' key (found keys like "
            f"{list(state_dict)[:3]})")
    for name, z in ZOO.items():
        if tuple(w.shape) == (z["hidden"], 512):
            return name
    raise ValueError(f"vgg13_bn head of shape {tuple(w.shape)} matches neither zoo "
                     f"(expected (512, 512) for chenyaofo or (4096, 512) for pytorch_cifar10)")


def _unwrap(sd, path):
    # Some checkpoints wrap the weights: {"state_dict": {...}} or {"model": {...}}.
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise TeacherMismatchError(
            f"{path}: expected a state_dict (a dict of tensors), found {type(sd).__name__}"
            + (f" with keys {_few(sd)}" if isinstance(sd, dict) else ""))
    # Lightning / DataParallel prefixes.
    for prefix in ("model.", "module."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _few(keys, n=4):
    keys = list(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def _mismatch(model, sd):
    """What differs between the weights a model expects and those a file holds."""
    want = model.state_dict()
    missing = [k for k in want if k not in sd]
    extra = [k for k in sd if k not in want]
    shapes = [f"{k}: expected {tuple(want[k].shape)}, found {tuple(sd[k].shape)}"
              for k in want if k in sd and want[k].shape != sd[k].shape]
    parts = []
    if missing:
        parts.append(f"missing {_few(missing)}")
    if extra:
        parts.append(f"unexpected {_few(extra)}")
    if shapes:
        parts.append("; ".join(shapes[:3]))
    return "; ".join(parts)


def _load_strict(model, sd, path, what):
    problem = _mismatch(model, sd)
    if problem:
        raise TeacherMismatchError(f"{path} is not a {what} checkpoint: {problem}")
    model.load_state_dict(sd, strict=True)


def _check_classes(path, what, found, data_name, num_classes):
    if found != num_classes:
        raise TeacherMismatchError(
            f"{path}: the {what} has {found} output classes, but {data_name} has {num_classes}; "
            f"use a teacher trained on {data_name} (or KD_TEACHER=train)")


def load_vgg13_bn(path, num_classes=10, data_name="the dataset", *, state_dict=None):
    """vgg13_bn from either zoo's state_dict file; the layout is detected.
    state_dict: the file's contents when the caller has already read them."""
    sd = _unwrap(load_torch(path), path) if state_dict is None else state_dict
    try:
        layout = detect_vgg_layout(sd)
    except ValueError as e:
        raise TeacherMismatchError(f"{path}: expected vgg13_bn weights, but {e}") from None
    _check_classes(path, "vgg13_bn", _out_features(sd, "classifier.6.weight"), data_name, num_classes)
    model = vgg13_bn(layout, num_classes)
    _load_strict(model.net, sd, path, f"vgg13_bn ({layout} layout)")
    return freeze(model)


def _out_features(sd, key):
    return sd[key].shape[0] if key in sd else None


def load_teacher_checkpoint(path, data, *, state_dict=None):
    """A teacher saved by this project: a Normalized CNNTeacher (or vgg13_bn) state_dict."""
    sd = _unwrap(load_torch(path), path) if state_dict is None else state_dict
    if "net.classifier.0.weight" in sd and sd["net.classifier.0.weight"].shape[1] == 512:
        model = vgg13_bn(detect_vgg_layout({k[4:]: v for k, v in sd.items() if k.startswith("net.")}),
                         data.num_classes)
    else:
        c = data.image_shape[0]  # mean/std are placeholders: the file's buffers replace them
        model = make_cnn_teacher(data.image_shape, data.num_classes, [0.0] * c, [1.0] * c)
    head = [k for k in model.state_dict() if k.endswith("weight")][-1]
    if head in sd:
        _check_classes(path, "teacher", _out_features(sd, head), data.name, data.num_classes)
    _load_strict(model, sd, path, f"{type(model.net).__name__} teacher for {data.name} (images {data.image_shape})")
    return freeze(model)


def pretrained_vgg_path():
    """Local path of chenyaofo's cifar10_vgg13_bn, downloaded and hash-checked by
    torch.hub if missing (the 8 hex digits in its name start its SHA-256)."""
    url = ZOO["chenyaofo"]["url"]
    dest = data_dir() / "weights" / os.path.basename(url)
    if dest.exists():
        # Downloads are verified before they land here; a file put here by hand is not.
        if not sha256_file(dest).startswith(ZOO["chenyaofo"]["sha256"]):
            raise CorruptFileError(
                f"{dest} is not the published {dest.name} (its SHA-256 does not start with "
                f"{ZOO['chenyaofo']['sha256']}); delete it to download again, or load your own weights "
                f"with KD_TEACHER=/path/to/weights.pt")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=ZOO["chenyaofo"]["sha256"])
    except (OSError, RuntimeError) as e:  # no network, or a corrupt download (nothing is kept)
        raise RuntimeError(
            f"could not download the pre-trained vgg13_bn teacher ({str(e).splitlines()[0]}).\n"
            f"  - With internet: run again; it goes to {dest}.\n"
            f"  - Offline: put the file there yourself, or pass a local file with "
            f"KD_TEACHER=/path/to/vgg13_bn.pt (PyTorch_CIFAR10 or chenyaofo layout),\n"
            f"    or train a teacher instead: KD_TEACHER=train (a GPU makes that practical on CIFAR-10)."
        ) from None
    return dest


def pretrained_teacher(s, data) -> Trained:
    """chenyaofo's vgg13_bn for CIFAR-10 (downloaded and checked if missing)."""
    if data.name != "cifar10":
        raise ValueError(f"the downloadable teacher is for cifar10, not {data.name}; use teacher='train'")
    path = pretrained_vgg_path()
    model = load_vgg13_bn(path, data.num_classes, data.name)
    return Trained(model.to(s.device), source=f"vgg13_bn (chenyaofo, 94.00% on CIFAR-10) from {path}")


def load_teacher_file(s, data) -> Trained:
    """s.teacher is a weights file: either zoo's vgg13_bn, or a teacher of ours."""
    path = Path(s.teacher)
    sd = _unwrap(load_torch(path), path)  # read once (a vgg13_bn file is 40-110 MB)
    if "features.0.weight" in sd:
        model = load_vgg13_bn(path, data.num_classes, data.name, state_dict=sd)
        return Trained(model.to(s.device), source=f"vgg13_bn ({detect_vgg_layout(sd)}) from {path}")
    model = load_teacher_checkpoint(path, data, state_dict=sd)
    return Trained(model.to(s.device), source=f"{type(model.net).__name__} from {path}")

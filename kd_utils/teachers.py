"""Getting a teacher (local file, verified download, or trained and cached),
and computing its outputs once so every student can reuse them."""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch

from .data import data_dir
from .models import ZOO, count_parameters, detect_vgg_layout, freeze, make_cnn_teacher, vgg13_bn
from .storage import download, fingerprint, load_torch, project_dir, save_torch
from .training import predict, train_teacher

TEACHER_SOURCES = ("auto", "download", "train", "<path to a .pt file>")


class TeacherMismatchError(ValueError):
    pass


def state_dict_hash(model) -> str:
    """SHA-256 over a model's tensors: the identity of a teacher in cache keys."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _unwrap(sd):
    # Some checkpoints wrap the weights: {"state_dict": {...}} or {"model": {...}}.
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise TeacherMismatchError(f"expected a state_dict (a dict of tensors), found {type(sd).__name__}")
    # Lightning / DataParallel prefixes.
    for prefix in ("model.", "module."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def load_vgg13_bn(path, num_classes=10):
    """vgg13_bn from either zoo's state_dict file; the layout is detected."""
    sd = _unwrap(load_torch(path))
    layout = detect_vgg_layout(sd)
    found = sd["classifier.6.weight"].shape[0] if "classifier.6.weight" in sd else None
    if found != num_classes:
        raise TeacherMismatchError(
            f"{path}: vgg13_bn with {found} output classes, but the dataset has {num_classes}")
    model = vgg13_bn(layout, num_classes)
    try:
        model.net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise TeacherMismatchError(f"{path} does not fit vgg13_bn ({layout} layout): {e}") from None
    model.source = f"vgg13_bn ({layout}) from {path}"
    return freeze(model)


def load_teacher_checkpoint(path, data):
    """A CNN teacher saved by this project (or any Normalized CNNTeacher state_dict)."""
    sd = _unwrap(load_torch(path))
    if "net.classifier.0.weight" in sd and sd["net.classifier.0.weight"].shape[1] == 512:
        model = vgg13_bn(detect_vgg_layout({k[4:]: v for k, v in sd.items() if k.startswith("net.")}),
                         data.num_classes)
    else:
        c = data.image_shape[0]  # mean/std are placeholders: the file's buffers replace them
        model = make_cnn_teacher(data.image_shape, data.num_classes, [0.0] * c, [1.0] * c)
    head = [k for k in sd if k.endswith("weight")][-1] if sd else None
    found = sd[head].shape[0] if head else None
    if found != data.num_classes:
        raise TeacherMismatchError(
            f"{path}: teacher has {found} output classes, but {data.name} has {data.num_classes}")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise TeacherMismatchError(
            f"{path} does not fit the {type(model.net).__name__} teacher for {data.name} "
            f"(images {data.image_shape}): {str(e).splitlines()[0]}") from None
    model.source = f"{type(model.net).__name__} from {path}"
    return freeze(model)


def get_teacher(data, source="auto", *, profile=None, seed=0, runs_dir=None, weights_dir=None):
    """The frozen teacher for `data`.

    source: "auto"     - CIFAR-10: the pre-trained vgg13_bn (local copy or verified
                         download); other datasets: train our CNN teacher and cache it.
            "download" - the chenyaofo vgg13_bn release, SHA-256 checked.
            "train"    - train the CNN teacher with the project's recipe (cached).
            a path     - a weights file: either zoo's vgg13_bn, or one of ours.
    """
    if source not in ("auto", "download", "train"):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(
                f"teacher weights {path} not found; teacher must be one of: "
                + ", ".join(TEACHER_SOURCES))
        sd_keys = _unwrap(load_torch(path)).keys()
        if "features.0.weight" in sd_keys:
            return load_vgg13_bn(path, data.num_classes)
        return load_teacher_checkpoint(path, data)

    if source == "download" or (source == "auto" and data.name == "cifar10"):
        if data.name != "cifar10":
            raise ValueError(f"the downloadable teacher is for cifar10, not {data.name}; use teacher='train'")
        return load_vgg13_bn(pretrained_vgg_path(weights_dir), data.num_classes)
    return train_cnn_teacher(data, profile=profile, seed=seed, runs_dir=runs_dir)


def pretrained_vgg_path(weights_dir=None):
    """Local path of chenyaofo's cifar10_vgg13_bn, downloading (hash-checked) if missing."""
    z = ZOO["chenyaofo"]
    dest = Path(weights_dir or data_dir() / "weights") / os.path.basename(z["url"])
    if not dest.exists():
        try:
            download(z["url"], dest, sha256=z["sha256"])
        except OSError as e:
            raise RuntimeError(
                f"could not download the pre-trained vgg13_bn teacher ({e}).\n"
                f"  - With internet: run again; it goes to {dest}.\n"
                f"  - Offline: put the file there yourself, or pass a local file with "
                f"KD_TEACHER=/path/to/vgg13_bn.pt (PyTorch_CIFAR10 or chenyaofo layout),\n"
                f"    or train a teacher instead: KD_TEACHER=train (a GPU makes that practical on CIFAR-10)."
            ) from None
    return dest


def runs_dir(root=None) -> Path:
    return Path(root or os.environ.get("KD_RUNS_DIR") or project_dir() / "runs")


def train_cnn_teacher(data, *, profile, seed=0, runs_dir=None):
    """Train (or load the cached) CNN teacher for data under this profile."""
    from .profiles import get_profile

    profile = profile or get_profile()
    config = dict(kind="cnn-teacher", dataset=data.name, n_train=len(data.x_train),
                  n_test=len(data.x_test), epochs=profile.teacher_epochs, lr=profile.teacher_lr,
                  batch_size=profile.batch_size, seed=seed)
    run = _runs(runs_dir) / data.name.replace(":", "_").replace("/", "_") / "teachers" / f"cnn-{fingerprint(config)}"
    torch.manual_seed(seed)
    model = make_cnn_teacher(data.image_shape, data.num_classes, *data.stats())
    history = train_teacher(model, data, epochs=profile.teacher_epochs, seed=seed, lr=profile.teacher_lr,
                            batch_size=profile.batch_size, run_dir=run, config=config)
    model.source = f"CNN teacher trained here ({profile.name} profile), cached in {run}"
    model.history = history
    model.weights_path = run / "final.pt"
    return freeze(model)


def _runs(root):
    return runs_dir(root)


def teacher_outputs(teacher, x, *, cache_key, runs_dir=None, batch_size=1024):
    """Teacher logits for every image of x, computed once and cached on disk.

    cache_key must describe everything the logits depend on (dataset, split,
    subset, preprocessing); the teacher's weights hash is added here. A cache
    file whose key, shape or contents do not check out is rebuilt, with a warning.
    """
    key = dict(cache_key, teacher=state_dict_hash(teacher), n=len(x), shape=list(x.shape))
    path = _runs(runs_dir) / "cache" / f"teacher-logits-{fingerprint(key)}.pt"
    if path.exists():
        try:
            blob = load_torch(path, map_location=x.device)
            logits = blob["logits"]
            ok = (blob.get("key") == fingerprint(key) and logits.shape[0] == len(x)
                  and torch.isfinite(logits).all())
            if ok:
                return logits
            warnings.warn(f"teacher-output cache {path} does not match; rebuilding it")
        except Exception as e:  # noqa: BLE001 - truncated/corrupt files raise many types
            warnings.warn(f"teacher-output cache {path} is unreadable ({type(e).__name__}); rebuilding it")
    logits = predict(teacher, x, batch_size=batch_size)
    save_torch(path, dict(key=fingerprint(key), logits=logits.cpu()))
    return logits


def describe_teacher(teacher):
    return f"{getattr(teacher, 'source', type(teacher).__name__)}; {count_parameters(teacher):,} parameters"

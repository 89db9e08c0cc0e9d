"""Getting a teacher (a local file, a verified download, or trained here and
cached), and computing its outputs once so that every student can reuse them."""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import torch

from . import runs
from .data import data_dir
from .models import ZOO, detect_vgg_layout, freeze, make_cnn_teacher, vgg13_bn
from .storage import CorruptFileError, load_torch, save_torch, sha256_file, state_dict_hash, tensor_hash
from .training import Trained, cross_entropy_loss, new_run, predict, train


class TeacherMismatchError(ValueError):
    """Weights that do not fit the architecture or the dataset."""


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


def check_teacher_classes(teacher, data):
    """The teacher must predict exactly the dataset's classes (one logit each)."""
    with torch.no_grad():
        was = teacher.training
        teacher.eval()
        found = teacher(data.x_test[:1]).shape[-1]
        teacher.train(was)
    if found != data.num_classes:
        raise TeacherMismatchError(
            f"the teacher outputs {found} classes, but {data.name} has {data.num_classes} "
            f"({', '.join(map(str, data.classes))}); use a teacher trained on {data.name}")
    return teacher


def get_teacher(s, data) -> Trained:
    """The frozen teacher for settings s and `data`, as s.teacher says:
    "auto"     - CIFAR-10: the pre-trained vgg13_bn (local copy or verified download);
                 other datasets: train our CNN teacher (cached under runs/);
    "download" - the chenyaofo vgg13_bn release, hash-checked;
    "train"    - train the CNN teacher with the project's recipe (cached);
    a path     - a weights file: either zoo's vgg13_bn, or a teacher saved by this project."""
    if s.teacher not in ("auto", "download", "train"):
        path = Path(s.teacher)
        sd = _unwrap(load_torch(path), path)  # read once (a vgg13_bn file is 40-110 MB)
        if "features.0.weight" in sd:
            model = load_vgg13_bn(path, data.num_classes, data.name, state_dict=sd)
            return Trained(model.to(s.device), source=f"vgg13_bn ({detect_vgg_layout(sd)}) from {path}")
        model = load_teacher_checkpoint(path, data, state_dict=sd)
        return Trained(model.to(s.device), source=f"{type(model.net).__name__} from {path}")
    if s.teacher == "download" or (s.teacher == "auto" and data.name == "cifar10"):
        if data.name != "cifar10":
            raise ValueError(f"the downloadable teacher is for cifar10, not {data.name}; use teacher='train'")
        path = pretrained_vgg_path()
        model = load_vgg13_bn(path, data.num_classes, data.name)
        return Trained(model.to(s.device), source=f"vgg13_bn (chenyaofo, 94.00% on CIFAR-10) from {path}")
    return train_teacher(s, data)


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


def train_teacher(s, data, model=None, *, name="cnn", seed=None, epochs=None, lr=None, augment=None):
    """Train a teacher with cross-entropy (or load it, if that run finished before).

    model: the untrained network (default: our CNN teacher, built from `seed`);
    augment: default random crops and flips on CIFAR-10. Cached under
    runs/<dataset>/teachers/, keyed by the data, the initial weights and the recipe."""
    p = s.profile
    seed = s.seed if seed is None else seed
    epochs, lr = epochs or p.teacher_epochs, lr or p.teacher_lr
    augment = data.name == "cifar10" if augment is None else augment
    if model is None:
        torch.manual_seed(seed)
        model = make_cnn_teacher(data.image_shape, data.num_classes, *data.stats())
    model = model.to(data.x_train.device)
    config = dict(kind="teacher", name=name, data=data.key, init=state_dict_hash(model)[:16], epochs=epochs,
                  lr=lr, schedule="cosine", batch_size=p.batch_size, seed=seed,
                  augment=augment if isinstance(augment, bool) else augment.__name__)
    folder = runs.run_folder(data.name, "teachers", name, config)
    run = new_run(f"teacher {name}", model, cross_entropy_loss, lr, folder, config, uses_teacher=False)
    train([run], data, dataclasses.replace(s, seed=seed), epochs=epochs, augment=augment)
    return Trained(freeze(model), run.history, folder, f"{name} teacher trained here ({p.name} profile), "
                                                         f"cached in {runs.shown(folder)}")


def teacher_outputs(model, x, batch_size=1024):
    """The teacher's logits for every image of x, computed once and cached on disk,
    keyed by the hashes of the teacher's weights and of the images themselves (a
    stale cache can never be reused). A damaged cache file is rebuilt, with a warning."""
    key = f"{state_dict_hash(model)[:16]}-{tensor_hash(x)[:16]}"
    path = runs.runs_dir() / "cache" / f"teacher-logits-{key}.pt"
    if path.exists():
        try:
            logits = load_torch(path, x.device, verify=True)
            if logits.shape[0] == len(x) and torch.isfinite(logits).all():
                return logits
            problem = "holds logits of the wrong shape or non-finite values"
        except (CorruptFileError, AttributeError):
            problem = "is damaged, unfinished or not a logits file"
        warnings.warn(f"teacher-output cache {runs.shown(path)} {problem}; rebuilding it", stacklevel=2)
    logits = predict(model, x, batch_size=batch_size)
    save_torch(path, logits.cpu())
    return logits

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
from .storage import HashMismatchError, download, fingerprint, load_torch, project_dir, save_torch, sha256_file
from .training import predict, train_teacher

TEACHER_SOURCES = ("auto", "download", "train", "<path to a .pt file>")


class TeacherMismatchError(ValueError):
    pass


def state_dict_hash(model) -> str:
    """SHA-256 over a model's tensors: the identity of a teacher in cache keys."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        _update_with_tensor(h, v)
    return h.hexdigest()


def tensor_hash(t) -> str:
    """SHA-256 of a tensor's shape, dtype and bytes (the images a cache was built from)."""
    h = hashlib.sha256(f"{tuple(t.shape)} {t.dtype}".encode())
    _update_with_tensor(h, t)
    return h.hexdigest()


def _update_with_tensor(h, t):
    h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


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
    model.source = f"vgg13_bn ({layout}) from {path}"
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
    model.source = f"{type(model.net).__name__} from {path}"
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
        sd = _unwrap(load_torch(path), path)  # read once (a vgg13_bn file is 40-110 MB)
        if "features.0.weight" in sd:
            return load_vgg13_bn(path, data.num_classes, data.name, state_dict=sd)
        return load_teacher_checkpoint(path, data, state_dict=sd)

    if source == "download" or (source == "auto" and data.name == "cifar10"):
        if data.name != "cifar10":
            raise ValueError(f"the downloadable teacher is for cifar10, not {data.name}; use teacher='train'")
        return load_vgg13_bn(pretrained_vgg_path(weights_dir), data.num_classes, data.name)
    return train_cnn_teacher(data, profile=profile, seed=seed, runs_dir=runs_dir)


def pretrained_vgg_path(weights_dir=None):
    """Local path of chenyaofo's cifar10_vgg13_bn, downloading (hash-checked) if missing."""
    z = ZOO["chenyaofo"]
    dest = Path(weights_dir or data_dir() / "weights") / os.path.basename(z["url"])
    if dest.exists():
        # Downloads are verified before they land here, but a file put here by hand is not.
        if not sha256_file(dest).startswith(z["sha256"]):
            raise HashMismatchError(
                f"{dest} is not the published {os.path.basename(z['url'])} (its SHA-256 does not start "
                f"with {z['sha256']}); delete it to download again, or load your own weights with "
                f"KD_TEACHER=/path/to/weights.pt")
        return dest
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


def dataset_runs_dir(name, root=None) -> Path:
    """runs/<dataset>/, with imagefolder:PATH made into one safe folder name."""
    return runs_dir(root) / name.replace(":", "_").replace("/", "_")


def train_cnn_teacher(data, *, profile, seed=0, runs_dir=None):
    """Train (or load the cached) CNN teacher for data under this profile."""
    from .profiles import get_profile

    profile = profile or get_profile()
    config = dict(kind="cnn-teacher", dataset=data.name, n_train=len(data.x_train),
                  n_test=len(data.x_test), epochs=profile.teacher_epochs, lr=profile.teacher_lr,
                  batch_size=profile.batch_size, seed=seed)
    run = dataset_runs_dir(data.name, runs_dir) / "teachers" / f"cnn-{fingerprint(config)}"
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

    cache_key should describe what the logits depend on (dataset, split, subset,
    preprocessing); the hashes of the teacher's weights and of the images are
    added here. A cache file that is truncated, corrupt or for another key is
    rebuilt, with a warning.
    """
    # The images' own hash too: a stale cache can never be reused, whatever cache_key says.
    key = fingerprint(dict(cache_key, teacher=state_dict_hash(teacher), images=tensor_hash(x)))
    path = _runs(runs_dir) / "cache" / f"teacher-logits-{key}.pt"
    logits = _read_cache(path, key, len(x), x.device) if path.exists() else None
    if logits is None:
        logits = predict(teacher, x, batch_size=batch_size)
        save_torch(path, dict(key=key, logits=logits.cpu()))
    return logits


def _read_cache(path, key, n, device):
    """The cached logits, or None (with a warning) if the file does not check out."""
    try:
        blob = load_torch(path, map_location=device)
        logits = blob["logits"]
        if blob["key"] == key and logits.ndim == 2 and len(logits) == n and torch.isfinite(logits).all():
            return logits
        problem = "is for other inputs or holds bad values"
    except Exception as e:  # noqa: BLE001 - truncated/corrupt files raise many types
        problem = f"is unreadable ({type(e).__name__})"
    warnings.warn(f"teacher-output cache {path} {problem}; rebuilding it", stacklevel=3)
    return None


def describe_teacher(teacher):
    return f"{getattr(teacher, 'source', type(teacher).__name__)}; {count_parameters(teacher):,} parameters"

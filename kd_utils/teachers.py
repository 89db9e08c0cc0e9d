"""Getting a teacher: the pre-trained CIFAR-10 vgg13_bn (a local file of either zoo, or a
hash-checked download), a teacher trained here and cached (our CNN on any data, or
vgg13_bn on a GPU), or a weights file. Whatever the source, the teacher is frozen; a
weights file is checked once, where it is loaded: one finite output per class."""
from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import torch

from .data import CLASSES
from .losses import DistillationLoss
from .models import ZOO, CNNTeacher, Normalized, freeze, make_cnn_teacher, vgg13_bn
from .storage import CorruptFileError, content_hash, load_torch
from .training import Trained, fit

class TeacherMismatchError(ValueError):
    """Weights that do not fit the architecture or the dataset."""

def get_teacher(s, data) -> Trained:
    """The frozen teacher s.teacher asks for: "download" (the pre-trained vgg13_bn), "train" (our CNN, trained here),
    "train-vgg13_bn" (on a GPU) or a weights file; "auto": "download" for CIFAR-10's classes, else "train"."""
    cifar = data.classes == CLASSES["cifar10"] and data.image_shape == (3, 32, 32)
    if s.teacher == "train" or (s.teacher == "auto" and not cifar):
        return train_teacher(s, data)
    if s.teacher == "train-vgg13_bn":
        return train_vgg13_bn(s, data)
    path = pretrained_vgg_path(s, data) if s.teacher in ("auto", "download") else Path(s.teacher)
    return Trained(load_teacher_file(path, data).to(s.device), source=f"teacher from {path.name}")

def train_teacher(s, data, model=None, *, name="cnn", seed=None, epochs=None, lr=None, augment=None, optimizer="adam"):
    """Train a teacher with cross-entropy (or reload it): our CNN built from `seed` unless a model is given;
    augment: by default crops and flips of 32x32 colour images."""
    s = replace(s, seed=s.seed if seed is None else seed)
    torch.manual_seed(s.seed)
    model = (make_cnn_teacher(data) if model is None else model).to(data.x_train.device)
    trained = fit(s, data, {name: (model, DistillationLoss(alpha=0.0))}, kind="teachers",
                  epochs=epochs or s.profile.teacher_epochs, lr=lr or s.profile.teacher_lr, optimizer=optimizer,
                  augment=data.image_shape == (3, 32, 32) if augment is None else augment,
                  config=dict(init=content_hash(model.state_dict())[:16]))[name]
    trained.source = f"{name} teacher trained here ({s.profile.name} profile)"
    freeze(trained.model)
    return trained

def train_vgg13_bn(s, data, epochs=None, rehearse=False):
    """The seeds' vgg13_bn (chenyaofo's layout, so the zoo's loader reads it) trained here, on a CUDA GPU: SGD with
    Nesterov momentum and weight decay, a cosine schedule, crops and flips on the device, s.precision autocast.
    rehearse=True: let it run on a CPU too, at toy size (tests, `gpu_check.py --rehearse-on-cpu`)."""
    if s.device.type != "cuda" and not rehearse:  # 1.9 s a batch of 128 on this project's 2-core CPU (2026-12-02)
        raise RuntimeError("teacher='train-vgg13_bn' needs a CUDA GPU: on a 2-core CPU one epoch takes about 12 minutes "
                           "(6 hours for the full profile's 30); use teacher='train' (our CNN, minutes) or 'download'")
    torch.manual_seed(s.seed)
    model = vgg13_bn("chenyaofo", data.num_classes).to(data.x_train.device, memory_format=torch.channels_last)
    return train_teacher(s, data, model, name="vgg13_bn", epochs=epochs, lr=0.05, optimizer="sgd", augment=True)

def pretrained_vgg_path(s, data):
    """Local path of chenyaofo's cifar10_vgg13_bn, downloaded and hash-checked by torch.hub
    if missing (the 8 hex digits in its name start its SHA-256)."""
    if data.image_shape != (3, 32, 32):  # before a 40 MB download it could not use
        raise ValueError(f"the downloadable teacher takes CIFAR-10's 32x32 colour images, not {data.name}'s "
                         f"{data.image_shape}; use teacher='train'")
    url = ZOO["chenyaofo"]["url"]
    dest = s.data_dir / "weights" / os.path.basename(url)
    prefix = dest.stem.rsplit("-", 1)[-1]
    if dest.exists():  # downloads are checked before they land here; a file put here by hand is not
        if not hashlib.sha256(dest.read_bytes()).hexdigest().startswith(prefix):
            raise CorruptFileError(f"{dest} is not the published {dest.name} (its SHA-256 does not start with "
                                   f"{prefix}); delete it to download again, or use KD_TEACHER=/path/to/weights.pt")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=prefix)
    except (OSError, RuntimeError) as e:  # no network, or a corrupt download (nothing is kept)
        raise RuntimeError(f"could not download the pre-trained vgg13_bn teacher ({str(e).splitlines()[0]}). With "
                           f"internet, run again (it goes to {dest}); offline, put the file there yourself, pass "
                           f"KD_TEACHER=/path/to/vgg13_bn.pt (either zoo), or train one: KD_TEACHER=train") from None
    return dest

def load_teacher_file(path, data) -> Normalized:
    """A frozen teacher from a state_dict file: either zoo's vgg13_bn (layout detected from
    its first head layer), or a teacher saved by this project (vgg13_bn or our CNN)."""
    sd = load_torch(path)
    for key in ("state_dict", "model"):  # some checkpoints wrap the weights
        sd = sd[key] if isinstance(sd, dict) and isinstance(sd.get(key), dict) else sd
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise TeacherMismatchError(f"{path}: expected a state_dict (a dict of tensors), found {type(sd).__name__}")
    for prefix in ("module.", "model."):  # DataParallel / Lightning prefixes
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    ours = all(k.startswith("net.") or k in ("mean", "std") for k in sd)
    net = {k[4:]: v for k, v in sd.items() if k.startswith("net.")} if ours else sd
    heads = [k for k in net if k.startswith("classifier.") and k.endswith(".weight") and k.split(".")[1].isdigit()]
    if not heads:
        raise TeacherMismatchError(f"{path} is not a vgg13_bn or CNN teacher: it has no classifier.<i>.weight")
    head = max(heads, key=lambda k: int(k.split(".")[1]))  # the output layer, by index: key order may differ
    if "classifier.0.weight" in net and net["classifier.0.weight"].shape[1] == 512:  # vgg13_bn
        layout = next((z for z, v in ZOO.items() if net["classifier.0.weight"].shape[0] == v["hidden"]), None)
        if layout is None:
            raise TeacherMismatchError(f"{path}: a vgg13_bn head of shape {tuple(net['classifier.0.weight'].shape)} "
                                       f"matches neither zoo ((512, 512) chenyaofo, (4096, 512) pytorch_cifar10)")
        model = vgg13_bn(layout, net[head].shape[0])
    else:  # our CNN teacher; mean and std are placeholders that the file's own replace
        c, size = data.image_shape[0], data.image_shape[1]
        model = Normalized(CNNTeacher(c, net[head].shape[0], size), [0.0] * c, [1.0] * c)
    target = model if ours else model.net
    want = target.state_dict()
    problems = ([f"missing {k}" for k in want if k not in sd][:3] + [f"unexpected {k}" for k in sd if k not in want][:3]
                + [f"{k}: expected {tuple(want[k].shape)}, found {tuple(sd[k].shape)}"
                   for k in want if k in sd and want[k].shape != sd[k].shape][:3])
    if problems:
        raise TeacherMismatchError(f"{path} is not a {type(model.net).__name__} teacher for {data.name} "
                                   f"(images {data.image_shape}): {'; '.join(problems)}")
    target.load_state_dict(sd)
    with torch.no_grad():  # checked here, where a teacher comes from outside: ours are built for the data
        out = freeze(model)(data.x_test[:16].cpu())
    if out.shape[-1] != data.num_classes:
        raise TeacherMismatchError(f"the teacher outputs {out.shape[-1]} classes, but {data.name} has {data.num_classes} "
                                   f"({', '.join(map(str, data.classes))}); use one trained on it (KD_TEACHER=train)")
    if not torch.isfinite(out).all():
        raise TeacherMismatchError("the teacher's outputs are not finite (NaN or inf): its weights are damaged; use "
                                   "another weights file, or KD_TEACHER=train")
    return model

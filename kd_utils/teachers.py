"""Getting a teacher (a local file, a verified download, or trained here and
cached), and computing its outputs once so that every student can reuse them."""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import torch

from . import runs
from .models import freeze, make_cnn_teacher
from .storage import CorruptFileError, load_torch, save_torch, state_dict_hash, tensor_hash
from .training import Trained, cross_entropy_loss, new_run, predict, train

class TeacherMismatchError(ValueError):
    """Weights that do not fit the architecture or the dataset."""

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
    if s.teacher == "train" or (s.teacher == "auto" and data.name != "cifar10"):
        return train_teacher(s, data)
    from .extras import teacher_files  # weights files and the CIFAR-10 zoos

    if s.teacher in ("auto", "download"):
        return teacher_files.pretrained_teacher(s, data)
    return teacher_files.load_teacher_file(s, data)

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
                  lr=lr, batch_size=p.batch_size, seed=seed,
                  augment=augment if isinstance(augment, bool) else augment.__name__)
    folder = runs.run_folder(data.name, "teachers", name, config)
    run = new_run(f"teacher {name}", model, cross_entropy_loss, lr, folder, config, uses_teacher=False)
    train([run], data, dataclasses.replace(s, seed=seed), epochs=epochs, augment=augment)
    return Trained(freeze(model), run.history, folder, f"{name} teacher trained here ({p.name} profile), "
                                                         f"cached in {runs.shown(folder)}")

def teacher_outputs(model, x, batch_size=None):
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

"""Beyond logits: hints from an intermediate layer (FitNets), several teachers
averaged into one soft target, and the teacher seeing the augmented batch.

Hints (Romero et al. 2015, "FitNets"): besides matching the teacher's outputs,
the student's intermediate features (the "guided" layer) are mapped by a small
learned regressor onto the teacher's intermediate features (the "hint"), with
an L2 loss. FitNets trains in two stages (hints first, then distillation); we
train jointly, one loss with both terms, which is simpler and common since:

    loss = distillation_loss(...) + hint_weight * mean((r(student_feat) - teacher_feat)^2)

Ensembles (Hinton et al. 2015): the soft target is the average of the
teachers' softened distributions at temperature T.

Augmentation: with cached teacher outputs the student sees a random crop but
is told what the teacher said about the clean image; "online" runs the teacher
on the crop itself (consistent teaching, Beyer et al. 2022), at the price of a
teacher forward pass per step.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .data import load_dataset
from .losses import check_labels, distillation_loss
from .storage import fingerprint
from .teachers import dataset_runs_dir, state_dict_hash, tensor_hash, train_cnn_teacher
from .training import fit, new_student, train_student


@dataclass(frozen=True)
class BeyondSize:
    n_train: int | None   # training images (None: all)
    n_test: int | None    # test images (None: all)
    teacher_epochs: int
    student_epochs: int
    n_teachers: int       # members of the ensemble


# Sized for each profile's budget: smoke in seconds, cpu in a few minutes on 2 cores.
SIZES = {
    "smoke": BeyondSize(n_train=1000, n_test=1000, teacher_epochs=1, student_epochs=1, n_teachers=2),
    "cpu": BeyondSize(n_train=6000, n_test=5000, teacher_epochs=2, student_epochs=4, n_teachers=3),
    "full": BeyondSize(n_train=None, n_test=None, teacher_epochs=30, student_epochs=30, n_teachers=3),
}


def load_data(s, size):
    """The dataset of settings s, cut to size (class-balanced), on s.device."""
    return load_dataset(s.dataset).subset(size.n_train, size.n_test).to(s.device)


def train_teachers(s, data, size):
    """size.n_teachers CNN teachers that differ only in their seed (initial
    weights, batch order, dropout). Each is trained once and cached."""
    profile = replace(s.profile, teacher_epochs=size.teacher_epochs)
    return [train_cnn_teacher(data, profile=profile, seed=s.seed + k).to(s.device)
            for k in range(size.n_teachers)]


# ------------------------------------------------------------------ ensembles

def ensemble_logits(logits, temperature=1.0):
    """Logits whose softmax at `temperature` is the mean of the members' softmax
    at that temperature: T * log(mean_k softmax(z_k / T)), computed in log space
    so that tiny probabilities stay finite. Feed them to distillation_loss at
    the same temperature; at T = 1 their argmax is the ensemble's prediction."""
    if len(logits) == 0:
        raise ValueError("need the logits of at least one teacher")
    T = float(temperature)
    logp = torch.stack([F.log_softmax(z.float() / T, dim=-1) for z in logits])
    return T * (torch.logsumexp(logp, dim=0) - math.log(len(logits)))


# ---------------------------------------------------------------------- hints

def block_output(model, block):
    """The layer that ends conv block `block` (1-based) of a CNNTeacher or
    LeNetStudent: the block-th MaxPool2d of model.net.features."""
    pools = [m for m in model.net.features if isinstance(m, nn.MaxPool2d)]
    if not 1 <= block <= len(pools):
        raise ValueError(f"block must be between 1 and {len(pools)} for {type(model.net).__name__}, got {block}")
    return pools[block - 1]


@contextmanager
def capture(module):
    """Record module's output on every forward pass: `with capture(m) as c: ...; c["out"]`."""
    store = {}
    handle = module.register_forward_hook(lambda m, inp, out: store.__setitem__("out", out))
    try:
        yield store
    finally:
        handle.remove()


def feature_shapes(student, teacher, x, block):
    """(C, H, W) of the guided layer (student) and the hint layer (teacher) for images x."""
    with torch.no_grad(), capture(block_output(student, block)) as s, \
            capture(block_output(teacher, block)) as t:
        student(x[:2]), teacher(x[:2])
    return tuple(s["out"].shape[1:]), tuple(t["out"].shape[1:])


def hint_loss(student_feat, teacher_feat, regressor):
    """FitNets' L2 hint loss, averaged over features. The regressor (a 3x3 conv)
    maps the student's channels to the teacher's; where the two layers differ
    in height and width, the teacher's map is average-pooled to the student's."""
    pred = regressor(student_feat)
    target = F.adaptive_avg_pool2d(teacher_feat.float(), pred.shape[-2:])
    return F.mse_loss(pred.float(), target)


class HintedStudent(nn.Module):
    """A student plus the regressor that only training uses, so that one
    optimiser (in fit) trains both. forward() is the student's."""

    def __init__(self, student, regressor):
        super().__init__()
        self.student = student
        self.regressor = regressor

    def forward(self, x):
        return self.student(x)


def train_with_hints(data, teacher, *, alpha, temperature, hint_weight, seed=0, epochs=2, lr=2e-3,
                     batch_size=128, block=2, run_dir=None, config=None, augment=False):
    """Distil a student (new_student(data, seed): the same initial weights as every
    other student) with the usual loss plus hint_weight times the hint loss at
    the end of conv block `block`. The teacher runs on every batch (its features
    are too big to cache). Returns (student, history)."""
    if hint_weight < 0:
        raise ValueError(f"hint_weight must be >= 0, got {hint_weight}")
    check_labels(data.y_train, data.num_classes)  # once here, not on every step
    teacher.eval()
    student = new_student(data, seed)
    (cs, _, _), (ct, _, _) = feature_shapes(student, teacher, data.x_train, block)
    model = HintedStudent(student, nn.Conv2d(cs, ct, 3, padding=1))

    with capture(block_output(student, block)) as s_feat, capture(block_output(teacher, block)) as t_feat:
        def batch_loss(m, xb, yb, idx):
            with torch.no_grad():
                t_logits = teacher(xb).float()
            logits = m(xb)
            loss = distillation_loss(logits.float(), t_logits, yb, temperature, alpha,
                                     check_label_values=False)
            if hint_weight > 0:
                loss = loss + hint_weight * hint_loss(s_feat["out"], t_feat["out"], m.regressor)
            return loss, logits

        history = fit(model, data, batch_loss, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                      run_dir=run_dir, augment=augment, desc=f"student + hints (w={hint_weight:g})",
                      config=config)
    return student, history


# ------------------------------------------------------------ running students

def run_dir_for(data, config):
    """Where a student of notebook 08 with this config is cached."""
    return dataset_runs_dir(data.name) / "beyond" / \
        f"{config['method']}-{fingerprint(config)}"


def distil(s, data, size, method, *, alpha, teacher=None, teacher_logits=None, teacher_mode="cached",
           augment=False, hint_weight=0.0):
    """One student of the notebook, cached by everything it depends on:
    method "kd" (train_student) or "hints" (train_with_hints).
    Returns (student, history)."""
    if method not in ("kd", "hints"):
        raise ValueError(f"method must be 'kd' or 'hints', got {method!r}")
    config = dict(method=method, dataset=data.name, n_train=len(data.x_train), n_test=len(data.x_test),
                  alpha=alpha, temperature=s.temperature, seed=s.seed, epochs=size.student_epochs,
                  lr=s.profile.student_lr, batch_size=s.profile.batch_size, augment=augment,
                  teacher_mode=teacher_mode if alpha > 0 else None, hint_weight=hint_weight,
                  teacher=state_dict_hash(teacher)[:16] if teacher is not None and alpha > 0 else None,
                  teacher_logits=tensor_hash(teacher_logits)[:16] if teacher_logits is not None and alpha > 0 else None)
    common = dict(seed=s.seed, epochs=size.student_epochs, lr=s.profile.student_lr,
                  batch_size=s.profile.batch_size, run_dir=run_dir_for(data, config), config=config,
                  augment=augment)
    if method == "hints":
        return train_with_hints(data, teacher, alpha=alpha, temperature=s.temperature,
                                hint_weight=hint_weight, **common)
    return train_student(data, alpha, s.temperature, teacher=teacher, teacher_logits=teacher_logits,
                         teacher_mode=teacher_mode, **common)


def train_seconds(history):
    """Wall time of a training run, summed over its epochs (as recorded when it ran)."""
    return sum(h["seconds"] for h in history)

"""Beyond logits: hints from an intermediate layer (FitNets), several teachers
averaged into one soft target, and the teacher seeing the augmented batch.

Hints (Romero et al. 2015, "FitNets"): besides matching the teacher's outputs,
the student's intermediate features (the "guided" layer) are mapped by a small
learned regressor onto the teacher's intermediate features (the "hint"), with
an L2 loss. FitNets trains in two stages (hints first, then distillation); we
train jointly, one loss with both terms, which is simpler and common since:

    loss = distillation loss + hint_weight * mean((r(student_feat) - teacher_feat)^2)

Ensembles (Hinton et al. 2015): the soft target is the average of the
teachers' softened distributions at temperature T.

Augmentation: with cached teacher outputs the student sees a random crop but
is told what the teacher said about the clean image; "online" runs the teacher
on the crop itself (consistent teaching, Beyer et al. 2022), at the price of a
teacher forward pass per step.

Every student here is trained by kd.train, alone (so that its wall time is its own).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..storage import tensor_hash
from ..teachers import teacher_outputs, train_teacher
from ..training import Trained, new_student, student_loss, train
from .common import student_run


def train_teachers(s, data, size):
    """size.n_teachers CNN teachers (kd.train_teacher) that differ only in their
    seed: s.seed, s.seed + 1, ... (initial weights, batch order, dropout). Each is
    trained once and cached. Returns a list of kd.Trained."""
    return [train_teacher(s, data, seed=s.seed + k, epochs=size.teacher_epochs) for k in range(size.n_teachers)]


# ------------------------------------------------------------------ ensembles

def ensemble_logits(logits, temperature=1.0):
    """Logits whose softmax at `temperature` is the mean of the members' softmax
    at that temperature: T * log(mean_k softmax(z_k / T)), computed in log space
    so that tiny probabilities stay finite. Feed them to the loss at the same
    temperature; at T = 1 their argmax is the ensemble's prediction."""
    if len(logits) == 0:
        raise ValueError("need the logits of at least one teacher")
    T = float(temperature)
    logp = torch.stack([F.log_softmax(z.float() / T, dim=-1) for z in logits])
    return T * (torch.logsumexp(logp, dim=0) - math.log(len(logits)))


# ---------------------------------------------------------------------- hints

@dataclass(frozen=True)
class Hint:
    """Hint the output of conv block `block` (1-based) with weight `weight`."""
    weight: float = 1.0
    block: int = 2


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
    pred = regressor(student_feat.float())  # float: the loss runs outside autocast
    target = F.adaptive_avg_pool2d(teacher_feat.float(), pred.shape[-2:])
    return F.mse_loss(pred.float(), target)


class HintedStudent(nn.Module):
    """A student plus the regressor that only training uses, so that one
    optimiser trains both. forward() is the student's."""

    def __init__(self, student, regressor):
        super().__init__()
        self.student = student
        self.regressor = regressor

    def forward(self, x):
        return self.student(x)


# ------------------------------------------------------------ running students

def distil(s, data, size, *, alpha, teacher=None, online=False, augment=False, hint=None):
    """One student of notebook 08 (kd.new_student: the same initial weights as every
    other), trained for size.student_epochs with Hinton's loss at s.temperature, or
    loaded if that run finished before. Returns a kd.Trained.

    teacher: a kd.Trained teacher, or logits for data.x_train (e.g. an ensemble's);
    online:  run the teacher on every (augmented) batch instead of using its
             outputs cached for the clean images (needs a kd.Trained teacher);
    augment: random crops and flips of every batch;
    hint:    a Hint: add the hint loss at the end of that conv block (online)."""
    is_model = isinstance(teacher, Trained)
    online = online or hint is not None  # the teacher's features are too big to cache
    if (alpha > 0 and teacher is None) or (online and not is_model):
        raise ValueError("alpha > 0 needs a teacher (a kd.Trained, or its logits for data.x_train); "
                         "online teaching and hints need a kd.Trained teacher")
    if hint is not None and hint.weight < 0:
        raise ValueError(f"the hint's weight must be >= 0, got {hint.weight}")
    logits = None
    if alpha > 0 and not online:
        logits = teacher_outputs(teacher.model, data.x_train) if is_model else teacher
        if logits.shape != (len(data.x_train), data.num_classes):
            raise ValueError(f"teacher logits must have shape {(len(data.x_train), data.num_classes)} "
                             f"(one row per training image), got {tuple(logits.shape)}")
    uses_teacher = alpha > 0 or hint is not None
    config = dict(alpha=alpha, epochs=size.student_epochs, lr=s.profile.student_lr, augment=augment,
                  **(dict(temperature=s.temperature, formulation=s.formulation) if alpha > 0 else {}),
                  **(dict(teacher=teacher.key if is_model else tensor_hash(logits)[:16],
                          teacher_mode="online" if online else "cached") if uses_teacher else {}),
                  **(dict(hint_weight=hint.weight, hint_block=hint.block) if hint else {}))
    name = ("hints" if hint else "kd") + f"-alpha{alpha:g}" + ("-aug" if augment else "")
    student = new_student(data, s.seed)
    model, loss = student, student_loss(s, alpha)
    if hint is None:
        run = student_run(s, data, "beyond", name, model, loss, config, uses_teacher)
        train([run], data, s, epochs=size.student_epochs, teacher_logits=logits,
              teacher=teacher.model if online else None, augment=augment)
        return Trained(student, run.history, run.folder, f"student {name}")
    (cs, _, _), (ct, _, _) = feature_shapes(student, teacher.model, data.x_train, hint.block)
    model = HintedStudent(student, nn.Conv2d(cs, ct, 3, padding=1).to(data.x_train.device))
    with capture(block_output(student, hint.block)) as s_feat, \
            capture(block_output(teacher.model, hint.block)) as t_feat:
        def hinted_loss(out, labels, t):
            return loss(out, labels, t) + hint.weight * hint_loss(s_feat["out"], t_feat["out"], model.regressor)

        run = student_run(s, data, "beyond", name, model, hinted_loss, config, uses_teacher)
        train([run], data, s, epochs=size.student_epochs, teacher=teacher.model, augment=augment)
    return Trained(student, run.history, run.folder, f"student {name}")


def train_seconds(history):
    """Wall time of a training run, summed over its epochs (as recorded when it ran)."""
    return sum(h["seconds"] for h in history)


# ------------------------------------------------------------------ plotting

# Notebook 08's students, one colour each. Plain students keep the colour of their alpha
# (kd.model_color: hard labels = alpha 0, distillation from any one teacher = that alpha);
# the variants take colours that no alpha uses.
VARIANT_COLORS = {"hints": "C6", "ensemble": "C3", "aug, cached": "C8", "aug, online": "C9"}


def student_color(name, alpha):
    """The colour of notebook 08's student `name` ("hard labels", "KD, teacher 2",
    "KD + hints", "KD, ensemble", "KD + aug, cached teacher", ...), whose distilled
    students use teacher weight alpha."""
    from ..figures import model_color

    if name == "hard labels":
        return model_color("alpha=0")
    for key, color in VARIANT_COLORS.items():
        if key in name:
            return color
    return model_color(f"alpha={alpha:g}")

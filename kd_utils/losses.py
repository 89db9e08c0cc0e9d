"""The distillation loss, one nn.Module, in Hinton's form and in the seeds' blended form.

alpha weights the TEACHER term (the source projects' convention): 0 = hard labels only,
1 = teacher only. torchdistill's KDLoss(alpha=a) and Keras' Distiller example weight the
hard term instead: their a is our 1 - alpha.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .settings import FORMULATIONS, check_alpha, check_choice, check_temperature

class DistillationLoss(nn.Module):
    """loss = DistillationLoss(temperature, alpha, formulation); loss(student_logits, teacher_logits, labels)

    "hinton" (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network", section 2):
        alpha * T^2 * KL(softmax(t/T) || softmax(s/T))  +  (1 - alpha) * CE(s, y)
    The KL is averaged over the batch ("batchmean": summed over classes, divided by the
    number of images), like the CE. The soft term's gradient scales like 1/T^2, so the T^2
    keeps the balance of the two terms roughly fixed as T changes. At alpha = 0 it is
    plain cross-entropy and T plays no part.

    "blended" (the seeds' CIFAR-10 project): one cross-entropy against a blended target,
        target = alpha * softmax(t/T) + (1 - alpha) * onehot(y)
        loss   = -sum(target * log_softmax(s/T)), averaged over the batch,
    with no T^2, and the hard labels too are scored at temperature T.

    T, alpha and the formulation are checked here, once; the teacher gets no gradient.
    teacher_logits may be None when alpha = 0."""

    def __init__(self, temperature=4.0, alpha=0.5, formulation="hinton"):
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.alpha = check_alpha(alpha)
        self.formulation = check_choice("formulation", formulation, FORMULATIONS)

    @property
    def uses_teacher(self):
        return self.alpha > 0

    def identity(self):
        """What a run trained with this loss depends on (Hinton's alpha = 0 is plain CE: no T)."""
        plain = self.alpha == 0 and self.formulation == "hinton"
        return dict(alpha=0.0) if plain else dict(alpha=self.alpha, temperature=self.temperature, formulation=self.formulation)

    def forward(self, student_logits, teacher_logits, labels):
        T, alpha, labels = self.temperature, self.alpha, labels.long()
        if alpha > 0 and (teacher_logits is None or teacher_logits.shape != student_logits.shape):
            raise ValueError(f"alpha = {alpha:g} needs teacher logits of the student's shape {tuple(student_logits.shape)}, "
                             f"got {None if teacher_logits is None else tuple(teacher_logits.shape)}")
        if self.formulation == "blended":
            target = (1 - alpha) * F.one_hot(labels, student_logits.shape[1]).to(student_logits.dtype)
            soft = alpha * F.softmax(teacher_logits.detach() / T, dim=-1) if alpha > 0 else 0.0
            return soft_cross_entropy(student_logits, target + soft, T)
        loss = (1 - alpha) * F.cross_entropy(student_logits, labels) if alpha < 1 else 0.0
        if alpha > 0:
            loss = loss + alpha * T * T * F.kl_div(F.log_softmax(student_logits / T, dim=-1),
                                                   F.log_softmax(teacher_logits.detach() / T, dim=-1),
                                                   reduction="batchmean", log_target=True)
        return loss

    def extra_repr(self):
        return f"temperature={self.temperature:g}, alpha={self.alpha:g}, formulation={self.formulation!r}"

def soft_cross_entropy(student_logits, target_probs, temperature=1.0):
    """-sum(target * log_softmax(s/T)), averaged over the batch."""
    return -(target_probs * F.log_softmax(student_logits / temperature, dim=-1)).sum(-1).mean()

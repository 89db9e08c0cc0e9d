"""The distillation loss, in Hinton's form and in the seeds' blended-target form.
alpha weights the TEACHER term (the source projects' convention): 0 = hard labels
only, 1 = teacher only. torchdistill's KDLoss(alpha=a) and Keras' Distiller example
weight the hard term instead: their a is our 1 - alpha.

"hinton" (Hinton, Vinyals & Dean 2015, section 2):
    alpha * T^2 * KL(softmax(t/T) || softmax(s/T))  +  (1 - alpha) * CE(s, y)
KL is averaged over the batch ("batchmean": summed over classes, divided by the
number of samples), like CE. The soft term's gradient scales like 1/T^2, so the
T^2 keeps the two terms' balance roughly fixed as T changes.

"blended" (seeds 000/001): one cross-entropy against a blended target,
    target = alpha * softmax(t/T) + (1 - alpha) * onehot(y)
    loss   = -sum(target * log_softmax(s/T)) averaged over the batch,
with no T^2, and the hard labels too are scored at temperature T.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .settings import FORMULATIONS, check_alpha, check_choice, check_temperature

def soft_cross_entropy(student_logits, target_probs, temperature=1.0):
    """-sum(target * log_softmax(s/T)), averaged over the batch."""
    logp = F.log_softmax(student_logits / temperature, dim=-1)
    return -(target_probs * logp).sum(-1).mean()

def kd_loss(student_logits, teacher_logits, labels, temperature, alpha, formulation="hinton"):
    """distillation_loss without the checks: what the training loop calls on every
    batch, after settings() checked T, alpha and the formulation once."""
    T = temperature
    if formulation == "blended":
        target = (1 - alpha) * F.one_hot(labels, student_logits.shape[1]).to(student_logits.dtype)
        if alpha > 0:
            target = target + alpha * F.softmax(teacher_logits.detach() / T, dim=-1)
        return soft_cross_entropy(student_logits, target, T)
    loss = 0.0
    if alpha < 1:
        loss = (1 - alpha) * F.cross_entropy(student_logits, labels)
    if alpha > 0:
        kl = F.kl_div(F.log_softmax(student_logits / T, dim=-1), F.log_softmax(teacher_logits.detach() / T, dim=-1),
                      reduction="batchmean", log_target=True)
        loss = loss + alpha * T * T * kl
    return loss

def check_labels(labels, num_classes):
    """Every label a class index in [0, num_classes). Reads the values, which on a
    GPU waits for the device: training loops check their labels once instead."""
    if labels.dtype not in (torch.int64, torch.int32, torch.uint8, torch.int16):
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes - 1}] for {num_classes} classes, "
                         f"got values from {int(labels.min())} to {int(labels.max())}")

def distillation_loss(student_logits, teacher_logits, labels, temperature, alpha, formulation="hinton"):
    """Loss for one batch: student logits (batch, classes) against the teacher's
    logits (same shape; may be None when alpha = 0) and integer labels (batch,).
    Every argument is checked; the teacher gets no gradient."""
    T = check_temperature(temperature)
    alpha = check_alpha(alpha)
    check_choice("formulation", formulation, FORMULATIONS)
    if student_logits.ndim != 2:
        raise ValueError(f"student_logits must have shape (batch, classes), got {tuple(student_logits.shape)}")
    if teacher_logits is None and alpha > 0:
        raise ValueError(f"teacher_logits are needed when alpha > 0 (alpha = {alpha})")
    if teacher_logits is not None and teacher_logits.shape != student_logits.shape:
        raise ValueError(f"student and teacher logits must have the same shape, got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    if labels.shape != (student_logits.shape[0],):
        raise ValueError(f"labels must have shape ({student_logits.shape[0]},), got {tuple(labels.shape)}")
    check_labels(labels, student_logits.shape[1])
    return kd_loss(student_logits, teacher_logits, labels.long(), T, alpha, formulation)

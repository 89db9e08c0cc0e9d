"""What a trained student did: accuracy, per class, confusions, and fidelity to
its teacher (Stanton et al. 2021: students rarely match their teacher, so
measure agreement and KL, not only accuracy)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import check_temperature


def accuracy(logits, labels):
    return (logits.argmax(1) == labels).float().mean().item()


def confusion_matrix(logits_or_preds, labels, num_classes, normalize=None):
    """Rows are the true class, columns the predicted one. normalize='true'
    divides each row by its count, so the diagonal is per-class accuracy."""
    preds = logits_or_preds.argmax(1) if logits_or_preds.ndim == 2 else logits_or_preds
    idx = labels.long().cpu() * num_classes + preds.long().cpu()
    cm = torch.bincount(idx, minlength=num_classes ** 2).view(num_classes, num_classes)
    if normalize == "true":
        return cm.float() / cm.sum(1, keepdim=True).clamp_min(1)
    if normalize is not None:
        raise ValueError(f"normalize must be None or 'true', got {normalize!r}")
    return cm


def per_class_accuracy(logits, labels, num_classes):
    return confusion_matrix(logits, labels, num_classes, normalize="true").diagonal()


def agreement(student_logits, teacher_logits):
    """Top-1 agreement: how often the student predicts what the teacher predicts."""
    return (student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean().item()


def kl_to_teacher(student_logits, teacher_logits, temperature=1.0):
    """Mean KL(teacher || student) per sample, in nats, at temperature T."""
    T = check_temperature(temperature)
    return F.kl_div(F.log_softmax(student_logits.float() / T, 1),
                    F.log_softmax(teacher_logits.float() / T, 1),
                    reduction="batchmean", log_target=True).item()


def most_confused_pairs(cm, classes, k=5):
    """The k largest off-diagonal entries of a confusion matrix, as
    (true class, predicted class, value), largest first."""
    cm = torch.as_tensor(cm).clone().float()
    cm.fill_diagonal_(float("-inf"))
    vals, flat = cm.flatten().topk(min(k, cm.numel() - len(cm)))
    n = cm.shape[1]
    return [(classes[i // n], classes[i % n], v) for v, i in zip(vals.tolist(), flat.tolist())]


def summarize(student_logits, teacher_logits, labels, num_classes):
    """All of the above for one model, as a dict of floats."""
    out = dict(accuracy=accuracy(student_logits, labels))
    if teacher_logits is not None:
        out.update(agreement=agreement(student_logits, teacher_logits),
                   kl_to_teacher=kl_to_teacher(student_logits, teacher_logits))
    return out

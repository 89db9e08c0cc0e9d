"""What a trained student did: accuracy, per class, confusions, and fidelity to
its teacher (Stanton et al. 2021: students rarely match their teacher, so
measure agreement and KL, not only accuracy)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .settings import check_temperature
from .training import predict, teacher_outputs

def accuracy(logits, labels):
    return (logits.argmax(1) == labels).float().mean().item()

def confusion_matrix(logits_or_preds, labels, num_classes, normalize=None):
    """Rows are the true class, columns the predicted one. normalize='true'
    divides each row by its count, so the diagonal is per-class accuracy."""
    preds = logits_or_preds.argmax(1) if logits_or_preds.ndim == 2 else logits_or_preds
    preds, labels = preds.long().cpu(), labels.long().cpu()
    if preds.shape != labels.shape:
        raise ValueError(f"{len(preds)} predictions for {len(labels)} labels")
    for what, v in (("labels", labels), ("predictions", preds)):
        if len(v) and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{what} must be class indices in [0, {num_classes - 1}], "
                             f"got values from {int(v.min())} to {int(v.max())}")
    idx = labels * num_classes + preds
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

# --- Is a difference real? (notebook 4's takeaways) ---

def accuracy_stderr(p, n):
    """Binomial standard error of an accuracy p on n test images (another test set's spread)."""
    if n <= 0:
        raise ValueError(f"n (the number of test images) must be > 0, got {n}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be an accuracy in [0, 1], got {p}")
    return (p * (1 - p) / n) ** 0.5

def paired_difference(logits_a, logits_b, labels):
    """Accuracy of a minus accuracy of b on the SAME test images, and its
    standard error. Pairing matters: images both models get right (or both
    get wrong) carry no information about which model is better, so the
    error comes only from the images where they disagree on correctness."""
    if not len(logits_a) == len(logits_b) == len(labels) > 0:
        raise ValueError(f"need the same, non-zero number of rows, got {len(logits_a)}, "
                         f"{len(logits_b)} logits and {len(labels)} labels")
    d = ((logits_a.argmax(1) == labels).float() - (logits_b.argmax(1) == labels).float()).cpu()
    se = d.std(unbiased=True).item() / len(d) ** 0.5 if len(d) > 1 else float("nan")
    return d.mean().item(), se

def verdict(difference, stderr, z=2.0):
    """A difference is called real only beyond z standard errors."""
    return "better" if difference > z * stderr else "worse" if difference < -z * stderr else "within noise"

def compare_to_baseline(logits_by_model, baseline, labels, z=2.0):
    """One row per model other than `baseline`: accuracies, difference, its paired standard
    error and verdict. Only test-set noise is counted: another training seed moves
    accuracies too (often by more), which needs several runs (compare_over_seeds)."""
    if baseline not in logits_by_model:
        raise KeyError(f"baseline {baseline!r} is not one of {list(logits_by_model)}")
    base = logits_by_model[baseline]
    rows = []
    for name, logits in logits_by_model.items():
        if name == baseline:
            continue
        diff, se = paired_difference(logits, base, labels)
        rows.append(dict(model=name, accuracy=accuracy(logits, labels),
                         baseline_accuracy=accuracy(base, labels), difference=diff, stderr=se,
                         verdict=verdict(diff, se, z)))
    return rows

def compare_over_seeds(acc_by_seed, baseline, z=2.0):
    """acc_by_seed = {seed: {model: accuracy}}. One row per model: its mean accuracy and standard error
    over seeds, and the mean of its per-seed differences from `baseline` (same seed: same start, batches
    and test images) with their standard error sd / sqrt(seeds) and verdict: training and test-set noise."""
    seeds = sorted(acc_by_seed)
    if len(seeds) < 2:
        raise ValueError(f"need at least 2 seeds to measure the noise, got {len(seeds)}")
    rows = []
    for name in acc_by_seed[seeds[0]]:
        acc = torch.tensor([acc_by_seed[k][name] for k in seeds], dtype=torch.float64)
        diff = acc - torch.tensor([acc_by_seed[k][baseline] for k in seeds], dtype=torch.float64)
        d, se = diff.mean().item(), diff.std().item() / len(seeds) ** 0.5
        rows.append(dict(model=name, seeds=len(seeds), accuracy=acc.mean().item(), accuracy_se=acc.std().item() /
                         len(seeds) ** 0.5, difference=d, difference_se=se,
                         verdict="baseline" if name == baseline else verdict(d, se, z)))
    return rows

# --- The table of notebook 03 and the command line ---

def evaluate(s, data, teacher, students):
    """One row per model: test accuracy, and fidelity to the teacher (agreement, KL).
    teacher and students: Trained records ({alpha: Trained} for the students)."""
    t_logits = teacher_outputs(s, teacher, data.x_test)
    rows = [dict(model="teacher", **summarize(t_logits, None, data.y_test, data.num_classes))]
    for alpha, student in students.items():
        rows.append(dict(model=f"student alpha={alpha:g}", alpha=alpha, **summarize(
            predict(student.model, data.x_test), t_logits, data.y_test, data.num_classes)))
    return rows

def format_table(rows):
    lines = [f"{'model':<22}{'test acc':>10}{'agree w/ T':>12}{'KL to T':>10}"]
    for r in rows:
        lines.append(f"{r['model']:<22}{r['accuracy']:>10.2%}"
                     + (f"{r['agreement']:>12.2%}{r['kl_to_teacher']:>10.3f}" if "agreement" in r else ""))
    return "\n".join(lines)

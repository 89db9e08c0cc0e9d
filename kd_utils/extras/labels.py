"""When does distillation help? Student accuracy against the number of labelled
images, hard labels against distillation, with two controls that separate the
teacher's dark knowledge from plain regularisation:

  smoothing  label smoothing with, for every image, the same entropy as the
             teacher's soft target: as soft, but with no similarity structure;
  shuffled   the teacher's soft target with its non-target probabilities
             shuffled among the other classes: the same confidence and entropy,
             but the wrong classes look alike at random.

If distillation beats both, what helps is *which* classes the teacher finds
alike, not only that its targets are soft. Every method of a (size, seed) is
trained in lockstep: same initial weights, same batches.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from ..losses import kd_loss
from ..metrics import accuracy, compare_over_seeds
from ..teachers import teacher_outputs
from ..temperature import entropy
from ..training import new_student, predict, train
from .common import student_run
from .sizes import size_for

METHODS = ("hard labels", "distilled", "smoothing", "shuffled")



def epochs_for(n, profile):
    """About 500 steps whatever the size (small sets are a few batches an epoch): distilled
    students keep improving long after hard-label ones stop, so short runs hide the gain;
    500 steps is what notebook 04's time budget allows for 48 students on a CPU."""
    if profile.name == "smoke":
        return 2
    return max(profile.student_epochs, round(500 * profile.batch_size / n))


def smoothing_targets(labels, entropies, num_classes):
    """Label smoothing, one epsilon per image, chosen (by bisection) so that the
    target (1 - eps on the label, eps / (C - 1) on each other class) has the given entropy."""
    lo = torch.zeros_like(entropies, dtype=torch.float64)
    hi = torch.full_like(lo, (num_classes - 1) / num_classes)  # the uniform distribution
    target_h = entropies.double().clamp(0, math.log(num_classes))

    def h(eps):
        eps = eps.clamp(1e-12, 1 - 1e-12)
        return -(1 - eps) * torch.log(1 - eps) - eps * torch.log(eps / (num_classes - 1))

    for _ in range(60):  # h grows with eps on [0, (C-1)/C]
        mid = (lo + hi) / 2
        too_low = h(mid) < target_h
        lo, hi = torch.where(too_low, mid, lo), torch.where(too_low, hi, mid)
    eps = ((lo + hi) / 2).float()
    out = (eps / (num_classes - 1))[:, None].repeat(1, num_classes)
    out[torch.arange(len(labels)), labels] = 1 - eps
    return out


def shuffled_targets(probs, labels, generator):
    """probs with each row's non-target probabilities permuted at random among the
    non-target classes (the label's probability stays where it is)."""
    out = probs.clone()
    n, c = probs.shape
    others = torch.stack([torch.tensor([k for k in range(c) if k != y]) for y in labels.tolist()])
    perm = torch.argsort(torch.rand(n, c - 1, generator=generator), dim=1)
    rows = torch.arange(n)[:, None]
    out[rows, others] = probs[rows, others[rows, perm]]
    return out


def method_logits(s, data, teacher, seed):
    """(images, methods, classes): logits whose softmax at T is each method's target."""
    T = s.temperature
    t = teacher_outputs(teacher.model, data.x_train).cpu()
    p = F.softmax(t / T, dim=1)
    y = data.y_train.cpu()
    smooth = smoothing_targets(y, entropy(p), data.num_classes)
    shuffled = shuffled_targets(p, y, torch.Generator().manual_seed(seed))
    as_logits = [T * torch.log(q.clamp_min(1e-12)) for q in (smooth, shuffled)]
    return torch.stack([t, t, *as_logits], dim=1).to(data.x_train.device)


def label_curve(s, data, teacher, alpha=0.5):
    """Train every method at every size and seed of the profile's labels size (or
    load the finished runs); one row per (labels, seed, method) with its test accuracy."""
    size = size_for(s, "labels")
    rows = []
    for n in size.sizes:
        sub = data.subset(n)
        epochs = epochs_for(n, s.profile)
        for seed in size.seeds:
            s_seed = dataclasses.replace(s, seed=seed)
            targets = method_logits(s_seed, sub, teacher, seed)
            run_list = []
            for m, method in enumerate(METHODS):
                a = 0.0 if method == "hard labels" else alpha
                config = dict(method=method, teacher=teacher.key, alpha=a, temperature=s.temperature,
                              formulation=s.formulation, epochs=epochs, lr=s.profile.student_lr)
                loss = (lambda m, a: lambda logits, labels, t: kd_loss(logits, None if t is None else t[:, m],
                                                                       labels, s.temperature, a, s.formulation))(m, a)
                run = student_run(s_seed, sub, "labels-curve", f"{method.replace(' ', '-')}-n{n}-seed{seed}",
                                  new_student(sub, seed), loss, config, uses_teacher=a > 0)
                run.evaluations = 1  # only the final accuracy is used: evaluating 10 times doubled the time
                run_list.append(run)
            train(run_list, sub, s_seed, epochs=epochs, teacher_logits=targets, augment=False, progress=False)
            for method, r in zip(METHODS, run_list):
                rows.append(dict(labels=n, seed=seed, method=method, epochs=epochs,
                                 accuracy=accuracy(predict(r.model, data.x_test), data.y_test)))
    return rows


def summarize_curve(rows):
    """Per size: compare_over_seeds of every method against hard labels."""
    out = []
    for n in sorted({r["labels"] for r in rows}):
        by_seed = {}
        for r in rows:
            if r["labels"] == n:
                by_seed.setdefault(r["seed"], {})[r["method"]] = r["accuracy"]
        out += [dict(labels=n, **row) for row in compare_over_seeds(by_seed, "hard labels")]
    return out


def plot_curve(summary, axes=None):
    """Left: accuracy against labelled images (mean +- SE over seeds). Right: each
    method minus hard labels (mean of per-seed differences +- SE)."""
    import matplotlib.pyplot as plt

    if axes is None:
        axes = plt.subplots(1, 2, figsize=(12, 4))[1]
    colors = {"hard labels": "C0", "distilled": "C1", "smoothing": "C4", "shuffled": "C7"}
    for i, method in enumerate(METHODS):
        rs = [r for r in summary if r["model"] == method]
        xs = [r["labels"] * (1 + 0.03 * (i - 1.5)) for r in rs]  # nudged apart so the bars don't overlap
        axes[0].errorbar(xs, [100 * r["accuracy"] for r in rs], yerr=[100 * r["accuracy_se"] for r in rs],
                         marker="o", capsize=3, label=method, color=colors[method])
        if method != "hard labels":
            axes[1].errorbar(xs, [100 * r["difference"] for r in rs], yerr=[100 * r["difference_se"] for r in rs],
                             marker="o", capsize=3, label=method, color=colors[method])
    axes[1].axhline(0, color="k", lw=0.8)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("labelled training images the student sees")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%, mean ± SE over seeds)")
    axes[1].set_ylabel("minus hard labels (points, ± SE)")
    return axes

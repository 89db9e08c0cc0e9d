"""When does distillation help? Student accuracy against the number of labelled images,
hard labels against distillation, with two controls that separate the teacher's dark
knowledge from plain regularisation (notebook 04, section 8):

  smoothing  label smoothing with, for every image, the same entropy as the teacher's soft
             target: as soft, but with no similarity structure;
  shuffled   the teacher's soft target with its wrong-class probabilities shuffled among the
             wrong classes: the same confidence and entropy, but which classes look alike is random.

Every method of a (size, seed) is trained in lockstep: same initial weights, same batches.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from ..losses import DistillationLoss
from ..metrics import compare_over_seeds
from ..temperature import entropy
from ..training import fit, new_student, teacher_outputs

METHODS = ("hard labels", "distilled", "smoothing", "shuffled")
SIZES = {"smoke": ((50, 200), (0, 1)), "cpu": ((100, 300, 1000, 3000), (0, 1, 2)),  # (labelled-set sizes, seeds)
         "full": ((100, 300, 1000, 3000, 10000, 30000), (0, 1, 2))}

def epochs_for(n, profile):
    """About 500 steps whatever the size (small sets are a few batches an epoch): what notebook
    04's time budget allows for 48 students on a CPU. Short: see the notebook's caveat."""
    return 2 if profile.name == "smoke" else max(profile.student_epochs, round(500 * profile.batch_size / n))

def smoothing_targets(labels, entropies, num_classes):
    """Label smoothing, one epsilon per image, chosen by bisection so that the target (1 - eps on
    the label, eps / (C - 1) on each other class) has the given entropy."""
    lo = torch.zeros_like(entropies, dtype=torch.float64)
    hi = torch.full_like(lo, (num_classes - 1) / num_classes)  # the uniform distribution
    goal = entropies.double().clamp(0, math.log(num_classes))
    for _ in range(60):  # the entropy grows with eps on [0, (C-1)/C]
        eps = ((lo + hi) / 2).clamp(1e-12, 1 - 1e-12)
        low = -(1 - eps) * torch.log(1 - eps) - eps * torch.log(eps / (num_classes - 1)) < goal
        lo, hi = torch.where(low, eps, lo), torch.where(low, hi, eps)
    eps = ((lo + hi) / 2).float()
    out = (eps / (num_classes - 1))[:, None].repeat(1, num_classes)
    out[torch.arange(len(labels)), labels] = 1 - eps
    return out

def shuffled_targets(probs, labels, generator):
    """probs with each row's wrong-class probabilities permuted at random among the wrong classes."""
    n, c = probs.shape
    others = torch.arange(c - 1) + (torch.arange(c - 1) >= labels[:, None])  # each row's wrong classes, in order
    perm = torch.argsort(torch.rand(n, c - 1, generator=generator), dim=1)
    rows, out = torch.arange(n)[:, None], probs.clone()
    out[rows, others] = probs[rows, others[rows, perm]]
    return out

def label_curve(s, data, teacher, alpha=0.5):
    """Every method at every size and seed of the profile (finished runs are reloaded); one row
    per (labels, seed, method) with its test accuracy."""
    sizes, seeds = SIZES[s.profile.name]
    rows = []
    for n in sizes:
        sub, epochs = data.subset(n), epochs_for(n, s.profile)
        t = teacher_outputs(s, teacher, sub.x_train).cpu()
        p, y = F.softmax(t / s.temperature, dim=1), sub.y_train.cpu()
        smooth = smoothing_targets(y, entropy(p), sub.num_classes)  # the same for every seed
        for seed in seeds:
            # Each method's target as logits whose softmax at T is that target (hard labels ignore them).
            targets = [t, t, *(s.temperature * torch.log(q.clamp_min(1e-12)) for q in (
                smooth, shuffled_targets(p, y, torch.Generator().manual_seed(seed))))]
            models = {f"{m.replace(' ', '-')}-n{n}-seed{seed}": (new_student(sub, seed), DistillationLoss(
                s.temperature, 0.0 if m == "hard labels" else alpha, s.formulation)) for m in METHODS}
            trained = fit(dataclasses.replace(s, seed=seed), sub, models, kind="labels-curve", epochs=epochs,
                          lr=s.profile.student_lr, teacher=teacher, evaluations=1, progress=False,
                          teacher_logits={name: q.to(sub.x_train.device) for name, q in zip(models, targets)})
            # fit tested each student on the whole test set after its last epoch (sub keeps every test image)
            rows += [dict(labels=n, seed=seed, method=m, epochs=epochs, accuracy=r.history[-1]["test_acc"])
                     for m, r in zip(METHODS, trained.values())]
    return rows

def summarize_curve(rows):
    """Per size: compare_over_seeds of every method against hard labels."""
    out = []
    for n in sorted({r["labels"] for r in rows}):
        by_seed = {}
        for r in (r for r in rows if r["labels"] == n):
            by_seed.setdefault(r["seed"], {})[r["method"]] = r["accuracy"]
        out += [dict(labels=n, **row) for row in compare_over_seeds(by_seed, "hard labels")]
    return out

def plot_curve(summary, axes):
    """Left: accuracy against labelled images (mean +- SE over seeds). Right: each method minus
    hard labels (mean of per-seed differences +- SE). The x axis names each size."""
    colors = {"hard labels": "C0", "distilled": "C1", "smoothing": "C4", "shuffled": "C7"}
    sizes = sorted({r["labels"] for r in summary})
    for i, method in enumerate(METHODS):
        rs = sorted((r for r in summary if r["model"] == method), key=lambda r: r["labels"])
        xs = [r["labels"] * (1 + 0.06 * (i - 1.5)) for r in rs]  # nudged apart so the bars don't overlap
        for ax, key, se in ((axes[0], "accuracy", "accuracy_se"), (axes[1], "difference", "difference_se")):
            if key == "accuracy" or method != "hard labels":
                ax.errorbar(xs, [100 * r[key] for r in rs], yerr=[100 * r[se] for r in rs], marker="o", capsize=3,
                            label=method, color=colors[method])
    axes[1].axhline(0, color="k", lw=0.8)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel("labelled training images the student sees")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%, mean ± SE over seeds)")
    axes[1].set_ylabel("minus hard labels (points, ± SE over seeds)")
    return axes

"""Sweeps over temperature x alpha x seed, chosen on a validation split.

Why a validation split: if we picked T and alpha by test accuracy, the test
set would become part of training (we would report the luckiest of many
draws). So we carve a validation set out of the training images, choose
there, and touch the test set once, for the chosen setting and its baseline.

Why seeds: two runs that differ only in their seed often differ by more than
two settings do. Every cell is trained with several seeds; a difference is
called real only when it is larger than that spread (difference_vs_noise).

Students train from cached teacher outputs (fast on a CPU). With Hinton's
loss, alpha = 0 ignores T, so it is trained once per seed and shared by all
temperatures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checks import check_alpha, check_choice, check_temperature
from .data import Dataset, balanced_indices
from .losses import FORMULATIONS
from .metrics import summarize
from .storage import fingerprint
from .teachers import dataset_runs_dir, tensor_hash
from .training import new_student, predict, train_student


@dataclass(frozen=True)
class SweepSize:
    n_train: int | None  # training images per student (None: all that are not validation)
    n_val: int           # validation images, carved from the training set
    epochs: int
    seeds: int           # seeds per cell
    temperatures: tuple
    alphas: tuple


# How big a sweep fits each profile's time budget (see the notebook's first cell).
SWEEP_SIZES = {
    "smoke": SweepSize(n_train=1000, n_val=400, epochs=2, seeds=2,
                       temperatures=(2.0, 8.0), alphas=(0.0, 0.5)),
    "cpu": SweepSize(n_train=4000, n_val=2000, epochs=3, seeds=3,
                     temperatures=(1.0, 2.0, 4.0, 8.0, 20.0), alphas=(0.0, 0.25, 0.5, 0.75, 1.0)),
    "full": SweepSize(n_train=None, n_val=5000, epochs=10, seeds=5,
                      temperatures=(1.0, 2.0, 4.0, 8.0, 20.0), alphas=(0.0, 0.25, 0.5, 0.75, 0.9, 1.0)),
}


def sweep_size(s, **overrides) -> SweepSize:
    """The sweep for settings s's profile, with any field replaced (None keeps it)."""
    allowed = [f.name for f in fields(SweepSize)]
    unknown = set(overrides) - set(allowed)
    if unknown:
        raise ValueError(f"unknown sweep field(s) {sorted(unknown)}; valid fields are: {allowed}")
    size = replace(SWEEP_SIZES[s.profile.name], **{k: v for k, v in overrides.items() if v is not None})
    if int(size.seeds) < 1 or int(size.epochs) < 1:
        raise ValueError(f"seeds and epochs must be >= 1, got seeds={size.seeds}, epochs={size.epochs}")
    return replace(size, temperatures=tuple(check_temperature(t) for t in size.temperatures),
                   alphas=tuple(check_alpha(a) for a in size.alphas))


@dataclass
class Split:
    data: Dataset            # x_train: what students train on; x_test: the VALIDATION images
    train_idx: torch.Tensor  # rows of the original x_train used for training
    val_idx: torch.Tensor    # rows of the original x_train used for validation


def validation_split(data, n_val, n_train=None) -> Split:
    """Carve a class-balanced validation set out of data's training images.

    Deterministic (the same for every seed and every run): the split is part
    of the experiment, not something a seed should change. The test set is
    not touched. With n_train, students train on that many of the rest."""
    n = len(data.y_train)
    if not 0 < n_val < n:
        raise ValueError(f"n_val must be between 1 and {n - 1} (the training set has {n} images), got {n_val}")
    val_idx = balanced_indices(data.y_train, n_val)
    is_val = torch.zeros(n, dtype=torch.bool)
    is_val[val_idx] = True
    rest = torch.nonzero(~is_val).squeeze(1)
    if n_train is not None:
        if not 0 < n_train <= len(rest):
            raise ValueError(f"n_train must be between 1 and {len(rest)} (training images left after "
                             f"{n_val} for validation), got {n_train}")
        rest = rest[balanced_indices(data.y_train[rest], n_train)]
    dev = data.x_train.device
    tr, va = rest.to(dev), val_idx.to(dev)
    split = replace(data, x_train=data.x_train[tr], y_train=data.y_train[tr],
                    x_test=data.x_train[va], y_test=data.y_train[va])
    return Split(split, rest, val_idx)


def run_sweep(split, teacher_logits, temperatures, alphas, seeds, *, epochs, formulation="hinton",
              lr=2e-3, batch_size=128, run_root=None):
    """Train one student per (temperature, alpha, seed) on split.data and score it
    on the validation images. teacher_logits: the teacher's outputs for the
    ORIGINAL training set (one row per image; the split picks its rows).

    Returns one row per cell and seed: formulation, temperature, alpha, seed,
    val_acc, agreement and kl_to_teacher (on validation), run_dir. Finished runs
    are reused from run_root, so re-running costs only the evaluation.
    No augmentation: the cached teacher outputs are for the clean images."""
    check_choice("formulation", formulation, FORMULATIONS)
    temperatures = [check_temperature(t) for t in temperatures]
    alphas = [check_alpha(a) for a in alphas]
    seeds = [int(s) for s in seeds]
    d = split.data
    n_orig = max(int(split.train_idx.max()), int(split.val_idx.max())) + 1
    if teacher_logits.ndim != 2 or len(teacher_logits) < n_orig:
        raise ValueError(f"teacher_logits must have one row per image of the original training set "
                         f"(at least {n_orig}), got shape {tuple(teacher_logits.shape)}")
    dev = d.x_train.device
    t_train = teacher_logits[split.train_idx.to(teacher_logits.device)].to(dev)
    t_val = teacher_logits[split.val_idx.to(teacher_logits.device)].to(dev)
    run_root = Path(run_root) if run_root else dataset_runs_dir(d.name) / "sweeps"
    key = dict(dataset=d.name, train=tensor_hash(split.train_idx)[:16], val=tensor_hash(split.val_idx)[:16],
               teacher_logits=tensor_hash(t_train)[:16], epochs=epochs, lr=lr, batch_size=batch_size)

    cells = [(T, a, s) for s in seeds for a in alphas for T in temperatures]
    rows, done = [], {}
    for T, alpha, seed in tqdm(cells, desc=f"{formulation} sweep ({len(cells)} cells)"):
        # Hinton's loss at alpha = 0 is plain cross-entropy: T plays no part.
        T_run = 1.0 if (formulation == "hinton" and alpha == 0) else T
        if (T_run, alpha, seed) not in done:
            config = dict(key, formulation=formulation, temperature=T_run, alpha=alpha, seed=seed)
            run_dir = run_root / f"{formulation}-T{T_run:g}-a{alpha:g}-seed{seed}-{fingerprint(config)}"
            model, _ = train_student(d, alpha, T_run, seed=seed, epochs=epochs, teacher_logits=t_train,
                                     formulation=formulation, lr=lr, batch_size=batch_size,
                                     run_dir=run_dir, config=config, augment=False, progress=False)
            m = summarize(predict(model, d.x_test), t_val, d.y_test, d.num_classes)
            done[(T_run, alpha, seed)] = dict(val_acc=m["accuracy"], agreement=m["agreement"],
                                              kl_to_teacher=m["kl_to_teacher"], run_dir=str(run_dir))
        rows.append(dict(formulation=formulation, temperature=T, alpha=alpha, seed=seed,
                         **done[(T_run, alpha, seed)]))
    return rows


def load_student(data, run_dir):
    """The finished student saved in run_dir (by run_sweep)."""
    from .storage import load_torch

    model = new_student(data, 0)
    model.load_state_dict(load_torch(Path(run_dir) / "final.pt", map_location=data.x_train.device))
    return model.to(data.x_train.device).eval()


def evaluate_on_test(rows, data, teacher_test_logits, temperature, alpha, formulation="hinton"):
    """Score the students of one cell (every seed) on data's TEST set: the one
    time the test set is used. One row per seed: test_acc, agreement, kl_to_teacher."""
    sel = sorted((r for r in rows if (r["temperature"], r["alpha"], r["formulation"])
                  == (float(temperature), float(alpha), formulation)), key=lambda r: r["seed"])
    if not sel:
        raise ValueError(f"no {formulation} students at T={temperature:g}, alpha={alpha:g} in the rows")
    out = []
    for r in sel:
        logits = predict(load_student(data, r["run_dir"]), data.x_test)
        m = summarize(logits, teacher_test_logits, data.y_test, data.num_classes)
        out.append(dict(temperature=float(temperature), alpha=float(alpha), seed=r["seed"],
                        test_acc=m["accuracy"], agreement=m["agreement"], kl_to_teacher=m["kl_to_teacher"]))
    return out


def grid_table(rows, value, index="temperature", columns="alpha"):
    """Mean, standard deviation (over seeds) and count of `value` per cell, as
    three pandas tables with `index` down and `columns` across."""
    import pandas as pd

    df = pd.DataFrame(rows)
    if value not in df:
        raise KeyError(f"no column {value!r} in the rows; columns are {list(df.columns)}")
    g = df.pivot_table(index=index, columns=columns, values=value, aggfunc=["mean", "std", "count"])
    return g["mean"], g["std"], g["count"]


def difference_vs_noise(a, b, z=2.0):
    """Is mean(a) - mean(b) larger than the seed-to-seed noise?

    a, b: one value per seed. The noise is the combined standard error of the
    two means, sqrt(var(a)/n_a + var(b)/n_b); the difference is called real
    only when it exceeds z of them. With one seed there is no estimate of
    the noise, and we say so."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    if not a or not b:
        raise ValueError("need at least one value (one seed) on each side")
    diff = sum(a) / len(a) - sum(b) / len(b)
    if len(a) < 2 or len(b) < 2:
        return dict(difference=diff, stderr=math.nan, verdict="unknown (one seed: no noise estimate)")
    se = math.sqrt(_var(a) / len(a) + _var(b) / len(b))
    verdict = "higher" if diff > z * se else "lower" if diff < -z * se else "within noise"
    return dict(difference=diff, stderr=se, verdict=verdict)


def _var(v):
    m = sum(v) / len(v)
    return sum((x - m) ** 2 for x in v) / (len(v) - 1)


def _values(rows, value, **where):
    sel = [r for r in rows if all(r[k] == v for k, v in where.items())]
    return [r[value] for r in sorted(sel, key=lambda r: r["seed"])]


def compare_cells(rows, value, baseline_alpha=0.0, z=2.0):
    """Every cell against the cell with alpha = baseline_alpha at the SAME
    temperature (alpha = 0: no teacher at all): one row per cell with the
    difference of means over seeds, its standard error and the verdict."""
    out = []
    for T, alpha in sorted({(r["temperature"], r["alpha"]) for r in rows}):
        base = _values(rows, value, temperature=T, alpha=baseline_alpha)
        if alpha == baseline_alpha or not base:
            continue
        out.append(dict(temperature=T, alpha=alpha,
                        **difference_vs_noise(_values(rows, value, temperature=T, alpha=alpha), base, z)))
    return out


def best_cell(rows, value="val_acc"):
    """The (temperature, alpha) with the highest mean `value` over seeds."""
    mean, _, _ = grid_table(rows, value)
    stacked = mean.stack()
    T, alpha = stacked.idxmax()
    return float(T), float(alpha)


def sweep_heatmap(rows, value, ax=None, title=None, fmt=".3f", cmap="viridis"):
    """Mean over seeds, annotated 'mean\\n± std' in each cell (seaborn)."""
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    mean, std, _ = grid_table(rows, value)
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    annot = np.array([[f"{m:{fmt}}\n±{s:{fmt}}" if not math.isnan(s) else f"{m:{fmt}}"
                       for m, s in zip(mr, sr)] for mr, sr in zip(mean.values, std.values)])
    sns.heatmap(mean, annot=annot, fmt="", cmap=cmap, ax=ax, annot_kws=dict(fontsize=7),
                cbar_kws=dict(label=f"{value} (mean over seeds)"))
    ax.set_xlabel("alpha (weight of the teacher term)")
    ax.set_ylabel("temperature T")
    ax.set_title(title or value)
    return ax


def plot_formulations(rows, value="val_acc", x="temperature", ax=None):
    """value against x, one line per formulation, mean with ± std error bars over seeds."""
    import matplotlib.pyplot as plt
    import pandas as pd

    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    df = pd.DataFrame(rows)
    for i, (name, g) in enumerate(df.groupby("formulation")):
        st = g.groupby(x)[value].agg(["mean", "std"]).reset_index()
        # Nudge the two lines apart a little so their error bars don't overlap.
        ax.errorbar(st[x] * (1 + 0.04 * (i - 0.5)), st["mean"], yerr=st["std"].fillna(0), marker="o",
                    capsize=3, label=name)
    if x == "temperature":
        ax.set_xscale("log")
        ax.set_xticks(sorted(df[x].unique()), [f"{t:g}" for t in sorted(df[x].unique())])
        ax.minorticks_off()
    ax.set_xlabel(x)
    ax.set_ylabel(f"{value} (mean ± std over seeds)")
    ax.legend(title="formulation")
    return ax

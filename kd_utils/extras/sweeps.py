"""Sweeps over temperature x alpha x seed, chosen on a validation split.

Why a validation split: if we picked T and alpha by test accuracy, the test
set would become part of training (we would report the luckiest of many
draws). So we carve a validation set out of the training images
(kd.extras.load_data), choose there, and touch the test set once, for the
chosen setting and its baseline.

Why seeds: two runs that differ only in their seed often differ by more than
two settings do. Every cell is trained with several seeds; a difference is
called real only when it is larger than that spread (difference_vs_noise).

The students of one seed train together (kd.train's lockstep: same initial
weights, same batches) from cached teacher outputs. With Hinton's loss,
alpha = 0 ignores T, so it is trained once per seed and shared by all
temperatures.
"""
from __future__ import annotations

import math
from dataclasses import replace

from tqdm.auto import tqdm

from ..metrics import summarize
from ..runs import load_finished
from ..settings import FORMULATIONS, check_choice
from ..teachers import teacher_outputs
from ..training import new_student, predict, student_loss, train
from .common import student_run


def run_sweep(s, val, teacher, size, formulation=None):
    """Train one student per (temperature, alpha, seed) of `size` (a SweepSize) on
    val.x_train and score it on the validation images val.x_test. Seeds are
    s.seed, s.seed + 1, ...; formulation: s.formulation unless given.

    Returns one row per cell and seed: formulation, temperature, alpha, seed,
    val_acc, agreement and kl_to_teacher (on validation), folder. Finished runs
    are reused, so re-running costs only the evaluation. No augmentation: the
    cached teacher outputs are for the clean images."""
    formulation = check_choice("formulation", formulation or s.formulation, FORMULATIONS)
    t_train = teacher_outputs(teacher.model, val.x_train)
    t_val = teacher_outputs(teacher.model, val.x_test)
    # Hinton's loss at alpha = 0 is plain cross-entropy: T plays no part, so one run serves every T.
    cells = [(T, alpha, 1.0 if (formulation == "hinton" and alpha == 0) else T)
             for alpha in size.alphas for T in size.temperatures]
    rows = []
    for seed in tqdm(range(s.seed, s.seed + size.seeds),
                     desc=f"{formulation} sweep, {len(cells)} cells per seed"):
        runs = {}
        for _, alpha, T in cells:
            if (T, alpha) not in runs:
                cell = replace(s, seed=seed, temperature=T, formulation=formulation)
                config = dict(formulation=formulation, temperature=T, alpha=alpha, epochs=size.epochs,
                              lr=s.profile.student_lr, teacher=teacher.key if alpha > 0 else None)
                runs[T, alpha] = student_run(cell, val, "sweeps", f"{formulation}-T{T:g}-a{alpha:g}-seed{seed}",
                                             new_student(val, seed), student_loss(cell, alpha), config,
                                             uses_teacher=alpha > 0)
        train(list(runs.values()), val, replace(s, seed=seed), epochs=size.epochs, teacher_logits=t_train,
              augment=False, progress=False)
        scores = {}
        for key, r in runs.items():
            m = summarize(predict(r.model, val.x_test), t_val, val.y_test, val.num_classes)
            scores[key] = dict(val_acc=m["accuracy"], agreement=m["agreement"],
                               kl_to_teacher=m["kl_to_teacher"], folder=str(r.folder))
        rows += [dict(formulation=formulation, temperature=T, alpha=alpha, seed=seed, **scores[T_run, alpha])
                 for T, alpha, T_run in cells]
    return rows


def load_student(data, folder):
    """The finished student saved in `folder` (by run_sweep), in eval mode."""
    return load_finished(folder, new_student(data, 0)).eval()


def evaluate_on_test(rows, data, teacher, temperature, alpha, formulation=None):
    """Score the students of one cell (every seed) on data's TEST set: the one
    time the test set is used. One row per seed: test_acc, agreement, kl_to_teacher.
    formulation: only rows of that formulation (needed when rows hold several)."""
    sel = sorted((r for r in rows if (r["temperature"], r["alpha"]) == (float(temperature), float(alpha))
                  and formulation in (None, r["formulation"])), key=lambda r: r["seed"])
    if not sel:
        what = f"{formulation} students" if formulation else "students"
        raise ValueError(f"no {what} at T={temperature:g}, alpha={alpha:g} in the rows")
    if len({r["formulation"] for r in sel}) > 1:
        raise ValueError("the rows hold several formulations at this cell; say which (formulation=...)")
    t_test = teacher_outputs(teacher.model, data.x_test)
    out = []
    for r in sel:
        m = summarize(predict(load_student(data, r["folder"]), data.x_test), t_test, data.y_test, data.num_classes)
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
    the noise, and we say so. (kd.compare_to_baseline asks the same question
    of test-set noise, for one run of each model.)"""
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
    T, alpha = mean.stack().idxmax()
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

"""Sweeps over temperature x alpha x seed, chosen on a validation split.

Why a validation split: if we picked T and alpha by test accuracy, the test
set would become part of training (we would report the luckiest of many
draws). So we carve a validation set out of the training images
(kd.extras.load_data), choose there, and touch the test set once, for the
chosen setting and its baseline.

Why seeds: two runs that differ only in their seed often differ by more than
two settings do. Every cell is trained with several seeds. The students of one
seed train together (kd.train's lockstep: same initial weights, same batches)
from cached teacher outputs, so a cell is compared with its baseline seed by
seed (paired_over_seeds): a difference is called real only when the mean of
the per-seed differences is larger than their standard error allows. With Hinton's loss,
alpha = 0 ignores T, so it is trained once per seed and shared by all
temperatures.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..metrics import compare_over_seeds, summarize
from ..settings import FORMULATIONS, check_choice
from ..teachers import teacher_outputs
from ..training import new_student, predict, student_loss, train
from .common import load_finished, student_run


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
                              lr=s.profile.student_lr, teacher=teacher.key if alpha > 0 else None,
                              memory_format="channels_last")
                # channels_last: the same student, ~35% faster on a CPU (its max-pooling above all)
                model = new_student(val, seed).to(memory_format=torch.channels_last)
                runs[T, alpha] = student_run(cell, val, "sweeps", f"{formulation}-T{T:g}-a{alpha:g}-seed{seed}",
                                             model, student_loss(cell, alpha), config, uses_teacher=alpha > 0)
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


def by_seed(rows, value, **where):
    """{seed: value} of the rows that match every `where` (e.g. temperature=4.0, alpha=0.5)."""
    sel = [r for r in rows if all(r[k] == v for k, v in where.items())]
    return {r["seed"]: r[value] for r in sorted(sel, key=lambda r: r["seed"])}


def paired_over_seeds(a, b, z=2.0, higher_is_better=True):
    """Is a larger than b, beyond the seed-to-seed noise, seed by seed?

    a, b: {seed: value}, with the same seeds. Seed k of a and seed k of b started
    from the same weights and saw the same batches, so we take the difference per
    seed and ask whether their mean is more than z standard errors (std of the
    per-seed differences / sqrt(seeds)) from 0: kd.compare_over_seeds, whose
    verdict is "better", "worse" or "within noise". Pairing removes what the two
    runs of one seed share (a lucky start, a lucky order), so it is more
    sensitive than comparing the two means. With one seed there is no estimate
    of the noise, and we say so. higher_is_better=False for a value where lower
    is better (a loss, a KL divergence): "better" then means lower."""
    if not a or set(a) != set(b):
        raise ValueError(f"need the same seeds on both sides (paired), got {sorted(a)} and {sorted(b)}")
    if len(a) < 2:
        (k,) = a
        return dict(difference=float(a[k] - b[k]), stderr=math.nan, seeds=1,
                    verdict="unknown (one seed: no noise estimate)")
    row, _ = compare_over_seeds({k: {"a": a[k], "b": b[k]} for k in a}, "b", z)
    verdict = row["verdict"]
    if not higher_is_better:
        verdict = {"better": "worse", "worse": "better"}.get(verdict, verdict)
    return dict(difference=row["difference"], stderr=row["difference_se"], seeds=row["seeds"], verdict=verdict)


def compare_cells(rows, value, baseline_alpha=0.0, z=2.0, higher_is_better=None):
    """Every cell against the cell with alpha = baseline_alpha at the SAME
    temperature (alpha = 0: no teacher at all), paired by seed: one row per cell
    with the mean of the per-seed differences, its standard error over seeds and
    the verdict (paired_over_seeds). higher_is_better: by default True, except
    for kl_to_teacher (closer to the teacher is lower)."""
    if higher_is_better is None:
        higher_is_better = value != "kl_to_teacher"
    out = []
    for T, alpha in sorted({(r["temperature"], r["alpha"]) for r in rows}):
        base = by_seed(rows, value, temperature=T, alpha=baseline_alpha)
        if alpha == baseline_alpha or not base:
            continue
        out.append(dict(temperature=T, alpha=alpha,
                        **paired_over_seeds(by_seed(rows, value, temperature=T, alpha=alpha), base, z,
                                            higher_is_better)))
    return out


def best_cell(rows, value="val_acc"):
    """The (temperature, alpha) with the highest mean `value` over seeds."""
    mean, _, _ = grid_table(rows, value)
    T, alpha = mean.stack().idxmax()
    return float(T), float(alpha)


def difference_heatmap(rows, value, ax=None, baseline_alpha=0.0, z=2.0, title=None, cmap="RdBu", unit="points"):
    """Each cell's `value` minus the alpha = baseline_alpha cell at the same
    temperature: the mean of the per-seed differences (compare_cells), annotated
    '+mean\n±SE', on a diverging colour scale centred at 0 and symmetric (with
    "RdBu", blue: above the baseline, red: below; "RdBu_r" for a value where lower
    is better). A cell whose difference is beyond z standard errors is boxed. The
    baseline column itself is left out (it is 0). unit: "points" for a fraction
    shown in percentage points (accuracy, agreement), anything else as is."""
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import seaborn as sns
    from matplotlib.patches import Rectangle

    cells = pd.DataFrame(compare_cells(rows, value, baseline_alpha, z))
    if cells.empty:
        raise ValueError(f"no cell besides alpha = {baseline_alpha:g} to compare with it")
    scale, fmt = (100, ".2f") if unit == "points" else (1, ".3f")
    diff = scale * cells.pivot(index="temperature", columns="alpha", values="difference")
    se = scale * cells.pivot(index="temperature", columns="alpha", values="stderr")
    verdict = cells.pivot(index="temperature", columns="alpha", values="verdict")
    annot = np.array([[f"{d:+{fmt}}" + ("" if math.isnan(e) else f"\n±{e:{fmt}}") for d, e in zip(dr, er)]
                      for dr, er in zip(diff.values, se.values)])
    # at least half a point (or 0.005), so that differences within the noise stay pale
    lim = max(float(np.nanmax(np.abs(diff.values))), 0.5 if unit == "points" else 0.005)
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    sns.heatmap(diff, annot=annot, fmt="", cmap=cmap, center=0, vmin=-lim, vmax=lim, ax=ax,
                annot_kws=dict(fontsize=8), cbar_kws=dict(label=f"{value} minus alpha={baseline_alpha:g} ({unit})"))
    for i in range(diff.shape[0]):
        for j in range(diff.shape[1]):
            if verdict.values[i, j] in ("better", "worse"):
                ax.add_patch(Rectangle((j, i), 1, 1, fill=False, edgecolor="k", lw=2))
    base = pd.DataFrame(rows)
    base = base[base["alpha"] == baseline_alpha][value]
    ax.set_xticklabels([f"{a:g}" for a in diff.columns])  # 0.5, 1: not 0.5, 1.0
    ax.set_yticklabels([f"{T:g}" for T in diff.index], rotation=0)
    ax.set_xlabel("alpha (weight of the teacher term)")
    ax.set_ylabel("temperature T")
    shown = f"{base.mean():.2%}" if unit == "points" else f"{base.mean():.3f}"
    ax.set_title(title or f"{value}: each cell minus alpha={baseline_alpha:g} ({shown}),\nsame T, same seed; "
                 f"mean ± SE over seeds", fontsize=10)
    return ax


def plot_formulations(rows, value="val_acc", x="temperature", ax=None, baseline=None):
    """value against x, one line per formulation: the mean over seeds with error
    bars of one standard error over seeds. The students share their alpha, hence
    their colour (kd.model_color); the line style tells the formulations apart.
    baseline: rows of the alpha = 0 (hard-label) students, drawn as a band (mean ± SE)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from ..figures import model_color

    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    df = pd.DataFrame(rows)
    styles = {"hinton": dict(ls="-", marker="o"), "blended": dict(ls="--", marker="s", mfc="white")}
    for i, (name, g) in enumerate(df.groupby("formulation")):
        st = g.groupby(x)[value].agg(["mean", "std", "count"]).reset_index()
        se = (st["std"] / st["count"] ** 0.5).fillna(0)
        alphas = sorted(g["alpha"].unique())
        color = model_color(f"alpha={alphas[0]:g}") if len(alphas) == 1 else None
        # Nudge the two lines apart a little so their error bars don't overlap.
        ax.errorbar(st[x] * (1 + 0.04 * (i - 0.5)), st["mean"], yerr=se, capsize=3, color=color,
                    label=name + (f" (alpha={alphas[0]:g})" if len(alphas) == 1 else ""),
                    **styles.get(name, dict(marker="o")))
    if baseline:
        b = pd.Series([r[value] for r in baseline])
        m, e = b.mean(), (b.std() / len(b) ** 0.5 if len(b) > 1 else 0.0)
        ax.axhspan(m - e, m + e, color=model_color("alpha=0"), alpha=0.15, lw=0)
        ax.axhline(m, color=model_color("alpha=0"), lw=1, label="alpha=0 (hard labels)")
    if x == "temperature":
        ax.set_xscale("log")
        ax.set_xticks(sorted(df[x].unique()), [f"{t:g}" for t in sorted(df[x].unique())])
        ax.minorticks_off()
    ax.set_xlabel(x)
    ax.set_ylabel(f"{value} (mean ± SE over seeds)")
    ax.legend(fontsize=8)
    return ax


def plot_curves(rows, seed=None, formulation="hinton", axes=None):
    """Validation accuracy against epoch, as recorded while training: one panel
    per temperature, one line per alpha (kd.model_color), for one seed (default:
    the first). Has a student stopped improving by its last epoch? Read it here."""
    import matplotlib.pyplot as plt

    from ..figures import model_color
    from ..storage import load_json

    rows = [r for r in rows if r["formulation"] == formulation]
    seed = min(r["seed"] for r in rows) if seed is None else seed
    temperatures = sorted({r["temperature"] for r in rows})
    if axes is None:
        _, axes = plt.subplots(1, len(temperatures), figsize=(4 * len(temperatures), 3.2), sharey=True,
                               squeeze=False)
        axes = axes[0]
    for ax, T in zip(axes, temperatures):
        for r in sorted((r for r in rows if r["temperature"] == T and r["seed"] == seed), key=lambda r: r["alpha"]):
            hist = [h for h in load_json(Path(r["folder"]) / "history.json")["epochs"] if h["test_acc"] is not None]
            label = f"alpha={r['alpha']:g}"
            ax.plot([h["epoch"] for h in hist], [h["test_acc"] for h in hist], marker=".", label=label,
                    color=model_color(label))
        ax.set_title(f"T = {T:g}" + ("  (alpha=0 ignores T)" if formulation == "hinton" else ""), fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy")
    axes[0].legend(fontsize=8)
    return axes

"""Notebook 05's three figures. The sweep itself (training every (T, alpha) cell over seeds,
choosing on validation, comparing each cell with alpha = 0 seed by seed) is the notebook's
lesson and lives there; these plots would only distract from it.

Fractions (accuracy, agreement) are shown in % and their differences in percentage points.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator, PercentFormatter

from ..figures import model_color


def difference_heatmap(cells, ax=None, title="", unit="points", cmap="RdBu"):
    """cells: one row per (temperature, alpha) with `difference` from its baseline, its
    `stderr` and `verdict` (notebook 05's compare_cells). Annotated '+mean\\n±SE' on a
    diverging scale centred at 0 and symmetric (with "RdBu", blue is above the baseline;
    "RdBu_r" for a value where lower is better); a cell called better or worse is boxed.
    unit: "points" shows fractions as percentage points, anything else (e.g. "nats") as is."""
    import seaborn as sns

    df = pd.DataFrame(cells)
    if df.empty:
        raise ValueError("no cell besides the baseline to show")
    scale, fmt = (100, ".2f") if unit == "points" else (1, ".3f")

    def grid(column):  # temperatures down, alphas across, labelled 1, 4, 0.5 (not 1.0, 4.0)
        table = df.pivot(index="temperature", columns="alpha", values=column)
        return table.rename(index="{:g}".format, columns="{:g}".format)

    diff, se, verdict = scale * grid("difference"), scale * grid("stderr"), grid("verdict")
    annot = diff.map(f"{{:+{fmt}}}".format) + "\n±" + se.map(f"{{:{fmt}}}".format)
    # at least half a point (or 0.005) either way, so that differences within the noise stay pale
    lim = max(diff.abs().max().max(), 0.5 if unit == "points" else 0.005)
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    sns.heatmap(diff, annot=annot, fmt="", cmap=cmap, center=0, vmin=-lim, vmax=lim, ax=ax, annot_kws=dict(fontsize=8),
                cbar_kws=dict(label=f"difference ({'percentage points' if unit == 'points' else unit})"))
    for i, j in zip(*verdict.isin(["better", "worse"]).to_numpy().nonzero()):
        ax.add_patch(Rectangle((j, i), 1, 1, fill=False, edgecolor="k", lw=2))
    ax.set(xlabel="alpha (weight of the teacher term)", ylabel="temperature T")
    ax.tick_params(axis="y", rotation=0)
    ax.set_title(title, fontsize=10)
    return ax


def plot_formulations(rows, value, label, ax=None, baseline=None):
    """rows' `value` (a fraction, shown in %; `label` names it) against temperature, one line per
    formulation: mean over seeds ± 1 SE. The students share their alpha, hence their colour
    (kd.model_color); marker and line style tell the formulations apart. baseline: the rows of
    the alpha = 0 students, drawn as a band (mean ± SE)."""
    import seaborn as sns

    df = pd.DataFrame(rows)
    alphas = df["alpha"].unique()
    if len(alphas) != 1:
        raise ValueError(f"rows of one alpha only (one colour), got alphas {sorted(alphas)}")
    df["T"] = df["temperature"].map("{:g}".format)
    forms = [f for f in ("hinton", "blended") if f in set(df["formulation"])]
    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    if baseline:
        b = pd.Series([r[value] for r in baseline])
        color = model_color("alpha=0")
        ax.axhspan(b.mean() - b.sem(), b.mean() + b.sem(), color=color, alpha=0.15, lw=0)
        ax.axhline(b.mean(), color=color, lw=1, label="alpha=0 (hard labels)")
    sns.pointplot(df, x="T", y=value, hue="formulation", hue_order=forms,
                  order=[f"{t:g}" for t in sorted(df["temperature"].unique())],
                  palette=[model_color(f"alpha={alphas[0]:g}")] * len(forms), markers=["o", "s"][:len(forms)],
                  linestyles=["-", "--"][:len(forms)], errorbar="se", capsize=0.05, dodge=0.2, ax=ax)
    ax.legend(title=f"alpha = {alphas[0]:g}", fontsize=8, title_fontsize=8)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set(xlabel="temperature T", ylabel=f"{label}\n(mean ± SE over seeds)")
    return ax


def plot_curves(histories):
    """Validation accuracy against epoch, as recorded while training (history's test_acc:
    the students' test set is the validation images): one panel per temperature, one line
    per alpha (kd.model_color); epochs without a measurement (None) are skipped by seaborn.
    histories: {(temperature, alpha): history} of one seed. Returns seaborn's FacetGrid."""
    import seaborn as sns

    df = pd.DataFrame([dict(T=f"T = {T:g}", student=f"alpha={a:g}", epoch=h["epoch"], accuracy=h["test_acc"])
                       for (T, a), history in sorted(histories.items()) for h in history])
    g = sns.relplot(df, x="epoch", y="accuracy", col="T", hue="student", kind="line", marker="o", errorbar=None,
                    palette={name: model_color(name) for name in df["student"].unique()}, height=3.2, aspect=1.2)
    g.set_titles("{col_name}")
    g.set_axis_labels("epoch", "validation accuracy")
    for ax in g.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 1.5"
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(alpha=0.3)
    return g

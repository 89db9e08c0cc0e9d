"""Saving figures (and the manifest that says where they came from); shared plots."""
from __future__ import annotations

import datetime as _dt
import io
import os
import platform
import re

import matplotlib.pyplot as plt
import torch

from .storage import load_json, save_json, write_bytes
from .temperature import plot_softmax

def save_figure(fig, name, s, dpi=110):
    """Save fig in s.figures_dir (runs/figures/: only `make record` writes figures/), with its provenance."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    path = write_bytes(s.figures_dir / f"{name}.png", buf.getvalue())
    record(s, "figures", name, dict(file=path.name, date=_dt.date.today().isoformat(), dataset=s.dataset,
                                    profile=s.profile.name, device=device_name(s.device), seed=s.seed))
    return path

def record(s, section, name, entry):
    """Merge one entry into <s.figures_dir>/manifest.json (atomic read-modify-write)."""
    path = s.figures_dir / "manifest.json"
    manifest = load_json(path) if path.exists() else {}
    manifest.setdefault(section, {})[name] = entry
    save_json(path, manifest)
    return manifest

def device_name(device):
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{device.type} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"

def show_image(ax, img, title=None):
    """uint8 (C, H, W) -> imshow, grayscale or RGB."""
    img = img.cpu()
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray")
    else:
        ax.imshow(img.permute(1, 2, 0))
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)

ALPHA_COLORS = {0.0: "C0", 0.25: "C4", 0.5: "C1", 0.75: "C5", 1.0: "C2"}

def model_color(name):
    """One colour per model in every notebook: the teacher grey, alpha = 0 blue, 0.5 orange, 1 green."""
    m = re.search(r"alpha\s*=\s*([0-9.]+)", str(name))
    return "0.45" if str(name).startswith("teacher") else ALPHA_COLORS.get(float(m.group(1)), "C3") if m else None

def plot_history(histories, key="test_acc", ax=None, label_fmt="alpha={}"):
    """One line per run: accuracies in %, the loss on a log scale; markers where it was measured."""
    ax = ax or plt.subplots(figsize=(5, 3))[1]
    for name, hist in histories.items():
        hist, label = [h for h in hist if h[key] is not None], label_fmt.format(name)  # test accuracy: ~10 times a run
        ax.plot([h["epoch"] for h in hist], [h[key] * (100 if "acc" in key else 1) for h in hist], ms=4,
                marker="o" if len(hist) <= 20 else None, label=label, color=model_color(label))
    ax.xaxis.get_major_locator().set_params(integer=True)  # no "epoch 1.5"
    ax.set(xlabel="epoch", yscale="log" if key == "loss" else "linear",
           ylabel={"test_acc": "test accuracy (%)", "train_acc": "training accuracy (%)", "loss": "training loss"}.get(
               key, key.replace("_", " ")))
    ax.legend()
    return ax

def plot_differences(rows, ax=None, key="difference", se_key="stderr", baseline="alpha=0"):
    """Each model's accuracy minus the baseline's, with an error bar of one standard
    error (rows from compare_to_baseline or compare_over_seeds). Differences, not
    accuracies from 0: a 0.3-point change is invisible on a bar that starts at 0."""
    rows = [r for r in rows if r["model"] != baseline]
    ax = ax or plt.subplots(figsize=(5, 3))[1]
    names = [r["model"] for r in rows]
    ax.bar(names, [100 * r[key] for r in rows], yerr=[100 * r[se_key] for r in rows], capsize=5,
           color=[model_color(n) or "C3" for n in names])
    for i, r in enumerate(rows):
        end = 100 * (r[key] + (r[se_key] if r[key] >= 0 else -r[se_key]))  # beyond the error bar
        ax.annotate(f"{100 * r[key]:+.2f} ± {100 * r[se_key]:.2f}\n{r['verdict']}", (i, end),
                    xytext=(0, 4 if r[key] >= 0 else -26), textcoords="offset points", ha="center", fontsize=8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel(f"accuracy minus {baseline}\n(points, ± 1 SE)")
    ax.margins(y=0.35)
    return ax

def confusion_heatmap(cm, classes, ax=None, title=None, **style):
    """Rows the true class, columns the predicted one; style: seaborn's heatmap options."""
    import seaborn as sns  # here, not at import: it adds ~0.4 s to every start of kd_utils
    ax = ax or plt.subplots(figsize=(6, 5))[1]
    style = dict(dict(fmt=".2f", cmap="Blues", annot=len(classes) <= 10, annot_kws=dict(fontsize=7)), **style)
    sns.heatmap(torch.as_tensor(cm).numpy(), xticklabels=classes, yticklabels=classes, ax=ax, **style)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return ax

def bar_chart(values, ax=None, errors=None, ylabel="test accuracy", fmt="{:.1%}", colors=None):
    """One labelled bar per entry of `values` ({name: number}); `errors` adds error bars."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    names = list(values)
    yerr = [errors.get(n, 0.0) for n in names] if errors else None
    bars = ax.bar(names, [values[n] for n in names], yerr=yerr, capsize=4,
                  color=colors or [model_color(n) or f"C{i}" for i, n in enumerate(names)])
    ax.bar_label(bars, labels=[fmt.format(values[n]) for n in names], padding=2, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.15)  # room for the labels above the tallest bar
    return ax

def grouped_bars(groups, labels, ax=None, ylabel="accuracy"):
    """For each label (e.g. a class), one bar per group: {model name: [value per label]}."""
    import seaborn as sns

    for name, vals in groups.items():
        if len(vals) != len(labels):
            raise ValueError(f"{name!r} has {len(vals)} values but there are {len(labels)} labels")
    rows = [dict(label=lab, model=name, value=float(v)) for name, vals in groups.items() for lab, v in zip(labels, vals)]
    ax = ax or plt.subplots(figsize=(10, 3.5))[1]
    sns.barplot({k: [r[k] for r in rows] for k in ("label", "model", "value")}, x="label", y="value", hue="model", ax=ax,
                palette={n: model_color(n) or f"C{i}" for i, n in enumerate(groups)})
    ax.tick_params(axis="x", labelrotation=30)
    ax.set(xlabel="", ylabel=ylabel)
    ax.legend(fontsize=8, ncol=len(groups))
    return ax

def plot_soft_targets(image, logits, temperature, classes, label=None, axes=None):
    """One image beside the teacher's softmax(logits / T) as a bar chart: the
    callback of notebook 02's slider. Returns the probabilities."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(8, 2.8), gridspec_kw=dict(width_ratios=[1, 3]))[1]
    ax_img, ax_bar = axes
    ax_img.clear()
    show_image(ax_img, image, f"true: {classes[int(label)]}" if label is not None else None)
    return plot_softmax(logits, temperature, classes, ax=ax_bar)

def soft_targets_grid(images, logits, temperatures, classes, labels=None):
    """A row per image: the image, then its soft targets at each temperature."""
    n, k = len(images), len(temperatures)
    if len(logits) != n:
        raise ValueError(f"{n} images but {len(logits)} rows of logits")
    fig, axes = plt.subplots(n, k + 1, figsize=(2 + 3.6 * k, 2.8 * n), squeeze=False,
                             gridspec_kw=dict(width_ratios=[1] + [2.4] * k))
    for r in range(n):
        show_image(axes[r, 0], images[r],
                   f"true: {classes[int(labels[r])]}" if labels is not None else None)
        for c, t in enumerate(temperatures):
            plot_softmax(logits[r], t, classes, ax=axes[r, c + 1])
    fig.tight_layout()
    return fig

def record_results(name, rows, s, **extra):
    """A table of results (a list of dicts) into the manifest, with the settings that produced it."""
    entry = dict(date=_dt.date.today().isoformat(), dataset=s.dataset, profile=s.profile.name,
                 device=device_name(s.device), seed=s.seed, temperature=s.temperature, alphas=list(s.alphas),
                 formulation=s.formulation, teacher_mode=s.teacher_mode)
    if set(extra) & set(entry):  # a notebook variable that may not be what trained: re-run the settings cell
        raise TypeError(f"record_results takes {', '.join(sorted(set(extra) & set(entry)))} from the settings")
    entry = dict(entry, **extra, rows=[{k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()} for r in rows])
    record(s, "results", name, entry)
    return entry

def confusion_change_heatmap(delta, classes, ax=None, title=None, limit=None, beyond=None):
    """A change of a confusion matrix, in images (e.g. a distilled student's minus the hard-label one's), on a
    diverging scale symmetric about 0 (pass the same limit to matrices shown side by side): red = more often,
    blue = less often. beyond: a boolean matrix of the cells to box (e.g. the changes beyond 2 SE)."""
    from matplotlib.patches import Rectangle

    delta = torch.as_tensor(delta).float()
    limit = limit or max(delta.abs().max().item(), 1e-6)
    ax = confusion_heatmap(delta, classes, ax=ax, title=title, center=0.0, fmt="+.0f", cmap="RdBu_r", vmin=-limit,
                           vmax=limit)
    ax.collections[0].colorbar.set_label("change, in images")
    for i, j in ([] if beyond is None else torch.nonzero(torch.as_tensor(beyond)).tolist()):
        ax.add_patch(Rectangle((j, i), 1, 1, fill=False, edgecolor="k", lw=1.5))
    return ax

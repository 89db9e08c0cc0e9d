"""Saving figures (and the manifest that says where they came from), plus the
plots the notebooks share."""
from __future__ import annotations

import datetime as _dt
import io
import os
import platform
from pathlib import Path

import torch

from .storage import atomic_write_bytes, load_json, project_dir, save_json


def figures_dir() -> Path:
    return Path(os.environ.get("KD_FIGURES_DIR") or project_dir() / "figures")


def save_figure(fig, name, settings=None, dpi=110):
    """Save fig as figures/<name>.png (atomically) and record its provenance."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    path = atomic_write_bytes(figures_dir() / f"{name}.png", buf.getvalue())
    entry = dict(file=path.name, date=_dt.date.today().isoformat())
    if settings is not None:
        entry.update(dataset=settings.dataset, profile=settings.profile.name,
                     device=device_name(settings.device), seed=settings.seed)
    record("figures", name, entry)
    return path


def record(section, name, entry):
    """Merge one entry into figures/manifest.json (atomic read-modify-write)."""
    path = figures_dir() / "manifest.json"
    manifest = load_json(path) if path.exists() else {}
    manifest.setdefault(section, {})[name] = entry
    save_json(path, manifest)
    return manifest


def device_name(device):
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


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


def plot_history(histories, key="test_acc", ax=None, label_fmt="alpha={}"):
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 3))[1]
    for name, hist in histories.items():
        ax.plot([h["epoch"] for h in hist], [h[key] for h in hist], marker="o",
                label=label_fmt.format(name))
    ax.set_xlabel("epoch")
    ax.set_ylabel(key.replace("_", " "))
    ax.legend()
    return ax


def confusion_heatmap(cm, classes, ax=None, title=None, center=None, fmt=".2f", cmap="Blues"):
    import matplotlib.pyplot as plt
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(6, 5))[1]
    sns.heatmap(torch.as_tensor(cm).numpy(), annot=len(classes) <= 10, fmt=fmt, cmap=cmap,
                center=center, xticklabels=classes, yticklabels=classes, ax=ax,
                cbar=True, annot_kws=dict(fontsize=7))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return ax

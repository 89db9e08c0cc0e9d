"""Making a trained model smaller without distillation, and measuring it the
same way for every method (seed 002 compares distillation with these):

  * dynamic int8 quantization: Linear weights stored as int8, activations
    quantized on the fly. It only touches nn.Linear layers: convolutions stay
    float32, so it shrinks a model only as much as its Linear layers weigh.
  * magnitude pruning: zero the smallest weights (global L1, unstructured).
    The zeros are still stored, so the file is NOT smaller unless it is
    compressed or saved in a sparse format; dense kernels don't get faster.

size_on_disk reports both the dense file and its gzip-compressed size, so
the difference is visible. Everything here runs on the CPU.
"""
from __future__ import annotations

import copy
import gzip
import io
import logging
import warnings

import torch
from torch import nn
from torch.nn.utils import prune

from ..metrics import summarize
from ..training import predict


def quantize_int8(model):
    """A copy of model (on the CPU) with every nn.Linear dynamically quantized to int8.

    torch.ao.quantization is deprecated in recent PyTorch in favour of the
    separate torchao package; it still works, and needs nothing extra."""
    m = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)


def linear_share(model):
    """Fraction of the parameters that sit in nn.Linear layers: the most that
    dynamic quantization can shrink."""
    total = sum(p.numel() for p in model.parameters())
    linear = sum(p.numel() for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters())
    return linear / total if total else 0.0


def _prunable(model):
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def prune_magnitude(model, sparsity):
    """A copy of model with the fraction `sparsity` of its conv and linear
    weights set to zero: the smallest in absolute value across ALL those layers
    (global L1, unstructured). No fine-tuning afterwards. Biases and batch-norm
    parameters are kept."""
    if not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1) (the fraction of weights set to zero), "
                         f"got {sparsity!r}")
    m = copy.deepcopy(model)
    params = _prunable(m)
    if not params:
        raise ValueError("the model has no Conv2d or Linear layers to prune")
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    for module, name in params:
        prune.remove(module, name)  # fold the mask into the weight: a plain state_dict again
    return m


def weight_sparsity(model):
    """Fraction of conv and linear weights that are exactly zero."""
    ws = [m.weight for m, _ in _prunable(model)]
    total = sum(w.numel() for w in ws)
    return sum((w == 0).sum().item() for w in ws) / total if total else 0.0


def stored_values(model):
    """How many numbers the saved state_dict holds (weights, biases, batch-norm
    statistics), int8 layers included: model.parameters() does not list a
    quantized layer's packed weights, so it would undercount them."""
    def count(v):
        if isinstance(v, torch.Tensor):
            return v.numel()
        if isinstance(v, (tuple, list)):
            return sum(count(x) for x in v)
        return 0
    return sum(count(v) for v in model.state_dict().values())


def size_on_disk(model):
    """Bytes of the saved state_dict: `dense_bytes` (torch.save, what you would
    ship as is) and `gzip_bytes` (the same file gzip-compressed: zeros from
    pruning compress well, float weights barely do)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    raw = buf.getvalue()
    return dict(dense_bytes=len(raw), gzip_bytes=len(gzip.compress(raw, compresslevel=6)))


def latency_per_image(model, x, batch_size, min_run_time=0.2, threads=None):
    """Median seconds per image for forward passes of `batch_size` images on the
    CPU, measured by torch.utils.benchmark.Timer (blocked_autorange: warm-up,
    then blocks of passes for at least min_run_time seconds; the median over blocks).
    threads: CPU threads for the measurement (default: torch's current number);
    the Timer restores the number after. The model is moved to the CPU (in place,
    like model.cpu())."""
    if not 1 <= batch_size <= len(x):
        raise ValueError(f"batch_size must be between 1 and {len(x)} (the images given), got {batch_size}")
    if not min_run_time > 0:
        raise ValueError(f"min_run_time must be > 0 seconds, got {min_run_time}")
    model = model.cpu().eval()
    # Imported here, quietly: without CUDA it logs a warning (naming a path) on import.
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        quiet.setLevel(level)

    timer = benchmark.Timer("model(x)", globals=dict(model=model, x=x[:batch_size].cpu()),
                            num_threads=threads or torch.get_num_threads())
    with torch.inference_mode():
        return timer.blocked_autorange(min_run_time=min_run_time).median / batch_size


def measure(model, data, teacher_test_logits=None, batch_sizes=(1, 256), min_run_time=0.2, threads=None,
            logits=None):
    """One row for the comparison plot: test accuracy (and agreement with the
    teacher), numbers stored, fraction of zero weights, size on disk and CPU latency per
    image at each batch size (keys latency_b1, latency_b256, ...).
    logits: the model's test logits, if already computed. Moves model to the CPU."""
    x, y = data.x_test.cpu(), data.y_test.cpu()
    model = model.cpu().eval()
    t = teacher_test_logits.cpu() if teacher_test_logits is not None else None
    logits = predict(model, x) if logits is None else logits.cpu()
    row = summarize(logits, t, y, data.num_classes)
    row.update(stored_values=stored_values(model),
               weight_sparsity=weight_sparsity(model), **size_on_disk(model))
    for bs in batch_sizes:
        row[f"latency_b{bs}"] = latency_per_image(model, x, min(bs, len(x)), min_run_time, threads)
    return row


# Colour and marker per method. Students take their colour from kd.model_color (their
# alpha), as in every notebook; the other methods use colours no alpha student uses.
METHOD_STYLE = {"baseline": ("0.45", "s"), "int8": ("C9", "D"), "pruned": ("C6", "v"),
                "student": (None, "o"), "student int8": (None, "^")}


def plot_tradeoff(rows, x, ax=None, xlabel=None, scale=1.0, zoom=None):
    """Accuracy against rows' `x` times `scale` (e.g. 1e-3 for KB, 1e3 for ms), log
    scale, one point per model, labelled with its "label" (short, e.g. "90%") or
    else its "name". Colour: a student's (method "student...") is kd.model_color of
    its name, i.e. of its alpha; any other model's is its method's (METHOD_STYLE);
    the marker is the method's.

    zoom: show only accuracies within `zoom` (e.g. 0.04 = 4 points) of the best, so
    that close models can be told apart; a model below that is drawn on the bottom
    edge as a downward triangle, its accuracy written in its label.
    Labels are placed where they overlap no other label or point (with a thin line
    to their point when moved away): lay the figure out (e.g. fig.subplots_adjust)
    before calling this, since placement is computed for the axes' current size."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    from ..figures import model_color

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    best = max(r["accuracy"] for r in rows)
    lo = best - zoom if zoom else min(r["accuracy"] for r in rows)
    pad = 0.08 * (best - lo) or 0.005
    bottom = lo - pad  # where a model below the zoomed range is drawn
    points, labels = [], []
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method]
        color, marker = METHOD_STYLE.get(method, ("0.3", "o"))
        shown = [(r, r["accuracy"] >= lo) for r in rs]
        colors = [(model_color(r["name"]) if method.startswith("student") else None) or color or "0.3" for r in rs]
        for (r, inside), c in zip(shown, colors):
            y = r["accuracy"] if inside else bottom
            ax.scatter(r[x] * scale, y, color=c, marker=marker if inside else "v", s=45, zorder=3,
                       clip_on=False, edgecolors="k" if not inside else "none", linewidths=0.6)
            points.append((r[x] * scale, y))
            text = r.get("label", r["name"])
            labels.append(text if inside else f"{text}: {r['accuracy']:.1%}")
        # Legend entry: the method's marker, in its colour (students: grey, their colour is their alpha's).
        ax.scatter([], [], color=color or "0.3", marker=marker, s=45,
                   label=method + (" (colour: its alpha)" if color is None else ""))
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.3, not 3x10^-1
    # label the minor ticks at 2x and 5x only: all eight would overprint
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    xs = [p[0] for p in points]
    ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)  # room for labels on both sides
    ax.set_ylim(bottom - (pad if zoom else 0), best + 2 * pad)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1 if (best - bottom) < 0.1 else 0))
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel("test accuracy" + (f" (zoomed to the best {100 * zoom:g} points)" if zoom else ""))
    ax.grid(alpha=0.3)
    place_labels(ax, points, labels)
    return ax


def place_labels(ax, points, labels, fontsize=7):
    """Annotate each point (data coordinates) with its label, at the first of a ring
    of offsets, growing outwards, where the label overlaps no placed label, no
    point and stays inside the axes; a label moved away gets a thin line to its point."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_px = fig.dpi / 72
    inside = ax.get_window_extent(renderer)
    px = [ax.transData.transform(p) for p in points]
    dots = [(x - 4, y - 4, x + 4, y + 4) for x, y in px]
    placed = []

    def overlaps(a, b):
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    directions = [(1, 0.3), (1, -0.9), (-1, 0.3), (-1, -0.9), (0, 1.2), (0, -2.0),
                  (1, 1.2), (-1, 1.2), (1, -2.0), (-1, -2.0)]
    for i, ((x, y), text) in enumerate(zip(px, labels)):
        probe = ax.annotate(text, (0.5, 0.5), xycoords="axes fraction", fontsize=fontsize)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width, ext.height
        best = None
        for radius in (5, 12, 22, 34, 48, 64):
            for ux, uy in directions:
                ox, oy = ux * radius, uy * radius * 0.6
                left = x + ox * to_px - (w if ux < 0 else w / 2 if ux == 0 else 0)
                bottom = y + oy * to_px - h / 2
                box = (left, bottom, left + w, bottom + h)
                bad = sum(overlaps(box, b) for b in placed) + sum(
                    overlaps(box, d) for j, d in enumerate(dots) if j != i)
                bad += not (box[0] >= inside.x0 and box[2] <= inside.x1 and box[1] >= inside.y0
                            and box[3] <= inside.y1)
                if best is None or bad < best[0]:
                    best = (bad, box, ox, oy, ux, radius)
                if bad == 0:
                    break
            if best[0] == 0:
                break
        _, box, ox, oy, ux, radius = best
        placed.append(box)
        ax.annotate(text, points[i], xytext=(ox, oy), textcoords="offset points", fontsize=fontsize,
                    ha="right" if ux < 0 else "center" if ux == 0 else "left", va="center",
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="0.5", shrinkA=0, shrinkB=3)
                    if radius > 5 else None)

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
import statistics
import time
import warnings

import torch
from torch import nn
from torch.nn.utils import prune


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


def size_on_disk(model):
    """Bytes of the saved state_dict: `dense_bytes` (torch.save, what you would
    ship as is) and `gzip_bytes` (the same file gzip-compressed: zeros from
    pruning compress well, float weights barely do)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    raw = buf.getvalue()
    return dict(dense_bytes=len(raw), gzip_bytes=len(gzip.compress(raw, compresslevel=6)))


@torch.inference_mode()
def latency_per_image(model, x, batch_size, repeats=5, warmup=1, threads=None):
    """Median seconds per image for forward passes of `batch_size` images on the
    CPU (median over `repeats` timed passes, after `warmup` untimed ones).
    threads: torch.set_num_threads for the measurement (restored after)."""
    if not 1 <= batch_size <= len(x):
        raise ValueError(f"batch_size must be between 1 and {len(x)} (the images given), got {batch_size}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    model = model.cpu().eval()
    xb = x[:batch_size].cpu()
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            model(xb)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(xb)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    return statistics.median(times) / batch_size


def measure(model, data, teacher_test_logits=None, batch_sizes=(1, 256), repeats=10, threads=None):
    """One row for the comparison plot: test accuracy (and agreement with the
    teacher), parameters, non-zero weights, size on disk and CPU latency per
    image at each batch size (keys latency_b1, latency_b256, ...)."""
    from .metrics import summarize
    from .training import predict

    x, y = data.x_test.cpu(), data.y_test.cpu()
    model = model.cpu().eval()
    t = teacher_test_logits.cpu() if teacher_test_logits is not None else None
    row = summarize(predict(model, x), t, y, data.num_classes)
    row.update(parameters=sum(p.numel() for p in model.parameters()),
               weight_sparsity=weight_sparsity(model), **size_on_disk(model))
    for bs in batch_sizes:
        row[f"latency_b{bs}"] = latency_per_image(model, x, min(bs, len(x)), repeats=repeats, threads=threads)
    return row

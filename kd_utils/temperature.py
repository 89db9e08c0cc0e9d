"""Softmax with temperature, p_i = exp(z_i / T) / sum_j exp(z_j / T), and the helpers
notebook 01 plots with. T = 1 is the ordinary softmax; T > 1 flattens it and lifts the
small probabilities ("dark knowledge"); T -> infinity gives the uniform distribution."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .losses import DistillationLoss
from .settings import check_temperature

def softmax_with_temperature(logits, temperature):
    t = check_temperature(float(temperature) if torch.is_tensor(temperature) else temperature)
    logits = logits if torch.is_tensor(logits) else torch.as_tensor(logits, dtype=torch.get_default_dtype())
    # Dividing before the softmax (not raising probabilities to 1/T) keeps it
    # numerically stable: softmax subtracts the max logit internally.
    return torch.softmax(logits / t, dim=-1)

def entropy(probs, dim=-1):
    """Shannon entropy in nats; 0 * log 0 is taken as 0."""
    probs = torch.as_tensor(probs)
    return -(probs * torch.log(probs.clamp_min(1e-45))).sum(dim)

def probability_ratios(logits, temperature, i, j):
    """p_i / p_j at temperature T, which is exp((z_i - z_j) / T)."""
    p = softmax_with_temperature(logits, temperature)
    return p[..., i] / p[..., j]

def plot_softmax(logits, temperature, class_names=None, ax=None, title=None):
    """Bar chart of softmax(logits / T): the callback of notebook 01's sliders."""
    logits = torch.as_tensor(logits, dtype=torch.float32).detach().cpu()
    if logits.ndim != 1 or len(logits) < 2 or not torch.isfinite(logits).all():
        raise ValueError(f"plot_softmax needs one example: a 1-D vector of at least 2 finite "
                         f"logits, got shape {tuple(logits.shape)}")
    probs = softmax_with_temperature(logits, temperature)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(logits))]
    if len(names) != len(probs):
        raise ValueError(f"{len(names)} class names for {len(probs)} logits")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    ax.clear()  # a slider callback may redraw on the same axes
    bars = ax.bar(names, probs.numpy(), color="tab:blue")
    ax.set_ylim(0, 1.1)  # room for the value printed above a bar of height 1
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("probability")
    ax.set_title(title or f"T = {float(temperature):.3g}   entropy = {entropy(probs):.2f} nats")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right", rotation_mode="anchor")
    for bar, p in zip(bars, probs.tolist()):
        ax.text(bar.get_x() + bar.get_width() / 2, p + 0.01, f"{p:.2f}", ha="center", fontsize=8)
    return probs

def soft_term_gradient(student_logits, teacher_logits, temperature, t_squared=True):
    """Gradient of T^2 * KL(softmax(t/T) || softmax(s/T)) (distillation_loss at alpha = 1)
    w.r.t. the student logits; t_squared=False divides the T^2 out. 1-D logits are a
    batch of one. Use float64 logits for large T: the gradient is tiny there."""
    s = torch.as_tensor(student_logits)
    t = torch.as_tensor(teacher_logits, dtype=s.dtype)
    if s.shape != t.shape:
        raise ValueError(f"student and teacher logits must have the same shape, "
                         f"got {tuple(s.shape)} and {tuple(t.shape)}")
    one = s.ndim == 1
    s = s.detach().reshape(1, -1) if one else s.detach()
    s.requires_grad_(True)
    labels = torch.zeros(len(s), dtype=torch.long)  # unused: alpha = 1 has no hard term
    loss = DistillationLoss(float(temperature), alpha=1.0)(s, t.reshape(s.shape), labels)
    (grad,) = torch.autograd.grad(loss, s)
    if not t_squared:
        grad = grad / float(temperature) ** 2
    return grad[0] if one else grad

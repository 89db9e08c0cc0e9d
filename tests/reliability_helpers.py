"""Tiny synthetic data and settings shared by the reliability tests (fast on a CPU)."""
from __future__ import annotations

import pytest
import torch

from kd_utils.data import Dataset
from kd_utils.models import freeze, make_cnn_teacher
from kd_utils.profiles import Profile, Settings


def tiny_data(n_train=96, n_test=32, shape=(1, 16, 16), classes=4, seed=0, name="tiny"):
    """Each class is a bright square in its own place plus noise: learnable in one epoch."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        y = torch.arange(n) % classes
        x = torch.randint(0, 60, (n, *shape), generator=g)
        side = shape[1] // 2
        for c in range(classes):
            r, col = divmod(c % 4, 2)
            x[y == c, :, r * side:(r + 1) * side, col * side:(col + 1) * side] += 150
        return x.clamp(0, 255).to(torch.uint8), y

    return Dataset(name, [f"class{c}" for c in range(classes)], *make(n_train), *make(n_test))


def tiny_teacher(data, seed=1):
    """An untrained (random) frozen CNN teacher: its logits are all the tests need."""
    torch.manual_seed(seed)
    return freeze(make_cnn_teacher(data.image_shape, data.num_classes, *data.stats()))


def tiny_settings(seed=0, temperature=4.0, alphas=(0.0, 0.5, 1.0), epochs=2, teacher="auto"):
    prof = Profile("tiny", train_subset=None, test_subset=None, teacher_epochs=epochs,
                   student_epochs=epochs, batch_size=32)
    return Settings(dataset="tiny", profile=prof, seed=seed, temperature=temperature,
                    alphas=tuple(alphas), device=torch.device("cpu"), teacher=teacher)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Every run, checkpoint and cache of the test goes to a fresh folder."""
    monkeypatch.setenv("KD_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def count_calls(monkeypatch, module, name, fail_on=None, exc=KeyboardInterrupt):
    """Wrap module.name to count its calls ("n"); raise `exc` on call number
    calls["fail_on"] (set it to None to stop failing, and "n" to 0 to recount)."""
    original = getattr(module, name)
    calls = {"n": 0, "fail_on": fail_on}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["fail_on"]:
            raise exc()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def without_timing(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


__all__ = ["tiny_data", "tiny_teacher", "tiny_settings", "runs", "count_calls", "same_weights",
           "without_timing"]

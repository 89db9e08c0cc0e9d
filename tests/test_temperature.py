"""softmax_with_temperature: p_i = exp(z_i / T) / sum_j exp(z_j / T)."""
import math

import matplotlib
import numpy as np
import pytest
import torch

from kd_utils import entropy, plot_softmax, probability_ratios, softmax_with_temperature

matplotlib.use("Agg")

LOGITS = torch.tensor([[5.0, 2.0, -1.0, 0.5], [0.0, 3.0, 3.5, -2.0]], dtype=torch.float64)


def np_softmax(z, T):
    e = np.exp((z - z.max(-1, keepdims=True)) / T)
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("T", [0.5, 1.0, 2.0, 10.0])
def test_matches_the_formula(T):
    got = softmax_with_temperature(LOGITS, T).numpy()
    np.testing.assert_allclose(got, np_softmax(LOGITS.numpy(), T), rtol=1e-12)


@pytest.mark.parametrize("T", [0.1, 1.0, 4.0, 100.0])
def test_rows_sum_to_one(T):
    p = softmax_with_temperature(LOGITS, T)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, dtype=torch.float64))
    assert (p >= 0).all()


def test_high_T_tends_to_uniform():
    p = softmax_with_temperature(LOGITS, 1e6)
    torch.testing.assert_close(p, torch.full_like(p, 0.25), atol=1e-5, rtol=0)


def test_low_T_tends_to_one_hot_on_the_largest_logit():
    p = softmax_with_temperature(LOGITS, 1e-3)
    torch.testing.assert_close(p, torch.eye(4, dtype=torch.float64)[[0, 2]], atol=1e-12, rtol=0)


def test_stable_for_extreme_logits_and_temperatures():
    z = torch.tensor([1000.0, 999.0, -1000.0])
    for T in (1e-4, 1.0, 1e4):
        assert torch.isfinite(softmax_with_temperature(z, T)).all()


def test_probability_ratio_is_exp_of_logit_gap_over_T():
    # the "BMW / garbage truck / carrot" argument: ratios shrink towards 1 as T grows
    for T in (1.0, 2.0, 5.0):
        got = probability_ratios(LOGITS[0], T, 0, 2).item()
        assert got == pytest.approx(math.exp((5.0 - (-1.0)) / T), rel=1e-10)


def test_raising_T_softens_every_row():
    H = [entropy(softmax_with_temperature(LOGITS, T)) for T in (0.5, 1, 2, 4, 8)]
    for lo, hi in zip(H, H[1:]):
        assert (hi > lo).all()


def test_entropy_of_uniform_and_one_hot():
    assert entropy(torch.full((8,), 1 / 8)).item() == pytest.approx(math.log(8))
    assert entropy(torch.tensor([0.0, 1.0, 0.0])).item() == pytest.approx(0.0, abs=1e-12)


def test_accepts_plain_lists():
    got = softmax_with_temperature([1.0, 2.0], 1.0)
    np.testing.assert_allclose(got.numpy(), np_softmax(np.array([1.0, 2.0]), 1.0), rtol=1e-6)


@pytest.mark.parametrize("T", [0, -2, float("nan"), float("inf")])
def test_rejects_non_positive_or_non_finite_T(T):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        softmax_with_temperature(LOGITS, T)


def test_rejects_non_numeric_T():
    with pytest.raises(TypeError, match="temperature must be a number"):
        softmax_with_temperature(LOGITS, "hot")


def test_plot_softmax_draws_the_probabilities():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    probs = plot_softmax([2.0, 1.0, 0.1], 2.0, class_names=["a", "b", "c"], ax=ax)
    heights = [b.get_height() for b in ax.patches]
    np.testing.assert_allclose(heights, probs.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="2 class names for 3 logits"):
        plot_softmax([2.0, 1.0, 0.1], 2.0, class_names=["a", "b"], ax=ax)
    plt.close(fig)

"""softmax_with_temperature: p_i = exp(z_i / T) / sum_j exp(z_j / T), its helpers, and
the one range of T (0.05..1000) that every part of kd_utils checks."""
import math

import numpy as np
import pytest
import torch

import kd_utils as kd
from kd_utils import entropy, probability_ratios, softmax_with_temperature
from kd_utils.settings import TEMPERATURE_RANGE, check_temperature

LOGITS = torch.tensor([[5.0, 2.0, -1.0, 0.5], [0.0, 3.0, 3.5, -2.0]], dtype=torch.float64)


def np_softmax(z, T):
    e = np.exp((z - z.max(-1, keepdims=True)) / T)
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("T", [0.05, 0.5, 1.0, 2.0, 10.0, 1000.0])
def test_matches_the_formula(T):
    got = softmax_with_temperature(LOGITS, T).numpy()
    np.testing.assert_allclose(got, np_softmax(LOGITS.numpy(), T), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("T", [0.1, 1.0, 4.0, 100.0])
def test_rows_sum_to_one(T):
    p = softmax_with_temperature(LOGITS, T)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, dtype=torch.float64))
    assert (p >= 0).all()


def test_high_T_tends_to_uniform_with_a_gap_shrinking_like_one_over_T():
    gaps = [(softmax_with_temperature(LOGITS, T) - 0.25).abs().max().item() for T in (10.0, 100.0, 1000.0)]
    assert gaps[2] < 1e-3
    assert gaps[0] / gaps[1] == pytest.approx(10, rel=0.1) and gaps[1] / gaps[2] == pytest.approx(10, rel=0.02)


def test_low_T_tends_to_one_hot_on_the_largest_logit():
    p = softmax_with_temperature(LOGITS, 0.05)  # row 2's top two logits are 0.5 apart: exp(-10) left over
    torch.testing.assert_close(p, torch.eye(4, dtype=torch.float64)[[0, 2]], atol=1e-4, rtol=0)


@pytest.mark.parametrize("T", TEMPERATURE_RANGE + (1.0,))
def test_stable_for_extreme_logits_at_the_ends_of_the_range(T):
    p = softmax_with_temperature(torch.tensor([1000.0, 999.0, -1000.0]), T)
    assert torch.isfinite(p).all() and p.sum().item() == pytest.approx(1.0)


def test_probability_ratio_is_exp_of_logit_gap_over_T():
    """The 'BMW / garbage truck / carrot' argument: ratios shrink towards 1 as T grows."""
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


def test_accepts_plain_lists_and_a_tensor_temperature():
    got = softmax_with_temperature([1.0, 2.0], torch.tensor(2.0))
    np.testing.assert_allclose(got.numpy(), np_softmax(np.array([1.0, 2.0]), 2.0), rtol=1e-6)


# ---------------------------------------------------------------- the range of T

@pytest.mark.parametrize("T", [0, -2, 0.049, 1000.5, float("nan"), float("inf"), "hot", None, True])
def test_refuses_a_T_that_is_not_a_number_from_0_05_to_1000_and_says_what_T_does(T):
    with pytest.raises(ValueError, match=r"temperature must be a number from 0.05 to 1000 \(1 = ordinary softmax.*\), "
                                         r"got "):
        softmax_with_temperature(LOGITS, T)


@pytest.mark.parametrize("T, ok", [(0.05, True), (1000, True), (0.0499, False), (1000.01, False)])
def test_one_range_of_T_for_the_softmax_the_loss_the_metrics_and_the_settings(T, ok):
    """check_temperature is the one check: each place that takes T accepts and refuses the same values."""
    takers = [lambda: check_temperature(T), lambda: softmax_with_temperature(LOGITS, T),
              lambda: kd.DistillationLoss(T, 0.5), lambda: kd.kl_to_teacher(LOGITS, LOGITS, T),
              lambda: kd.settings(temperature=T, dataset="mnist", device="cpu", verbose=False)]
    for take in takers:
        if ok:
            take()
        else:
            with pytest.raises(ValueError, match="temperature must be a number from 0.05 to 1000"):
                take()


def test_check_temperature_names_what_it_checks():
    with pytest.raises(ValueError, match="T_teacher must be a number from 0.05 to 1000"):
        check_temperature(0.0, what="T_teacher")
    assert check_temperature(4) == 4.0 and isinstance(check_temperature(4), float)

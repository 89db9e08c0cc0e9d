"""The helpers behind notebooks 01 and 02: the slider callbacks and the
T^2 / high-temperature gradient they plot."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kd_utils as kd  # noqa: E402
from kd_utils.figures import plot_soft_targets, soft_targets_grid  # noqa: E402
from kd_utils.temperature import soft_term_gradient  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def bar_heights(ax):
    return [p.get_height() for p in ax.patches]


# ---------------------------------------------------------------- plot_softmax


def test_plot_softmax_returns_the_softened_probabilities():
    z = torch.tensor([3.0, 1.0, 0.0, -2.0])
    probs = kd.plot_softmax(z, 2.0)
    expected = torch.exp(z / 2) / torch.exp(z / 2).sum()
    assert torch.allclose(probs, expected, atol=1e-6)


def test_plot_softmax_draws_one_bar_per_class_with_the_probabilities():
    _, ax = plt.subplots()
    probs = kd.plot_softmax([2.0, 0.5, -1.0], 1.0, ["BMW", "truck", "carrot"], ax=ax)
    assert bar_heights(ax) == pytest.approx(probs.tolist())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["BMW", "truck", "carrot"]


def test_plot_softmax_redraws_on_the_same_axes_instead_of_stacking_bars():
    _, ax = plt.subplots()
    kd.plot_softmax([4.0, 0.0, -4.0], 1.0, ax=ax)
    sharp = bar_heights(ax)
    probs = kd.plot_softmax([4.0, 0.0, -4.0], 10.0, ax=ax)
    assert len(ax.patches) == 3  # the old bars are gone
    assert bar_heights(ax) == pytest.approx(probs.tolist())
    assert max(bar_heights(ax)) < max(sharp)  # higher T, flatter bars
    assert "T = 10" in ax.get_title()


def test_plot_softmax_title_reports_the_entropy_of_what_it_draws():
    _, ax = plt.subplots()
    probs = kd.plot_softmax([1.0, 1.0], 3.0, ax=ax)  # equal logits: uniform, entropy ln 2
    assert probs.tolist() == pytest.approx([0.5, 0.5])
    assert f"{math.log(2):.2f}" in ax.get_title()


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), 2000.0, "hot"])
def test_plot_softmax_rejects_a_temperature_that_is_not_a_number_from_0_05_to_1000(temperature):
    with pytest.raises(ValueError, match="temperature must be a number from 0.05 to 1000"):
        kd.plot_softmax([1.0, 2.0], temperature)


@pytest.mark.parametrize("logits", [[[1.0, 2.0], [3.0, 4.0]], [1.0], [1.0, float("nan")]])
def test_plot_softmax_rejects_logits_that_are_not_one_finite_vector(logits):
    with pytest.raises(ValueError, match="1-D vector of at least 2 finite logits"):
        kd.plot_softmax(logits, 1.0)


def test_plot_softmax_rejects_the_wrong_number_of_class_names():
    with pytest.raises(ValueError, match="2 class names for 3 logits"):
        kd.plot_softmax([1.0, 2.0, 3.0], 1.0, ["a", "b"])


# ------------------------------------------------------- soft_term_gradient


def test_soft_term_gradient_matches_the_closed_form():
    # d/dz_s of T^2 * KL(p_t || p_s) at temperature T is T * (p_s - p_t).
    zs = torch.tensor([1.0, -0.5, 2.0, 0.0], dtype=torch.float64)
    zt = torch.tensor([0.0, 1.0, 3.0, -1.0], dtype=torch.float64)
    T = 3.0
    closed = T * (torch.softmax(zs / T, -1) - torch.softmax(zt / T, -1))
    assert torch.allclose(soft_term_gradient(zs, zt, T), closed)
    assert torch.allclose(soft_term_gradient(zs, zt, T, t_squared=False), closed / T**2)


def test_soft_term_gradient_is_zero_when_the_student_matches_the_teacher():
    z = torch.tensor([[1.0, 2.0, 3.0]])
    assert soft_term_gradient(z, z, 4.0).abs().max() < 1e-6


def test_soft_term_gradient_without_t_squared_shrinks_like_one_over_t_squared():
    zs = torch.tensor([2.0, 0.0, -2.0], dtype=torch.float64)
    zt = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)
    g100 = soft_term_gradient(zs, zt, 100.0, t_squared=False).norm()
    g1000 = soft_term_gradient(zs, zt, 1000.0, t_squared=False).norm()
    assert g100 / g1000 == pytest.approx(100.0, rel=0.01)


def test_at_high_temperature_the_scaled_gradient_is_logit_matching():
    # Hinton et al. 2015, section 2.1: zero-mean logits, large T ->
    # T^2 * dKL/dz_s = (z_s - z_t) / C.
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(5, 10, generator=g, dtype=torch.float64)
    zt = torch.randn(5, 10, generator=g, dtype=torch.float64) * 3
    zs, zt = zs - zs.mean(1, keepdim=True), zt - zt.mean(1, keepdim=True)
    target = (zs - zt) / 10 / 5  # batchmean divides by the batch size too
    gaps = [(soft_term_gradient(zs, zt, T) - target).abs().max().item() for T in (10, 100, 1000)]
    # the gap shrinks like 1/T: ten times smaller for each tenfold T
    assert gaps[0] / gaps[1] == pytest.approx(10, rel=0.2)
    assert gaps[1] / gaps[2] == pytest.approx(10, rel=0.05)
    assert gaps[2] < 0.01 * target.abs().max().item()


def test_soft_term_gradient_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        soft_term_gradient(torch.zeros(3), torch.zeros(4), 2.0)


def test_soft_term_gradient_leaves_its_inputs_alone():
    zs = torch.tensor([1.0, 2.0], requires_grad=True)
    soft_term_gradient(zs, torch.tensor([0.0, 0.0]), 2.0)
    assert zs.grad is None


# ------------------------------------------------------ notebook 02's plots


def test_plot_soft_targets_shows_the_image_and_returns_the_probabilities():
    image = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    logits = torch.tensor([5.0, 1.0, 0.0])
    _, axes = plt.subplots(1, 2)
    probs = plot_soft_targets(image, logits, 4.0, ["cat", "dog", "car"], label=1, axes=axes)
    assert torch.allclose(probs, torch.softmax(logits / 4, -1))
    assert len(axes[0].images) == 1
    assert axes[0].get_title() == "true: dog"
    assert bar_heights(axes[1]) == pytest.approx(probs.tolist())


def test_plot_soft_targets_redraws_on_the_same_axes():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    _, axes = plt.subplots(1, 2)
    plot_soft_targets(image, torch.tensor([1.0, 0.0]), 1.0, ["a", "b"], axes=axes)
    probs = plot_soft_targets(image, torch.tensor([0.0, 1.0]), 2.0, ["a", "b"], axes=axes)
    assert len(axes[0].images) == 1 and len(axes[1].patches) == 2
    assert bar_heights(axes[1]) == pytest.approx(probs.tolist())


def test_soft_targets_grid_has_a_row_per_image_and_a_column_per_temperature():
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    logits = torch.tensor([[3.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    fig = soft_targets_grid(images, logits, [1, 4, 10], ["a", "b", "c"], labels=[0, 1])
    axes = fig.axes
    assert len(axes) == 2 * 4
    # row 1, column T=4: the bars are softmax(logits[1] / 4)
    assert bar_heights(axes[4 + 2]) == pytest.approx(torch.softmax(logits[1] / 4, -1).tolist())


def test_soft_targets_grid_rejects_mismatched_images_and_logits():
    with pytest.raises(ValueError, match="3 images but 2 rows of logits"):
        soft_targets_grid(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, 3), [1], list("abc"))

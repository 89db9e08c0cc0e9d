"""The distillation loss, checked against independent computations.

The reference functions below are written in numpy, in float64, from the
formulas (explicit sums, no torch), so a bug in kd_utils cannot hide behind
the same bug in a shared helper.
"""
import math

import numpy as np
import pytest
import torch

from kd_utils import distillation_loss, kd_loss, soft_cross_entropy

N, C = 6, 5


# ------------------------------------------------------- numpy references

def np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def np_cross_entropy(s, y):
    """Mean over samples of -log p_s[y]."""
    return -np_log_softmax(s)[np.arange(len(y)), y].sum() / len(y)


def np_kl_sum(s, t, T):
    """sum over samples and classes of p_t * (log p_t - log p_s), at temperature T."""
    lt, ls = np_log_softmax(t / T), np_log_softmax(s / T)
    return (np.exp(lt) * (lt - ls)).sum()


def np_blended(s, t, y, T, alpha):
    """The seeds' form: -sum_c target_c * log_softmax(s/T)_c, averaged over samples."""
    onehot = np.eye(s.shape[1])[y]
    target = alpha * np.exp(np_log_softmax(t / T)) + (1 - alpha) * onehot
    return -(target * np_log_softmax(s / T)).sum() / len(y)


def np_grad_T2_kl(s, t, T):
    """d/ds of T^2 * KL / N, by hand: T^2 * (1/T) * (p_s - p_t) / N."""
    ps, pt = np.exp(np_log_softmax(s / T)), np.exp(np_log_softmax(t / T))
    return T * (ps - pt) / len(s)


@pytest.fixture
def batch():
    rng = np.random.default_rng(42)
    s = rng.normal(0, 3, (N, C))
    t = rng.normal(0, 3, (N, C))
    y = rng.integers(0, C, N)
    return s, t, y


def as_torch(s, t, y, grad=False):
    st = torch.tensor(s, dtype=torch.float64, requires_grad=grad)
    return st, torch.tensor(t, dtype=torch.float64), torch.tensor(y, dtype=torch.long)


def grad_wrt_student(s, t, y, T, alpha, **kw):
    st, tt, yt = as_torch(s, t, y, grad=True)
    distillation_loss(st, tt, yt, T, alpha, **kw).backward()
    return st.grad.numpy()


# --------------------------------------------------------------- values

def test_hand_worked_example():
    # student logits (0, 0) -> p_s = (1/2, 1/2); teacher (ln 3, 0) -> p_t = (3/4, 1/4).
    # KL(p_t || p_s) = 3/4 ln(3/2) + 1/4 ln(1/2); at T = 1 the T^2 factor is 1.
    s = torch.zeros(1, 2, dtype=torch.float64)
    t = torch.tensor([[math.log(3), 0.0]], dtype=torch.float64)
    y = torch.tensor([1])
    expected_kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert distillation_loss(s, t, y, 1.0, 1.0).item() == pytest.approx(expected_kl, rel=1e-12)
    # alpha = 0: cross-entropy of a 50/50 guess is ln 2, whatever the teacher says
    assert distillation_loss(s, t, y, 1.0, 0.0).item() == pytest.approx(math.log(2), rel=1e-12)


def test_alpha_0_is_plain_cross_entropy(batch):
    s, t, y = batch
    for T in (1.0, 4.0, 20.0):  # T plays no part in the hard term
        got = distillation_loss(*as_torch(s, t, y), T, 0.0).item()
        assert got == pytest.approx(np_cross_entropy(s, y), rel=1e-12)


def test_alpha_0_needs_no_teacher(batch):
    s, _, y = batch
    st, _, yt = as_torch(s, s, y)
    assert distillation_loss(st, None, yt, 4.0, 0.0).item() == pytest.approx(np_cross_entropy(s, y))


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 20.0])
def test_alpha_1_is_T_squared_times_batchmean_kl(batch, T):
    s, t, y = batch
    got = distillation_loss(*as_torch(s, t, y), T, 1.0).item()
    assert got == pytest.approx(T * T * np_kl_sum(s, t, T) / N, rel=1e-10)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.9])
def test_hinton_is_a_weighted_sum_of_the_two_terms(batch, alpha):
    s, t, y = batch
    T = 3.0
    expected = alpha * T * T * np_kl_sum(s, t, T) / N + (1 - alpha) * np_cross_entropy(s, y)
    assert distillation_loss(*as_torch(s, t, y), T, alpha).item() == pytest.approx(expected, rel=1e-10)


def test_kl_is_averaged_per_sample_not_per_element(batch):
    """batchmean = sum over classes, divided by the batch size. PyTorch's
    default 'mean' would also divide by the number of classes (C times smaller)."""
    s, t, y = batch
    got = distillation_loss(*as_torch(s, t, y), 1.0, 1.0).item()
    per_sample = np_kl_sum(s, t, 1.0) / N
    per_element = np_kl_sum(s, t, 1.0) / (N * C)
    assert got == pytest.approx(per_sample, rel=1e-10)
    assert got / per_element == pytest.approx(C, rel=1e-10)


def test_loss_does_not_depend_on_batch_size(batch):
    # The same samples twice over: a per-sample average stays the same.
    s, t, y = batch
    one = distillation_loss(*as_torch(s, t, y), 4.0, 0.5).item()
    two = distillation_loss(*as_torch(np.vstack([s, s]), np.vstack([t, t]), np.concatenate([y, y])),
                            4.0, 0.5).item()
    assert two == pytest.approx(one, rel=1e-12)


def test_zero_when_student_equals_teacher_and_alpha_is_1(batch):
    s, _, y = batch
    assert distillation_loss(*as_torch(s, s, y), 4.0, 1.0).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("T", [1.0, 4.0])
def test_blended_matches_the_seeds_formula(batch, alpha, T):
    s, t, y = batch
    got = distillation_loss(*as_torch(s, t, y), T, alpha, formulation="blended").item()
    assert got == pytest.approx(np_blended(s, t, y, T, alpha), rel=1e-10)


def test_blended_at_alpha_1_is_kl_plus_teacher_entropy_without_T_squared(batch):
    """Cross-entropy = KL + H(teacher): the seeds' form differs from Hinton's
    soft term by a constant and by the missing T^2."""
    s, t, y = batch
    T = 4.0
    pt = np.exp(np_log_softmax(t / T))
    teacher_entropy = -(pt * np.log(pt)).sum() / N
    got = distillation_loss(*as_torch(s, t, y), T, 1.0, formulation="blended").item()
    assert got == pytest.approx(np_kl_sum(s, t, T) / N + teacher_entropy, rel=1e-10)


def test_soft_cross_entropy_matches_numpy(batch):
    s, t, _ = batch
    target = np.exp(np_log_softmax(t))
    got = soft_cross_entropy(torch.tensor(s), torch.tensor(target), 2.0).item()
    assert got == pytest.approx(-(target * np_log_softmax(s / 2.0)).sum() / N, rel=1e-12)


@pytest.mark.parametrize("formulation", ["hinton", "blended"])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_the_training_loops_unchecked_loss_is_the_same_formula(batch, formulation, alpha):
    """The loop calls kd_loss (checks done once, in settings): it must be the same loss."""
    s, t, y = batch
    T = 2.5
    expected = (np_blended(s, t, y, T, alpha) if formulation == "blended" else
                alpha * T * T * np_kl_sum(s, t, T) / N + (1 - alpha) * np_cross_entropy(s, y))
    assert kd_loss(*as_torch(s, t, y), T, alpha, formulation).item() == pytest.approx(expected, rel=1e-10)


# ------------------------------------------------------------ gradients

@pytest.mark.parametrize("T", [1.0, 4.0, 10.0])
def test_kl_and_soft_cross_entropy_give_the_same_gradient(batch, T):
    """KL(p_t || p_s) = CE(p_t, p_s) - H(p_t), and H(p_t) does not depend on
    the student: so the student gets the same gradient from either, and both
    equal the closed form T * (p_s - p_t) / N (with the T^2 factor)."""
    s, t, y = batch
    g_kl = grad_wrt_student(s, t, y, T, 1.0)

    st = torch.tensor(s, requires_grad=True)
    target = torch.softmax(torch.tensor(t) / T, 1)
    (T * T * soft_cross_entropy(st, target, T)).backward()

    np.testing.assert_allclose(g_kl, st.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g_kl, np_grad_T2_kl(s, t, T), rtol=1e-10, atol=1e-14)


def test_teacher_receives_no_gradient(batch):
    s, t, y = batch
    st = torch.tensor(s, requires_grad=True)
    tt = torch.tensor(t, requires_grad=True)
    for form in ("hinton", "blended"):
        distillation_loss(st, tt, torch.tensor(y), 4.0, 0.5, formulation=form).backward()
        assert tt.grad is None


def soft_grad_norm(s, t, y, T, formulation):
    return np.linalg.norm(grad_wrt_student(s, t, y, T, 1.0, formulation=formulation))


def test_T_squared_keeps_the_gradient_scale_as_T_grows(batch):
    """Hinton et al. 2015: the soft term's gradients scale like 1/T^2, so the
    loss multiplies it by T^2. With it, T = 1..20 stays within a small factor."""
    s, t, y = batch
    norms = [soft_grad_norm(s, t, y, T, "hinton") for T in (1, 2, 4, 8, 16, 20)]
    assert max(norms) / min(norms) < 3


def test_without_T_squared_the_gradient_shrinks_like_one_over_T_squared(batch):
    """The seeds' blended form has no T^2: doubling a large T quarters the gradient."""
    s, t, y = batch
    n10, n20, n40 = (soft_grad_norm(s, t, y, T, "blended") for T in (10, 20, 40))
    assert n10 / n20 == pytest.approx(4, rel=0.1)
    assert n20 / n40 == pytest.approx(4, rel=0.05)
    # and over T = 1..20 it collapses by far more than the Hinton form varies
    assert soft_grad_norm(s, t, y, 1, "blended") / n20 > 50


def test_high_temperature_limit_is_logit_matching(batch):
    """Hinton et al. 2015, section 2.1: for large T, with zero-mean logits,
    d/dz_i of T^2 * KL -> (z_i - v_i) / C per sample, i.e. (z - v) / (N * C)
    for the batch mean: distillation becomes matching logits (squared error)."""
    s, t, y = batch
    s = s - s.mean(1, keepdims=True)
    t = t - t.mean(1, keepdims=True)
    logit_matching = (s - t) / (N * C)

    errors = []
    for T in (10.0, 100.0, 1000.0):
        g = grad_wrt_student(s, t, y, T, 1.0)
        errors.append(np.abs(g - logit_matching).max() / np.abs(logit_matching).max())
    assert errors[-1] < 5e-3
    # the next term of the expansion is O(1/T): ten times the T, a tenth of the error
    assert errors[0] / errors[1] == pytest.approx(10, rel=0.1)
    assert errors[1] / errors[2] == pytest.approx(10, rel=0.1)


# ------------------------------------------------------------ bad input

@pytest.mark.parametrize("T", [0, -1.0, float("nan"), float("inf")])
def test_rejects_bad_temperature(batch, T):
    with pytest.raises(ValueError, match="temperature must be"):
        distillation_loss(*as_torch(*batch), T, 0.5)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_rejects_alpha_outside_0_1(batch, alpha):
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        distillation_loss(*as_torch(*batch), 4.0, alpha)


def test_rejects_unknown_formulation_and_lists_the_valid_ones(batch):
    with pytest.raises(ValueError, match="'hinton', 'blended'"):
        distillation_loss(*as_torch(*batch), 4.0, 0.5, formulation="keras")


def test_rejects_mismatched_shapes_and_labels(batch):
    s, t, y = as_torch(*batch)
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(s, t[:, :3], y, 4.0, 0.5)
    with pytest.raises(ValueError, match="labels must be in"):
        distillation_loss(s, t, torch.full_like(y, C), 4.0, 0.5)
    with pytest.raises(TypeError, match="integer class indices"):
        distillation_loss(s, t, y.double(), 4.0, 0.5)
    with pytest.raises(ValueError, match="teacher_logits are needed"):
        distillation_loss(s, None, y, 4.0, 0.5)


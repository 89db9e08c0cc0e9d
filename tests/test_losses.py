"""kd.DistillationLoss, checked against independent computations.

The reference functions below are written in numpy, in float64, from the
formulas (explicit sums, no torch), so a bug in kd_utils cannot hide behind
the same bug in a shared helper. One more reference, torchdistill's KDLoss, is
written out in torch as that library has it: it weights the HARD term with its
alpha, so its alpha is our 1 - alpha.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kd_utils as kd
from kd_utils import DistillationLoss, soft_cross_entropy

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


def np_hinton(s, t, y, T, alpha):
    return alpha * T * T * np_kl_sum(s, t, T) / len(y) + (1 - alpha) * np_cross_entropy(s, y)


def np_blended(s, t, y, T, alpha):
    """The seeds' form: -sum_c target_c * log_softmax(s/T)_c, averaged over samples."""
    onehot = np.eye(s.shape[1])[y]
    target = alpha * np.exp(np_log_softmax(t / T)) + (1 - alpha) * onehot
    return -(target * np_log_softmax(s / T)).sum() / len(y)


def np_grad_T2_kl(s, t, T):
    """d/ds of T^2 * KL / N, by hand: T^2 * (1/T) * (p_s - p_t) / N."""
    ps, pt = np.exp(np_log_softmax(s / T)), np.exp(np_log_softmax(t / T))
    return T * (ps - pt) / len(s)


def np_grad_blended(s, t, y, T, alpha):
    """d/ds of the blended loss, by hand: the target sums to 1, so the gradient of
    -sum(target * log_softmax(s/T)) / N is (p_s - target) / (T * N)."""
    ps = np.exp(np_log_softmax(s / T))
    target = alpha * np.exp(np_log_softmax(t / T)) + (1 - alpha) * np.eye(s.shape[1])[y]
    return (ps - target) / (T * len(s))


def torchdistill_kd_loss(student, teacher, targets, temperature, alpha):
    """torchdistill's KDLoss (torchdistill/losses/mid_level.py), reduction='batchmean':
    alpha * CE(student, targets) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))."""
    soft = torch.nn.KLDivLoss(reduction="batchmean")(torch.log_softmax(student / temperature, dim=1),
                                                     torch.softmax(teacher / temperature, dim=1))
    hard = torch.nn.CrossEntropyLoss(reduction="mean")(student, targets)
    return alpha * hard + (1 - alpha) * temperature ** 2 * soft


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


def loss_value(s, t, y, T, alpha, formulation="hinton"):
    return DistillationLoss(T, alpha, formulation)(*as_torch(s, t, y)).item()


def grad_wrt_student(s, t, y, T, alpha, formulation="hinton"):
    st, tt, yt = as_torch(s, t, y, grad=True)
    DistillationLoss(T, alpha, formulation)(st, tt, yt).backward()
    return st.grad.numpy()


# --------------------------------------------------------------- values

def test_hand_worked_example():
    """Student (0, 0) -> p_s = (1/2, 1/2); teacher (ln 3, 0) -> p_t = (3/4, 1/4).
    At T = 1, alpha = 1 the loss is KL(p_t || p_s) = 3/4 ln(3/2) + 1/4 ln(1/2);
    at alpha = 0 it is the cross-entropy of a 50/50 guess, ln 2, whatever the teacher says."""
    s = torch.zeros(1, 2, dtype=torch.float64)
    t = torch.tensor([[math.log(3), 0.0]], dtype=torch.float64)
    y = torch.tensor([1])
    expected_kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert DistillationLoss(1.0, 1.0)(s, t, y).item() == pytest.approx(expected_kl, rel=1e-12)
    assert DistillationLoss(1.0, 0.0)(s, t, y).item() == pytest.approx(math.log(2), rel=1e-12)


@pytest.mark.parametrize("T", [1.0, 4.0, 20.0])
def test_hinton_alpha_0_is_plain_cross_entropy_at_any_T(batch, T):
    """At alpha = 0 the Hinton loss is CE(s, y): T plays no part in the hard term."""
    s, t, y = batch
    assert loss_value(s, t, y, T, 0.0) == pytest.approx(np_cross_entropy(s, y), rel=1e-12)


@pytest.mark.parametrize("formulation", ["hinton", "blended"])
def test_alpha_0_needs_no_teacher(batch, formulation):
    """With alpha = 0 the teacher's logits may be None (a hard-label baseline has no teacher)."""
    s, _, y = batch
    st, _, yt = as_torch(s, s, y)
    loss = DistillationLoss(4.0, 0.0, formulation)
    assert not loss.uses_teacher
    expected = np_blended(s, s, y, 4.0, 0.0) if formulation == "blended" else np_cross_entropy(s, y)
    assert loss(st, None, yt).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 20.0])
def test_alpha_1_is_T_squared_times_batchmean_kl(batch, T):
    s, t, y = batch
    assert loss_value(s, t, y, T, 1.0) == pytest.approx(T * T * np_kl_sum(s, t, T) / N, rel=1e-10)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.9])
def test_hinton_is_alpha_times_the_soft_term_plus_1_minus_alpha_times_the_hard_term(batch, alpha):
    s, t, y = batch
    assert loss_value(s, t, y, 3.0, alpha) == pytest.approx(np_hinton(s, t, y, 3.0, alpha), rel=1e-10)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("T", [1.0, 4.0])
def test_our_alpha_is_torchdistills_1_minus_alpha(batch, alpha, T):
    """alpha weights the teacher here; torchdistill's KDLoss(alpha=a) weights the hard
    labels. The same loss, with the weight flipped (the module docstring says so)."""
    s, t, y = as_torch(*batch)
    expected = torchdistill_kd_loss(s, t, y, T, 1 - alpha).item()
    assert DistillationLoss(T, alpha)(s, t, y).item() == pytest.approx(expected, rel=1e-10)


def test_kl_is_averaged_per_sample_not_per_element(batch):
    """batchmean = sum over classes, divided by the batch size. PyTorch's
    default 'mean' would also divide by the number of classes (C times smaller)."""
    s, t, y = batch
    got = loss_value(s, t, y, 1.0, 1.0)
    assert got == pytest.approx(np_kl_sum(s, t, 1.0) / N, rel=1e-10)
    assert got / (np_kl_sum(s, t, 1.0) / (N * C)) == pytest.approx(C, rel=1e-10)


@pytest.mark.parametrize("formulation", ["hinton", "blended"])
def test_loss_does_not_depend_on_batch_size(batch, formulation):
    """The same samples twice over: a per-sample average stays the same."""
    s, t, y = batch
    one = loss_value(s, t, y, 4.0, 0.5, formulation)
    two = loss_value(np.vstack([s, s]), np.vstack([t, t]), np.concatenate([y, y]), 4.0, 0.5, formulation)
    assert two == pytest.approx(one, rel=1e-12)


def test_zero_when_student_equals_teacher_and_alpha_is_1(batch):
    s, _, y = batch
    assert loss_value(s, s, y, 4.0, 1.0) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("T", [1.0, 4.0])
def test_blended_matches_the_seeds_formula(batch, alpha, T):
    """target = alpha * softmax(t/T) + (1 - alpha) * onehot(y); loss = -sum(target * log_softmax(s/T)),
    averaged over the batch, no T^2 (the hard labels too are scored at temperature T)."""
    s, t, y = batch
    assert loss_value(s, t, y, T, alpha, "blended") == pytest.approx(np_blended(s, t, y, T, alpha), rel=1e-10)


def test_kl_is_cross_entropy_minus_the_teachers_entropy(batch):
    """KL(p_t || p_s) = CE(p_t, p_s) - H(p_t): the blended form at alpha = 1 (a soft
    cross-entropy) is Hinton's soft term without its T^2, plus the teacher's entropy,
    a constant for the student."""
    s, t, y = batch
    T = 4.0
    pt = np.exp(np_log_softmax(t / T))
    teacher_entropy = -(pt * np.log(pt)).sum() / N
    blended = loss_value(s, t, y, T, 1.0, "blended")
    hinton = loss_value(s, t, y, T, 1.0, "hinton")
    assert blended == pytest.approx(np_kl_sum(s, t, T) / N + teacher_entropy, rel=1e-10)
    assert blended - teacher_entropy == pytest.approx(hinton / T ** 2, rel=1e-10)


def test_soft_cross_entropy_matches_numpy(batch):
    s, t, _ = batch
    target = np.exp(np_log_softmax(t))
    got = soft_cross_entropy(torch.tensor(s), torch.tensor(target), 2.0).item()
    assert got == pytest.approx(-(target * np_log_softmax(s / 2.0)).sum() / N, rel=1e-12)


# ------------------------------------------------------------ identity

def test_identity_leaves_T_out_only_where_T_plays_no_part():
    """A run's folder is keyed by loss.identity(): Hinton's alpha = 0 is plain CE, so its runs
    are shared across T; the blended form scores the labels at T, so there T counts."""
    assert DistillationLoss(2.0, 0.0).identity() == DistillationLoss(8.0, -0.0).identity() == dict(alpha=0.0)
    assert DistillationLoss(2.0, 0.0, "blended").identity() != DistillationLoss(8.0, 0.0, "blended").identity()
    assert DistillationLoss(2.0, 0.5).identity() == dict(alpha=0.5, temperature=2.0, formulation="hinton")
    assert DistillationLoss(2.0, 0.5).identity() != DistillationLoss(2.0, 0.5, "blended").identity()


def test_loss_is_a_module_without_parameters():
    """Nothing in the loss is trained: an optimizer over a model plus its loss sees the model only."""
    loss = DistillationLoss(4.0, 0.5)
    assert isinstance(loss, torch.nn.Module) and list(loss.parameters()) == []
    assert repr(loss) == "DistillationLoss(temperature=4, alpha=0.5, formulation='hinton')"


def test_the_old_loss_functions_are_gone():
    """One loss, one name: the module replaced distillation_loss and kd_loss."""
    assert not hasattr(kd, "distillation_loss") and not hasattr(kd, "kd_loss")


# ------------------------------------------------------------ gradients

@pytest.mark.parametrize("T", [1.0, 4.0, 10.0])
def test_kl_and_soft_cross_entropy_give_the_same_gradient(batch, T):
    """H(p_t) does not depend on the student, so KL and the soft cross-entropy give it the
    same gradient, and both equal the closed form T * (p_s - p_t) / N (with the T^2 factor)."""
    s, t, y = batch
    g_kl = grad_wrt_student(s, t, y, T, 1.0)

    st = torch.tensor(s, requires_grad=True)
    target = torch.softmax(torch.tensor(t) / T, 1)
    (T * T * soft_cross_entropy(st, target, T)).backward()

    np.testing.assert_allclose(g_kl, st.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g_kl, np_grad_T2_kl(s, t, T), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("T", [1.0, 4.0])
def test_blended_gradient_is_p_s_minus_the_blended_target_over_T(batch, alpha, T):
    s, t, y = batch
    np.testing.assert_allclose(grad_wrt_student(s, t, y, T, alpha, "blended"), np_grad_blended(s, t, y, T, alpha),
                               rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_hinton_gradient_is_the_weighted_closed_forms(batch, alpha):
    """d/ds = alpha * T (p_s - p_t) / N + (1 - alpha) (softmax(s) - onehot(y)) / N."""
    s, t, y = batch
    T = 3.0
    hard = (np.exp(np_log_softmax(s)) - np.eye(C)[y]) / N
    np.testing.assert_allclose(grad_wrt_student(s, t, y, T, alpha),
                               alpha * np_grad_T2_kl(s, t, T) + (1 - alpha) * hard, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("formulation", ["hinton", "blended"])
def test_teacher_receives_no_gradient(batch, formulation):
    s, t, y = batch
    st = torch.tensor(s, requires_grad=True)
    tt = torch.tensor(t, requires_grad=True)
    DistillationLoss(4.0, 0.5, formulation)(st, tt, torch.tensor(y)).backward()
    assert tt.grad is None and st.grad is not None


def soft_grad_norm(s, t, y, T, formulation):
    return np.linalg.norm(grad_wrt_student(s, t, y, T, 1.0, formulation))


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


def test_float32_logits_give_the_float64_loss(batch):
    """The training loop passes float32 logits (autocast's are cast up first)."""
    s, t, y = batch
    loss = DistillationLoss(4.0, 0.5)
    got = loss(torch.tensor(s, dtype=torch.float32), torch.tensor(t, dtype=torch.float32), torch.tensor(y)).item()
    assert got == pytest.approx(np_hinton(s, t, y, 4.0, 0.5), rel=1e-5)


# ------------------------------------------------------------ bad input

@pytest.mark.parametrize("T", [0, -1.0, 0.04, 1001.0, float("nan"), float("inf"), "4", None, True])
def test_the_constructor_refuses_a_temperature_that_is_not_a_number_from_0_05_to_1000(T):
    with pytest.raises(ValueError, match=r"temperature must be a number from 0.05 to 1000"):
        DistillationLoss(T, 0.5)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "0.5", None, False])
def test_the_constructor_refuses_an_alpha_that_is_not_a_number_in_0_1(alpha):
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\] \(0 = hard labels only, "
                                         r"1 = teacher only\)"):
        DistillationLoss(4.0, alpha)


def test_the_constructor_refuses_an_unknown_formulation_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown formulation 'keras'; valid formulations are: 'hinton', 'blended'"):
        DistillationLoss(4.0, 0.5, "keras")


def test_a_call_refuses_teacher_logits_that_do_not_fit_the_students(batch):
    s, t, y = as_torch(*batch)
    loss = DistillationLoss(4.0, 0.5)
    needs = r"alpha = 0.5 needs teacher logits of the student's shape \(6, 5\), got "
    with pytest.raises(ValueError, match=needs + r"\(6, 3\)"):
        loss(s, t[:, :3], y)
    with pytest.raises(ValueError, match=needs + "None"):
        loss(s, None, y)

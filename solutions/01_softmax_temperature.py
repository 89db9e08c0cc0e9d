"""Solutions to the exercises of notebook 01 (softmax temperature).

Checked: exercise 1 (my_softmax_with_temperature) and the prediction of section 1 (HIGH_T_PREDICTION).
Open: exercises 2 and 3, answered below with the functions that compute their numbers (fixed logits, so the numbers
do not depend on any run; tests/test_exercises.py checks them)."""
import torch
import torch.nn.functional as F

import kd_utils as kd


def my_softmax_with_temperature(logits, T):
    z = torch.as_tensor(logits, dtype=torch.float32) / T
    # Subtracting the largest logit changes nothing mathematically (it cancels
    # in the ratio) but keeps exp() from overflowing on large logits.
    z = z - z.max(dim=-1, keepdim=True).values
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)


# As T grows, z / T -> 0 for every class and softmax(0, ..., 0) is uniform.
HIGH_T_PREDICTION = "uniform"

# The logits of section 5 (and, centred, of section 6).
Z_STUDENT = torch.tensor([2.0, 1.0, -0.5, -2.5], dtype=torch.float64)
Z_TEACHER = torch.tensor([4.0, 0.5, -1.5, -3.0], dtype=torch.float64)


def teacher_share(T, alpha=0.5, t_squared=True):
    """Exercise 2: the teacher's share of the gradient, alpha |g_soft| / (alpha |g_soft| + (1 - alpha) |g_hard|),
    with g_soft from kd.soft_term_gradient and g_hard the hard-label cross-entropy's gradient (label 0)."""
    z = Z_STUDENT.clone().requires_grad_(True)
    hard = torch.autograd.grad(F.cross_entropy(z[None], torch.tensor([0])), z)[0].norm()
    soft = kd.soft_term_gradient(Z_STUDENT, Z_TEACHER, T, t_squared=t_squared).norm()
    return float(alpha * soft / (alpha * soft + (1 - alpha) * hard))

# Exercise 2, the answer. The hard term's gradient norm is 0.408 at every T. The soft term's is 0.363 at T = 1 (with
# or without T^2: T^2 = 1), 0.766 at T = 4 and 0.640 at T = 20 with T^2, but 0.048 and 0.0016 without it. So with
# alpha = 0.5 the teacher's share of the gradient is
#            T = 1    T = 4    T = 20
#   T^2      47%      65%      61%
#   no T^2   47%      10.5%    0.4%
# Without T^2, alpha = 0.5 quietly turns into "labels only" as T grows; with it, the share stays within 47-65%:
# roughly, not exactly, the meaning of alpha (the notebook's takeaway). teacher_share(T, t_squared=...) computes each.


def uncentred_gaps(T):
    """Exercise 3: section 6's check with zt = z_teacher + 5 (not centred). Returns the largest |difference|
    between T^2 dKL/dz_s and (a) (z_s - z_t) / C, (b) ((z_s - mean z_s) - (z_t - mean z_t)) / C."""
    zs, zt = Z_STUDENT - Z_STUDENT.mean(), Z_TEACHER + 5
    g, C = kd.soft_term_gradient(zs, zt, T), len(zs)
    plain = (zs - zt) / C
    centred = ((zs - zs.mean()) - (zt - zt.mean())) / C
    return float((g - plain).abs().max()), float((g - centred).abs().max())

# Exercise 3, the answer. Against (z_s - z_t) / C the gap no longer shrinks: about 1.3 at T = 10, 100 and 1000 (the
# +5 shows up as 5 / C = 1.25 in every class). Against the centred difference it shrinks tenfold per tenfold T,
# 2.2e-1, 8.9e-2, 9.9e-3, 1.0e-3 at T = 1, 10, 100, 1000: exactly section 6's numbers, because the gradient itself
# has not changed. The softmax is shift-invariant, softmax(z + c) = softmax(z), so the teacher's probabilities, and
# with them the gradient, ignore the +5; what the high-T limit matches is the logits up to a constant per example,
# i.e. the centred logits. (Centring costs nothing, which is why section 6 could assume it.)

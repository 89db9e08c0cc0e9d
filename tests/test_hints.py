"""Notebook 08's pieces: ensembles of teachers, FitNets hints, and its students."""
import pytest
import torch
import torch.nn.functional as F
from conftest import make_dataset
from torch import nn

import kd_utils as kd
from kd_utils import hints
from kd_utils.models import make_cnn_teacher


@pytest.mark.parametrize("T", [1.0, 4.0, 20.0])
def test_ensemble_logits_soften_to_the_average_of_the_members_soft_targets(T):
    torch.manual_seed(0)
    members = [torch.randn(5, 10) * 3 for _ in range(3)]
    ens = hints.ensemble_logits(members, T)
    average = torch.stack([F.softmax(z / T, -1) for z in members]).mean(0)
    assert torch.allclose(F.softmax(ens / T, -1), average, atol=1e-6)


def test_ensemble_of_one_is_that_teacher_and_extreme_logits_stay_finite():
    z = torch.tensor([[1000.0, 0.0, -1000.0]])
    ens = hints.ensemble_logits([z, -z], 1.0)
    assert torch.isfinite(ens).all()
    assert torch.allclose(F.softmax(ens, -1), torch.tensor([[0.5, 0.0, 0.5]]), atol=1e-6)
    assert torch.allclose(F.softmax(hints.ensemble_logits([z * 1e-3], 2.0) / 2.0, -1), F.softmax(z * 1e-3 / 2.0, -1))
    with pytest.raises(ValueError, match="at least one"):
        hints.ensemble_logits([])


@pytest.mark.parametrize("shape, student_feat, teacher_feat", [
    ((1, 28, 28), (16, 5, 5), (64, 7, 7)),
    ((3, 32, 32), (16, 5, 5), (64, 8, 8)),
])
def test_feature_shapes_at_the_end_of_the_second_block(shape, student_feat, teacher_feat):
    data = make_dataset(n_train=4, n_test=2, shape=shape)
    student = kd.new_student(data, 0)
    teacher = make_cnn_teacher(shape, 10, [0.5] * shape[0], [0.25] * shape[0])
    assert hints.feature_shapes(student, teacher, data.x_train, 2) == (student_feat, teacher_feat)
    with pytest.raises(ValueError, match="between 1 and 2"):
        hints.block_output(student, 3)


def test_capture_records_the_output_and_removes_its_hook():
    layer = nn.Linear(3, 2)
    with hints.capture(layer) as c:
        y = layer(torch.ones(1, 3))
    assert torch.equal(c["out"], y)
    assert len(layer._forward_hooks) == 0


def test_hint_loss_is_zero_for_a_perfect_regressor_and_pools_the_teacher_map():
    torch.manual_seed(0)
    student_feat = torch.randn(2, 4, 5, 5)
    identity = nn.Conv2d(4, 4, 1, bias=False)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
    assert hints.hint_loss(student_feat, student_feat, identity).item() == pytest.approx(0.0, abs=1e-12)
    # a constant 7x7 teacher map pools to the same constant at 5x5
    zero = nn.Conv2d(4, 6, 3, padding=1)
    nn.init.zeros_(zero.weight), nn.init.constant_(zero.bias, 2.0)
    assert hints.hint_loss(student_feat, torch.full((2, 6, 7, 7), 2.0), zero).item() == pytest.approx(0.0, abs=1e-10)
    assert hints.hint_loss(student_feat, torch.full((2, 6, 7, 7), 3.0), zero).item() == pytest.approx(1.0)


@pytest.fixture
def small(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_RUNS_DIR", str(tmp_path))
    data = make_dataset(n_train=64, n_test=16)
    torch.manual_seed(1)
    teacher = kd.freeze(make_cnn_teacher(data.image_shape, 10, *data.stats()))
    return data, teacher


def test_hint_weight_zero_is_plain_online_distillation(small):
    data, teacher = small
    common = dict(seed=3, epochs=1, lr=1e-3, batch_size=16)
    hinted, _ = hints.train_with_hints(data, teacher, alpha=0.5, temperature=4.0, hint_weight=0.0, **common)
    plain, _ = kd.train_student(data, 0.5, 4.0, teacher=teacher, teacher_mode="online", **common)
    assert kd.metrics.weight_difference(hinted, plain) < 1e-6


def test_hints_change_the_student_and_leave_the_teacher_alone(small):
    data, teacher = small
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    common = dict(alpha=0.5, temperature=4.0, seed=3, epochs=1, lr=1e-3, batch_size=16)
    without, _ = hints.train_with_hints(data, teacher, hint_weight=0.0, **common)
    with_hints, _ = hints.train_with_hints(data, teacher, hint_weight=10.0, **common)
    # the hint reaches the first conv layer, through the guided layer at the end of block 2
    assert not torch.allclose(without.net.features[0].weight, with_hints.net.features[0].weight)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(ValueError, match="hint_weight"):
        hints.train_with_hints(data, teacher, hint_weight=-1.0, **common)


def test_distil_caches_each_student_by_what_it_learned_from(small, tmp_path):
    data, teacher = small
    s = kd.settings("mnist", "smoke", verbose=False)
    size = hints.BeyondSize(n_train=None, n_test=None, teacher_epochs=1, student_epochs=1, n_teachers=2)
    t_logits = kd.predict(teacher, data.x_train)
    a, ha = hints.distil(s, data, size, "kd", alpha=0.5, teacher=teacher, teacher_logits=t_logits)
    again, _ = hints.distil(s, data, size, "kd", alpha=0.5, teacher=teacher, teacher_logits=t_logits)
    other, _ = hints.distil(s, data, size, "kd", alpha=0.5, teacher_logits=t_logits + torch.randn_like(t_logits))
    assert kd.metrics.weight_difference(a, again) == 0.0
    assert kd.metrics.weight_difference(a, other) > 0.0
    assert hints.train_seconds(ha) == pytest.approx(sum(h["seconds"] for h in ha)) and len(ha) == 1
    with pytest.raises(ValueError, match="'kd' or 'hints'"):
        hints.distil(s, data, size, "attention", alpha=0.5)


def test_teachers_get_their_own_seeds_and_are_frozen(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_RUNS_DIR", str(tmp_path))
    data = make_dataset(n_train=32, n_test=8)
    s = kd.settings("mnist", "smoke", seed=5, verbose=False)
    size = hints.BeyondSize(n_train=None, n_test=None, teacher_epochs=1, student_epochs=1, n_teachers=2)
    t1, t2 = hints.train_teachers(s, data, size)
    assert kd.metrics.weight_difference(t1, t2) > 0
    assert [len(t.history) for t in (t1, t2)] == [1, 1]
    assert not t1.training and not any(p.requires_grad for p in t2.parameters())

"""Notebook 08's pieces: ensembles of teachers, FitNets hints, and its students."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from kd_testdata import make_dataset
from torch import nn

import kd_utils as kd
from kd_utils.extras import hints
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


def tiny_settings(**values):
    s = kd.settings(dataset="mnist", profile="smoke", env=False, verbose=False, **values)
    return replace(s, profile=replace(s.profile, batch_size=16))


SIZE = kd.extras.sizes.BeyondSize(n_train=None, n_val=0, n_test=None, teacher_epochs=1, student_epochs=1,
                                  n_teachers=2)


@pytest.fixture
def small(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_RUNS_DIR", str(tmp_path))
    data = make_dataset(n_train=64, n_test=16)
    torch.manual_seed(1)
    teacher = kd.Trained(kd.freeze(make_cnn_teacher(data.image_shape, 10, *data.stats())))
    return tiny_settings(seed=3), data, teacher


def test_hint_weight_zero_is_plain_online_distillation(small):
    s, data, teacher = small
    hinted = hints.distil(s, data, SIZE, alpha=0.5, teacher=teacher, hint=hints.Hint(weight=0.0))
    plain = hints.distil(s, data, SIZE, alpha=0.5, teacher=teacher, online=True)
    assert hinted.folder != plain.folder
    assert kd.weight_difference(hinted.model, plain.model) < 1e-6


def test_hints_change_the_student_and_leave_the_teacher_alone(small):
    s, data, teacher = small
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    without = hints.distil(s, data, SIZE, alpha=0.5, teacher=teacher, hint=hints.Hint(weight=0.0))
    with_hints = hints.distil(s, data, SIZE, alpha=0.5, teacher=teacher, hint=hints.Hint(weight=10.0))
    # the hint reaches the first conv layer, through the guided layer at the end of block 2
    assert not torch.allclose(without.model.net.features[0].weight, with_hints.model.net.features[0].weight)
    assert all(torch.equal(before[k], v) for k, v in teacher.model.state_dict().items())
    assert not any(p.requires_grad for p in teacher.model.parameters())
    assert type(with_hints.model) is type(kd.new_student(data, 0)), "the regressor is not part of the student"
    with pytest.raises(ValueError, match="weight must be >= 0"):
        hints.distil(s, data, SIZE, alpha=0.5, teacher=teacher, hint=hints.Hint(weight=-1.0))


def test_the_hinted_block_is_the_one_asked_for(small):
    s, data, teacher = small
    block1 = hints.distil(s, data, SIZE, alpha=0.5, teacher=teacher, hint=hints.Hint(weight=10.0, block=1))
    block2 = hints.distil(s, data, SIZE, alpha=0.5, teacher=teacher, hint=hints.Hint(weight=10.0, block=2))
    assert block1.folder != block2.folder
    assert kd.weight_difference(block1.model, block2.model) > 0


def test_distil_caches_each_student_by_what_it_learned_from(small):
    s, data, teacher = small
    t_logits = kd.predict(teacher.model, data.x_train)
    a = hints.distil(s, data, SIZE, alpha=0.5, teacher=teacher)
    again = hints.distil(s, data, SIZE, alpha=0.5, teacher=teacher)
    same_logits = hints.distil(s, data, SIZE, alpha=0.5, teacher=t_logits)
    other = hints.distil(s, data, SIZE, alpha=0.5, teacher=t_logits + torch.randn_like(t_logits))
    assert again.folder == a.folder and kd.weight_difference(a.model, again.model) == 0.0
    assert kd.weight_difference(a.model, same_logits.model) == 0.0, "cached logits are the teacher's outputs"
    assert other.folder != a.folder and kd.weight_difference(a.model, other.model) > 0.0
    assert hints.train_seconds(a.history) == pytest.approx(sum(h["seconds"] for h in a.history))
    assert len(a.history) == 1
    with pytest.raises(ValueError, match="alpha > 0 needs a teacher"):
        hints.distil(s, data, SIZE, alpha=0.5)
    with pytest.raises(ValueError, match="online teaching and hints need a kd.Trained teacher"):
        hints.distil(s, data, SIZE, alpha=0.5, teacher=t_logits, online=True)
    with pytest.raises(ValueError, match="one row per training image"):
        hints.distil(s, data, SIZE, alpha=0.5, teacher=t_logits[:10])


def test_an_online_teacher_sees_the_augmented_batch(small, monkeypatch):
    s, data, teacher = small
    seen = []
    real = teacher.model.forward
    monkeypatch.setattr(teacher.model, "forward", lambda x: seen.append(x.clone()) or real(x))
    hints.distil(s, data, SIZE, alpha=0.5, teacher=teacher, online=True, augment=True)
    assert [len(x) for x in seen] == [16] * 4, "one teacher pass per batch"
    clean = {bytes(img.numpy()) for img in data.x_train}
    crops = [bytes(img.numpy()) not in clean for x in seen for img in x]
    assert sum(crops) > 0.9 * len(crops), "the teacher is shown the crops, not the clean images"


def test_teachers_get_their_own_seeds_and_are_frozen(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_RUNS_DIR", str(tmp_path))
    data = make_dataset(n_train=32, n_test=8)
    t1, t2 = hints.train_teachers(tiny_settings(seed=5), data, SIZE)
    assert kd.weight_difference(t1.model, t2.model) > 0
    assert [len(t.history) for t in (t1, t2)] == [1, 1]
    assert not t1.model.training and not any(p.requires_grad for p in t2.model.parameters())


def test_students_are_coloured_by_their_alpha_and_variants_apart():
    assert hints.student_color("hard labels", 0.5) == kd.model_color("alpha=0")
    assert hints.student_color("KD, teacher 1", 0.5) == hints.student_color("KD, teacher 3", 0.5) \
        == kd.model_color("alpha=0.5")
    variants = [hints.student_color(n, 0.5) for n in ("KD + hints", "KD, ensemble", "KD + aug, cached teacher",
                                                        "KD + aug, online teacher")]
    assert len(set(variants)) == 4
    taken = {kd.model_color(f"alpha={a}") for a in (0, 0.25, 0.5, 0.75, 1)} | {kd.model_color("teacher")}
    assert not set(variants) & taken

"""Notebook 07's pieces: Hinton's MLPs, batched jitter, the omitted class and its bias."""
from dataclasses import replace

import pytest
import torch
from kd_testdata import make_dataset
from torch import nn

import kd_utils as kd
from kd_utils.extras import hinton


def linear_params(sizes):
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def test_mlps_have_the_papers_sizes(tiny_data):
    teacher = hinton.make_mlp(tiny_data, hinton.TEACHER_HIDDEN, 0.5, 0.2)
    student = hinton.make_mlp(tiny_data, hinton.STUDENT_HIDDEN)
    assert kd.count_parameters(teacher) == linear_params([784, 1200, 1200, 10])
    assert kd.count_parameters(student) == linear_params([784, 800, 800, 10])
    assert teacher(tiny_data.x_test).shape == (len(tiny_data.x_test), 10)
    assert not any(isinstance(m, nn.Dropout) for m in student.modules())


def test_teacher_dropout_is_random_in_training_and_off_in_eval(tiny_data):
    teacher = hinton.make_mlp(tiny_data, hinton.TEACHER_HIDDEN, 0.5, 0.2)
    x = tiny_data.x_test[:4]
    teacher.train()
    assert not torch.equal(teacher(x), teacher(x))
    teacher.eval()
    assert torch.equal(teacher(x), teacher(x))


def shifted(img, dy, dx):
    """img translated by (dy, dx) with zero fill, written the slow, obvious way."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    for y in range(h):
        for x in range(w):
            if 0 <= y - dy < h and 0 <= x - dx < w:
                out[..., y, x] = img[..., y - dy, x - dx]
    return out


def test_jitter_translates_each_image_by_at_most_two_pixels_without_flipping():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (16, 1, 10, 10), generator=g, dtype=torch.uint8)  # no zeros: shifts are unambiguous
    out = hinton.jitter(x, torch.Generator().manual_seed(1))
    found = []
    for img, o in zip(x, out):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(shifted(img, dy, dx), o)]
        assert len(matches) == 1, "each output must be its input shifted by up to 2 pixels"
        found.append(matches[0])
    assert len(set(found)) > 3, "images should get their own shifts"


def test_check_data_refuses_what_is_not_28x28_grayscale_with_ten_classes():
    with pytest.raises(ValueError, match="28x28 grayscale"):
        hinton.check_data(make_dataset(shape=(3, 32, 32)))
    with pytest.raises(ValueError, match="10 classes"):
        hinton.check_data(make_dataset(num_classes=2))
    assert hinton.check_data(make_dataset()) is not None


def test_without_class_removes_every_example_and_keeps_logits_aligned():
    data = make_dataset(n_train=40)
    logits = torch.arange(40).float()[:, None].repeat(1, 10)  # row i holds i: tracks which rows survive
    kept, kept_logits = hinton.without_class(data, 3, logits)
    assert (kept.y_train != 3).all()
    assert len(kept.y_train) == int((data.y_train != 3).sum())
    assert torch.equal(kept_logits[:, 0].long(), torch.nonzero(data.y_train != 3).squeeze(1))
    assert kept.num_classes == 10 and torch.equal(kept.x_test, data.x_test)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        hinton.without_class(data, 10)


def test_error_counts_and_scaling():
    labels = torch.tensor([0, 1, 2, 3])
    logits = torch.eye(4)[[0, 1, 3, 3]]  # the third is wrong
    assert hinton.count_errors(logits, labels) == 1
    assert hinton.per_10k(1, 4) == 2500
    assert hinton.class_correct(logits, labels, 3) == (1, 1)
    assert hinton.class_correct(logits, labels, 2) == (0, 1)


def test_choose_bias_shift_finds_the_missing_bias_on_the_data_it_is_given():
    # Every image prefers its own class by about 4, except that the class-3 logit of
    # the 3s is 6 lower: any shift between about 2 and 4 fixes them without breaking others.
    torch.manual_seed(0)
    labels = torch.arange(200) % 10
    logits = torch.randn(200, 10) * 0.1
    logits[torch.arange(200), labels] += 4.0
    logits[labels == 3, 3] -= 6.0
    best, shifts, accs = hinton.choose_bias_shift(logits, labels, 3)
    assert accs[0] == pytest.approx(0.9), "without a shift every 3 is missed"
    assert accs.max() == 1.0 and 2.0 < best < 4.0
    assert (hinton.shift_logit(logits, 3, best).argmax(1) == labels).all()
    assert best == float(shifts[torch.nonzero(accs == 1.0)[0]]), "the smallest of equally good shifts wins"


def test_raise_bias_equals_adding_to_the_logit_and_leaves_the_original_alone(tiny_data):
    torch.manual_seed(0)
    model = hinton.make_mlp(tiny_data, hinton.STUDENT_HIDDEN).eval()
    x = tiny_data.x_test
    before = model(x).detach()
    raised = hinton.raise_bias(model, 3, 1.7)
    assert torch.allclose(raised(x), hinton.shift_logit(before, 3, 1.7), atol=1e-5)
    assert torch.equal(model(x).detach(), before)


def test_results_table_puts_our_errors_beside_the_papers():
    text = hinton.results_table({"teacher 2x1200": 12, "student 2x800, distilled": 30}, 1000, "fashion-mnist")
    teacher_line = next(line for line in text.splitlines() if line.startswith("teacher"))
    assert teacher_line.split()[-3:] == ["12", "120", "67"]
    assert "x 10,000/1,000" in text and "fashion-mnist" in text


@pytest.fixture
def only_fashion(tiny_idx, monkeypatch):
    root, *_ = tiny_idx("fashion-mnist", n_train=30, n_test=10)
    monkeypatch.setenv("KD_DATA_DIR", str(root))
    monkeypatch.setattr(kd.data, "DEBIAN_FASHION_MNIST", root / "nowhere")
    return root


def test_paper_dataset_falls_back_to_fashion_mnist_and_says_so(only_fashion, capsys):
    s = kd.settings(dataset="mnist", profile="smoke", env=False, verbose=False)
    s2 = hinton.paper_dataset(s)
    assert s2.dataset == "fashion-mnist" and s.dataset == "mnist"
    assert s2.profile == s.profile and s2.temperature == s.temperature
    assert "paper's numbers are for MNIST" in capsys.readouterr().out
    assert hinton.paper_dataset(s2) == s2


def test_paper_dataset_does_not_hide_other_missing_data(only_fashion):
    s = kd.settings(dataset="cifar10", profile="smoke", env=False, verbose=False)
    with pytest.raises(kd.DataUnavailableError):
        hinton.paper_dataset(s)


def tiny_settings(**values):
    s = kd.settings(dataset="mnist", profile="smoke", env=False, verbose=False, **values)
    return replace(s, profile=replace(s.profile, batch_size=16))


def test_students_train_together_and_are_cached_by_their_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_RUNS_DIR", str(tmp_path))
    s = tiny_settings(temperature=20.0, alphas=(0.0, 0.9))
    data = make_dataset(n_train=48, n_test=16)
    size = replace(kd.extras.sizes.SIZES["smoke"].hinton, student_epochs=1)
    t1, t2 = torch.randn(48, 10), torch.randn(48, 10)
    a = hinton.train_students(s, data, size, t1)
    again = hinton.train_students(s, data, size, t1)
    other = hinton.train_students(s, data, size, t2, alphas=(0.9,))
    assert set(a) == {0.0, 0.9} and [len(t.history) for t in a.values()] == [1, 1]
    w = lambda t: t.model.net.layers[1].weight
    assert torch.equal(w(a[0.9]), w(again[0.9])), "the same run is reused"
    assert not torch.equal(w(a[0.9]), w(other[0.9])), "another teacher's outputs give another run"
    assert len(list((tmp_path / "mnist" / "hinton").iterdir())) == 3
    # trained together or alone (in a fresh runs folder), a student is the same
    monkeypatch.setenv("KD_RUNS_DIR", str(tmp_path / "alone"))
    alone = hinton.train_students(s, data, size, alphas=(0.0,))
    assert torch.equal(w(alone[0.0]), w(a[0.0]))
    with pytest.raises(ValueError, match="need teacher_logits"):
        hinton.train_students(s, data, size)


@pytest.mark.parametrize("pixels", [2, 0])
def test_teacher_trains_with_jitter_and_dropout_and_is_frozen(tmp_path, monkeypatch, pixels):
    monkeypatch.setenv("KD_RUNS_DIR", str(tmp_path))
    s = tiny_settings()
    data = make_dataset(n_train=32, n_test=8)
    size = replace(kd.extras.sizes.SIZES["smoke"].hinton, teacher_epochs=1, teacher_dropout=0.5,
                   input_dropout=0.2, jitter_pixels=pixels)
    calls = []
    real = hinton.jitter
    monkeypatch.setattr(hinton, "jitter", lambda x, *a, **k: calls.append(len(x)) or real(x, *a, **k))
    teacher = hinton.train_teacher(s, data, size)
    assert calls == ([16, 16] if pixels else []), "every training batch is jittered (when jitter is on)"
    assert len(teacher.history) == 1 and not teacher.model.training
    assert not any(p.requires_grad for p in teacher.model.parameters())
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in teacher.model.modules())
    assert teacher.folder.parent == tmp_path / "mnist" / "teachers"


def test_teachers_with_other_dropout_are_other_runs(tmp_path, monkeypatch):
    # dropout is not in the weights, so it must be in the run's key
    monkeypatch.setenv("KD_RUNS_DIR", str(tmp_path))
    s, data = tiny_settings(), make_dataset(n_train=32, n_test=8)
    size = replace(kd.extras.sizes.SIZES["smoke"].hinton, teacher_epochs=1)
    a = hinton.train_teacher(s, data, replace(size, teacher_dropout=0.5))
    b = hinton.train_teacher(s, data, replace(size, teacher_dropout=0.1))
    assert a.folder != b.folder

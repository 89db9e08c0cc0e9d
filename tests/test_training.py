"""The training loop: what makes the students of an experiment comparable (same start,
same batches, only alpha differs), lockstep training that gives exactly what training
one by one gives, and the GPU's default configuration run end to end on the CPU."""
import pytest
import torch
from torch import nn

import kd_utils as kd
import kd_utils.runs as kd_runs
import kd_utils.teachers as teachers
import kd_utils.training as training
from kd_testdata import same_weights, toy_data, toy_settings, toy_teacher, without_timing
from kd_utils.storage import load_json


def distill_in(folder, monkeypatch, s, data, teacher, alphas=None):
    """kd.distill with its runs in `folder` (a fresh folder trains from scratch)."""
    monkeypatch.setenv("KD_RUNS_DIR", str(folder))
    return kd.distill(s, data, teacher, alphas=alphas, progress=False)


def count_calls(monkeypatch, owner, name, fail_on=None):
    """Wrap owner.name to count its calls; raise KeyboardInterrupt on call number fail_on."""
    original, calls = getattr(owner, name), {"n": 0, "fail_on": fail_on}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["fail_on"]:
            raise KeyboardInterrupt  # the learner pressed stop
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


# ---------------------------------------------------------- same batches, same start

class Recorder(nn.Module):
    """A linear 'student' that records the batches it is trained on."""

    def __init__(self, data):
        super().__init__()
        self.fc = nn.Linear(data.x_train[0].numel(), data.num_classes)
        self.seen = []

    def forward(self, x):
        if self.training:  # not predict()'s passes over the test set
            self.seen.append(x.clone())
        return self.fc(x.float().flatten(1))


def indexed_data():
    """toy_data whose first pixel is the image's index, so a batch tells which images it holds."""
    data = toy_data()
    data.x_train[:, 0, 0, 0] = torch.arange(len(data.x_train), dtype=torch.uint8)
    return data


def epochs_shown(recorder, steps=3):
    """The image indices a recorder was shown, one tensor per epoch."""
    idx = [x[:, 0, 0, 0].long() for x in recorder.seen]
    return [torch.cat(idx[e:e + steps]) for e in range(0, len(idx), steps)]


def train_recorders(s, data, n=2):
    recorders = [Recorder(data) for _ in range(n)]
    training.train([training.new_run(f"r{i}", r, training.cross_entropy_loss, 1e-3, uses_teacher=False)
                    for i, r in enumerate(recorders)], data, s, progress=False)
    return recorders


def test_every_epoch_shows_every_image_once_in_a_seeded_order_the_same_for_every_student():
    data, s = indexed_data(), toy_settings(epochs=2)
    a, b = train_recorders(s, data)
    epochs_a = epochs_shown(a)
    assert len(epochs_a) == 2
    for order in epochs_a:
        assert sorted(order.tolist()) == list(range(len(data.x_train)))
    assert not torch.equal(epochs_a[0], epochs_a[1])  # shuffled anew each epoch
    assert all(torch.equal(x, y) for x, y in zip(a.seen, b.seen))  # lockstep: identical batches
    again = epochs_shown(train_recorders(s, data, n=1)[0])
    other_seed = epochs_shown(train_recorders(toy_settings(seed=1), data, n=1)[0])
    assert all(torch.equal(x, y) for x, y in zip(epochs_a, again))
    assert not torch.equal(epochs_a[0], other_seed[0])


def test_two_runs_from_scratch_with_the_same_seed_are_identical(tmp_path, monkeypatch):
    """A teacher (dropout, batch norm, augmentation) and three students, twice."""
    data, s = toy_data(), toy_settings()
    results = []
    for name in ("a", "b"):
        monkeypatch.setenv("KD_RUNS_DIR", str(tmp_path / name))
        teacher = kd.train_teacher(s, data, augment=True)
        results.append((teacher, kd.distill(s, data, teacher, progress=False)))
    (teacher_a, students_a), (teacher_b, students_b) = results
    assert same_weights(teacher_a.model, teacher_b.model)
    assert without_timing(teacher_a.history) == without_timing(teacher_b.history)
    for alpha in s.alphas:
        assert same_weights(students_a[alpha].model, students_b[alpha].model)
        assert without_timing(students_a[alpha].history) == without_timing(students_b[alpha].history)
    # ... and alpha changed what was learned, so the equalities above mean something
    assert not same_weights(students_a[0.0].model, students_a[1.0].model)


# ------------------------------------------------------------------ lockstep

@pytest.mark.parametrize("config", ["cpu default", "gpu default"])
def test_lockstep_training_gives_the_weights_of_training_one_by_one(tmp_path, monkeypatch, config):
    """issue 14: the three students trained together (one teacher pass per batch) end
    bit for bit where three separate runs end."""
    data = toy_data()
    s = toy_settings() if config == "cpu default" else toy_settings(teacher_mode="online", augment=True,
                                                                      autocast=True)
    teacher = toy_teacher(data)
    together = distill_in(tmp_path / "together", monkeypatch, s, data, teacher)
    for alpha in (0.0, 0.5, 1.0):
        [alone] = distill_in(tmp_path / f"alone{alpha}", monkeypatch, s, data, teacher, alphas=(alpha,)).values()
        assert same_weights(together[alpha].model, alone.model), alpha
        assert without_timing(together[alpha].history) == without_timing(alone.history)


def test_an_online_teacher_runs_once_per_batch_on_the_augmented_batch_all_students_see(monkeypatch, data):
    teacher = toy_teacher(data)
    seen = {"teacher": [], "augmented": [], "students": []}
    teacher_forward, crop_flip, loss = teacher.model.forward, training.random_crop_flip, training.kd_loss
    teacher.model.forward = lambda x: (seen["teacher"].append(x.clone()), teacher_forward(x))[1]
    monkeypatch.setattr(training, "random_crop_flip",
                        lambda x, g: (seen["augmented"].append(crop_flip(x, g)), seen["augmented"][-1])[1])
    monkeypatch.setattr(training, "kd_loss", lambda s, t, *args: (seen["students"].append(t), loss(s, t, *args))[1])
    kd.distill(toy_settings(teacher_mode="online", augment=True, alphas=(0.5, 1.0)), data, teacher, progress=False)

    batches = [x for x in seen["teacher"] if len(x) > 1]  # (distill first checks the classes on one image)
    assert len(batches) == len(seen["augmented"]) == 2 * 3  # 2 epochs x 3 batches: one teacher pass each
    assert all(torch.equal(x, a) for x, a in zip(batches, seen["augmented"]))
    stored = {bytes(x.numpy()) for x in data.x_train}
    assert sum(bytes(x.numpy()) in stored for b in batches for x in b) < len(data.x_train) / 4  # crops
    assert len(seen["students"]) == 2 * len(batches)  # both students got those logits
    assert all(seen["students"][2 * i] is seen["students"][2 * i + 1] for i in range(len(batches)))


def test_cached_teacher_outputs_are_computed_once_and_alpha_0_needs_no_teacher(monkeypatch, data, teacher):
    passes = count_calls(monkeypatch, teachers, "predict")
    kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)
    assert passes["n"] == 0  # the hard-label student never asks the teacher
    kd.distill(toy_settings(alphas=(0.5, 1.0)), data, teacher, progress=False)
    assert passes["n"] == 1  # one pass over the training images, shared by both students


def test_the_teacher_is_never_trained(data, teacher):
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    kd.distill(toy_settings(teacher_mode="online", augment=True), data, teacher, progress=False)
    assert all(torch.equal(before[k], v) for k, v in teacher.model.state_dict().items())
    assert not teacher.model.training and not any(p.requires_grad for p in teacher.model.parameters())


# ------------------------------------------------ the GPU default, on the CPU

def test_the_gpu_default_configuration_runs_end_to_end_on_the_cpu(tmp_path, monkeypatch, data):
    """issue 14: online teacher on augmented batches, bf16 autocast (CPU's stands in for
    CUDA's), students in lockstep, checkpoints, an interrupted run resumed bit for bit,
    evaluation."""
    gpu = kd.settings(dataset="fashion-mnist", teacher_mode="online", augment=True, autocast=True, device="cpu",
                      verbose=False)
    s = toy_settings(teacher_mode=gpu.teacher_mode, augment=gpu.augment, autocast=gpu.autocast, epochs=3)
    teacher = toy_teacher(data)
    reference = distill_in(tmp_path / "reference", monkeypatch, s, data, teacher)
    in_fp32 = distill_in(tmp_path / "fp32", monkeypatch, toy_settings(teacher_mode="online", augment=True, epochs=3),
                         data, teacher)
    assert not same_weights(reference[1.0].model, in_fp32[1.0].model)  # bf16 autocast really ran

    # stopped after the first student's checkpoint of epoch 2 (3 epoch-0 checkpoints, 3 of epoch 1)
    calls = count_calls(monkeypatch, kd_runs, "save_checkpoint", fail_on=3 + 3 + 2)
    with pytest.raises(KeyboardInterrupt):
        distill_in(tmp_path / "interrupted", monkeypatch, s, data, teacher)
    calls.update(fail_on=None)
    folders = sorted((tmp_path / "interrupted" / "toy" / "students").iterdir())
    assert [len(load_json(f / "history.json")["epochs"]) for f in folders] == [2, 1, 1]
    assert not any((f / "final.pt").exists() for f in folders)

    steps = count_calls(monkeypatch, training, "kd_loss")
    resumed = distill_in(tmp_path / "interrupted", monkeypatch, s, data, teacher)
    assert steps["n"] == 3 * (2 + 3)  # 3 batches each: epoch 2 for two students, epoch 3 for all three
    for alpha in s.alphas:
        assert same_weights(resumed[alpha].model, reference[alpha].model), alpha
        assert without_timing(resumed[alpha].history) == without_timing(reference[alpha].history)
        folder = resumed[alpha].folder
        assert (folder / "final.pt").exists() and (folder / "final.pt.sha256").exists()
        assert not (folder / "checkpoint.pt").exists() and load_json(folder / "history.json")["finished"]

    rows = kd.evaluate(data, teacher, resumed)
    assert [r["model"] for r in rows] == ["teacher", "student alpha=0", "student alpha=0.5", "student alpha=1"]
    for r in rows[1:]:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["agreement"] <= 1 and r["kl_to_teacher"] >= 0
    assert max(r["accuracy"] for r in rows[1:]) > 0.5  # the students learned (chance is 0.25)


def test_predict_in_batches_gives_the_logits_of_one_pass():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randn(700, 1, 4, 4)
    torch.testing.assert_close(training.predict(model, x, batch_size=256), model(x))

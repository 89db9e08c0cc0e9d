"""The training loop: the learner's plain loop gives kd_utils' weights bit for bit, the
students of an experiment are comparable (same start, same batches, only alpha differs),
lockstep training gives exactly what training one by one gives, and the precision is
chosen per device, each branch runnable on the CPU (the GPU's default end to end too)."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import kd_utils as kd
import kd_utils.runs as kd_runs
import kd_utils.training as training
from kd_testdata import count_calls, loss_steps, same_weights, toy_data, toy_settings, without_timing
from kd_utils.settings import default_precision
from kd_utils.storage import load_torch


def distill_in(folder, s, data, teacher, **changes):
    """kd.distill with its runs in `folder` (a fresh folder trains from scratch)."""
    return kd.distill(dataclasses.replace(s, runs_dir=folder, **changes), data, teacher, progress=False)


# ------------------------------------------------------- the learner's own loop

def hinton_loss(student_logits, teacher_logits, labels, T, alpha):
    """Notebook 03's loss, written out as a learner writes it."""
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1), F.log_softmax(teacher_logits / T, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def test_the_learners_plain_loop_gives_kd_utils_weights_bit_for_bit(data, teacher):
    """Notebook 03: a dozen lines of loop (seeded student, seeded shuffle, cosine learning rate)
    are all that kd.distill does to a student on the CPU; the rest is bookkeeping."""
    s, alpha, epochs = toy_settings(alphas=(0.5,)), 0.5, 3
    t = kd.teacher_outputs(s, teacher, data.x_train)
    mine = kd.new_student(data, s.seed)
    optimizer = torch.optim.Adam(mine.parameters(), lr=s.profile.student_lr)
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = kd.learning_rate(s.profile.student_lr, epoch, epochs)
        mine.train()
        for idx in torch.randperm(len(data.x_train), generator=kd.epoch_generator(s.seed, epoch)).split(32):
            loss = hinton_loss(mine(data.x_train[idx]), t[idx], data.y_train[idx], s.temperature, alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    theirs = kd.distill(s, data, teacher, epochs=epochs, progress=False)[alpha]
    assert same_weights(mine, theirs.model)
    assert not same_weights(mine, kd.new_student(data, s.seed))  # it did train


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
    kd.fit(s, data, {f"r{i}": (r, kd.DistillationLoss(alpha=0.0)) for i, r in enumerate(recorders)}, kind=None,
           epochs=2, lr=1e-3, progress=False)
    return recorders


def test_every_epoch_shows_every_image_once_in_a_seeded_order_the_same_for_every_student():
    data, s = indexed_data(), toy_settings()
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


def test_two_runs_from_scratch_with_the_same_seed_are_identical(tmp_path):
    """A teacher (dropout, batch norm, augmentation) and three students, twice."""
    data = toy_data()
    results = []
    for name in ("a", "b"):
        s = toy_settings(runs_dir=tmp_path / name)
        teacher = kd.train_teacher(s, data, augment=True)
        results.append((teacher, kd.distill(s, data, teacher, progress=False)))
    (teacher_a, students_a), (teacher_b, students_b) = results
    assert teacher_a.folder != teacher_b.folder
    assert same_weights(teacher_a.model, teacher_b.model)
    assert without_timing(teacher_a.history) == without_timing(teacher_b.history)
    for alpha in (0.0, 0.5, 1.0):
        assert same_weights(students_a[alpha].model, students_b[alpha].model)
        assert without_timing(students_a[alpha].history) == without_timing(students_b[alpha].history)
    # ... and alpha changed what was learned, so the equalities above mean something
    assert not same_weights(students_a[0.0].model, students_a[1.0].model)


# ------------------------------------------------------------------ lockstep

@pytest.mark.parametrize("config", [dict(), dict(teacher_mode="online", augment=True, precision="bf16"),
                                    dict(teacher_mode="online", augment=True, precision="fp16")],
                         ids=["cpu default", "gpu default", "older gpu default"])
def test_lockstep_training_gives_the_weights_of_training_one_by_one(tmp_path, data, teacher, config):
    """issue 14: the three students trained together (one teacher pass per batch) end bit
    for bit where three separate runs end."""
    s = toy_settings(**config)
    together = distill_in(tmp_path / "together", s, data, teacher)
    for alpha in (0.0, 0.5, 1.0):
        alone = distill_in(tmp_path / f"alone{alpha}", s, data, teacher, alphas=(alpha,))[alpha]
        assert same_weights(together[alpha].model, alone.model), alpha
        assert without_timing(together[alpha].history) == without_timing(alone.history)


def test_an_online_teacher_runs_once_per_batch_on_the_augmented_batch_all_students_see(monkeypatch, data,
                                                                                      teacher):
    seen = {"teacher": [], "augmented": [], "students": []}
    teacher_forward, crop_flip, loss = teacher.model.forward, training.random_crop_flip, kd.DistillationLoss.forward
    teacher.model.forward = lambda x: (seen["teacher"].append(x.clone()), teacher_forward(x))[1]
    monkeypatch.setattr(training, "random_crop_flip",
                        lambda x, g: (seen["augmented"].append(crop_flip(x, g)), seen["augmented"][-1])[1])
    monkeypatch.setattr(kd.DistillationLoss, "forward",
                        lambda self, s, t, y: (seen["students"].append(t), loss(self, s, t, y))[1])
    kd.distill(toy_settings(teacher_mode="online", augment=True, alphas=(0.5, 1.0)), data, teacher, progress=False)

    assert len(seen["teacher"]) == len(seen["augmented"]) == 2 * 3  # 2 epochs x 3 batches: one teacher pass each
    assert all(torch.equal(x, a) for x, a in zip(seen["teacher"], seen["augmented"]))
    stored = {bytes(x.numpy()) for x in data.x_train}
    assert sum(bytes(x.numpy()) in stored for b in seen["teacher"] for x in b) < len(data.x_train) / 4  # crops
    assert len(seen["students"]) == 2 * len(seen["teacher"])  # both students got those logits
    assert all(seen["students"][2 * i] is seen["students"][2 * i + 1] for i in range(len(seen["teacher"])))


def test_cached_teacher_outputs_are_computed_once_and_alpha_0_needs_no_teacher(monkeypatch, data, teacher):
    passes = {"n": 0}
    predict = training.predict
    monkeypatch.setattr(training, "predict", lambda model, *a, **k: (
        passes.__setitem__("n", passes["n"] + (model is teacher.model)), predict(model, *a, **k))[1])
    kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)
    assert passes["n"] == 0  # the hard-label student never asks the teacher
    kd.distill(toy_settings(alphas=(0.5, 1.0)), data, teacher, progress=False)
    assert passes["n"] == 1  # one pass over the training images, shared by both students
    kd.distill(toy_settings(alphas=(0.25,)), data, teacher, progress=False)
    assert passes["n"] == 1  # ... and kept for the next experiment


def test_the_teacher_is_never_trained(data, teacher):
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    kd.distill(toy_settings(teacher_mode="online", augment=True), data, teacher, progress=False)
    assert all(torch.equal(before[k], v) for k, v in teacher.model.state_dict().items())
    assert not teacher.model.training and not any(p.requires_grad for p in teacher.model.parameters())


# ------------------------------------------------------------------ precision

@pytest.mark.parametrize("capability, precision", [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp16")])
def test_the_precision_is_chosen_per_device(monkeypatch, capability, precision):
    """bf16 where the GPU has it natively, fp16 (with a gradient scaler) on older GPUs such
    as Colab's T4, fp32 on a CPU or MPS."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert default_precision(torch.device("cuda")) == precision
    assert default_precision(torch.device("cpu")) == default_precision(torch.device("mps")) == "fp32"
    assert kd.settings(dataset="fashion-mnist", device="cpu", verbose=False).precision == "fp32"


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_every_precision_trains_on_the_cpu_when_forced(tmp_path, monkeypatch, data, teacher, precision):
    assert kd.settings(dataset="fashion-mnist", device="cpu", precision=precision, verbose=False).precision == precision
    scalers = []

    class RecordingScaler(torch.amp.GradScaler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            scalers.append(self.is_enabled())

    monkeypatch.setattr(torch.amp, "GradScaler", RecordingScaler)
    s = toy_settings(teacher_mode="online", alphas=(0.5,), precision=precision)
    student = distill_in(tmp_path / precision, s, data, teacher)[0.5]
    assert scalers == [precision == "fp16"]  # fp16 alone needs its gradients scaled
    assert all(math.isfinite(h["loss"]) for h in student.history) and student.history[-1]["test_acc"] > 0.5
    in_fp32 = distill_in(tmp_path / "fp32-reference", s, data, teacher, precision="fp32")[0.5]
    assert same_weights(student.model, in_fp32.model) == (precision == "fp32")  # autocast really ran


# ------------------------------------------------ the GPU default, on the CPU

def test_the_gpu_default_configuration_runs_end_to_end_on_the_cpu(tmp_path, monkeypatch, data, teacher):
    """issue 14: online teacher on augmented batches, bf16 autocast (the CPU's stands in for
    CUDA's), students in lockstep, checkpoints, an interrupted run resumed bit for bit,
    evaluation."""
    s = toy_settings(teacher_mode="online", augment=True, precision="bf16", epochs=3)
    reference = distill_in(tmp_path / "reference", s, data, teacher)

    # stopped in epoch 2, after the first student's checkpoint (3 checkpoints of epoch 1 before it)
    calls = count_calls(monkeypatch, kd_runs, "save_checkpoint", fail_on=3 + 2)
    with pytest.raises(KeyboardInterrupt):
        distill_in(tmp_path / "interrupted", s, data, teacher)
    calls.update(fail_on=None)
    folders = sorted((tmp_path / "interrupted" / "toy" / "students").iterdir())  # alpha 0, 0.5, 1
    assert [len(load_torch(f / "run.pt")["history"]) for f in folders] == [2, 1, 1]
    assert not any(load_torch(f / "run.pt")["finished"] for f in folders)

    steps = loss_steps(monkeypatch)
    resumed = distill_in(tmp_path / "interrupted", s, data, teacher)
    assert steps["n"] == 3 * (2 + 3)  # 3 batches each: epoch 2 for two students, epoch 3 for all three
    for alpha in (0.0, 0.5, 1.0):
        assert same_weights(resumed[alpha].model, reference[alpha].model), alpha
        assert without_timing(resumed[alpha].history) == without_timing(reference[alpha].history)
        folder = resumed[alpha].folder
        assert load_torch(folder / "run.pt")["finished"] and load_torch(folder / "run.pt")["optimizer"] is None

    rows = kd.evaluate(s, data, teacher, resumed)
    assert [r["model"] for r in rows] == ["teacher", "student alpha=0", "student alpha=0.5", "student alpha=1"]
    for r in rows[1:]:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["agreement"] <= 1 and r["kl_to_teacher"] >= 0
    assert max(r["accuracy"] for r in rows[1:]) > 0.5  # the students learned (chance is 0.25)


def test_predict_in_batches_gives_the_logits_of_one_pass():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randn(700, 1, 4, 4)
    torch.testing.assert_close(kd.predict(model, x, batch_size=256), model(x))

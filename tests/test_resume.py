"""Nothing lost: interrupted runs resume bit for bit, finished runs are reused, any other
setting starts a new run, and a checkpoint that cannot be read starts the run over with a
warning. (A real SIGKILL of a training process in the middle of writing a checkpoint:
test_class_failures.py::test_08.)"""
import dataclasses
import re

import pytest
import torch

import kd_utils as kd
import kd_utils.runs as kd_runs
from kd_testdata import loss_steps, same_weights, toy_data, toy_settings, toy_teacher, without_timing
from kd_utils.storage import load_torch, save_torch


def three_epochs(**changes):
    """toy_settings for 3 epochs (toy_data: 3 batches an epoch, so 9 loss calls an epoch for 3 students),
    with the test's own runs folder."""
    return toy_settings(epochs=3, **changes)


def distill_in(folder, s=None, data=None, teacher=None):
    data = data or toy_data()
    s = dataclasses.replace(s or three_epochs(), runs_dir=folder)
    return kd.distill(s, data, teacher or toy_teacher(data), progress=False)


def assert_same_runs(a, b):
    for alpha in a:
        assert same_weights(a[alpha].model, b[alpha].model), alpha
        assert without_timing(a[alpha].history) == without_timing(b[alpha].history), alpha


def student_folders(runs):
    return sorted((runs / "toy" / "students").iterdir())


@pytest.mark.parametrize("epoch", [1, 3])
def test_interrupted_students_resume_to_the_same_weights_bit_for_bit(runs, tmp_path, monkeypatch, epoch):
    reference = distill_in(tmp_path / "reference")
    calls = loss_steps(monkeypatch, fail_on=(epoch - 1) * 9 + 4)  # in the second batch of that epoch
    with pytest.raises(KeyboardInterrupt):
        distill_in(runs)
    for folder in student_folders(runs):
        if epoch == 1:  # stopped before the first epoch ended: nothing saved yet
            assert not (folder / "run.pt").exists()
        else:
            saved = load_torch(folder / "run.pt")
            assert len(saved["history"]) == epoch - 1 and not saved["finished"]
    calls.update(n=0, fail_on=None)
    assert_same_runs(distill_in(runs), reference)
    assert calls["n"] == (4 - epoch) * 9  # only the unfinished epochs were trained again


def test_an_interrupted_teacher_with_dropout_and_augmentation_resumes_bit_for_bit(runs, tmp_path, monkeypatch):
    data = toy_data()
    reference = kd.train_teacher(three_epochs(runs_dir=tmp_path / "reference"), data, augment=True)
    calls = loss_steps(monkeypatch, fail_on=3 + 2)  # in epoch 2
    with pytest.raises(KeyboardInterrupt):
        kd.train_teacher(three_epochs(), data, augment=True)
    calls.update(n=0, fail_on=None)
    resumed = kd.train_teacher(three_epochs(), data, augment=True)
    assert resumed.folder.is_relative_to(runs)
    assert calls["n"] == 2 * 3  # epochs 2 and 3
    assert same_weights(resumed.model, reference.model)
    assert without_timing(resumed.history) == without_timing(reference.history)


def test_a_process_stopped_before_its_last_write_trains_only_the_last_epoch_again(runs, tmp_path, monkeypatch):
    # Each file is written whole or not at all, so a kill can only fall between two writes. The last write of a
    # run saves its last epoch and marks it finished, in one file: stopped just before it, nothing says finished.
    reference = distill_in(tmp_path / "reference")
    save = kd_runs.save_torch

    def stopped_before_the_last_write(path, obj):
        if obj["finished"]:
            raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this line runs
        return save(path, obj)

    monkeypatch.setattr(kd_runs, "save_torch", stopped_before_the_last_write)
    with pytest.raises(KeyboardInterrupt):
        distill_in(runs)
    monkeypatch.setattr(kd_runs, "save_torch", save)
    assert [len(load_torch(f / "run.pt")["history"]) for f in student_folders(runs)] == [2, 2, 2]
    calls = loss_steps(monkeypatch)
    assert_same_runs(distill_in(runs), reference)
    assert calls["n"] == 9  # epoch 3 of the three students, trained again
    assert all(load_torch(f / "run.pt")["finished"] for f in student_folders(runs))


@pytest.mark.parametrize("damage", ["truncated", "empty", "a byte flipped in a tensor"])
def test_a_checkpoint_that_cannot_be_read_starts_the_run_over_with_a_warning(runs, tmp_path, monkeypatch, capsys,
                                                                             damage):
    """A damaged run.pt (cut short, emptied or changed on the disk) is not an error: that run trains
    again from the start and ends where an uninterrupted run ends."""
    reference = distill_in(tmp_path / "reference")
    calls = loss_steps(monkeypatch, fail_on=9 + 4)  # in epoch 2: every student has its epoch-1 checkpoint
    with pytest.raises(KeyboardInterrupt):
        distill_in(runs)
    damaged = student_folders(runs)[1] / "run.pt"
    raw = bytearray(damaged.read_bytes())
    if damage == "truncated":
        raw = raw[:len(raw) // 2]
    elif damage == "empty":
        raw = b""
    else:
        at = raw.find(load_torch(damaged)["model"]["net.classifier.1.weight"].numpy().tobytes())
        assert at >= 0  # the flipped byte is inside a tensor, not in the zip's own bookkeeping
        raw[at + 100] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    calls.update(n=0, fail_on=None)
    capsys.readouterr()
    assert_same_runs(distill_in(runs), reference)
    printed = capsys.readouterr().out
    assert re.search(rf"\[kd_utils\] .*{re.escape(damaged.parent.name)}: its checkpoint is damaged \(.*\); "
                     r"starting over", printed)
    assert printed.count("resuming") == 2  # the two other students resumed after epoch 1
    assert calls["n"] == 3 * (2 + 2 + 3)  # epochs 2-3 of two students, all three epochs of the third


# ----------------------------------------------------------- reuse

def test_a_run_file_that_fits_the_model_only_in_part_starts_over_from_the_initial_weights(runs, tmp_path, capsys):
    """load_state_dict copies every tensor that fits before it raises for the one that does not: the run
    "started over" from a mix of that file's weights and its initial ones, and ended elsewhere."""
    reference = distill_in(tmp_path / "reference")
    distill_in(runs)
    damaged = student_folders(runs)[1] / "run.pt"
    saved = load_torch(damaged)
    saved["model"] = {k: v + 1 for k, v in saved["model"].items()}  # what a partial copy would leave behind
    saved["model"]["net.classifier.1.weight"] = torch.zeros(3, 3)    # the tensor that does not fit
    save_torch(damaged, saved)
    capsys.readouterr()
    again = distill_in(runs)
    assert f"{damaged.parent.name}: its checkpoint is damaged (Error(s) in loading state_dict" in capsys.readouterr().out
    assert_same_runs(again, reference)


def test_rerunning_distill_with_the_same_settings_reuses_the_finished_runs(runs, monkeypatch, capsys):
    first = distill_in(runs)
    calls = loss_steps(monkeypatch)
    second = distill_in(runs)
    assert calls["n"] == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 3
    assert_same_runs(first, second)


@pytest.mark.parametrize("change", ["alpha", "temperature", "formulation", "seed", "epochs", "learning rate",
                                    "batch size", "teacher", "teacher_mode", "augment", "data"])
def test_any_other_setting_starts_a_new_run(runs, monkeypatch, change):
    data, s = toy_data(), three_epochs(alphas=(0.5,))
    teacher = toy_teacher(data)
    distill_in(runs, s, data, teacher)
    if change == "teacher":
        teacher = toy_teacher(data, seed=7)
    elif change == "data":
        data = toy_data(seed=1)
    else:
        s = dataclasses.replace(s, **{
            "alpha": dict(alphas=(0.25,)), "temperature": dict(temperature=2.0),
            "formulation": dict(formulation="blended"), "seed": dict(seed=1),
            "epochs": dict(profile=dataclasses.replace(s.profile, student_epochs=2)),
            "learning rate": dict(profile=dataclasses.replace(s.profile, student_lr=1e-3)),
            "batch size": dict(profile=dataclasses.replace(s.profile, batch_size=48)),
            "teacher_mode": dict(teacher_mode="online"), "augment": dict(teacher_mode="online", augment=True)}[change])
    calls = loss_steps(monkeypatch)
    distill_in(runs, s, data, teacher)
    assert calls["n"] == s.profile.student_epochs * -(-len(data.x_train) // s.profile.batch_size)
    assert len(student_folders(runs)) == 2


def test_the_hard_label_student_ignores_what_it_does_not_use(runs, monkeypatch):
    """alpha = 0 with Hinton's loss is plain cross-entropy: another T or teacher reuses it."""
    data = toy_data()
    distill_in(runs, three_epochs(alphas=(0.0,)), data, toy_teacher(data))
    calls = loss_steps(monkeypatch)
    distill_in(runs, three_epochs(alphas=(0.0,), temperature=9.0), data, toy_teacher(data, seed=5))
    assert calls["n"] == 0 and len(student_folders(runs)) == 1


"""Nothing lost: interrupted runs resume bit for bit, finished runs are reused, and any
other setting starts a new run. (A real SIGKILL of a training process, in the middle of
writing a checkpoint: test_class_failures.py::test_08.)"""
import dataclasses
import os

import pytest
import torch

import kd_utils as kd
import kd_utils.runs as kd_runs
import kd_utils.teachers as teachers
import kd_utils.training as training
from kd_testdata import same_weights, toy_data, toy_settings, toy_teacher, without_timing
from kd_utils.storage import load_json, load_torch

S = toy_settings(epochs=3)  # toy_data: 3 batches per epoch, so 9 loss calls per epoch for 3 students


def distill_in(folder, s=S, data=None, teacher=None, **kw):
    os.environ["KD_RUNS_DIR"] = str(folder)  # the autouse fixture restores it
    data = data or toy_data()
    return kd.distill(s, data, teacher or toy_teacher(data), progress=False, **kw)


def interrupt(monkeypatch, owner, name, on_call):
    """owner.name raises KeyboardInterrupt on call number on_call; returns the call counter."""
    original, calls = getattr(owner, name), {"n": 0, "fail_on": on_call}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["fail_on"]:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def assert_same_runs(a, b):
    for alpha in a:
        assert same_weights(a[alpha].model, b[alpha].model), alpha
        assert without_timing(a[alpha].history) == without_timing(b[alpha].history), alpha


def student_folders(runs):
    return sorted((runs / "toy" / "students").iterdir())


@pytest.mark.parametrize("epoch", [1, 3])
def test_interrupted_students_resume_to_the_same_weights_bit_for_bit(runs, tmp_path, monkeypatch, epoch):
    reference = distill_in(tmp_path / "reference")
    calls = interrupt(monkeypatch, training, "kd_loss", on_call=(epoch - 1) * 9 + 4)
    with pytest.raises(KeyboardInterrupt):
        distill_in(runs)
    for folder in student_folders(runs):
        assert len(load_torch(folder / "checkpoint.pt")["history"]) == epoch - 1  # 0: the initial weights
        assert not (folder / "final.pt").exists()
    calls.update(n=0, fail_on=None)
    assert_same_runs(distill_in(runs), reference)
    assert calls["n"] == (4 - epoch) * 9  # only the unfinished epochs were trained again


def test_an_interrupted_teacher_with_dropout_and_augmentation_resumes_bit_for_bit(runs, tmp_path, monkeypatch):
    data = toy_data()
    os.environ["KD_RUNS_DIR"] = str(tmp_path / "reference")
    reference = kd.train_teacher(S, data, augment=True)
    calls = interrupt(monkeypatch, teachers, "cross_entropy_loss", on_call=3 + 2)  # in epoch 2
    os.environ["KD_RUNS_DIR"] = str(runs)
    with pytest.raises(KeyboardInterrupt):
        kd.train_teacher(S, data, augment=True)
    calls.update(n=0, fail_on=None)
    resumed = kd.train_teacher(S, data, augment=True)
    assert calls["n"] == 2 * 3  # epochs 2 and 3
    assert same_weights(resumed.model, reference.model)
    assert without_timing(resumed.history) == without_timing(reference.history)


@pytest.mark.parametrize("killed", ["after checkpoint.pt, before history.json",
                                    "after final.pt, before the finished flag"])
def test_a_process_stopped_between_two_writes_resumes_correctly(runs, tmp_path, monkeypatch, killed):
    # Each file is written atomically, so a kill can only fall between two writes.
    reference = distill_in(tmp_path / "reference")
    original = kd_runs.save_json

    def stopped_here(path, obj):
        if path.name == "history.json" and ("checkpoint" in killed and len(obj["epochs"]) == 2
                                            or "final" in killed and obj.get("finished")):
            raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this line runs
        return original(path, obj)

    monkeypatch.setattr(kd_runs, "save_json", stopped_here)
    with pytest.raises(KeyboardInterrupt):
        distill_in(runs)
    monkeypatch.setattr(kd_runs, "save_json", original)
    assert_same_runs(distill_in(runs), reference)
    assert all(load_json(f / "history.json")["finished"] for f in student_folders(runs))


# ----------------------------------------------------------- reuse

def test_rerunning_distill_with_the_same_settings_reuses_the_finished_runs(runs, monkeypatch, capsys):
    first = distill_in(runs)
    steps = interrupt(monkeypatch, training, "kd_loss", on_call=None)
    second = distill_in(runs)
    assert steps["n"] == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 3
    assert_same_runs(first, second)


@pytest.mark.parametrize("change", ["alpha", "temperature", "formulation", "seed", "epochs", "teacher",
                                    "teacher_mode", "augment", "data"])
def test_any_other_setting_starts_a_new_run(runs, monkeypatch, change):
    data, s = toy_data(), dataclasses.replace(S, alphas=(0.5,))
    teacher = toy_teacher(data)
    distill_in(runs, s, data, teacher)
    if change == "teacher":
        teacher = toy_teacher(data, seed=7)
    elif change == "data":
        data = toy_data(seed=1)
    else:
        s = dataclasses.replace(s, **{"alpha": dict(alphas=(0.25,)), "temperature": dict(temperature=2.0),
                                      "formulation": dict(formulation="blended"), "seed": dict(seed=1),
                                      "epochs": dict(profile=dataclasses.replace(s.profile, student_epochs=2)),
                                      "teacher_mode": dict(teacher_mode="online"),
                                      "augment": dict(teacher_mode="online", augment=True)}[change])
    steps = interrupt(monkeypatch, training, "kd_loss", on_call=None)
    distill_in(runs, s, data, teacher)
    assert steps["n"] == s.profile.student_epochs * 3
    assert len(student_folders(runs)) == 2


def test_the_hard_label_student_ignores_what_it_does_not_use(runs, monkeypatch):
    """alpha = 0 with Hinton's loss is plain cross-entropy: another T or teacher reuses it."""
    data = toy_data()
    distill_in(runs, dataclasses.replace(S, alphas=(0.0,)), data, toy_teacher(data))
    steps = interrupt(monkeypatch, training, "kd_loss", on_call=None)
    distill_in(runs, dataclasses.replace(S, alphas=(0.0,), temperature=9.0), data, toy_teacher(data, seed=5))
    assert steps["n"] == 0 and len(student_folders(runs)) == 1


def test_a_run_folder_is_never_reused_for_other_settings(runs, data):
    folder = runs / "mine"
    model = training.new_student(data, 0)
    training.new_run("a", model, training.cross_entropy_loss, 1e-3, folder, dict(alpha=0.5, seed=0))
    with pytest.raises(ValueError, match=r"holds a run with other settings \({'seed': \(0, 1\)}, as \(found, wanted\)\)"):
        training.new_run("a", model, training.cross_entropy_loss, 1e-3, folder, dict(alpha=0.5, seed=1))


def test_two_runs_of_the_same_experiment_side_by_side_give_identical_weights(tmp_path):
    data = toy_data()
    a = distill_in(tmp_path / "a", data=data)
    b = distill_in(tmp_path / "b", data=data)
    assert_same_runs(a, b)
    assert torch.equal(a[0.5].model.net.features[0].weight, b[0.5].model.net.features[0].weight)

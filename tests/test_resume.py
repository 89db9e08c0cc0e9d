"""Nothing lost: interrupted runs resume bit-for-bit, finished runs are reused, other settings start anew."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kd_utils.training as training
from kd_utils import experiment
from kd_utils.models import make_cnn_teacher
from kd_utils.storage import load_json, load_torch
from kd_utils.training import new_student, train_student, train_teacher
from reliability_helpers import (count_calls, runs, same_weights, tiny_data, tiny_settings,  # noqa: F401
                                 tiny_teacher, without_timing)

EPOCHS, BATCH = 3, 32  # tiny_data has 96 training images: 3 steps per epoch


def _student(data, run_dir, **kw):
    logits = training.predict(tiny_teacher(data), data.x_train)
    return train_student(data, 0.5, 4.0, seed=0, epochs=EPOCHS, teacher_logits=logits,
                         batch_size=BATCH, run_dir=run_dir, **kw)


def test_an_interrupted_student_resumes_to_the_same_weights_bit_for_bit(runs, monkeypatch):
    data = tiny_data()
    reference, ref_history = _student(data, runs / "uninterrupted")

    calls = count_calls(monkeypatch, training, "distillation_loss", fail_on=2 * 3 + 2)  # in epoch 3
    with pytest.raises(KeyboardInterrupt):
        _student(data, runs / "interrupted")
    assert load_torch(runs / "interrupted" / "checkpoint.pt")["epoch"] == 2
    assert not (runs / "interrupted" / "final.pt").exists()

    calls.update(n=0, fail_on=None)
    resumed, history = _student(data, runs / "interrupted")
    assert calls["n"] == 3  # only epoch 3 was trained again
    assert same_weights(resumed, reference)
    assert without_timing(history) == without_timing(ref_history)


def test_an_interrupted_teacher_with_dropout_and_augmentation_resumes_bit_for_bit(runs, monkeypatch):
    data = tiny_data()

    def teacher_run(run_dir):
        torch.manual_seed(0)
        model = make_cnn_teacher(data.image_shape, data.num_classes, *data.stats())
        history = train_teacher(model, data, epochs=EPOCHS, seed=0, batch_size=BATCH, run_dir=run_dir,
                                augment=True)
        return model, history

    reference, ref_history = teacher_run(runs / "uninterrupted")
    calls = count_calls(monkeypatch, training.F, "cross_entropy", fail_on=3 + 2)  # in epoch 2
    with pytest.raises(KeyboardInterrupt):
        teacher_run(runs / "interrupted")
    calls.update(n=0, fail_on=None)
    resumed, history = teacher_run(runs / "interrupted")
    assert calls["n"] == 2 * 3
    assert same_weights(resumed, reference)
    assert without_timing(history) == without_timing(ref_history)


def test_interrupted_in_the_first_epoch_the_same_model_object_restarts_from_its_initial_weights(runs, monkeypatch):
    # A notebook builds the student in one cell and trains it in the next; re-running only
    # the training cell passes the half-trained object again.
    data = tiny_data()
    reference, _ = _student(data, runs / "uninterrupted")
    student = new_student(data, seed=0)
    calls = count_calls(monkeypatch, training, "distillation_loss", fail_on=2)
    with pytest.raises(KeyboardInterrupt):
        _student(data, runs / "interrupted", student=student)
    calls.update(fail_on=None)
    resumed, _ = _student(data, runs / "interrupted", student=student)
    assert same_weights(resumed, reference)


@pytest.mark.parametrize("killed", ["after checkpoint.pt, before history.json",
                                    "after final.pt, before the finished flag"])
def test_a_process_killed_between_two_writes_resumes_correctly(runs, monkeypatch, killed):
    # Each file is written atomically, so a kill can only fall between two writes.
    data = tiny_data()
    reference, ref_history = _student(data, runs / "uninterrupted")
    original = training.save_json

    def killed_here(path, obj):
        epochs = len(obj.get("epochs", []))
        if ("checkpoint" in killed and epochs == 2) or ("final" in killed and obj.get("finished")):
            raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this line runs
        return original(path, obj)

    monkeypatch.setattr(training, "save_json", killed_here)
    with pytest.raises(KeyboardInterrupt):
        _student(data, runs / "killed")
    monkeypatch.setattr(training, "save_json", original)
    resumed, history = _student(data, runs / "killed")
    assert same_weights(resumed, reference)
    assert without_timing(history) == without_timing(ref_history)
    assert load_json(runs / "killed" / "history.json")["finished"] is True


KILLED_RUN = """
import os, signal, sys
import kd_utils.training as training
from reliability_helpers import tiny_data
from test_resume import _student
original, calls = training.distillation_loss, []
def kill_in_epoch_3(*args, **kwargs):
    calls.append(1)
    if len(calls) == 8:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)
training.distillation_loss = kill_in_epoch_3
_student(tiny_data(), sys.argv[1])
"""


def test_a_really_killed_process_resumes_bit_for_bit(runs):
    data = tiny_data()
    reference, _ = _student(data, runs / "uninterrupted")
    here = Path(__file__).parent
    env = dict(os.environ, PYTHONPATH=f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(runs / "killed")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_torch(runs / "killed" / "checkpoint.pt")["epoch"] == 2
    resumed, _ = _student(data, runs / "killed")
    assert same_weights(resumed, reference)


# ----------------------------------------------------------- reuse

def _distill(s, data, teacher, **kw):
    return experiment.distill(s, data, teacher, **kw)


def test_rerunning_distill_with_the_same_settings_reuses_the_finished_runs(runs, monkeypatch, capsys):
    s, data = tiny_settings(), tiny_data()
    teacher = tiny_teacher(data)
    first = _distill(s, data, teacher)
    epochs = count_calls(monkeypatch, training, "_train_epoch")
    second = _distill(s, data, teacher)
    assert epochs["n"] == 0
    assert "reusing the finished run" in capsys.readouterr().out
    for alpha in s.alphas:
        assert same_weights(first[alpha][0], second[alpha][0])
        assert first[alpha][1] == second[alpha][1]


@pytest.mark.parametrize("change", ["alpha", "temperature", "seed", "epochs", "teacher"])
def test_other_settings_start_a_new_run(runs, monkeypatch, change):
    data = tiny_data()
    base = dict(seed=0, temperature=4.0, alphas=(0.5,), epochs=1)
    teacher = tiny_teacher(data)
    _distill(tiny_settings(**base), data, teacher)
    changed = dict(base, **{"alpha": dict(alphas=(0.25,)), "temperature": dict(temperature=2.0),
                            "seed": dict(seed=1), "epochs": dict(epochs=2), "teacher": {}}[change])
    if change == "teacher":
        teacher = tiny_teacher(data, seed=7)
    epochs = count_calls(monkeypatch, training, "_train_epoch")
    _distill(tiny_settings(**changed), data, teacher)
    assert epochs["n"] == changed["epochs"]
    assert len(list((runs / "tiny" / "students").iterdir())) == 2


def test_a_run_folder_is_never_reused_for_other_settings(runs):
    data = tiny_data()
    _student(data, runs / "mine", config=dict(alpha=0.5, seed=0))
    with pytest.raises(ValueError, match="holds a run with other settings.*seed"):
        _student(data, runs / "mine", config=dict(alpha=0.5, seed=1))


# ----------------------------------------------------------- the command line

def _image_folder(root, per_class=(16, 8)):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, n in zip(("train", "test"), per_class):
        for c, name in enumerate(("dark", "bright")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                img = torch.randint(0, 100, (32, 32, 3), generator=g) + 150 * c
                Image.fromarray(img.to(torch.uint8).numpy()).save(root / split / name / f"{i}.png")
    return f"imagefolder:{root}"


def test_rerunning_the_distill_command_reuses_everything(runs, tmp_path, monkeypatch, capsys):
    from kd_utils.__main__ import main

    dataset = _image_folder(tmp_path / "images")
    for var in ("KD_DATASET", "KD_PROFILE", "KD_SEED", "KD_ALPHAS", "KD_TEMPERATURE", "KD_TEACHER"):
        monkeypatch.setenv(var, "")  # main() sets these; monkeypatch puts them back afterwards
    monkeypatch.setenv("KD_DEVICE", "cpu")
    argv = ["distill", "--dataset", dataset, "--profile", "smoke", "--alphas", "0", "1", "--seed", "0"]
    assert main(argv) == 0
    first = capsys.readouterr()
    epochs = count_calls(monkeypatch, training, "_train_epoch")
    assert main(argv) == 0
    second = capsys.readouterr()
    assert epochs["n"] == 0
    assert second.out.count("reusing the finished run") == 3  # the teacher and two students
    assert first.out.splitlines()[-3:-1] == second.out.splitlines()[-3:-1]  # same accuracy table

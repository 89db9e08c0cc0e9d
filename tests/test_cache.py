"""Cached teacher outputs: keyed by the teacher's weights and the images themselves, and
rebuilt (with a warning) when the file is damaged; never used when bad."""
import warnings

import pytest
import torch

import kd_utils.training as training
from kd_testdata import toy_settings, toy_teacher
from kd_utils.storage import save_torch
from kd_utils.training import teacher_outputs


def cache_files(runs):
    return sorted((runs / "cache").glob("teacher-logits-*.pt"))


@pytest.fixture
def passes(monkeypatch):
    """How many times the teacher really ran over the images."""
    calls = {"n": 0}
    original = training.predict

    def counted(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "predict", counted)
    return calls


def test_the_second_call_reads_the_cache_instead_of_running_the_teacher(runs, passes, data, teacher):
    first = teacher_outputs(toy_settings(), teacher, data.x_train)
    second = teacher_outputs(toy_settings(), teacher, data.x_train)
    assert passes["n"] == 1
    assert torch.equal(first, second) and first.shape == (len(data.x_train), data.num_classes)
    assert len(cache_files(runs)) == 1


@pytest.mark.parametrize("change", ["teacher weights", "one pixel", "a subset"])
def test_changing_what_the_logits_depend_on_builds_a_new_cache(runs, passes, data, change):
    teacher, x = toy_teacher(data), data.x_train
    teacher_outputs(toy_settings(), teacher, x)
    if change == "teacher weights":
        teacher = toy_teacher(data, seed=2)
    elif change == "one pixel":
        x = x.clone()
        x[0, 0, 0, 0] ^= 1
    else:
        x = x[:50]
    logits = teacher_outputs(toy_settings(), teacher, x)
    assert passes["n"] == 2 and len(cache_files(runs)) == 2
    assert logits.shape == (len(x), data.num_classes)
    assert torch.equal(logits, training.predict(teacher.model, x))


def corrupt(path, how, logits):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    elif how == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "a byte flipped in the logits":  # still a readable file, with another number in it
        raw = bytearray(path.read_bytes())
        at = raw.find(logits.numpy().tobytes())
        assert at > 0
        raw[at + 40] ^= 0xFF
        path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "a byte flipped in the logits"])
def test_a_damaged_cache_file_is_detected_rebuilt_and_reported(runs, passes, data, teacher, how):
    good = teacher_outputs(toy_settings(), teacher, data.x_train)
    [path] = cache_files(runs)
    corrupt(path, how, good)
    with pytest.warns(UserWarning, match=r"teacher-output cache .*teacher-logits-.*\.pt is damaged.*; rebuilding it"):
        rebuilt = teacher_outputs(toy_settings(), teacher, data.x_train)
    assert passes["n"] == 2
    assert torch.equal(rebuilt, good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ... and the rebuilt file is good again: no warning, no teacher pass
        assert torch.equal(teacher_outputs(toy_settings(), teacher, data.x_train), good)
    assert passes["n"] == 2


def test_a_well_formed_file_of_other_logits_is_never_used(runs, passes, data, teacher):
    good = teacher_outputs(toy_settings(), teacher, data.x_train)
    [path] = cache_files(runs)
    save_torch(path, torch.zeros(3, data.num_classes))  # a file of ours, checksum and all, of another shape
    assert torch.equal(teacher_outputs(toy_settings(), teacher, data.x_train), good)
    assert passes["n"] == 2

"""Cached teacher outputs: keyed by the teacher's weights and the images themselves,
and rebuilt (with a warning) when the file is damaged; never used when bad."""
import warnings

import pytest
import torch

import kd_utils.teachers as teachers
from kd_testdata import toy_teacher
from kd_utils.storage import save_torch
from kd_utils.teachers import teacher_outputs


def cache_files(runs):
    return sorted((runs / "cache").glob("teacher-logits-*.pt"))


@pytest.fixture
def passes(monkeypatch):
    """How many times the teacher really ran over the images."""
    calls = {"n": 0}
    original = teachers.predict

    def counted(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(teachers, "predict", counted)
    return calls


def test_the_second_call_reads_the_cache_instead_of_running_the_teacher(runs, passes, data, teacher):
    first = teacher_outputs(teacher.model, data.x_train)
    second = teacher_outputs(teacher.model, data.x_train)
    assert passes["n"] == 1
    assert torch.equal(first, second) and first.shape == (len(data.x_train), data.num_classes)
    assert len(cache_files(runs)) == 1


@pytest.mark.parametrize("change", ["teacher weights", "one pixel", "a subset"])
def test_changing_what_the_logits_depend_on_builds_a_new_cache(runs, passes, data, change):
    teacher, x = toy_teacher(data), data.x_train
    teacher_outputs(teacher.model, x)
    if change == "teacher weights":
        teacher = toy_teacher(data, seed=2)
    elif change == "one pixel":
        x = x.clone()
        x[0, 0, 0, 0] ^= 1
    else:
        x = x[:50]
    logits = teacher_outputs(teacher.model, x)
    assert passes["n"] == 2 and len(cache_files(runs)) == 2
    assert logits.shape == (len(x), data.num_classes)


def corrupt(path, how):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    elif how == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "16 flipped bytes":  # still a readable file, with other numbers in it
        b = bytearray(path.read_bytes())
        for i in range(len(b) - 600, len(b) - 584):
            b[i] ^= 0xFF
        path.write_bytes(bytes(b))
    elif how == "no checksum":
        path.with_name(path.name + ".sha256").unlink()
    elif how == "logits of another shape":  # a well-formed file of ours, with its checksum
        save_torch(path, torch.zeros(3, 4))


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "16 flipped bytes", "no checksum",
                                 "logits of another shape"])
def test_a_bad_cache_file_is_detected_rebuilt_and_reported(runs, passes, data, teacher, how):
    good = teacher_outputs(teacher.model, data.x_train)
    [path] = cache_files(runs)
    corrupt(path, how)
    with pytest.warns(UserWarning, match=r"teacher-output cache .*teacher-logits-.*\.pt .*; rebuilding it"):
        rebuilt = teacher_outputs(teacher.model, data.x_train)
    assert passes["n"] == 2
    assert torch.equal(rebuilt, good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ... and the rebuilt file is good again: no warning, no teacher pass
        assert torch.equal(teacher_outputs(teacher.model, data.x_train), good)
    assert passes["n"] == 2

"""Cached teacher outputs: keyed by everything they depend on, rebuilt (with a warning) when bad."""
import pytest
import torch

import kd_utils.teachers as teachers
from kd_utils.teachers import teacher_outputs
from reliability_helpers import count_calls, runs, tiny_data, tiny_teacher  # noqa: F401

KEY = dict(dataset="tiny", split="train", preprocessing="uint8, teacher's normalisation", subset=[96, 32])


def _cache_files(runs):
    return sorted((runs / "cache").glob("teacher-logits-*.pt"))


def test_the_second_call_reads_the_cache_instead_of_running_the_teacher(runs, monkeypatch):
    data, teacher = tiny_data(), tiny_teacher(tiny_data(n_train=64))
    passes = count_calls(monkeypatch, teachers, "predict")
    first = teacher_outputs(teacher, data.x_train, cache_key=KEY)
    second = teacher_outputs(teacher, data.x_train, cache_key=KEY)
    assert passes["n"] == 1
    assert torch.equal(first, second)
    assert first.shape == (len(data.x_train), data.num_classes)
    assert len(_cache_files(runs)) == 1


@pytest.mark.parametrize("change", ["teacher weights", "dataset", "split", "preprocessing", "subset", "images"])
def test_changing_anything_the_logits_depend_on_builds_a_new_cache(runs, monkeypatch, change):
    data = tiny_data()
    teacher, x, key = tiny_teacher(data), data.x_train, dict(KEY)
    teacher_outputs(teacher, x, cache_key=key)
    if change == "teacher weights":
        teacher = tiny_teacher(data, seed=2)
    elif change == "images":
        x = x.clone()
        x[0, 0, 0, 0] ^= 1  # one pixel
    else:
        key[change.replace(" ", "_")] = "something else"
    passes = count_calls(monkeypatch, teachers, "predict")
    logits = teacher_outputs(teacher, x, cache_key=key)
    assert passes["n"] == 1
    assert len(_cache_files(runs)) == 2
    assert logits.shape == (len(x), data.num_classes)


def _corrupt(path, how):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    elif how == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "wrong contents":
        torch.save({"key": "someone else's", "logits": torch.zeros(3, 4)}, path)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "wrong contents"])
def test_a_bad_cache_file_is_detected_rebuilt_and_reported(runs, monkeypatch, how):
    data = tiny_data()
    teacher = tiny_teacher(data)
    good = teacher_outputs(teacher, data.x_train, cache_key=KEY)
    [path] = _cache_files(runs)
    _corrupt(path, how)
    passes = count_calls(monkeypatch, teachers, "predict")
    with pytest.warns(UserWarning, match="teacher-output cache .* rebuilding it"):
        rebuilt = teacher_outputs(teacher, data.x_train, cache_key=KEY)
    assert passes["n"] == 1
    assert torch.equal(rebuilt, good)
    # ... and the rebuilt file is good again: no warning, no teacher pass.
    again = teacher_outputs(teacher, data.x_train, cache_key=KEY)
    assert passes["n"] == 1 and torch.equal(again, good)

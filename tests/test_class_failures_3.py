"""Issue 22, "Nothing lost, nothing wrong, round 3": one test per item, test_01 ... test_10, each reproduced as
the issue describes it. Items 2, 3 and 9 (the playground's tries file) are tested in tests/test_playground.py
(test_two_playgrounds_..., test_only_offered_..., test_a_tries_file_of_the_wrong_shape_...), item 7 (image
folders) in tests/test_imagefolder.py."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import kd_utils as kd
from kd_testdata import same_weights, toy_data, toy_settings, toy_teacher

# A toy `distill` in a process of its own that SIGKILLs itself right before its KILL_AT-th file write (0: never),
# then prints how many files it wrote and a hash of the students' final weights.
DISTILL = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, "tests")
    import kd_utils as kd
    import kd_utils.storage as storage
    from kd_testdata import toy_data, toy_settings, toy_teacher
    kill_at, writes, write = int(os.environ["KILL_AT"]), [0], storage.write_bytes
    def dying(path, data):
        writes[0] += 1
        if writes[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # as `kill -9` does: no cleanup, no finally
        return write(path, data)
    storage.write_bytes = dying
    data = toy_data()
    students = kd.distill(toy_settings(epochs=3, alphas=(0.5,)), data, toy_teacher(data), progress=False)
    print(writes[0], kd.storage.content_hash({a: st.model.state_dict() for a, st in students.items()}))
""")


def distill_in_a_process(runs, kill_at=0):
    env = dict(os.environ, KD_RUNS_DIR=str(runs), KILL_AT=str(kill_at))
    return subprocess.run([sys.executable, "-c", DISTILL], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])


@pytest.mark.slow
def test_01_a_kill_at_any_file_write_leaves_a_run_that_resumes_to_the_same_students(tmp_path):
    """A kill between a checkpoint and its checksum used to block the resume with CorruptFileError. Now a .pt
    file holds its own hash: die right before each write of a run in turn, re-run it plainly, and every time it
    finishes with students equal, bit for bit, to those of a run never killed."""
    clean = distill_in_a_process(tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr
    writes, weights = clean.stdout.splitlines()[-1].split()
    assert int(writes) >= 5  # the teacher's logits, config.json, each run.pt (checkpoints, then the finished one)
    for k in range(1, int(writes) + 1):
        killed = distill_in_a_process(tmp_path / f"kill{k}", kill_at=k)
        assert killed.returncode == -signal.SIGKILL, (k, killed.stderr)
        again = distill_in_a_process(tmp_path / f"kill{k}")
        assert again.returncode == 0, (k, again.stderr)
        assert again.stdout.splitlines()[-1].split()[1] == weights, k


def test_04_strings_for_true_or_false_mean_what_they_say_wherever_they_come_from(monkeypatch):
    """augment="false" gave augmentation on (bool("false") is True). Strings are parsed as KD_AUGMENT is."""
    s = lambda **v: kd.settings(dataset="cifar10", device="cpu", verbose=False, **v)  # noqa: E731
    assert [s(augment=v, teacher_mode="online").augment for v in ("false", "no", "0", "true", "yes", "1")] == \
        [False, False, False, True, True, True]
    with pytest.raises(ValueError, match="augment='maybe' is not valid: use 1, 0, true, false or auto"):
        s(augment="maybe")
    with pytest.raises(ValueError, match="augment must be True, False or 'auto'"):
        s(augment=1)
    monkeypatch.setenv("KD_AUGMENT", "no")
    assert s(augment=True, teacher_mode="online").augment is False  # the environment wins, parsed alike


def test_05_two_alphas_that_print_the_same_are_refused(cli):
    """--alphas 0.5 0.5000001 shared one loss accumulator (keyed by f"{alpha:g}") and corrupted both histories."""
    with pytest.raises(ValueError, match="differ as printed"):
        kd.settings(alphas=(0.5, 0.5000001), verbose=False)
    code, out, err = cli("distill", "--dataset", "fashion-mnist", "--profile", "smoke", "--alphas", "0.5", "0.5000001")
    assert code == 2 and err.startswith("error: alphas must be a list of teacher weights that differ as printed")


def test_06_runs_precomputed_on_a_gpu_box_are_reused_on_a_laptop(data, teacher, capsys):
    """The instructor guide's hand-off: a GPU box pre-computes the students with --teacher-mode cached, a
    laptop loads them. The run key held autocast (on by default on CUDA), so every student was trained again.
    Precision only rounds differently: it is no longer part of a run's identity (simulated here on the CPU)."""
    on_gpu = kd.distill(toy_settings(precision="bf16", teacher_mode="cached"), data, teacher, progress=False)
    capsys.readouterr()
    on_laptop = kd.distill(toy_settings(precision="fp32", teacher_mode="cached"), data, teacher, progress=False)
    assert capsys.readouterr().out.count("reusing the finished run") == len(on_gpu)
    assert all(same_weights(on_gpu[a].model, on_laptop[a].model) for a in on_gpu)


def test_08_report_skips_a_damaged_or_foreign_results_file_with_one_line_and_prints_the_rest(cli, runs):
    """`{}`, a row without "accuracy" and a truncated file gave a KeyError traceback and hid every other result."""
    code, _, _ = cli("teacher", "--dataset", "fashion-mnist", "--profile", "smoke")
    if code != 0:
        pytest.skip("needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    results = runs / "fashion-mnist" / "results"
    (results / "a-empty.json").write_text("{}")
    good = next(p for p in results.glob("teacher-*.json"))
    record = json.loads(good.read_text())
    (results / "b-no-accuracy.json").write_text(json.dumps(dict(record, rows=[dict(model="teacher")])))
    (results / "c-truncated.json").write_text(good.read_text()[:40])
    code, out, err = cli("report", "--dataset", "fashion-mnist")
    assert code == 0 and out.count("== ") == 1 and "teacher" in out
    assert [line.split(":")[0] for line in err.splitlines()] == [
        f"skipped {kd.shown(results / n)}" for n in ("a-empty.json", "b-no-accuracy.json", "c-truncated.json")]


def test_10_a_teacher_whose_outputs_are_not_finite_is_refused_where_it_is_loaded(tmp_path, data):
    """A teacher file with NaN weights was accepted (10.00%), and distill then blamed the learning rate."""
    teacher = toy_teacher(data).model
    with torch.no_grad():
        next(teacher.parameters()).fill_(float("nan"))
    path = tmp_path / "nan-teacher.pt"
    torch.save(teacher.state_dict(), path)
    s = toy_settings(teacher=str(path))
    with pytest.raises(kd.TeacherMismatchError, match="not finite"):
        kd.get_teacher(s, data)


def test_10_the_misleading_messages_name_what_is_wrong(tmp_path, monkeypatch):
    """KD_DATA_DIR=/dev/null said to change KD_RUNS_DIR; seed=numpy.int64(3) gave an internal error; a non-torch
    pickle was called damaged instead of being refused as unsafe."""
    import numpy as np
    import pickle

    monkeypatch.setenv("KD_DATA_DIR", "/dev/null")
    with pytest.raises(NotADirectoryError, match=r"^data_dir \(KD_DATA_DIR\) is /dev/null, a file, not a folder"):
        kd.settings(verbose=False)
    monkeypatch.delenv("KD_DATA_DIR")
    assert kd.settings(seed=np.int64(3), verbose=False).seed == 3
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"classifier.6.weight": [0.0] * 10}))
    with pytest.raises(kd.UnsafeCheckpointError, match="holds pickled Python objects"):
        kd.load_torch(path)

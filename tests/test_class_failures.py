"""issue 12, "Nothing lost, nothing wrong": the failures a class will meet, one test per
item of the issue (test_01 ... test_13), each reproduced as the issue describes it where
kd_utils makes sense of it. Each now gives the right result, or one line `error: ...`
(exit code 2) that names the file or setting to fix, with nothing lost."""
import dataclasses
import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import kd_utils as kd
import kd_utils.data as kd_data
import kd_utils.storage as storage
import kd_utils.training as training
from kd_testdata import same_weights, toy_data, toy_settings, toy_teacher, without_timing
from kd_utils.storage import CorruptFileError, load_json, load_torch

SMOKE = ["--profile", "smoke", "--seed", "0"]


def one_line_error(code, err, *named):
    """Exit code 2 and exactly one line `error: ...` that contains each of `named`."""
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for text in named:
        assert str(text) in err, f"{text!r} not named in {err!r}"


def flip_16_bytes(path):
    """Flip 16 bytes inside the largest tensor of a torch.save file: it still loads."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    middle = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    raw[middle:middle + 16] = bytes(b ^ 0xFF for b in raw[middle:middle + 16])
    path.write_bytes(bytes(raw))
    torch.load(path, weights_only=True)  # still parses


def folder_of(image_folder):
    return Path(image_folder.split(":", 1)[1])


# ------------------------------------------------------------------------- 1

def test_01_the_results_describe_the_settings_that_trained_the_students(runs, data, teacher):
    """Notebook 03 recorded T and the formulation of its parameters cell, not of the run.
    Now one frozen Settings object trains the students and describes them."""
    s = toy_settings(temperature=4.0, formulation="hinton", alphas=(0.0, 1.0))
    students = kd.distill(s, data, teacher, progress=False)
    assert tuple(students) == s.alphas  # the alphas trained are the settings' alphas
    entry = kd.record_results("03_students", kd.evaluate(s, data, teacher, students), s)
    assert (entry["temperature"], entry["formulation"], entry["alphas"]) == (4.0, "hinton", [0.0, 1.0])
    config = load_json(students[1.0].folder / "config.json")
    assert (config["temperature"], config["formulation"]) == (entry["temperature"], entry["formulation"])
    # a stale notebook variable cannot override what the settings trained
    with pytest.raises(TypeError, match="record_results takes formulation, temperature from the settings"):
        kd.record_results("03_students", [], s, temperature=2.0, formulation="blended")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.alphas = (0.5,)


# ------------------------------------------------------------------------- 2

def test_02_an_image_folder_whose_images_changed_is_never_reused(image_folder, capsys):
    """Runs were keyed by the folder's path and image counts: swapping two class folders
    reused a teacher that then scored 0%. Now the data's key is a hash of its content."""
    s = kd.settings(dataset=image_folder, profile="smoke", device="cpu", alphas=(0.0,), verbose=False)
    before = kd.load_data(s)
    old_teacher = kd.get_teacher(s, before)
    kd.distill(s, before, old_teacher, progress=False)
    root = folder_of(image_folder)
    for split in ("train", "test"):
        (root / split / "circles").rename(root / split / "tmp")
        (root / split / "squares").rename(root / split / "circles")
        (root / split / "tmp").rename(root / split / "squares")
    after = kd.load_data(s)
    assert after.key != before.key
    capsys.readouterr()
    teacher = kd.get_teacher(s, after)
    kd.distill(s, after, teacher, progress=False)  # alpha = 0 carries the data's key too
    assert "reusing" not in capsys.readouterr().out
    assert teacher.folder != old_teacher.folder


# ------------------------------------------------------------------------- 3

def test_03_each_experiment_keeps_its_own_results_file(runs):
    """results-<profile>-seed<seed>.json was overwritten by any other run."""
    s = toy_settings()
    rows = [dict(model="teacher", accuracy=0.9)]
    paths = {kd.save_results(s, "distill", rows), kd.save_results(s, "teacher", rows),
             kd.save_results(dataclasses.replace(s, temperature=2.0), "distill", rows),
             kd.save_results(dataclasses.replace(s, alphas=(1.0,)), "distill", rows),
             kd.save_results(dataclasses.replace(s, formulation="blended"), "distill", rows)}
    assert len(paths) == 5
    found = [load_json(p) for p in paths]
    assert all(record["rows"] == rows for record in found)
    assert {record["settings"]["temperature"] for record in found} == {4.0, 2.0}


# ------------------------------------------------------------------------- 4

def truncate(path):
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    return path


def damage_runs(runs, monkeypatch, root, case):
    """Damage a finished image-folder experiment as `case` says; returns what the error must name."""
    student = sorted(runs.glob("shapes/students/*"))[0]
    if case == "read-only runs folder":
        for p in [runs, *runs.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        if os.geteuid() == 0:  # root writes anyway: refuse the way a read-only folder does
            def refuse(file, mode="r", *args, **kwargs):
                raise PermissionError(13, "Permission denied", str(file))
            monkeypatch.setattr(storage, "open", refuse, raising=False)
        return ["could not write", "/results/", "Permission denied"]
    if case == "full disk":  # the finished runs are only read: the results file is the one write
        def full(fd):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(storage.os, "fsync", full)
        return ["could not write", "/results/", "No space left on device", "free space"]
    if case == "KD_RUNS_DIR is a file":
        (runs.parent / "afile").write_text("")
        monkeypatch.setenv("KD_RUNS_DIR", str(runs.parent / "afile"))
        return ["runs_dir (KD_RUNS_DIR) is", runs.parent / "afile", "a file, not a folder"]
    if case == "KD_THREADS=0":
        monkeypatch.setenv("KD_THREADS", "0")
        return ["threads", "from 1 to 1024"]
    target = root / "train" / "circles" / "bad.jpg"
    if case == "text file named .jpg":
        target.write_text("notes")
    elif case == "truncated PNG":
        target = target.with_suffix(".png")
        truncate(Image.new("RGB", (64, 64), (200, 10, 10)).save(target) or target)
    elif case == "decompression bomb":
        target = target.with_suffix(".png")
        Image.new("1", (10000, 9000)).save(target)  # 90 M pixels: over PIL's limit of 89 M
    return [f"cannot read image {target}"]


FAILURES_4 = ["read-only runs folder",
              "full disk", "KD_RUNS_DIR is a file", "KD_THREADS=0", "text file named .jpg", "truncated PNG",
              "decompression bomb"]


@pytest.mark.parametrize("case", FAILURES_4)
def test_04_damaged_files_and_folders_give_one_line_not_a_traceback(cli, runs, image_folder, monkeypatch, case):
    args = ["distill", "--dataset", image_folder, *SMOKE, "--alphas", "0", "1"]
    assert cli(*args)[0] == 0
    named = damage_runs(runs, monkeypatch, folder_of(image_folder), case)
    try:
        code, out, err = cli(*args)
    finally:
        for p in [runs, *runs.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    one_line_error(code, err, *named)
    if case in ("read-only runs folder", "full disk"):
        assert "student alpha=1" in out  # the table was printed before saving failed


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_04_a_finished_run_whose_file_is_damaged_is_trained_again_with_one_line(cli, runs, image_folder, damage):
    args = ["distill", "--dataset", image_folder, *SMOKE, "--alphas", "0", "1"]
    assert cli(*args)[0] == 0
    run_file = sorted(runs.glob("shapes/students/*/run.pt"))[0]
    truncate(run_file) if damage == "truncated" else run_file.write_bytes(b"")
    code, out, err = cli(*args)
    assert code == 0, err
    assert f"{run_file.parent.name}: its checkpoint is damaged" in out and "starting over" in out
    assert out.count("reusing the finished run") == 2  # the teacher and the other student
    assert load_torch(run_file)["finished"]


def test_04_a_folder_named_like_an_image_is_not_read_as_one(cli, image_folder):
    (folder_of(image_folder) / "train" / "circles" / "x.png").mkdir()
    assert cli("distill", "--dataset", image_folder, *SMOKE, "--alphas", "0")[0] == 0


def test_04_a_checkpoint_cut_short_by_a_crash_costs_that_run_a_restart_not_an_error(cli, runs, image_folder,
                                                                                    monkeypatch):
    args = ["distill", "--dataset", image_folder, *SMOKE, "--alphas", "1"]
    forward, steps = kd.DistillationLoss.forward, []

    def stopped_in_epoch_2(self, *a):  # the student's second step (one batch an epoch)
        steps.append(self.alpha)
        if steps.count(1.0) == 2:
            raise KeyboardInterrupt
        return forward(self, *a)

    with monkeypatch.context() as m:
        m.setattr(kd.DistillationLoss, "forward", stopped_in_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            cli(*args)
    [checkpoint] = runs.glob("shapes/students/*/run.pt")
    truncate(checkpoint)
    code, out, err = cli(*args)
    assert code == 0, err
    assert f"{checkpoint.parent.name}: its checkpoint is damaged" in out and "starting over" in out
    assert "student alpha=1" in out and load_torch(checkpoint)["finished"]


# ------------------------------------------------------------------------- 5

def test_05_files_get_the_usual_permissions_so_a_class_can_share_them(runs, data, teacher):
    """Every file was private (mode 0600): a runs/ or figures/ shared on a class server was unreadable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    old = os.umask(0o022)
    try:
        s = toy_settings(alphas=(0.0, 1.0))
        students = kd.distill(s, data, teacher, progress=False)
        kd.save_results(s, "distill", kd.evaluate(s, data, teacher, students))
        fig = plt.figure()
        kd.save_figure(fig, "curves", s)
        plt.close(fig)
    finally:
        os.umask(old)
    files = [p for folder in (runs, Path(os.environ["KD_FIGURES_DIR"])) for p in folder.rglob("*") if p.is_file()]
    assert len(files) >= 9 and {"config.json", "run.pt", "curves.png", "manifest.json"} <= {p.name for p in files}
    assert {str(p.relative_to(p.parents[1])): oct(p.stat().st_mode & 0o777) for p in files
            if p.stat().st_mode & 0o777 != 0o644} == {}


# ------------------------------------------------------------------------- 6

@pytest.mark.parametrize("mode", ["cached", "online"])
def test_06_the_teacher_mode_comes_from_the_settings(runs, data, teacher, monkeypatch, mode):
    """Notebook 03's training cell read teacher_mode from a demonstration cell (NameError
    when skipped). Now distill takes it from the settings: no other argument exists."""
    assert kd.settings(dataset="fashion-mnist", device="cpu", verbose=False).teacher_mode == "cached"
    passes = {"n": 0}
    predict = training.predict
    monkeypatch.setattr(training, "predict", lambda model, *a, **k: (
        passes.__setitem__("n", passes["n"] + (model is teacher.model)), predict(model, *a, **k))[1])
    students = kd.distill(toy_settings(teacher_mode=mode, alphas=(1.0,)), data, teacher, progress=False)
    assert passes["n"] == (1 if mode == "cached" else 0)  # cached: one pass over the training images
    assert load_json(students[1.0].folder / "config.json")["teacher_mode"] == mode


# ------------------------------------------------------------------------- 7

@pytest.mark.parametrize("var, value, named", [
    ("KD_SEED", "x", "KD_SEED='x' is not valid: use a whole number"),
    ("KD_TEMPERATURE", "0,5", "KD_TEMPERATURE='0,5' is not valid: use a number"),
    ("KD_SEED", str(2**70), f"seed must be a whole number from 0 to {2**31 - 1}, got {2**70}"),
    ("KD_ALPHAS", "0,1", "KD_ALPHAS='0,1' is not valid: use numbers separated by spaces"),
    ("KD_ALPHAS", "0,5", "KD_ALPHAS='0,5' is not valid: use numbers separated by spaces"),
])
def test_07_a_bad_setting_is_named_before_anything_is_written(cli, runs, image_folder, monkeypatch, var, value,
                                                               named):
    monkeypatch.setenv(var, value)
    one_line_error(*cli("distill", "--dataset", image_folder, "--profile", "smoke")[::2], named)
    assert not runs.exists()  # no teacher folder was created first


def test_07_a_truncated_weights_file_is_named(cli, tmp_path, image_folder, data):
    path = tmp_path / "my_teacher.pt"
    storage.save_torch(path, toy_teacher(data).model.state_dict())
    truncate(path)
    one_line_error(*cli("teacher", "--dataset", image_folder, *SMOKE, "--teacher", path)[::2],
                   f"{path} is not a readable PyTorch file", "truncated or damaged")


# ------------------------------------------------------------------------- 8

KILLED_WHILE_WRITING = """
import os, signal, sys
import torch
torch.set_num_threads(1)
import kd_utils as kd, kd_utils.storage as storage
from kd_testdata import toy_data, toy_settings, toy_teacher
names, checkpoints, fsync = [], [], os.fsync
def tracking_open(file, mode="r", *args, **kwargs):
    names.append(str(file))
    return open(file, mode, *args, **kwargs)
def killed_mid_write(fd):
    if ".run.pt." in names[-1]:
        checkpoints.append(names[-1])
        if len(checkpoints) == int(sys.argv[1]):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)  # half of it on disk, under its temporary name
            os.kill(os.getpid(), signal.SIGKILL)
    fsync(fd)
storage.open, storage.os.fsync = tracking_open, killed_mid_write
data = toy_data()
kd.distill(toy_settings(), data, toy_teacher(data), progress=False)
"""


@pytest.mark.slow
def test_08_a_process_killed_while_writing_a_checkpoint_resumes_bit_for_bit(runs, tmp_path):
    """A SIGKILL in the middle of writing leaves no half-written file under a real name,
    and the next run resumes each student from its last whole checkpoint."""
    data = toy_data()
    reference = kd.distill(toy_settings(runs_dir=tmp_path / "reference"), data, toy_teacher(data), progress=False)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    proc = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, "5"], env=env, capture_output=True, text=True,
                          timeout=120)  # the 5th checkpoint: the second student's of epoch 2
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    [left] = runs.rglob(".run.pt.*")  # the write the kill interrupted, under its temporary name
    assert left.stat().st_size > 0
    folders = sorted((runs / "toy" / "students").iterdir())
    for f in folders:  # every file under a real name is whole
        assert all(load_json(p) for p in f.glob("*.json")) and all(load_torch(p) for p in f.glob("*.pt"))
    assert [len(load_torch(f / "run.pt")["history"]) for f in folders] == [2, 1, 1]
    resumed = kd.distill(toy_settings(), data, toy_teacher(data), progress=False)
    for alpha in reference:
        assert same_weights(resumed[alpha].model, reference[alpha].model)
        assert without_timing(resumed[alpha].history) == without_timing(reference[alpha].history)


# ------------------------------------------------------------------------- 9

def test_09_a_damaged_file_that_still_parses_is_never_used(runs, tmp_path, data, cli, image_folder, capsys):
    """16 flipped bytes in the teacher's final.pt gave a 27% teacher without a word; flipped
    bytes in a student's final.pt or the test-logits cache changed the reported accuracies.
    Now a damaged run.pt fails its checksum, is said so, and the run is trained again."""
    s = toy_settings(alphas=(0.0, 1.0))
    teacher = kd.train_teacher(s, data)
    students = kd.distill(s, data, teacher, progress=False)
    rows = kd.evaluate(s, data, teacher, students)

    for run, again in ((teacher, lambda: kd.train_teacher(s, data)),
                       (students[1.0], lambda: kd.distill(s, data, teacher, progress=False)[1.0])):
        flip_16_bytes(run.folder / "run.pt")
        capsys.readouterr()
        retrained = again()
        assert re.search(rf"{run.folder.name}: its checkpoint is damaged \(.* does not match the checksum it holds",
                         capsys.readouterr().out)
        assert same_weights(retrained.model, run.model) and load_torch(run.folder / "run.pt")["finished"]

    [test_cache] = [p for p in (runs / "cache").glob("*.pt") if load_torch(p).shape[0] == len(data.x_test)]
    flip_16_bytes(test_cache)
    with pytest.warns(UserWarning, match=f"{test_cache.name} is damaged"):
        assert kd.evaluate(s, data, teacher, students) == rows

    weights = storage.save_torch(tmp_path / "my_teacher.pt", teacher.model.state_dict())  # a teacher file of ours
    flip_16_bytes(weights)
    one_line_error(*cli("teacher", "--dataset", image_folder, *SMOKE, "--teacher", weights)[::2],
                   f"{weights} does not match the checksum")


# ------------------------------------------------------------------------ 10

def test_10_a_16_bit_png_loads_with_its_real_brightness(image_folder):
    """16-bit PNGs loaded almost white (mean 251 instead of about 40), without a warning."""
    root = folder_of(image_folder)
    pixels = np.random.default_rng(0).integers(20, 61, (40, 40)).astype(np.uint16) * 257  # about 40 in 8 bits
    Image.fromarray(pixels).save(root / "train" / "squares" / "zz-16-bit.png")
    assert Image.open(root / "train" / "squares" / "zz-16-bit.png").mode == "I;16"
    img = kd.load_dataset(image_folder, root).x_train[-1].float()  # zz-16-bit.png sorts last among the squares
    assert 38 < img.mean() < 42


# ------------------------------------------------------------------------ 11

def test_11_the_refusal_to_unpickle_is_in_our_own_words(cli, tmp_path, image_folder):
    """It repeated torch's advice: "re-running with weights_only=False will likely succeed"."""
    evil, marker = tmp_path / "teacher.pt", tmp_path / "code-ran"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"fc.weight": torch.zeros(2), "x": RunsCode()}, evil)
    code, out, err = cli("teacher", "--dataset", image_folder, *SMOKE, "--teacher", evil)
    one_line_error(code, err, f"refusing to load {evil}: it holds pickled Python objects", "could run code")
    assert "weights_only" not in err and "add_safe_globals" not in err
    assert not marker.exists()  # the command in the file never ran


# ------------------------------------------------------------------------ 12

def test_12_a_loss_that_becomes_nan_stops_training_and_nothing_is_kept_as_finished(runs, data, cli, image_folder):
    """KD_TEMPERATURE=1e-320 passed "finite > 0", trained NaN weights, saved them as finished,
    and later runs reused them."""
    one_line_error(*cli("distill", "--dataset", image_folder, *SMOKE, "--temperature", "1e-320")[::2],
                   "temperature must be a number from 0.05 to 1000")
    s = toy_settings()
    for attempt in range(2):  # ... and the second time it is not reused: it fails again
        with pytest.raises(FloatingPointError, match=r"diverging: the training loss became nan in epoch 1, so "
                                                     "nothing of it was saved"):
            kd.fit(s, data, {"diverging": (kd.new_student(data, 0), kd.DistillationLoss(alpha=0.0))},
                   kind="students", epochs=2, lr=1e10, progress=False)  # a learning rate far too large
    [folder] = runs.glob("toy/students/*")
    assert not (folder / "run.pt").exists()


# ------------------------------------------------------------------------ 13

def test_13_report_only_reads_threads_are_checked_first_and_minus_zero_is_zero(cli, runs, image_folder,
                                                                               monkeypatch):
    """report trained everything on an empty runs folder; KD_THREADS was checked only after
    the data were loaded; KD_ALPHAS=-0 got a run folder of its own."""
    one_line_error(*cli("report", "--dataset", image_folder, *SMOKE)[::2], "no saved results")
    assert not list(runs.rglob("*.pt"))

    with monkeypatch.context() as m:
        m.setenv("KD_THREADS", "0")
        m.setattr(kd_data, "load_data", lambda s: pytest.fail("the data were loaded first"))
        one_line_error(*cli("distill", "--dataset", image_folder, *SMOKE)[::2], "threads")

    assert cli("distill", "--dataset", image_folder, *SMOKE, "--alphas", "0")[0] == 0
    monkeypatch.setenv("KD_ALPHAS", "-0")
    code, out, _ = cli("distill", "--dataset", image_folder, *SMOKE)
    assert code == 0 and "student alpha=0 " in out and "alpha=-0" not in out
    assert out.count("reusing the finished run") == 2  # the teacher and the alpha = 0 student
    assert len(list(runs.glob("shapes/students/*"))) == 1

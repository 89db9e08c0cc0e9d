"""Bring your own data: a folder in torchvision's ImageFolder layout works
through the command line (teacher, distill, report), with clear errors when
the layout is wrong."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import kd_utils as kd

ROOT = Path(__file__).resolve().parents[1]


def draw(shape, size, color, offset):
    """A colored square or circle on a dark background."""
    img = Image.new("RGB", (size, size), (20, 20, 20))
    d = ImageDraw.Draw(img)
    box = [offset, offset, size - 1 - offset, size - 1 - offset]
    (d.rectangle if shape == "squares" else d.ellipse)(box, fill=color)
    return img


def make_folder(root, per_class=(20, 8), splits=("train", "test")):
    """squares vs circles, in assorted sizes (24-40 px, so loading must resize) and colors."""
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        if split not in splits:
            continue
        for shape in ("circles", "squares"):
            folder = root / split / shape
            folder.mkdir(parents=True)
            for i in range(n):
                size = int(rng.integers(24, 41))
                color = tuple(int(c) for c in rng.integers(80, 256, 3))
                draw(shape, size, color, int(rng.integers(1, size // 5))).save(folder / f"{i}.png")
    return root


def test_an_image_folder_loads_as_32x32_rgb_with_classes_from_the_train_folders(tmp_path):
    root = make_folder(tmp_path / "shapes")
    Image.new("L", (30, 30), 200).save(root / "train" / "squares" / "gray.png")  # grayscale: made RGB
    (root / "train" / "squares" / "notes.txt").write_text("not an image")    # ignored
    data = kd.load_dataset(f"imagefolder:{root}")
    assert data.classes == ["circles", "squares"]
    assert data.x_train.shape == (41, 3, 32, 32) and data.x_train.dtype == torch.uint8
    assert data.x_test.shape == (16, 3, 32, 32)
    assert data.y_train.tolist() == [0] * 20 + [1] * 21
    # the centre of every square image is its fill color, so not the background
    assert (data.x_train[data.y_train == 1][:, :, 16, 16] > 60).any(1).all()


def test_missing_test_folder_says_what_is_missing_and_what_layout_is_expected(tmp_path):
    root = make_folder(tmp_path / "shapes", splits=("train",))
    with pytest.raises(kd.DataUnavailableError, match=r"no test folder.*train/<class>/.*test/<class>/"):
        kd.load_dataset(f"imagefolder:{root}")


def test_test_classes_must_be_train_classes(tmp_path):
    root = make_folder(tmp_path / "shapes")
    (root / "test" / "triangles").mkdir()
    with pytest.raises(kd.DataUnavailableError, match=r"triangles.*circles.*squares"):
        kd.load_dataset(f"imagefolder:{root}")


def cli(*args, runs):
    env = dict(os.environ, KD_RUNS_DIR=str(runs), KD_DEVICE="cpu", KD_FIGURES_DIR=str(runs / "figures"))
    for var in ("KD_DATASET", "KD_PROFILE", "KD_SEED", "KD_ALPHAS", "KD_TEMPERATURE", "KD_TEACHER"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "kd_utils", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_teacher_distill_and_report_run_end_to_end_from_the_command_line(tmp_path):
    root = make_folder(tmp_path / "shapes")
    runs = tmp_path / "runs"
    common = ["--dataset", f"imagefolder:{root}", "--profile", "smoke"]
    header = "test acc"

    teacher = cli("teacher", *common, runs=runs)
    assert teacher.returncode == 0, teacher.stderr
    assert header in teacher.stdout and "CNN teacher trained here" in teacher.stdout
    assert list(runs.glob("imagefolder_*/teachers/cnn-*/final.pt")), "the trained teacher is cached"

    distill = cli("distill", *common, "--alphas", "0", "0.5", runs=runs)
    assert distill.returncode == 0, distill.stderr
    assert header in distill.stdout
    assert "student alpha=0 " in distill.stdout and "student alpha=0.5" in distill.stdout

    report = cli("report", *common, "--alphas", "0", "0.5", runs=runs)
    assert report.returncode == 0, report.stderr
    assert "reusing the finished run" in report.stdout  # nothing is trained again
    table = lambda out: [line for line in out.splitlines() if line.startswith(("teacher ", "student "))]
    assert table(report.stdout) == table(distill.stdout) and len(table(report.stdout)) == 3


def test_the_command_line_reports_a_missing_test_folder_clearly(tmp_path):
    root = make_folder(tmp_path / "shapes", splits=("train",))
    out = cli("teacher", "--dataset", f"imagefolder:{root}", "--profile", "smoke", runs=tmp_path / "runs")
    assert out.returncode == 2
    assert "error:" in out.stderr and "no test folder" in out.stderr
    assert "Traceback" not in out.stderr

"""The command line, run as a user runs it: `python -m kd_utils ...` in a
subprocess, with runs written to a temporary folder."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def run_cli(args, tmp_path, timeout=300, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KD_")}
    clean.update(KD_RUNS_DIR=str(tmp_path / "runs"), KD_FIGURES_DIR=str(tmp_path / "figures"),
                 KD_DEVICE="cpu", **env)
    return subprocess.run([sys.executable, "-m", "kd_utils", *args], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.exists() and not (ROOT / "data" / "FashionMNIST").exists(),
                    reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
def test_distill_on_real_fashion_mnist_prints_teacher_and_students(tmp_path):
    r = run_cli(["distill", "--dataset", "fashion-mnist", "--profile", "smoke", "--alphas", "0", "1"],
                tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert any("profile=smoke" in ln and "dataset=fashion-mnist" in ln for ln in lines)
    header = next(i for i, ln in enumerate(lines) if ln.startswith("model"))
    rows = {ln[:22].strip(): ln[22:].split() for ln in lines[header + 1:header + 4]}
    assert set(rows) == {"teacher", "student alpha=0", "student alpha=1"}
    for name, cells in rows.items():
        acc = float(cells[0].rstrip("%"))
        assert 10 < acc <= 100, f"{name}: {acc}% is no better than chance on 10 classes"
    assert len(rows["student alpha=0"]) == 3  # accuracy, agreement, KL to teacher
    # results and runs went to KD_RUNS_DIR, not into the repository
    assert (tmp_path / "runs" / "fashion-mnist" / "results-smoke-seed0.json").exists()
    assert len(list((tmp_path / "runs" / "fashion-mnist" / "students").iterdir())) == 2


def test_bad_dataset_exits_nonzero_with_the_valid_values_and_no_traceback(tmp_path):
    r = run_cli(["distill", "--dataset", "imagenet"], tmp_path, timeout=120)
    assert r.returncode != 0
    assert "unknown dataset 'imagenet'" in r.stderr
    assert "'cifar10', 'fashion-mnist', 'mnist'" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


@pytest.fixture
def main(monkeypatch):
    """kd_utils' CLI entry point, in this process (faster than a subprocess);
    the KD_* variables it sets are restored afterwards."""
    from kd_utils.__main__ import main

    for name in ("KD_DATASET", "KD_PROFILE", "KD_SEED", "KD_TEMPERATURE", "KD_ALPHAS",
                 "KD_TEACHER", "KD_DEVICE", "KD_DATA_DIR", "KD_RUNS_DIR"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return main


@pytest.mark.parametrize("args, message", [
    (["distill", "--dataset", "imagenet"], "valid datasets are: 'cifar10', 'fashion-mnist', 'mnist'"),
    (["distill", "--profile", "fast"], "valid profiles are: 'smoke', 'cpu', 'full', 'auto'"),
    (["distill", "--alphas", "0", "2"], "alpha must be in [0, 1]"),
    (["distill", "--temperature", "0"], "temperature must be a finite number > 0"),
])
def test_bad_values_are_reported_with_what_is_allowed(main, capsys, args, message):
    assert main(args) != 0
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["train"], "choose from 'teacher', 'distill', 'report'"),
    (["distill", "--alphas", "half"], "invalid float value: 'half'"),
    (["distill", "--formulation", "keras"], "choose from 'hinton', 'blended'"),
])
def test_malformed_arguments_are_usage_errors(main, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_cifar10_without_data_fails_fast_with_how_to_get_it(tmp_path):
    """No CIFAR-10 in KD_DATA_DIR and no network here: a short message, no
    traceback, no hang (the timeout would fail the test)."""
    empty = tmp_path / "data"
    empty.mkdir()
    r = run_cli(["distill", "--profile", "smoke"], tmp_path, timeout=120,
                KD_DATASET="cifar10", KD_DATA_DIR=str(empty))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    assert "cifar10" in r.stderr and "KD_DATA_DIR" in r.stderr
    assert "fashion-mnist" in r.stderr  # the offline alternative
    assert len(r.stderr.splitlines()) < 15

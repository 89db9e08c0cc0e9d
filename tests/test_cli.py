"""The command line: `python -m kd_utils teacher|distill|report`. Bad input is one line
`error: ...` and exit code 2; `report` only reads what was saved (a damaged results file
costs one line: tests/test_bad_input.py, the table's row for it)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kd_utils.training as kd_training

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--profile", "smoke", "--seed", "0"]


def table(out):
    return [line for line in out.splitlines() if line.startswith(("teacher ", "student "))]


# ------------------------------------------------------------------ in process

@pytest.mark.parametrize("args, message", [
    (["distill", "--dataset", "imagenet"], "unknown dataset 'imagenet'; valid datasets are: 'cifar10', "
                                           "'fashion-mnist', 'mnist', 'imagefolder:PATH'"),
    (["distill", "--alphas", "0", "2"], "alpha must be a number in [0, 1] (0 = hard labels only, 1 = teacher "
                                        "only), got 2.0"),
    (["distill", "--alphas", "half"], "alphas='half' is not valid: use numbers separated by spaces, e.g. '0 0.5 1'"),
    (["distill", "--temperature", "0"], "temperature must be a number from 0.05 to 1000"),
    (["distill", "--seed", "-3"], "seed must be a whole number from 0 to 2147483647, got -3"),
    (["distill", "--teacher", "resnet18"], "unknown teacher 'resnet18': not a file"),
])
def test_bad_values_are_one_line_with_what_is_allowed(cli, runs, args, message):
    code, out, err = cli(*args)
    assert code == 2
    assert err == f"error: {message}{err[7 + len(message):]}" and err.count("\n") == 1
    assert not runs.exists()  # checked before anything is loaded or written


def test_a_bad_environment_variable_is_named(cli, monkeypatch):
    monkeypatch.setenv("KD_SEED", "x")
    code, _, err = cli("distill")
    assert code == 2 and err.startswith("error: KD_SEED='x' is not valid: use a whole number")


@pytest.mark.parametrize("args, message", [
    (["train"], "choose from teacher, distill, report"),
    (["distill", "--profile", "fast"], "choose from smoke, cpu, full, auto"),
    (["distill", "--formulation", "keras"], "choose from hinton, blended"),
    (["distill", "--teacher-mode", "sometimes"], "choose from auto, cached, online"),
    (["distill", "--precision", "fp8"], "choose from auto, bf16, fp16, fp32"),
])
def test_malformed_arguments_are_usage_errors(cli, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        cli(*args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err.replace("'", "")  # argparse quotes the choices since Python 3.12


def test_rerunning_distill_reuses_every_run_and_prints_the_same_table(cli, runs, image_folder):
    code, first, _ = cli("distill", "--dataset", image_folder, *SMOKE, "--alphas", "0", "1")
    assert code == 0 and len(table(first)) == 3
    code, second, _ = cli("distill", "--dataset", image_folder, *SMOKE, "--alphas", "0", "1")
    assert code == 0
    assert second.count("reusing the finished run") == 3  # the teacher and two students
    assert table(second) == table(first)


def test_the_teacher_mode_flag_is_part_of_each_students_run(cli, runs, image_folder):
    assert cli("distill", "--dataset", image_folder, *SMOKE, "--alphas", "1", "--teacher-mode", "online")[0] == 0
    [config] = runs.glob("shapes/students/*/config.json")
    assert json.loads(config.read_text())["teacher_mode"] == "online"


def test_report_on_an_empty_runs_folder_trains_nothing_and_says_what_to_run(cli, runs):
    code, out, err = cli("report", "--dataset", "fashion-mnist", *SMOKE)
    assert code == 2
    assert err.startswith("error: no saved results for fashion-mnist in ") and "kd_utils distill" in err
    assert err.count("\n") == 1 and not list(runs.rglob("*.pt"))  # nothing was trained, nothing loaded


def test_distill_then_teacher_keep_two_results_files_and_report_prints_both(cli, runs, image_folder,
                                                                           monkeypatch):
    code, distill, _ = cli("distill", "--dataset", image_folder, *SMOKE, "--alphas", "0", "1")
    assert code == 0
    code, teacher, _ = cli("teacher", "--dataset", image_folder, *SMOKE)
    assert code == 0 and "reusing the finished run" in teacher
    results = sorted(p.name.split("-")[0] for p in runs.glob("shapes/results/*.json"))
    assert results == ["distill", "teacher"]  # one file per experiment: the teacher's did not replace it
    monkeypatch.setattr(kd_training, "train", lambda *a, **k: pytest.fail("report trained something"))
    code, report, _ = cli("report", "--dataset", image_folder, *SMOKE)
    assert code == 0 and "reusing" not in report  # it only reads the results files
    assert sorted(table(report)) == sorted(table(distill) + table(teacher))


def test_cifar10_without_data_fails_fast_with_how_to_get_it(cli, offline):
    code, out, err = cli("distill", "--dataset", "cifar10", *SMOKE)
    assert code == 2 and offline  # the download was tried
    assert err.startswith(f"error: The cifar10 data is not in {os.environ['KD_DATA_DIR']} and could not be downloaded")
    assert err.count("\n") == 1 and "KD_DATASET=fashion-mnist" in err  # the offline alternative


# ------------------------------------------------------------------ as a user runs it

def run_cli(*args, timeout=300, **env):
    """`python -m kd_utils` in a subprocess, with this test's KD_* folders and one thread."""
    env = dict(os.environ, KD_DEVICE="cpu", KD_THREADS="1", **env)
    return subprocess.run([sys.executable, "-m", "kd_utils", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_distill_and_report_on_real_fashion_mnist(runs, fashion_mnist_dir):
    common = dict(KD_DATA_DIR=str(fashion_mnist_dir))
    distill = run_cli("distill", "--dataset", "fashion-mnist", *SMOKE, "--alphas", "0", "1", **common)
    assert distill.returncode == 0, distill.stderr[-2000:]
    assert "dataset=fashion-mnist  profile=smoke" in distill.stdout
    rows = {line[:22].strip(): line[22:].split() for line in table(distill.stdout)}
    assert set(rows) == {"teacher", "student alpha=0", "student alpha=1"}
    for name, cells in rows.items():
        assert 30 < float(cells[0].rstrip("%")) <= 100, f"{name} is hardly better than chance (10%)"
    assert len(rows["student alpha=1"]) == 3  # accuracy, agreement, KL to teacher
    report = run_cli("report", "--dataset", "fashion-mnist", *SMOKE, **common)
    assert report.returncode == 0, report.stderr
    assert table(report.stdout) == table(distill.stdout)

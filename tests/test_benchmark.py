"""The benchmark script runs end to end and writes the JSON its README describes.

Speed is not asserted (CI machines vary); what is checked is that both loops ran on the
same work, that the ratios are the quotients of the figures printed beside them, and that
the breakdown of the tutorial loop's time adds up.
"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # each runs a benchmark script: seconds, not milliseconds


def _script(name):
    """A script of benchmarks/ as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _script("benchmark_distillation")


@pytest.fixture(scope="module")
def variants():
    return _script("student_step_variants")


def test_benchmark_runs_both_loops_and_saves_consistent_json(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    result = bench.main(["--device", "cpu", "--data", "synthetic-cifar", "--train-subset", "256",
                         "--test-subset", "64", "--steps", "3", "--warmup", "1", "--epochs", "1",
                         "--workers", "0", "--batch-size", "32", "--out", str(out)])
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))

    steps = result["steps"]
    assert steps["reference_images_per_s"] > 0 and steps["kd_utils_images_per_s"] > 0
    assert steps["ratio"] == pytest.approx(steps["kd_utils_images_per_s"] / steps["reference_images_per_s"], rel=0.01)
    parts = steps["reference_ms_per_batch"]
    assert set(parts) == {"data", "teacher", "student"} and all(v > 0 for v in parts.values())
    assert steps["ceiling_if_b_were_only_a_student_step"] == pytest.approx(
        sum(parts.values()) / parts["student"], rel=0.01)

    exp = result["experiment"]
    # seconds and the ratio are stored rounded to 0.01: allow exactly that much
    ref, kd = exp["reference_seconds"], exp["kd_utils_seconds"]
    assert (ref - 0.005) / (kd + 0.005) - 0.005 <= exp["ratio"] <= (ref + 0.005) / (kd - 0.005) + 0.005
    assert 0 < exp["kd_utils_teacher_pass_seconds"] < exp["kd_utils_seconds"]
    for loop in ("reference", "kd_utils"):  # three students each, accuracies are fractions
        accs = exp["test_accuracy"][loop]
        assert sorted(accs) == ["0.0", "0.5", "1.0"] and all(0 <= a <= 1 for a in accs.values())
    assert result["dataset"] == dict(name="synthetic-cifar", n_train=256, n_test=64)
    assert result["environment"]["device"] == "cpu" and result["environment"]["torch"]
    assert "ratio (b)/(a)" in printed and "ceiling" in printed and "speed-up (a)/(b)" in printed


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be a positive integer"),
    (["--teacher", "vgg13_bn"], "use it with --data synthetic-cifar"),
    (["--train-subset", "-5"], "--train-subset must be 0 (all images) or a positive number"),
])
def test_benchmark_rejects_bad_arguments_with_a_reason(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_fashion_mnist_subset_zero_means_all_images(bench):
    assert bench.parse_args(["--train-subset", "0"]).train_subset is None
    assert bench.parse_args([]).train_subset == 20_000


def test_student_step_variants_times_every_variant(variants, tmp_path):
    result = variants.main(["--rounds", "2", "--steps", "2", "--no-compile", "--out", str(tmp_path / "v.json")])
    assert set(result["variants"]) == {"plain", "channels_last", "fused_adam", "three_as_one"}
    for v in result["variants"].values():
        assert len(v["rounds_ms"]) == 2 and v["min_ms"] <= v["median_ms"] <= v["max_ms"]
    shares = [row["share"] for row in result["profile_top"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1
    assert json.loads((tmp_path / "v.json").read_text())["batch"] == 128


def test_three_lenets_in_one_module_are_three_independent_students(variants):
    # The grouped network is only a fair variant if it really is three separate LeNets.
    torch.manual_seed(0)
    net = variants.ThreeLeNets()
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    out = net(x)
    assert out.shape == (3, 4, 10)
    out[1].sum().backward()  # student 1's output depends on none of students 0's or 2's own weights
    g = net.conv2.weight.grad.view(3, 16, 6, 5, 5)
    assert g[1].abs().sum() > 0 and g[0].abs().sum() == 0 and g[2].abs().sum() == 0
    assert net.w[0].grad[1].abs().sum() > 0 and net.w[0].grad[0].abs().sum() == 0

"""Specification of kd_utils.compression: what each compression method does
to a model, and that sizes are measured honestly (zeros are not free)."""
import math

import pytest
import torch
from torch import nn

from kd_testdata import make_dataset

import kd_utils as kd
from kd_utils.extras import compression as C
from kd_utils.models import make_cnn_teacher, make_student


@pytest.fixture
def teacher():
    torch.manual_seed(0)
    return make_cnn_teacher((1, 28, 28), 10, [0.3], [0.3]).eval()


def test_quantize_int8_replaces_only_linear_layers(teacher):
    q = C.quantize_int8(teacher)
    assert not any(type(m) is nn.Linear for m in q.modules())  # no float Linear left
    assert sum(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in q.modules()) == 2
    assert sum(isinstance(m, nn.Conv2d) for m in q.modules()) == 2  # convolutions stay float
    # the original is untouched
    assert sum(isinstance(m, nn.Linear) for m in teacher.modules()) == 2


def test_quantized_model_predicts_like_the_original(teacher):
    x = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        a, b = teacher(x), C.quantize_int8(teacher)(x)
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.9
    assert (a - b).abs().max() < 0.1 * a.abs().max()


def test_quantization_shrinks_the_file_by_about_the_linear_share(teacher):
    share = C.linear_share(teacher)
    assert 0.9 < share < 1.0  # this teacher is mostly its first Linear layer
    before = C.size_on_disk(teacher)["dense_bytes"]
    after = C.size_on_disk(C.quantize_int8(teacher))["dense_bytes"]
    # int8 is a quarter of float32: expect (1 - share) + share / 4 of the size, plus overhead
    expected = (1 - share) + share / 4
    assert after / before == pytest.approx(expected, abs=0.05)


def test_stored_values_counts_the_int8_weights_of_quantized_layers(teacher):
    q = C.quantize_int8(teacher)
    assert sum(p.numel() for p in q.parameters()) < 0.1 * C.stored_values(teacher)  # what parameters() misses
    # the same weights and biases, plus a scale and a zero point per quantized Linear
    assert C.stored_values(q) == C.stored_values(teacher) + 2 * 2


def test_linear_share_of_a_model_without_linear_layers_is_zero():
    assert C.linear_share(nn.Sequential(nn.Conv2d(1, 2, 3))) == 0.0


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_prune_reaches_the_requested_global_sparsity(teacher, sparsity):
    p = C.prune_magnitude(teacher, sparsity)
    assert C.weight_sparsity(p) == pytest.approx(sparsity, abs=1e-3)
    assert C.weight_sparsity(teacher) == 0.0  # a copy was pruned
    # prune.remove was applied: a plain state_dict, loadable into the original architecture
    assert set(p.state_dict()) == set(teacher.state_dict())


def test_prune_removes_the_smallest_weights_across_all_layers(teacher):
    p = C.prune_magnitude(teacher, 0.7)
    orig = torch.cat([m.weight.flatten().abs() for m, _ in C._prunable(teacher)])
    new = torch.cat([m.weight.flatten() for m, _ in C._prunable(p)])
    removed, kept = orig[new == 0], orig[new != 0]
    assert removed.max() <= kept.min()
    # kept weights are unchanged (no fine-tuning)
    assert torch.equal(new[new != 0].abs(), kept)


def test_pruned_dense_file_is_not_smaller_but_compresses(teacher):
    dense = C.size_on_disk(teacher)
    pruned = C.size_on_disk(C.prune_magnitude(teacher, 0.9))
    assert pruned["dense_bytes"] == pytest.approx(dense["dense_bytes"], rel=0.01)
    assert pruned["gzip_bytes"] < 0.5 * dense["gzip_bytes"]


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "half", float("nan")])
def test_prune_rejects_bad_sparsity(teacher, bad):
    with pytest.raises(ValueError, match="sparsity must be a number in \\[0, 1\\)"):
        C.prune_magnitude(teacher, bad)


def test_latency_is_a_positive_time_per_image_and_restores_threads(teacher, monkeypatch):
    x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    threads = torch.get_num_threads()
    used = []
    real = teacher.forward
    monkeypatch.setattr(teacher, "forward", lambda xb: used.append((len(xb), torch.get_num_threads())) or real(xb))
    t = C.latency_per_image(teacher, x, 4, min_run_time=0.01, threads=threads + 1)
    assert t > 0 and math.isfinite(t)
    assert set(used) == {(4, threads + 1)}, "every timed pass runs batch_size images with the threads asked for"
    assert torch.get_num_threads() == threads


def test_latency_is_time_per_image_not_per_batch(monkeypatch):
    # a model whose forward pass takes 20 ms whatever the batch: 5 ms per image at batch 4
    import time

    class Slow(nn.Module):
        def forward(self, x):
            time.sleep(0.02)
            return x

    t = C.latency_per_image(Slow(), torch.zeros(4, 1), 4, min_run_time=0.1)
    assert 0.004 < t < 0.008


def test_latency_rejects_a_batch_larger_than_the_images(teacher):
    x = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(ValueError, match="batch_size must be between 1 and 4"):
        C.latency_per_image(teacher, x, 8)
    with pytest.raises(ValueError, match="min_run_time must be > 0"):
        C.latency_per_image(teacher, x, 2, min_run_time=0)


def test_measure_reports_accuracy_size_and_latency():
    data = make_dataset(n_train=32, n_test=20)
    torch.manual_seed(0)
    student = make_student(data.image_shape, 10, [0.5], [0.25])
    teacher_logits = torch.randn(20, 10)
    row = C.measure(student, data, teacher_logits, batch_sizes=(1, 8), min_run_time=0.01)
    with torch.no_grad():
        logits = student(data.x_test)
    assert row["accuracy"] == pytest.approx(kd.accuracy(logits, data.y_test))
    assert row["agreement"] == pytest.approx(kd.agreement(logits, teacher_logits))
    assert row["stored_values"] == sum(v.numel() for v in student.state_dict().values())
    assert row["gzip_bytes"] < row["dense_bytes"] * 1.1
    assert row["latency_b1"] > 0 and row["latency_b8"] > 0


def test_the_share_of_weights_in_linear_layers_depends_on_the_vgg13_bn_layout():
    # notebook 06: int8 dynamic quantization shrinks one zoo's vgg13_bn much more than the other's
    small, big = kd.vgg13_bn("chenyaofo"), kd.vgg13_bn("pytorch_cifar10")
    assert kd.count_parameters(small) == 9_941_322 and C.linear_share(small) == pytest.approx(0.053, abs=0.001)
    assert kd.count_parameters(big) == 28_334_410 and C.linear_share(big) == pytest.approx(0.668, abs=0.001)


def tradeoff_rows():
    rows = [("teacher", "baseline", 0.917, 3000), ("teacher int8", "int8", 0.9174, 900),
            ("pruned 50%", "pruned", 0.9169, 3000), ("pruned 80%", "pruned", 0.9166, 3000),
            ("pruned 95%", "pruned", 0.46, 3000), ("student alpha=0", "student", 0.901, 250),
            ("student alpha=0.5", "student", 0.9045, 250), ("student alpha=1", "student", 0.9013, 250)]
    return [dict(name=n, method=m, label=n.split()[-1], accuracy=a, dense_bytes=b) for n, m, a, b in rows]


def test_tradeoff_plot_zooms_in_and_puts_what_is_below_on_the_edge():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = C.plot_tradeoff(tradeoff_rows(), "dense_bytes", zoom=0.04)
    low, high = ax.get_ylim()
    assert 0.86 < low < 0.8774 and high > 0.9174                  # the best model and 4 points below it
    edge = [t for t in ax.texts if t.get_text().startswith("95%")]
    assert edge and edge[0].get_text() == "95%: 46.0%" and low < edge[0].xy[1] < 0.8774
    plt.close(ax.figure)


def test_tradeoff_plot_labels_do_not_overlap_and_students_take_their_alpha_colour():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    ax = C.plot_tradeoff(tradeoff_rows(), "dense_bytes", zoom=0.04)
    renderer = ax.figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == len(tradeoff_rows())
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    colours = {mcolors.to_hex(c) for coll in ax.collections for c in coll.get_facecolors()}
    for alpha in (0, 0.5, 1):
        assert mcolors.to_hex(kd.model_color(f"alpha={alpha}")) in colours
    plt.close(ax.figure)

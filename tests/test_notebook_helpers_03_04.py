"""Helpers behind notebooks 03 (distilling students) and 04 (analysis)."""
import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from kd_utils.figures import bar_chart, grouped_bars  # noqa: E402
from kd_utils.metrics import accuracy_stderr, compare_to_baseline, paired_difference  # noqa: E402
from kd_utils.models import LeNetStudent  # noqa: E402


def logits_for(preds, num_classes=3):
    """Logits whose argmax is `preds`."""
    return torch.nn.functional.one_hot(torch.tensor(preds), num_classes).float()


# accuracy_stderr ---------------------------------------------------------------

def test_stderr_is_how_much_the_accuracy_moves_on_another_test_set():
    # 20,000 simulated test sets of 1,000 images for a model that is right 90% of the time
    accuracies = np.random.default_rng(0).binomial(1000, 0.9, size=20_000) / 1000
    assert accuracy_stderr(0.9, 1000) == pytest.approx(accuracies.std(), rel=0.02)
    assert accuracy_stderr(1.0, 50) == 0.0


def test_stderr_shrinks_with_more_test_images():
    assert accuracy_stderr(0.7, 4000) == pytest.approx(accuracy_stderr(0.7, 1000) / 2)


@pytest.mark.parametrize("p,n", [(0.5, 0), (1.5, 100), (-0.1, 100)])
def test_stderr_rejects_bad_input(p, n):
    with pytest.raises(ValueError):
        accuracy_stderr(p, n)


# paired_difference / compare_to_baseline ---------------------------------------

def test_paired_difference_counts_only_disagreements():
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    a = logits_for([0, 1, 2, 0, 1, 0])  # 5 right
    b = logits_for([0, 1, 2, 1, 2, 2])  # 4 right
    diff, se = paired_difference(a, b, labels)
    assert diff == pytest.approx(1 / 6)
    d = torch.tensor([0, 0, 0, 1, 1, -1], dtype=torch.float)  # a right minus b right, per image
    assert se == pytest.approx(d.std().item() / math.sqrt(6))


def test_identical_models_differ_by_zero_with_zero_error():
    labels = torch.tensor([0, 1, 2, 1])
    a = logits_for([0, 2, 2, 1])
    assert paired_difference(a, a.clone(), labels) == (0.0, 0.0)


def test_paired_difference_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same"):
        paired_difference(logits_for([0, 1]), logits_for([0]), torch.tensor([0, 1]))


def test_compare_to_baseline_verdicts():
    n = 400
    labels = torch.zeros(n, dtype=torch.long)
    base = logits_for([0] * 200 + [1] * 200)            # 50%
    much_better = logits_for([0] * 300 + [1] * 100)     # 75%: far beyond 2 SE
    about_same = logits_for([0] * 201 + [1] * 199)      # 50.25%: one image
    rows = compare_to_baseline({"hard": base, "kd": much_better, "kd2": about_same}, "hard", labels)
    by = {r["model"]: r for r in rows}
    assert set(by) == {"kd", "kd2"}
    assert by["kd"]["difference"] == pytest.approx(0.25)
    assert by["kd"]["baseline_accuracy"] == pytest.approx(0.5)
    assert by["kd"]["verdict"] == "better"
    assert by["kd2"]["verdict"] == "within noise"
    worse = compare_to_baseline({"hard": much_better, "kd": base}, "hard", labels)[0]
    assert worse["verdict"] == "worse" and worse["difference"] == pytest.approx(-0.25)


def test_compare_to_baseline_names_the_missing_baseline():
    with pytest.raises(KeyError, match="alpha=0"):
        compare_to_baseline({"kd": logits_for([0])}, "alpha=0", torch.tensor([0]))


# figures ----------------------------------------------------------------------

def test_bar_chart_draws_one_labelled_bar_per_model():
    fig, ax = plt.subplots()
    bar_chart({"teacher": 0.9, "alpha=0": 0.8}, ax=ax, errors={"teacher": 0.01})
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.9, 0.8])
    assert [t.get_text() for t in ax.texts] == ["90.0%", "80.0%"]
    plt.close(fig)


def test_grouped_bars_one_bar_per_model_and_class():
    fig, ax = plt.subplots()
    grouped_bars({"a": [0.1, 0.2, 0.3], "b": [0.4, 0.5, 0.6]}, ["x", "y", "z"], ax=ax)
    heights = [[bar.get_height() for bar in group] for group in ax.containers]  # one group of bars per model
    assert heights == [pytest.approx([0.1, 0.2, 0.3]), pytest.approx([0.4, 0.5, 0.6])]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    plt.close(fig)


def test_grouped_bars_rejects_wrong_number_of_values():
    with pytest.raises(ValueError, match="2 values but there are 3 labels"):
        grouped_bars({"a": [0.1, 0.2]}, ["x", "y", "z"])


def test_record_results_writes_rows_with_provenance():
    import json
    import os

    import kd_utils as kd

    s = kd.settings(dataset="fashion-mnist", profile="smoke", seed=3, device="cpu", temperature=2.0, verbose=False)
    kd.record_results("03_students", [dict(model="teacher", accuracy=0.912345678)], s, n_test=1000)
    entry = json.loads((Path(os.environ["KD_FIGURES_DIR"]) / "manifest.json").read_text())["results"]["03_students"]
    assert entry["dataset"] == "fashion-mnist" and entry["profile"] == "smoke" and entry["seed"] == 3
    assert entry["temperature"] == 2.0 and entry["formulation"] == "hinton" and entry["n_test"] == 1000
    assert entry["rows"] == [dict(model="teacher", accuracy=0.91235)]


def test_confusion_change_is_symmetric_around_zero_and_boxes_the_cells_asked_for():
    from matplotlib.patches import Rectangle

    from kd_utils.figures import confusion_change_heatmap

    delta = torch.tensor([[3.0, -3.0], [1.0, -1.0]])  # images: a student's confusions minus the baseline's
    fig, ax = plt.subplots()
    confusion_change_heatmap(delta, ["a", "b"], ax=ax, beyond=torch.tensor([[True, False], [False, False]]))
    lo, hi = ax.collections[0].get_clim()
    assert lo == pytest.approx(-3.0) and hi == pytest.approx(3.0)
    assert [t.get_text() for t in ax.texts] == ["+3", "-3", "+1", "-1"]
    assert [p.get_xy() for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()] == [(0, 0)]
    plt.close(fig)


def test_plot_history_ticks_whole_epochs():
    from kd_utils.figures import plot_history

    fig, ax = plt.subplots()
    plot_history({0.0: [dict(epoch=1, test_acc=0.5), dict(epoch=2, test_acc=0.6)]}, ax=ax)
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks)
    plt.close(fig)

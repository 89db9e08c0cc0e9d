"""Metrics of a trained student (accuracy, confusions, fidelity to its teacher), each checked
against a direct count or formula."""
import math

import numpy as np
import pytest
import torch

from kd_utils import (accuracy, agreement, confusion_matrix, kl_to_teacher, most_confused_pairs,
                      per_class_accuracy, summarize)

C = 4


@pytest.fixture
def preds():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, C, (200,), generator=g)
    logits = torch.randn(200, C, generator=g)
    logits[torch.arange(200), labels] += 1.0  # better than chance, not perfect
    return logits, labels


def loop_confusion(pred, labels):
    cm = [[0] * C for _ in range(C)]
    for p, y in zip(pred.tolist(), labels.tolist()):
        cm[y][p] += 1
    return cm


def test_confusion_matrix_rows_are_true_class_columns_predicted(preds):
    logits, labels = preds
    cm = confusion_matrix(logits, labels, C)
    assert cm.tolist() == loop_confusion(logits.argmax(1), labels)
    # predictions instead of logits give the same matrix
    assert torch.equal(confusion_matrix(logits.argmax(1), labels, C), cm)


def test_confusion_matrix_hand_example():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 2, 0, 2])
    assert confusion_matrix(pred, labels, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    np.testing.assert_allclose(confusion_matrix(pred, labels, 3, normalize="true").numpy(),
                               [[0.5, 0.5, 0], [0, 1, 0], [1 / 3, 0, 2 / 3]], rtol=1e-6)


def test_confusion_matrix_normalize_rejects_unknown_modes(preds):
    with pytest.raises(ValueError, match="normalize must be None or 'true'"):
        confusion_matrix(*preds, C, normalize="all")


def test_confusion_matrix_rejects_labels_outside_the_classes_and_unpaired_predictions():
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 2\]"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="2 predictions for 3 labels"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1, 2]), 3)


def test_accuracy_and_per_class_accuracy_count_correct_top1_predictions(preds):
    logits, labels = preds
    pred = logits.argmax(1)
    assert accuracy(logits, labels) == pytest.approx(sum(p == y for p, y in zip(pred.tolist(), labels.tolist())) / 200)
    for c, acc in enumerate(per_class_accuracy(logits, labels, C).tolist()):
        mask = labels == c
        assert acc == pytest.approx((pred[mask] == c).float().mean().item())


def test_per_class_accuracy_of_an_absent_class_is_zero_not_nan():
    acc = per_class_accuracy(torch.eye(3)[[0, 1]], torch.tensor([0, 1]), 3)
    assert acc.tolist() == [1.0, 1.0, 0.0]


def test_agreement_counts_matching_top1_predictions():
    student = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    teacher = torch.tensor([[9.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert agreement(student, teacher) == pytest.approx(3 / 4)
    assert agreement(teacher, teacher) == 1.0


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_kl_to_teacher_is_mean_per_sample_kl(preds, T):
    """KL(p_teacher || p_student) at temperature T, summed over classes, averaged over images."""
    s, _ = preds
    t = torch.randn(s.shape, generator=torch.Generator().manual_seed(1)) * 2
    ps = np.exp(s.double().numpy() / T)
    ps /= ps.sum(1, keepdims=True)
    pt = np.exp(t.double().numpy() / T)
    pt /= pt.sum(1, keepdims=True)
    expected = (pt * np.log(pt / ps)).sum() / len(s)
    assert kl_to_teacher(s, t, T) == pytest.approx(expected, rel=1e-5)
    assert kl_to_teacher(t, t, T) == pytest.approx(0.0, abs=1e-6)


def test_kl_to_teacher_hand_example():
    # teacher (3/4, 1/4), student (1/2, 1/2)
    s = torch.zeros(1, 2)
    t = torch.tensor([[math.log(3), 0.0]])
    assert kl_to_teacher(s, t) == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), rel=1e-5)


def test_most_confused_pairs_are_the_largest_off_diagonal_entries():
    cm = torch.tensor([[50, 3, 9], [1, 40, 0], [7, 2, 60]])
    pairs = most_confused_pairs(cm, ["cat", "dog", "car"], k=3)
    assert pairs == [("cat", "car", 9.0), ("car", "cat", 7.0), ("cat", "dog", 3.0)]
    # k larger than the number of off-diagonal cells: all six, never the diagonal
    everything = most_confused_pairs(cm, ["cat", "dog", "car"], k=100)
    assert len(everything) == 6 and all(a != b for a, b, _ in everything)


def test_summarize_reports_fidelity_only_with_a_teacher(preds):
    logits, labels = preds
    assert set(summarize(logits, None, labels, C)) == {"accuracy"}
    full = summarize(logits, logits, labels, C)
    assert full["agreement"] == 1.0 and full["kl_to_teacher"] == pytest.approx(0.0, abs=1e-6)

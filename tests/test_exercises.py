"""The exercise checkers: a reference solution passes, a plausible wrong answer
fails with feedback that names the mistake, and an unfinished stub is told so
without raising (the notebooks call the checkers on stubs)."""
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kd_utils import exercises as ex

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


def solution(name):
    path = SOLUTIONS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"solution_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


S01 = solution("01_softmax_temperature")
S02 = solution("02_teacher")
S03 = solution("03_distillation")
S04 = solution("04_analysis")


def fails_with(capsys, check, answer, *expected_text):
    assert check(answer) is False
    out = capsys.readouterr().out
    for text in expected_text:
        assert text in out, f"{text!r} not in feedback:\n{out}"
    return out


# ---------------------------------------------------------- the reference solutions pass

@pytest.mark.parametrize("check, answer", [
    (ex.check_softmax_with_temperature, S01.my_softmax_with_temperature),
    (ex.check_high_temperature_prediction, S01.HIGH_T_PREDICTION),
    (ex.check_soft_targets, S02.my_soft_targets),
    (ex.check_most_uncertain, S02.my_most_uncertain),
    (ex.check_distillation_loss, S03.my_distillation_loss),
    (ex.check_temperature_one_prediction, S03.T1_PREDICTION),
    (ex.check_most_confused_pair, S04.my_most_confused_pair),
    (ex.check_agreement, S04.my_agreement),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_reference_solution_passes_with_a_congratulation(capsys, check, answer):
    assert check(answer) is True
    out = capsys.readouterr().out
    assert ex.OK in out and ex.NO not in out


# ---------------------------------------------------------- stubs and bad arguments

FUNCTION_CHECKERS = [ex.check_softmax_with_temperature, ex.check_soft_targets, ex.check_most_uncertain,
                     ex.check_distillation_loss, ex.check_most_confused_pair, ex.check_agreement]


def raises_not_implemented(*args):
    raise NotImplementedError


def returns_none(*args):
    ...


@pytest.mark.parametrize("check", FUNCTION_CHECKERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("stub", [raises_not_implemented, returns_none], ids=["raises", "returns-None"])
def test_an_unfinished_stub_is_told_not_implemented_yet(capsys, check, stub):
    fails_with(capsys, check, stub, "not implemented yet")


@pytest.mark.parametrize("check", FUNCTION_CHECKERS, ids=lambda c: c.__name__)
def test_passing_a_result_instead_of_the_function_is_explained(capsys, check):
    fails_with(capsys, check, 0.5, "pass your function itself")


@pytest.mark.parametrize("check", [ex.check_high_temperature_prediction, ex.check_temperature_one_prediction])
def test_predictions_not_answered_or_not_a_choice(capsys, check):
    fails_with(capsys, check, None, "not answered yet")
    fails_with(capsys, check, "maybe", "'maybe' is not one of the choices")


def test_a_learner_bug_is_reported_not_raised(capsys):
    def buggy(logits, T):
        return logits.undefined_method()
    fails_with(capsys, ex.check_softmax_with_temperature, buggy, "raised AttributeError", "Hint:")


# ---------------------------------------------------------- 01: softmax with temperature

@pytest.mark.parametrize("wrong, feedback", [
    (lambda z, T: torch.softmax(z, dim=-1), "divide the logits by T first"),
    (lambda z, T: torch.softmax(z * T, dim=-1), "you multiplied by T"),
    (lambda z, T: torch.softmax(z / T, dim=0), "wrong dimension"),
    (lambda z, T: torch.softmax(z, dim=-1) / T, "before the softmax"),
    (lambda z, T: torch.exp(z / T), "must be normalised"),
], ids=["forgot-T", "times-T", "wrong-axis", "divide-probabilities", "unnormalised"])
def test_softmax_mistakes_get_a_specific_hint(capsys, wrong, feedback):
    fails_with(capsys, ex.check_softmax_with_temperature, wrong, "not quite", "expected", "got", feedback)


def test_naive_softmax_overflows_on_large_logits_and_is_told_so(capsys):
    def naive(z, T):
        e = torch.exp(z / T)
        return e / e.sum(-1, keepdim=True)
    out = fails_with(capsys, ex.check_softmax_with_temperature, naive,
                     "large logits", "nan or inf", "subtract the largest logit")
    assert "T = 1;" not in out  # it passed the ordinary inputs before failing


def test_a_wrong_shape_is_reported_as_a_shape(capsys):
    fails_with(capsys, ex.check_softmax_with_temperature, lambda z, T: torch.softmax(z / T, -1).flatten(),
               "the shape is (40,), expected (4, 10)")


def test_a_wrong_prediction_shows_the_right_answer_and_the_evidence(capsys):
    fails_with(capsys, ex.check_high_temperature_prediction, "one-hot", "The answer is 'uniform'",
                     "T=1000")


# ---------------------------------------------------------- 02: the teacher

def soft_targets_without_eval(teacher, images, T):
    with torch.no_grad():
        return torch.softmax(teacher(images) / T, dim=-1)


def soft_targets_with_grad(teacher, images, T):
    teacher.eval()
    return torch.softmax(teacher(images) / T, dim=-1)


def soft_targets_without_T(teacher, images, T):
    teacher.eval()
    with torch.no_grad():
        return torch.softmax(teacher(images), dim=-1)


@pytest.mark.parametrize("wrong, feedback", [
    (soft_targets_without_eval, "call teacher.eval() first"),
    (soft_targets_with_grad, "torch.no_grad()"),
    (soft_targets_without_T, "divide the teacher's logits by T"),
], ids=["no-eval", "with-grad", "no-T"])
def test_soft_target_mistakes_get_a_specific_hint(capsys, wrong, feedback):
    fails_with(capsys, ex.check_soft_targets, wrong, feedback)


def test_checking_soft_targets_leaves_the_global_random_state_alone():
    before = torch.random.get_rng_state()
    ex.check_soft_targets(S02.my_soft_targets)
    assert torch.equal(torch.random.get_rng_state(), before)


def entropy(p):
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


@pytest.mark.parametrize("wrong, feedback", [
    (lambda p: int(entropy(p).argmin()), "most CONFIDENT"),
    (lambda p: int(p.max(1).values.argmin()), "lowest top probability"),
], ids=["lowest-entropy", "lowest-top-probability"])
def test_most_uncertain_mistakes_get_a_specific_hint(capsys, wrong, feedback):
    fails_with(capsys, ex.check_most_uncertain, wrong, "expected", feedback)


# ---------------------------------------------------------- 03: distillation loss

def kl(s, t, T, reduction="batchmean"):
    if reduction == "mean":  # silence torch's warning: this mistake is on purpose
        return F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="sum",
                        log_target=True) / s.numel()
    return F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction=reduction, log_target=True)


@pytest.mark.parametrize("wrong, feedback", [
    (lambda s, t, y, T, a: a * kl(s, t, T) + (1 - a) * F.cross_entropy(s, y), "T^2"),
    (lambda s, t, y, T, a: a * T * T * kl(s, t, T, "mean") + (1 - a) * F.cross_entropy(s, y), "batchmean"),
    (lambda s, t, y, T, a: (1 - a) * T * T * kl(s, t, T) + a * F.cross_entropy(s, y), "swapped"),
    (lambda s, t, y, T, a: a * T * T * kl(s, t, 1) + (1 - a) * F.cross_entropy(s, y), "not divided by T"),
    (lambda s, t, y, T, a: a * T * T * kl(t, s, T) + (1 - a) * F.cross_entropy(s, y), "wrong way"),
    (lambda s, t, y, T, a: a * T * T * kl(s, t, T) + (1 - a) * F.cross_entropy(s / T, y), "at T = 1"),
], ids=["forgot-T2", "mean-not-batchmean", "alpha-swapped", "no-T-in-soft", "kl-reversed", "T-in-hard"])
def test_distillation_loss_mistakes_get_a_specific_hint(capsys, wrong, feedback):
    fails_with(capsys, ex.check_distillation_loss, wrong, "not quite", "expected", feedback)


def test_the_feedback_names_the_input_that_failed(capsys):
    def no_t2(s, t, y, T, a):
        return a * kl(s, t, T) + (1 - a) * F.cross_entropy(s, y)
    fails_with(capsys, ex.check_distillation_loss, no_t2, "On input a batch of 8, T = 4, alpha = 0.5")


def test_temperature_one_prediction_uses_the_given_teacher_logits(capsys):
    confident = torch.tensor([[20.0, 0.0, 0.0], [0.0, 20.0, 0.0]])
    assert ex.check_temperature_one_prediction("sharper", confident) is True
    out = capsys.readouterr().out
    assert "your teacher's logits" in out and "T=1: mean probability on the non-top classes = 0.000" in out
    fails_with(capsys, ex.check_temperature_one_prediction, "softer", "The answer is 'sharper'")


# ---------------------------------------------------------- 04: analysis

def largest_cell(cm, classes):
    i = int(torch.as_tensor(cm).argmax())
    return classes[i // len(classes)], classes[i % len(classes)]


def swapped_pair(cm, classes):
    true, pred = S04.my_most_confused_pair(cm, classes)
    return pred, true


@pytest.mark.parametrize("wrong, feedback", [
    (largest_cell, "diagonal"),
    (swapped_pair, "wrong order"),
], ids=["includes-diagonal", "row-column-swapped"])
def test_most_confused_pair_mistakes_get_a_specific_hint(capsys, wrong, feedback):
    fails_with(capsys, ex.check_most_confused_pair, wrong, "expected", feedback)


def test_most_confused_pair_accepts_class_indices(capsys):
    def as_indices(cm, classes):
        true, pred = S04.my_most_confused_pair(cm, classes)
        return classes.index(true), classes.index(pred)
    assert ex.check_most_confused_pair(as_indices) is True


@pytest.mark.parametrize("wrong, feedback", [
    (lambda s, t: (s.argmax(1) == t.argmax(1)).sum().item(), "that is a count"),
    (lambda s, t: 100 * (s.argmax(1) == t.argmax(1)).float().mean().item(), "percentage"),
    (lambda s, t: (s == t).all(1).float().mean().item(), "not the logits themselves"),
], ids=["count", "percent", "compares-logits"])
def test_agreement_mistakes_get_a_specific_hint(capsys, wrong, feedback):
    fails_with(capsys, ex.check_agreement, wrong, "expected", feedback)

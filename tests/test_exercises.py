"""The exercise checkers, as a specification. For every checker:
- the reference solution in solutions/ passes, with a congratulation;
- each known mistake fails with its own hint, naming the input and showing expected vs got;
- an unfinished stub (NotImplementedError, or returning None) is told "not implemented yet";
- a learner's function that raises is reported, never raised (the notebook keeps running);
- a value passed instead of the function is explained.
Predict-then-check questions accept the right answer, and show the answer and its evidence after a wrong one."""
import ast
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kd_utils import exercises as ex

ROOT = Path(__file__).resolve().parents[1]


def solution(name):
    spec = importlib.util.spec_from_file_location(f"solution_{name}", ROOT / "solutions" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


S01, S02, S03, S04 = (solution(n) for n in ("01_softmax_temperature", "02_teacher", "03_distillation", "04_analysis"))


def fails_with(capsys, check, answer, *expected_text):
    assert check(answer) is False
    out = capsys.readouterr().out
    for text in expected_text:
        assert text in out, f"{text!r} not in feedback:\n{out}"
    return out


def is_a_known_mistake(capsys, check, wrong, hint):
    """The learner's wrong answer fails, the feedback says where and how, and its hint is this mistake's own."""
    out = fails_with(capsys, check, wrong, "not quite", "On input", "expected", "got", "Hint:")
    assert hint in out.split("Hint:")[1], f"{hint!r} not in the hint:\n{out}"


# ---------------------------------------------------------- what every checker does

@pytest.mark.parametrize("check, answer", [
    (ex.check_softmax_with_temperature, S01.my_softmax_with_temperature),
    (ex.check_high_temperature_prediction, S01.HIGH_T_PREDICTION),
    (ex.check_soft_targets, S02.my_soft_targets),
    (ex.check_most_uncertain, S02.my_most_uncertain),
    (ex.check_blended_loss, S03.my_blended_loss),
    (ex.check_temperature_one_prediction, S03.T1_PREDICTION),
    (ex.check_fidelity_gap, S04.my_fidelity_gap),
    (ex.check_paired_verdict, S04.PAIRED_VERDICT),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_the_reference_solution_passes_with_a_congratulation(capsys, check, answer):
    assert check(answer) is True
    out = capsys.readouterr().out
    assert ex.OK in out and ex.NO not in out


FUNCTION_CHECKERS = [ex.check_softmax_with_temperature, ex.check_soft_targets, ex.check_most_uncertain,
                     ex.check_blended_loss, ex.check_fidelity_gap]
CHOICE_CHECKERS = [ex.check_high_temperature_prediction, ex.check_temperature_one_prediction, ex.check_paired_verdict]


def raises_not_implemented(*args):
    raise NotImplementedError  # your code here


def returns_none(*args):
    ...


@pytest.mark.parametrize("check", FUNCTION_CHECKERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("stub", [raises_not_implemented, returns_none], ids=["raises", "returns-None"])
def test_an_unfinished_stub_is_told_not_implemented_yet(capsys, check, stub):
    fails_with(capsys, check, stub, "not implemented yet")


@pytest.mark.parametrize("check", FUNCTION_CHECKERS, ids=lambda c: c.__name__)
def test_a_learner_function_that_raises_is_reported_not_raised(capsys, check):
    def buggy(*args):
        return 1 / 0
    fails_with(capsys, check, buggy, "on input", "your function raised ZeroDivisionError", "Hint:")


@pytest.mark.parametrize("check", FUNCTION_CHECKERS, ids=lambda c: c.__name__)
def test_passing_a_result_instead_of_the_function_is_explained(capsys, check):
    fails_with(capsys, check, 0.5, "pass your function itself")


@pytest.mark.parametrize("check", FUNCTION_CHECKERS, ids=lambda c: c.__name__)
def test_a_result_that_is_not_a_number_is_explained(capsys, check):
    fails_with(capsys, check, lambda *args: "a string", "not quite")


@pytest.mark.parametrize("check", CHOICE_CHECKERS, ids=lambda c: c.__name__)
def test_a_prediction_not_answered_or_not_a_choice_is_explained(capsys, check):
    fails_with(capsys, check, ..., "not answered yet")
    fails_with(capsys, check, None, "not answered yet")
    fails_with(capsys, check, "maybe", "'maybe' is not one of the choices")
    fails_with(capsys, check, ["uniform"], "is not one of the choices")  # not even a string: no crash


def test_the_exercises_import_only_from_the_core():
    tree = ast.parse((ROOT / "kd_utils" / "exercises" / "__init__.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any("extras" in (name or "") for name in imported), imported
    assert imported <= {"__future__", "torch", "torch.nn.functional", "losses", "metrics", "temperature"}, imported


# ---------------------------------------------------------- 01: softmax with temperature

@pytest.mark.parametrize("wrong, hint", [
    (lambda z, T: torch.softmax(z, dim=-1), "divide the logits by T first"),
    (lambda z, T: torch.softmax(z * T, dim=-1), "you multiplied by T"),
    (lambda z, T: torch.softmax(z / T, dim=0), "wrong dimension"),
    (lambda z, T: torch.softmax(z, dim=-1) / T, "before the softmax"),
    (lambda z, T: torch.exp(z / T), "must be normalised"),
], ids=["forgot-T", "times-T", "wrong-axis", "divide-probabilities", "unnormalised"])
def test_softmax_mistakes_get_their_own_hint(capsys, wrong, hint):
    is_a_known_mistake(capsys, ex.check_softmax_with_temperature, wrong, hint)


def test_a_naive_softmax_overflows_on_large_logits_and_is_told_to_subtract_the_largest(capsys):
    def naive(z, T):
        e = torch.exp(z / T)
        return e / e.sum(-1, keepdim=True)
    out = fails_with(capsys, ex.check_softmax_with_temperature, naive,
                     "large logits", "nan or inf", "subtract the largest logit")
    assert "T = 1;" not in out  # it passed the ordinary inputs before failing


def test_a_wrong_shape_is_reported_as_a_shape(capsys):
    fails_with(capsys, ex.check_softmax_with_temperature, lambda z, T: torch.softmax(z / T, -1).flatten(),
               "the shape is (40,), expected (4, 10)")


def test_a_wrong_high_temperature_prediction_shows_the_answer_and_the_evidence(capsys):
    fails_with(capsys, ex.check_high_temperature_prediction, "one-hot", "The answer is 'uniform'", "T=1000")


def test_notebook_01s_open_exercises_have_the_numbers_the_answer_notes_quote():
    shares = {T: round(S01.teacher_share(T), 3) for T in (1, 4, 20)}
    without = {T: round(S01.teacher_share(T, t_squared=False), 4) for T in (1, 4, 20)}
    assert shares == {1: 0.471, 4: 0.653, 20: 0.611} and without == {1: 0.4709, 4: 0.105, 20: 0.0039}
    gaps = [S01.uncentred_gaps(T) for T in (1, 10, 100, 1000)]
    assert all(1.2 < plain < 1.6 for plain, _ in gaps)  # against (z_s - z_t) / C: no longer shrinks
    assert [f"{centred:.1e}" for _, centred in gaps] == ["2.2e-01", "8.9e-02", "9.9e-03", "1.0e-03"]


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


def soft_targets_as_logits(teacher, images, T):
    teacher.eval()
    with torch.no_grad():
        return teacher(images)


@pytest.mark.parametrize("wrong, hint", [
    (soft_targets_without_eval, "call teacher.eval() first"),
    (soft_targets_with_grad, "torch.no_grad()"),
    (soft_targets_without_T, "divide the teacher's logits by T"),
    (soft_targets_as_logits, "these are raw logits"),
], ids=["no-eval", "with-grad", "no-T", "raw-logits"])
def test_soft_target_mistakes_get_their_own_hint(capsys, wrong, hint):
    out = fails_with(capsys, ex.check_soft_targets, wrong, "not quite", "On input", "Hint:")
    assert hint in out.split("Hint:")[1], out


def test_results_that_track_gradients_are_named_as_such(capsys):
    fails_with(capsys, ex.check_soft_targets, soft_targets_with_grad, "requires_grad=True")


def test_checking_soft_targets_leaves_the_global_random_state_alone():
    before = torch.random.get_rng_state()
    ex.check_soft_targets(S02.my_soft_targets)
    assert torch.equal(torch.random.get_rng_state(), before)


def entropy(p):
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


@pytest.mark.parametrize("wrong, hint", [
    (lambda p: int(entropy(p).argmin()), "most CONFIDENT"),
    (lambda p: int(p.max(1).values.argmax()), "that is the most confident image"),
    (lambda p: int(p.max(1).values.argmin()), "lowest top probability"),
], ids=["lowest-entropy", "highest-top-probability", "lowest-top-probability"])
def test_most_uncertain_mistakes_get_their_own_hint(capsys, wrong, hint):
    is_a_known_mistake(capsys, ex.check_most_uncertain, wrong, hint)


def test_most_uncertain_accepts_an_index_as_a_tensor(capsys):
    assert ex.check_most_uncertain(lambda p: entropy(p).argmax()) is True


# ---------------------------------------------------------- 03: the blended loss

def blended(s, t, y, T, a, teacher=F.softmax):
    target = a * teacher(t / T, dim=-1) + (1 - a) * F.one_hot(y, s.shape[1]).float()
    return -(target * F.log_softmax(s / T, dim=-1)).sum(-1)  # per image


def hard_labels_at_T1(s, t, y, T, a):
    soft = -(F.softmax(t / T, dim=-1) * F.log_softmax(s / T, dim=-1)).sum(-1).mean()
    return a * soft + (1 - a) * F.cross_entropy(s, y)


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, t, y, T, a: T ** 2 * blended(s, t, y, T, a).mean(), "no T^2 factor"),
    (hard_labels_at_T1, "scores them at temperature T too"),
    (lambda s, t, y, T, a: blended(s, t, y, T, 1 - a).mean(), "alpha and 1 - alpha are swapped"),
    (lambda s, t, y, T, a: blended(s, t, y, T, a).sum(), "summed over the batch"),
    (lambda s, t, y, T, a: blended(s, t, y, T, a, teacher=F.log_softmax).mean(), "not log_softmax"),
], ids=["T2-added", "hard-labels-at-T1", "alpha-on-the-wrong-term", "sum-over-batch", "log-softmax-of-teacher"])
def test_blended_loss_mistakes_get_their_own_hint(capsys, wrong, hint):
    is_a_known_mistake(capsys, ex.check_blended_loss, wrong, hint)


def test_the_feedback_names_the_input_that_failed(capsys):
    fails_with(capsys, ex.check_blended_loss, lambda s, t, y, T, a: T ** 2 * blended(s, t, y, T, a).mean(),
               "On input a batch of 8, T = 4, alpha = 0.7")


def test_the_blended_loss_is_checked_against_the_core_module():
    s, t, y = torch.randn(5, 10), torch.randn(5, 10), torch.randint(0, 10, (5,))
    from kd_utils import DistillationLoss
    assert torch.allclose(S03.my_blended_loss(s, t, y, 4.0, 0.3), DistillationLoss(4.0, 0.3, "blended")(s, t, y))


def test_temperature_one_prediction_uses_the_given_teacher_logits(capsys):
    confident = torch.tensor([[20.0, 0.0, 0.0], [0.0, 20.0, 0.0]])
    assert ex.check_temperature_one_prediction("sharper", confident) is True
    out = capsys.readouterr().out
    assert "your teacher's logits" in out and "T=1: mean probability on the non-top classes = 0.000" in out
    fails_with(capsys, ex.check_temperature_one_prediction, "softer", "The answer is 'sharper'")


# ---------------------------------------------------------- 04: fidelity and verdicts

def agree(s, t):
    return s.argmax(1) == t.argmax(1)


def wrong(logits, y):
    return logits.argmax(1) != y


@pytest.mark.parametrize("wrong_answer, hint", [
    (lambda s, t, y: agree(s, t).float().mean().item(), "agreement over all images"),
    (lambda s, t, y: (wrong(s, y) & wrong(t, y)).float().mean().item(), "pick different wrong classes"),
    (lambda s, t, y: int((agree(s, t) & wrong(t, y)).sum()), "that is a count"),
    (lambda s, t, y: 100 * (agree(s, t) & wrong(t, y)).float().mean().item(), "that is a percentage"),
    (lambda s, t, y: ((agree(s, t) & wrong(t, y)).sum() / wrong(t, y).sum()).item(), "number of the teacher's mistakes"),
], ids=["agreement-overall", "both-wrong-not-agreeing", "count", "percentage", "share-of-teacher-mistakes"])
def test_fidelity_gap_mistakes_get_their_own_hint(capsys, wrong_answer, hint):
    is_a_known_mistake(capsys, ex.check_fidelity_gap, wrong_answer, hint)


def test_fidelity_gap_accepts_a_tensor(capsys):
    assert ex.check_fidelity_gap(lambda s, t, y: (agree(s, t) & wrong(t, y)).float().mean()) is True


@pytest.mark.parametrize("answer", ["better", "worse"])
def test_a_wrong_paired_verdict_shows_the_answer_and_the_two_standard_error_rule(capsys, answer):
    fails_with(capsys, ex.check_paired_verdict, answer, "The answer is 'within noise'", "2 x 0.25 = 0.50 points",
               "[-0.1, +0.9] includes 0")


def test_the_paired_verdict_ignores_case_and_spaces(capsys):
    assert ex.check_paired_verdict("  Within Noise ") is True

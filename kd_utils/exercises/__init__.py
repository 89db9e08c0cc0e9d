"""Self-checking exercises for the end of notebooks 01-04, e.g.
`kd.exercises.check_softmax_with_temperature(my_softmax_with_temperature)`.

Each check_...() runs the learner's function (or answer) on several inputs, compares it with kd_utils' own
implementation and prints kind, specific feedback (which input, expected vs got, a hint naming the mistake when it
is a known one). It returns True or False, never raises on a learner's mistake, and says "not implemented yet" to a
stub (NotImplementedError, or None returned). Reference solutions are in the repository's solutions/ folder."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import DistillationLoss
from ..metrics import verdict
from ..temperature import entropy, softmax_with_temperature

OK, NO = "\u2713", "\u2717"  # check and cross marks (in common fonts, unlike emoji)

# --- the machinery: one checker for functions, one for predict-then-check questions ---
def _tensor(x):
    return x.detach().cpu().double() if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float64)

def _short(t):
    """A tensor as a few readable numbers."""
    more = ", ..." if t.numel() > 6 else ""
    return f"{t.item():.6g}" if t.ndim == 0 else \
        f"[{', '.join(f'{v:.4g}' for v in t.flatten()[:6].tolist())}{more}] (shape {tuple(t.shape)})"

def _difference(expected, got):
    """None when got matches expected, else a sentence saying how it differs."""
    if torch.is_tensor(got) and got.requires_grad:
        return "the result still tracks gradients (requires_grad=True)"
    try:
        got = _tensor(got)
    except (TypeError, ValueError, RuntimeError):
        return f"got a {type(got).__name__}, expected a tensor (or a number)"
    expected = _tensor(expected)
    if got.shape != expected.shape:
        return f"the shape is {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if not torch.isfinite(got).all():
        return f"the result contains nan or inf: {_short(got)}"
    if torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
        return None
    err = (got - expected).abs()
    at = f" at index {tuple(torch.nonzero(err == err.max())[0].tolist())}" if err.ndim else ""
    return f"expected {_short(expected)}\n     got      {_short(got)}\n     largest difference {err.max():.3g}{at}"

def _known_mistake(got, args, problem, mistakes):
    """The hint of the first known mistake that explains the learner's result. A mistake is a function
    giving the wrong result (or True when a state shows it, e.g. teacher.training), or words of the problem."""
    for wrong, hint in mistakes:
        try:
            with torch.no_grad():
                out = wrong in problem if isinstance(wrong, str) else wrong(*args)
            if out is True or (out is not False and _difference(out, got) is None):
                return hint
        except Exception:  # a mistake that cannot even run on this input
            pass
    return None

def _check(what, fn, cases, reference, mistakes=(), hint="", setup=None):
    """Run fn on each (description, args) case and compare it with reference(*args); setup(*args) runs before fn."""
    if not callable(fn):
        print(f"{NO} {what}: please pass your function itself (its name, without calling it), "
              f"got a {type(fn).__name__}.")
        return False
    for desc, args in cases:
        expected = reference(*args)
        if setup:
            setup(*args)
        try:
            got = fn(*[a.clone() if torch.is_tensor(a) else a for a in args])  # copies: ours stay intact
            if got is None:
                raise NotImplementedError
        except NotImplementedError:
            print(f"{NO} {what}: not implemented yet - replace the `...` / NotImplementedError with your code and run "
                  "this cell again.")
            return False
        except Exception as e:  # the learner's bug: report it, don't crash the notebook
            print(f"{NO} {what}: on input {desc}, your function raised {type(e).__name__}: {e}\n   Hint: {hint}")
            return False
        problem = _difference(expected, got)
        if problem:
            print(f"{NO} {what}: not quite. On input {desc}:\n     {problem}\n"
                  f"   Hint: {_known_mistake(got, args, problem, mistakes) or hint}")
            return False
    print(f"{OK} {what}: all {len(cases)} checks pass ({'; '.join(d for d, _ in cases)}). Well done!")
    return True

def _check_choice(what, answer, choices, correct, explain):
    """A predict-then-check question: answer is one of choices' keys."""
    key = str(answer).strip().lower()
    if key not in choices:
        unanswered = answer is None or answer is ... or not key
        print(f"{NO} {what}: " + ("not answered yet - set your prediction to" if unanswered else
                                  f"{answer!r} is not one of the choices; please use") +
              f" one of {', '.join(repr(c) for c in choices)}.")
        return False
    print(f"{OK} {what}: right, {choices[key]}." if key == correct else
          f"{NO} {what}: not this time - you predicted {key!r} ({choices[key]}).\n"
          f"   The answer is {correct!r}: {choices[correct]}.")
    print(explain)
    return key == correct

def _logits(*shape, scale=3.0, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale

# --- notebook 01: softmax with temperature ---
def check_softmax_with_temperature(fn):
    """fn(logits, T) -> probabilities over the last dimension."""
    z3 = torch.tensor([2.0, 1.0, 0.1])
    cases = [("3 logits [2, 1, 0.1], T = 1", (z3, 1.0)), ("3 logits [2, 1, 0.1], T = 4", (z3, 4.0)),
             ("a batch of 4 x 10 logits, T = 3", (_logits(4, 10), 3.0)),
             ("a batch of 1 x 10 logits, T = 20", (_logits(1, 10, seed=1), 20.0)),
             ("a batch of 4 x 10 logits, T = 0.5", (_logits(4, 10, seed=2), 0.5)),
             ("large logits [1000, 999, 990, -1000], T = 2", (torch.tensor([1000.0, 999.0, 990.0, -1000.0]), 2.0))]
    mistakes = [
        (lambda z, T: torch.softmax(z, -1), "this is the ordinary softmax: divide the logits by T first."),
        (lambda z, T: torch.softmax(z * T, -1), "you multiplied by T; divide the logits by T instead."),
        (lambda z, T: torch.softmax(z / T, 0), "the softmax runs over the wrong dimension: the classes are the "
                                              "last one, so use dim=-1."),
        (lambda z, T: torch.softmax(z, -1) / T, "divide the logits by T before the softmax, not the probabilities "
                                               "after it."),
        (lambda z, T: torch.exp(z / T), "the numbers must be normalised: divide exp(z/T) by its sum over the classes."),
    ]
    return _check("softmax_with_temperature", fn, cases, softmax_with_temperature, mistakes,
                  hint="p_i = exp(z_i / T) / sum_j exp(z_j / T) over the last dimension. With large logits, exp "
                       "overflows: subtract the largest logit first (or use torch.softmax(z / T, dim=-1)).")

def check_high_temperature_prediction(answer):
    """Predict, then check: what does softmax(z / T) become as T grows very large?"""
    choices = {"one-hot": "all probability on the largest logit",
               "uniform": "every class gets the same probability, 1 / number of classes",
               "unchanged": "the same probabilities as at T = 1"}
    z = torch.tensor([4.0, 2.0, 1.0, 0.0, -1.0])
    rows = "   ".join(f"T={T:g}: max p = {softmax_with_temperature(z, T).max():.3f}" for T in (1, 10, 100, 1000))
    explain = (f"   Check it yourself with logits {z.tolist()} (5 classes, uniform = 0.200):\n   {rows}\n"
               f"   z / T shrinks towards 0 for every class, and softmax(0, ..., 0) is uniform.")
    return _check_choice("high-temperature limit", answer, choices, "uniform", explain)

# --- notebook 02: the teacher ---
def check_soft_targets(fn):
    """fn(teacher, images, T) -> the teacher's soft targets, computed without gradients."""
    with torch.random.fork_rng(devices=[]):  # leave the learner's random state alone
        torch.manual_seed(0)  # a tiny teacher with dropout and batch norm: it answers differently in train mode
        teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.BatchNorm1d(16),
                                      torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(16, 5))
        teacher[2].running_mean.uniform_(-1, 1)  # non-trivial batch-norm statistics
        teacher[2].running_var.uniform_(0.5, 2)
    x = _logits(6, 1, 3, 4, scale=1.0, seed=3)
    cases = [(f"6 images, T = {T:g}", (teacher, x, T)) for T in (1.0, 4.0, 20.0)]
    cases.append(("a batch of 1 image, T = 4", (teacher, x[:1], 4.0)))
    mistakes = [
        ("requires_grad", "the teacher is frozen; compute its outputs inside `with torch.no_grad():`."),
        (lambda t, x, T: t.training, "the teacher was left in training mode (dropout and batch statistics change "
                                     "its answers): call teacher.eval() first."),
        (lambda t, x, T: torch.softmax(t.eval()(x), -1), "these are the T = 1 probabilities: divide the teacher's "
                                                         "logits by T."),
        (lambda t, x, T: t.eval()(x), "these are raw logits: turn them into probabilities with softmax(logits / T)."),
    ]
    return _check("soft_targets", fn, cases, lambda t, x, T: softmax_with_temperature(t.eval()(x), T).detach(),
                  mistakes, setup=lambda t, x, T: t.train(),  # as a teacher may be left after training
                  hint="teacher.eval(), then inside torch.no_grad(): softmax(teacher(images) / T, dim=-1).")

def check_most_uncertain(fn):
    """fn(probs) -> the index of the row (image) whose soft targets have the highest entropy."""
    peaked = torch.softmax(_logits(50, 10, scale=4.0, seed=31), -1)  # lowest entropy: row 5, top p: row 12
    # Row 7 has the lowest top probability but NOT the highest entropy: row 2 does.
    tricky = torch.tensor([[0.90, 0.05, 0.05, 0.00], [0.60, 0.20, 0.10, 0.10], [0.34, 0.22, 0.22, 0.22],
                           [0.70, 0.10, 0.10, 0.10], [0.97, 0.01, 0.01, 0.01], [0.50, 0.50, 0.00, 0.00],
                           [0.80, 0.10, 0.05, 0.05], [0.33, 0.33, 0.33, 0.01]])
    cases = [("50 random soft-target rows of 10 classes", (peaked,)),
             ("8 rows where the lowest top probability is not the highest entropy", (tricky,)),
             ("a batch of 1 row", (peaked[:1],))]
    mistakes = [
        (lambda p: entropy(p).argmin(), "that is the most CONFIDENT image (lowest entropy); you want the highest "
                                        "entropy."),
        (lambda p: p.max(1).values.argmax(), "that is the most confident image; you want the highest entropy."),
        (lambda p: p.max(1).values.argmin(), "you picked the lowest top probability: a fair measure of doubt too, "
                                             "but this exercise asks for the highest entropy, -sum p log p, which "
                                             "looks at all the classes."),
    ]
    return _check("most_uncertain", fn, cases, lambda p: entropy(p).argmax(), mistakes,
                  hint="compute the entropy of each row, -sum_c p_c log p_c (kd.entropy does it), and return the "
                       "index of the largest as an int.")

# --- notebook 03: distillation ---
def _blended(s, t, y, T, a, teacher=F.softmax, T_labels=None):
    """The blended loss of each image: -sum(target * log_softmax(s/T)), target = a softmax(t/T) + (1 - a) onehot(y).
    teacher=F.log_softmax or T_labels=1.0 give two known mistakes."""
    soft, hard = a * teacher(t / T, dim=-1), (1 - a) * F.one_hot(y, s.shape[-1]).to(s.dtype)
    return -(soft * F.log_softmax(s / T, -1) + hard * F.log_softmax(s / (T_labels or T), -1)).sum(-1)

def check_blended_loss(fn):
    """fn(student_logits, teacher_logits, labels, T, alpha) -> the seeds' blended loss (a scalar tensor), checked
    against kd.DistillationLoss(T, alpha, "blended"): -sum(target * log_softmax(s/T)) averaged over the batch, where
    target = alpha * softmax(t/T) + (1 - alpha) * onehot(y); no T^2."""
    table = [("a batch of 8, T = 4, alpha = 0.7", 8, 4.0, 0.7, 3.0),
             ("a batch of 8, T = 1, alpha = 0.5", 8, 1.0, 0.5, 3.0),
             ("a batch of 1, T = 20, alpha = 1 (teacher only)", 1, 20.0, 1.0, 3.0),
             ("a batch of 8, T = 4, alpha = 0 (hard labels only, still at T)", 8, 4.0, 0.0, 3.0),
             ("large logits (x30), a batch of 16, T = 2, alpha = 0.3", 16, 2.0, 0.3, 90.0)]
    cases = [(desc, (_logits(n, 10, scale=k, seed=i), _logits(n, 10, scale=k, seed=i + 100),
                     torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(i)), T, a))
             for i, (desc, n, T, a, k) in enumerate(table)]
    mistakes = [
        (lambda s, t, y, T, a: T * T * _blended(s, t, y, T, a).mean(), "the blended form has no T^2 factor (that "
         "belongs to Hinton's form): only the cross-entropy against the blended target."),
        (lambda s, t, y, T, a: _blended(s, t, y, T, a, T_labels=1.0).mean(), "the hard labels are scored at T = 1 "
         "here, but the blended form scores them at temperature T too: blend the targets first, then take ONE "
         "cross-entropy against log_softmax(s / T)."),
        (lambda s, t, y, T, a: _blended(s, t, y, T, 1 - a).mean(), "alpha and 1 - alpha are swapped: alpha weights "
         "the TEACHER's soft targets, 1 - alpha the one-hot labels."),
        (lambda s, t, y, T, a: _blended(s, t, y, T, a).sum(), "the loss is summed over the batch; average it over "
         "the images (.mean()), as cross_entropy does."),
        (lambda s, t, y, T, a: _blended(s, t, y, T, a, teacher=F.log_softmax).mean(), "the teacher's part of the "
         "target must be probabilities, softmax(t / T), not log_softmax: a target sums to 1 over the classes."),
    ]
    return _check("blended_loss", fn, cases, lambda s, t, y, T, a: DistillationLoss(T, a, "blended")(s, t, y),
                  mistakes, hint="target = alpha * softmax(t / T) + (1 - alpha) * F.one_hot(labels, C).float(); "
                                 "loss = -(target * F.log_softmax(s / T, dim=-1)).sum(-1).mean(); no T^2.")

def check_temperature_one_prediction(answer, teacher_logits=None):
    """Predict, then check: at T = 1 instead of T = 4, what happens to the teacher's soft targets?
    Pass the teacher's logits (e.g. on the test set) to check it on your own teacher."""
    choices = {"sharper": "closer to one-hot: the small probabilities on wrong classes (the 'dark knowledge') "
                          "shrink; what that does to a student is measured, not predicted (notebook 04b)",
               "softer": "flatter: more probability on the wrong classes",
               "same": "the temperature does not change the soft targets"}
    z = _tensor(teacher_logits if teacher_logits is not None else _logits(500, 10, scale=4.0, seed=5))
    lines = [f"T={T:g}: mean probability on the non-top classes = {1 - p.max(-1).values.mean():.3f}, "
             f"mean entropy = {entropy(p).mean():.3f} nats"
             for T, p in ((T, softmax_with_temperature(z, T)) for T in (1.0, 4.0))]
    source = "your teacher's logits" if teacher_logits is not None else "500 example logit vectors"
    explain = f"   Check it yourself on {source}:\n   " + "\n   ".join(lines)
    return _check_choice("soft targets at T = 1", answer, choices, "sharper", explain)

# --- notebook 04: analysis ---
def _copied(s, t, y):
    """The images where the student predicts the teacher's class and that class is wrong."""
    return (s.argmax(1) == t.argmax(1)) & (t.argmax(1) != y)

def check_fidelity_gap(fn):
    """fn(student_logits, teacher_logits, labels) -> the fraction (0..1) of images where the student agrees
    with the teacher but both are wrong: the teacher's mistakes the student copied (Stanton et al. 2021)."""
    y = torch.randint(0, 10, (40,), generator=torch.Generator().manual_seed(8))
    t = _logits(40, 10, seed=9) + 8 * F.one_hot(y, 10) * (torch.arange(40) < 24)[:, None]  # right on 24 or more
    s = t.clone()
    # On every third image the student goes its own way, and knows the right class on half of those.
    s[::3] = _logits(14, 10, seed=10) + 8 * F.one_hot(y[::3], 10) * (torch.arange(14) % 2)[:, None]
    k = int(torch.nonzero(t.argmax(1) != y)[0])  # an image the teacher gets wrong
    cases = [("40 images: the student copies 14 of the teacher's 21 mistakes", (s, t, y)),
             ("the student is the teacher with logits x3 (it copies every mistake)", (3 * t, t, y)),
             ("a batch of 1 image that both get wrong the same way", (2 * t[k:k + 1], t[k:k + 1], y[k:k + 1])),
             ("large logits (x100)", (100 * s, 100 * t, y))]
    mistakes = [
        (lambda s, t, y: (s.argmax(1) == t.argmax(1)).float().mean(), "that is the agreement over all images, "
         "right or wrong; count only the images where they agree AND the teacher is wrong."),
        (lambda s, t, y: ((s.argmax(1) != y) & (t.argmax(1) != y)).float().mean(), "that counts every image both "
         "get wrong, even when they pick different wrong classes; the student copied the mistake only when it "
         "predicts the teacher's class."),
        (lambda s, t, y: _copied(s, t, y).sum(), "that is a count; divide by the number of images to get a fraction."),
        (lambda s, t, y: 100 * _copied(s, t, y).float().mean(), "that is a percentage; return a fraction between 0 "
                                                                "and 1."),
        (lambda s, t, y: _copied(s, t, y).sum() / (t.argmax(1) != y).sum(), "you divided by the number of the "
         "teacher's mistakes (the share of its mistakes the student copies, a good question too); this exercise "
         "asks for a fraction of ALL the test images."),
    ]
    return _check("fidelity_gap", fn, cases, lambda s, t, y: _copied(s, t, y).float().mean(), mistakes,
                  hint="((student_logits.argmax(1) == teacher_logits.argmax(1)) & (teacher_logits.argmax(1) != "
                       "labels)).float().mean()")

def check_paired_verdict(answer):
    """Predict, then check: a distilled student scores +0.4 points above the hard-label student on the same test
    images, and the paired standard error of that difference is 0.25 points. "better", "worse" or "within noise"?"""
    difference, se = 0.4, 0.25
    choices = {"better": "the difference is more than 2 standard errors above 0: a real gain",
               "worse": "the difference is more than 2 standard errors below 0: a real loss",
               "within noise": "the difference is within 2 standard errors of 0: this test set cannot tell the two "
                               "students apart"}
    explain = (f"   The rule (kd.metrics.verdict): a difference is real only beyond 2 standard errors. Here "
               f"2 x {se} = {2 * se:.2f} points, more than the +{difference} measured: the interval {difference} ± "
               f"{2 * se:.2f} = [{difference - 2 * se:+.1f}, {difference + 2 * se:+.1f}] includes 0.\n"
               f"   'Within noise' does not mean equal: the same +{difference} would count with a standard error "
               f"under {difference / 2:.2f} (more test images, or more seeds).")
    return _check_choice("paired verdict", answer, choices, verdict(difference, se), explain)

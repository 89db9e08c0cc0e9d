"""Self-checking exercises for the end of notebooks 01-04.

Each check_...() takes the learner's function (or answer), runs it on several
inputs, compares with kd_utils' own implementation, prints kind, specific
feedback (which input, expected vs got, a hint), and returns True or False.
It never raises on a learner's mistake: an unfinished stub (NotImplementedError,
or a function that returns None) just prints "not implemented yet".

    import kd_utils as kd
    kd.exercises.check_softmax_with_temperature(my_softmax_with_temperature)

Reference solutions are in the repository's solutions/ folder, not here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import distillation_loss
from ..metrics import agreement, most_confused_pairs
from ..temperature import entropy, softmax_with_temperature

OK, NO = "\u2713", "\u2717"  # check and cross marks (in common fonts, unlike emoji)


class _NotDone(Exception):
    """The learner's function is still a stub."""


# --- shared machinery ----------------------------------------------------------

def _call(fn, args):
    """Run the learner's function on copies (so it cannot change our inputs)."""
    args = [a.clone() if torch.is_tensor(a) else a for a in args]
    try:
        out = fn(*args)
    except NotImplementedError:
        raise _NotDone from None
    if out is None:
        raise _NotDone
    return out


def _as_tensor(x):
    if torch.is_tensor(x):
        return x.detach().cpu().double()
    return torch.as_tensor(x, dtype=torch.float64)


def _short(t):
    """A tensor as a few readable numbers."""
    t = _as_tensor(t)
    if t.ndim == 0:
        return f"{t.item():.6g}"
    flat = [f"{v:.4g}" for v in t.flatten()[:6].tolist()]
    more = ", ..." if t.numel() > 6 else ""
    return f"[{', '.join(flat)}{more}] (shape {tuple(t.shape)})"


def _difference(expected, got, atol, rtol):
    """None when got matches expected, else a sentence saying how it differs."""
    try:
        got = _as_tensor(got)
    except (TypeError, ValueError, RuntimeError):
        return f"got a {type(got).__name__}, expected a tensor (or a number)"
    expected = _as_tensor(expected)
    if got.shape != expected.shape:
        return f"the shape is {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if not torch.isfinite(got).all():
        return f"the result contains nan or inf: {_short(got)}"
    if not torch.allclose(got, expected, atol=atol, rtol=rtol):
        err = (got - expected).abs()
        where = tuple(torch.nonzero(err == err.max())[0].tolist()) if err.ndim else ()
        at = f" at index {where}" if where else ""
        return (f"expected {_short(expected)}\n     got      {_short(got)}\n"
                f"     largest difference {err.max().item():.3g}{at}")
    return None


def _known_mistake(got, args, mistakes, atol, rtol):
    """The hint of the first known mistake whose output matches the learner's."""
    for wrong, hint in mistakes:
        try:
            if _difference(wrong(*args), got, atol, rtol) is None:
                return hint
        except Exception:  # a mistake that cannot even run on this input
            continue
    return None


def _not_callable(what, fn):
    print(f"{NO} {what}: please pass your function itself (its name, without calling it), "
          f"got a {type(fn).__name__}.")
    return False


def _not_done(what):
    print(f"{NO} {what}: not implemented yet - replace the `...` / NotImplementedError "
          f"with your code and run this cell again.")
    return False


def _check_function(what, fn, cases, reference, mistakes=(), hint="", atol=1e-5, rtol=1e-4):
    """Run fn on each (description, args) case and compare with reference."""
    if not callable(fn):
        return _not_callable(what, fn)
    for desc, args in cases:
        try:
            got = _call(fn, args)
        except _NotDone:
            return _not_done(what)
        except Exception as e:  # the learner's bug: report it, don't crash the notebook
            print(f"{NO} {what}: on input {desc}, your function raised "
                  f"{type(e).__name__}: {e}")
            if hint:
                print(f"   Hint: {hint}")
            return False
        problem = _difference(reference(*args), got, atol, rtol)
        if problem:
            print(f"{NO} {what}: not quite. On input {desc}:\n     {problem}")
            known = _known_mistake(got, args, mistakes, atol, rtol)
            print(f"   Hint: {known or hint}")
            return False
    print(f"{OK} {what}: all {len(cases)} checks pass "
          f"({'; '.join(d for d, _ in cases)}). Well done!")
    return True


def _check_choice(what, answer, choices, correct, explain):
    """A predict-then-check question: answer is one of choices' keys."""
    if answer is None or answer is ... or (isinstance(answer, str) and not answer.strip()):
        print(f"{NO} {what}: not answered yet - set your prediction to one of "
              f"{', '.join(repr(c) for c in choices)}.")
        return False
    key = str(answer).strip().lower()
    if key not in choices:
        print(f"{NO} {what}: {answer!r} is not one of the choices; please use one of "
              f"{', '.join(repr(c) for c in choices)}.")
        return False
    if key == correct:
        print(f"{OK} {what}: right, {choices[key]}.")
    else:
        print(f"{NO} {what}: not this time - you predicted {key!r} ({choices[key]}).\n"
              f"   The answer is {correct!r}: {choices[correct]}.")
    print(explain)
    return key == correct


def _logits(*shape, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


# --- notebook 01: softmax with temperature ---------------------------------------

def check_softmax_with_temperature(fn):
    """fn(logits, T) -> probabilities over the last dimension."""
    big = torch.tensor([1000.0, 999.0, 990.0, -1000.0])
    cases = [
        ("3 logits [2, 1, 0.1], T = 1", (torch.tensor([2.0, 1.0, 0.1]), 1.0)),
        ("3 logits [2, 1, 0.1], T = 4", (torch.tensor([2.0, 1.0, 0.1]), 4.0)),
        ("a batch of 4 x 10 logits, T = 3", (_logits(4, 10), 3.0)),
        ("a batch of 1 x 10 logits, T = 20", (_logits(1, 10, seed=1), 20.0)),
        ("a batch of 4 x 10 logits, T = 0.5", (_logits(4, 10, seed=2), 0.5)),
        ("large logits [1000, 999, 990, -1000], T = 2", (big, 2.0)),
    ]
    mistakes = [
        (lambda z, T: torch.softmax(z, -1), "this is the ordinary softmax: divide the logits by T first."),
        (lambda z, T: torch.softmax(z * T, -1), "you multiplied by T; divide the logits by T instead."),
        (lambda z, T: torch.softmax(z / T, 0), "the softmax runs over the wrong dimension: the classes "
                                              "are the last one, so use dim=-1."),
        (lambda z, T: torch.softmax(z, -1) / T, "divide the logits by T before the softmax, not the "
                                               "probabilities after it."),
        (lambda z, T: torch.exp(z / T), "the numbers must be normalised: divide exp(z/T) by its "
                                       "sum over the classes."),
    ]
    return _check_function(
        "softmax_with_temperature", fn, cases, softmax_with_temperature, mistakes,
        hint="p_i = exp(z_i / T) / sum_j exp(z_j / T) over the last dimension. With large logits, "
             "exp overflows: subtract the largest logit first (or use torch.softmax(z / T, dim=-1)).")


def check_high_temperature_prediction(answer):
    """Predict, then check: what does softmax(z / T) become as T grows very large?"""
    choices = {
        "one-hot": "all probability on the largest logit",
        "uniform": "every class gets the same probability, 1 / number of classes",
        "unchanged": "the same probabilities as at T = 1",
    }
    z = torch.tensor([4.0, 2.0, 1.0, 0.0, -1.0])
    rows = "   ".join(f"T={T:g}: max p = {softmax_with_temperature(z, T).max():.3f}"
                      for T in (1, 10, 100, 1000))
    explain = (f"   Check it yourself with logits {z.tolist()} (5 classes, uniform = 0.200):\n   {rows}\n"
               f"   z / T shrinks towards 0 for every class, and softmax(0, ..., 0) is uniform.")
    return _check_choice("high-temperature limit", answer, choices, "uniform", explain)


# --- notebook 02: the teacher ----------------------------------------------------

def _toy_teacher():
    """A tiny network with dropout and batch norm: it answers differently in train mode."""
    with torch.random.fork_rng(devices=[]):  # leave the learner's random state alone
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.BatchNorm1d(16),
                                  torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(16, 5))
        with torch.no_grad():  # non-trivial batch-norm statistics
            net[2].running_mean.uniform_(-1, 1)
            net[2].running_var.uniform_(0.5, 2)
    return net


def _reference_soft_targets(teacher, images, T):
    teacher.eval()
    with torch.no_grad():
        return softmax_with_temperature(teacher(images), T)


def check_soft_targets(fn):
    """fn(teacher, images, T) -> the teacher's soft targets, computed without gradients."""
    if not callable(fn):
        return _not_callable("soft_targets", fn)
    images = _logits(6, 1, 3, 4, scale=1.0, seed=3)
    cases = [(f"6 images, T = {T:g}", T) for T in (1.0, 4.0, 20.0)] + [("a batch of 1 image, T = 4", 4.0)]
    teacher = _toy_teacher()
    for desc, T in cases:
        x = images[:1] if "batch of 1" in desc else images
        teacher.train()  # as a teacher may be left after training: the learner must switch it
        try:
            got = _call(fn, (teacher, x, T))
            left_training = teacher.training  # read before our reference switches it
        except _NotDone:
            return _not_done("soft_targets")
        except Exception as e:
            print(f"{NO} soft_targets: on input {desc}, your function raised {type(e).__name__}: {e}\n"
                  f"   Hint: teacher.eval(), then inside torch.no_grad(): "
                  f"softmax(teacher(images) / T, dim=-1).")
            return False
        if torch.is_tensor(got) and got.requires_grad:
            print(f"{NO} soft_targets: on input {desc}, the result still tracks gradients "
                  f"(requires_grad=True).\n   Hint: the teacher is frozen; compute its outputs "
                  f"inside `with torch.no_grad():`.")
            return False
        expected = _reference_soft_targets(teacher, x.clone(), T)
        problem = _difference(expected, got, 1e-5, 1e-4)
        if problem:
            print(f"{NO} soft_targets: not quite. On input {desc}:\n     {problem}")
            with torch.no_grad():
                raw = teacher.eval()(x)
            if left_training:
                hint = ("the teacher was left in training mode (dropout and batch statistics change "
                        "its answers): call teacher.eval() first.")
            elif _difference(torch.softmax(raw, -1), got, 1e-5, 1e-4) is None:
                hint = "these are the T = 1 probabilities: divide the teacher's logits by T."
            elif _difference(raw, got, 1e-5, 1e-4) is None:
                hint = "these are raw logits: turn them into probabilities with softmax(logits / T)."
            else:
                hint = "teacher.eval(), then inside torch.no_grad(): softmax(teacher(images) / T, dim=-1)."
            print(f"   Hint: {hint}")
            return False
    print(f"{OK} soft_targets: all {len(cases)} checks pass (eval mode, no gradients, T = 1, 4, 20, "
          f"a batch of 1). Well done!")
    return True


def _most_uncertain(probs):
    return int(entropy(_as_tensor(probs)).argmax())


def check_most_uncertain(fn):
    """fn(probs) -> the index of the row (image) whose soft targets have the highest entropy."""
    g = torch.Generator().manual_seed(4)
    peaked = torch.softmax(torch.randn(50, 10, generator=g) * 4, -1)
    # Row 7 has the lowest top probability but NOT the highest entropy: row 2 does.
    tricky = torch.tensor([[0.90, 0.05, 0.05, 0.00], [0.60, 0.20, 0.10, 0.10],
                           [0.34, 0.22, 0.22, 0.22], [0.70, 0.10, 0.10, 0.10],
                           [0.97, 0.01, 0.01, 0.01], [0.50, 0.50, 0.00, 0.00],
                           [0.80, 0.10, 0.05, 0.05], [0.33, 0.33, 0.33, 0.01]])
    cases = [("50 random soft-target rows of 10 classes", (peaked,)),
             ("8 rows where the lowest top probability is not the highest entropy", (tricky,)),
             ("a batch of 1 row", (peaked[:1],))]

    def reference(probs):
        return torch.tensor(_most_uncertain(probs))

    def as_index(fn):
        return lambda probs: torch.tensor(int(fn(probs)))

    mistakes = [
        (as_index(lambda p: entropy(p).argmin()), "that is the most CONFIDENT image (lowest entropy); "
                                                 "you want the highest entropy."),
        (as_index(lambda p: p.max(1).values.argmax()), "that is the most confident image; you want "
                                                       "the highest entropy."),
        (as_index(lambda p: p.max(1).values.argmin()),
         "you picked the lowest top probability: a fair measure of doubt too, but this exercise asks "
         "for the highest entropy, -sum p log p, which looks at all the classes."),
    ]
    wrapped = fn if not callable(fn) else _index_or_none(fn)
    return _check_function("most_uncertain", wrapped, cases, reference, mistakes,
                           hint="compute the entropy of each row, -sum_c p_c log p_c (kd.entropy does "
                                "it), and return the index of the largest as an int.", atol=0, rtol=0)


def _index_or_none(fn):
    def wrapped(probs):
        out = fn(probs)
        return None if out is None else torch.tensor(int(out))
    return wrapped


# --- notebook 03: distillation ---------------------------------------------------

def _kl(s, t, T, reduction):
    if reduction == "mean":  # F.kl_div warns about "mean"; this is the same number
        return _kl(s, t, T, "sum") / s.numel()
    return F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction=reduction,
                    log_target=True)


def _hinton(s, t, y, T, alpha):
    return distillation_loss(s, t, y, T, alpha, formulation="hinton")


def check_distillation_loss(fn):
    """fn(student_logits, teacher_logits, labels, T, alpha) -> Hinton's loss (a scalar tensor)."""
    def case(n, T, alpha, seed, scale=3.0):
        s, t = _logits(n, 10, scale=scale, seed=seed), _logits(n, 10, scale=scale, seed=seed + 100)
        y = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(seed))
        return s, t, y, T, alpha

    cases = [
        ("a batch of 8, T = 4, alpha = 0.5", case(8, 4.0, 0.5, 0)),
        ("a batch of 8, T = 1, alpha = 0.5", case(8, 1.0, 0.5, 1)),
        ("a batch of 1, T = 20, alpha = 1 (teacher only)", case(1, 20.0, 1.0, 2)),
        ("a batch of 8, T = 4, alpha = 0 (hard labels only)", case(8, 4.0, 0.0, 3)),
        ("large logits (x30), a batch of 16, T = 2, alpha = 0.7", case(16, 2.0, 0.7, 4, scale=90.0)),
    ]
    ce = F.cross_entropy
    mistakes = [
        (lambda s, t, y, T, a: a * _kl(s, t, T, "batchmean") + (1 - a) * ce(s, y),
         "the soft term is missing its T^2 factor (Hinton multiplies it by T^2 so its gradients "
         "keep their size as T changes)."),
        (lambda s, t, y, T, a: a * T * T * _kl(s, t, T, "mean") + (1 - a) * ce(s, y),
         "the KL is averaged over classes as well as samples (reduction='mean'); use "
         "reduction='batchmean': sum over classes, mean over the batch."),
        (lambda s, t, y, T, a: a * T * T * _kl(s, t, T, "sum") + (1 - a) * ce(s, y),
         "the KL is summed over the batch (reduction='sum'); average it over the samples "
         "with reduction='batchmean', as cross_entropy does."),
        (lambda s, t, y, T, a: (1 - a) * T * T * _kl(s, t, T, "batchmean") + a * ce(s, y),
         "alpha and 1 - alpha are swapped: here alpha is the weight of the TEACHER (soft) term."),
        (lambda s, t, y, T, a: a * T * T * _kl(s, t, 1.0, "batchmean") + (1 - a) * ce(s, y),
         "the logits are not divided by T inside the soft term: use softmax(s / T) and softmax(t / T)."),
        (lambda s, t, y, T, a: a * T * T * _kl(t, s, T, "batchmean") + (1 - a) * ce(s, y),
         "the KL runs the wrong way: it is KL(teacher || student). With F.kl_div the first argument "
         "is the STUDENT's log-probabilities, the second the teacher's."),
        (lambda s, t, y, T, a: a * T * T * _kl(s, t, T, "batchmean") + (1 - a) * ce(s / T, y),
         "the hard cross-entropy uses T as well; it is computed at T = 1 (plain logits)."),
    ]
    return _check_function(
        "distillation_loss", fn, cases, _hinton, mistakes, atol=1e-4, rtol=1e-4,
        hint="alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) averaged over the batch, plus "
             "(1 - alpha) * cross_entropy(s, labels). F.kl_div(F.log_softmax(s / T, -1), "
             "F.log_softmax(t / T, -1), reduction='batchmean', log_target=True) is the KL.")


def check_temperature_one_prediction(answer, teacher_logits=None):
    """Predict, then check: at T = 1 instead of T = 4, what happens to the teacher's soft targets?

    Pass the teacher's logits (e.g. on the test set) to check it on your own teacher."""
    choices = {
        "sharper": "closer to one-hot: the small probabilities on wrong classes (the 'dark "
                   "knowledge') shrink, so distillation teaches little beyond the teacher's top class",
        "softer": "flatter: more probability on the wrong classes",
        "same": "the temperature does not change the soft targets",
    }
    z = _as_tensor(teacher_logits if teacher_logits is not None else _logits(500, 10, scale=4.0, seed=5))
    if z.ndim != 2 or z.shape[0] < 1:
        raise ValueError(f"teacher_logits must have shape (images, classes), got {tuple(z.shape)}")
    source = "your teacher's logits" if teacher_logits is not None else "500 example logit vectors"
    lines = []
    for T in (1.0, 4.0):
        p = softmax_with_temperature(z, T)
        rest = 1 - p.max(-1).values
        lines.append(f"T={T:g}: mean probability on the non-top classes = {rest.mean():.3f}, "
                     f"mean entropy = {entropy(p).mean():.3f} nats")
    explain = f"   Check it yourself on {source}:\n   " + "\n   ".join(lines)
    return _check_choice("distillation at T = 1", answer, choices, "sharper", explain)


# --- notebook 04: analysis -------------------------------------------------------

def check_most_confused_pair(fn):
    """fn(cm, classes) -> (true class name, predicted class name) of the largest off-diagonal cell."""
    classes = ["cat", "dog", "car", "truck"]
    cm1 = torch.tensor([[50, 30, 2, 1], [12, 60, 0, 3], [1, 0, 70, 9], [0, 2, 25, 80]])
    cm2 = cm1.T.contiguous()  # the same counts, but now the (dog, cat) cell is the largest
    cm3 = torch.tensor([[0.90, 0.02, 0.08], [0.30, 0.65, 0.05], [0.01, 0.04, 0.95]])  # normalised
    cases = [("a 4-class count matrix", (cm1, classes)),
             ("its transpose (true and predicted swapped)", (cm2, classes)),
             ("a 3-class row-normalised matrix", (cm3, classes[:3]))]

    def reference(cm, names):
        true, pred, _ = most_confused_pairs(cm, names, k=1)[0]
        return (true, pred)

    def pair(fn):
        def run(cm, names):
            out = fn(cm, names)
            if out is None:
                return None
            true, pred = out
            # Accept class indices too: compare names.
            return tuple(names[int(v)] if not isinstance(v, str) else v for v in (true, pred))
        return run

    return _check_pairs(pair(fn) if callable(fn) else fn, cases, reference)


def _check_pairs(fn, cases, reference):
    what = "most_confused_pair"
    if not callable(fn):
        return _not_callable(what, fn)
    for desc, (cm, names) in cases:
        try:
            got = _call(fn, (cm, names))
        except _NotDone:
            return _not_done(what)
        except Exception as e:
            print(f"{NO} {what}: on input {desc}, your function raised {type(e).__name__}: {e}\n"
                  f"   Hint: return a pair (true class, predicted class), e.g. ('cat', 'dog').")
            return False
        expected = reference(cm, names)
        if tuple(got) != expected:
            print(f"{NO} {what}: not quite. On input {desc}:\n     expected {expected}, got {tuple(got)}")
            if tuple(got) == expected[::-1]:
                hint = "right pair, wrong order: rows are the TRUE class, columns the PREDICTED one."
            elif got[0] == got[1]:
                hint = ("that is a diagonal cell (correct predictions); ignore the diagonal, e.g. "
                        "cm.fill_diagonal_(0) on a copy, before taking the largest cell.")
            else:
                hint = ("take the largest cell off the diagonal; its row is the true class and its "
                        "column the predicted one (divmod(flat_index, n_classes) gives both).")
            print(f"   Hint: {hint}")
            return False
    print(f"{OK} {what}: all {len(cases)} checks pass ({'; '.join(d for d, _ in cases)}). Well done!")
    return True


def check_agreement(fn):
    """fn(student_logits, teacher_logits) -> the fraction (0..1) of images where their top-1 classes agree."""
    s = _logits(40, 10, seed=6)
    t = s.clone()
    t[::3] = _logits(len(t[::3]), 10, seed=7)  # disagree on about a third
    cases = [("40 images, about a third disagree", (s, t)),
             ("the teacher's logits are 3x the student's (same ranking)", (s, 3 * s)),
             ("a batch of 1 image", (s[:1], t[:1])),
             ("large logits (x100)", (100 * s, 100 * t))]

    def reference(a, b):
        return torch.tensor(agreement(a, b))

    def number(fn):
        def run(a, b):
            out = fn(a, b)
            return None if out is None else torch.as_tensor(float(out))
        return run

    mistakes = [
        (lambda a, b: (a.argmax(1) == b.argmax(1)).sum().float(), "that is a count; divide by the "
                                                                 "number of images to get a fraction."),
        (lambda a, b: 100 * (a.argmax(1) == b.argmax(1)).float().mean(), "that is a percentage; "
                                                                        "return a fraction between 0 and 1."),
        (lambda a, b: (a.argmax(0)[: min(a.shape)] == b.argmax(0)[: min(a.shape)]).float().mean(),
         "the argmax runs over the wrong dimension: classes are dim 1."),
        (lambda a, b: (a == b).all(1).float().mean(), "compare the predicted classes (argmax), not "
                                                      "the logits themselves: logits can differ in "
                                                      "scale and still pick the same class."),
    ]
    return _check_function("agreement", number(fn) if callable(fn) else fn, cases, reference, mistakes,
                           hint="(student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean()",
                           atol=1e-6, rtol=0)

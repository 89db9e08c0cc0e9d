"""The experiment of notebooks 02-04 and the command line, as a few calls:

    s = settings(...)                      # parameters (profiles.py)
    data = load_data(s)                    # tensors on the device
    teacher = load_teacher(s, data)        # frozen
    students = distill(s, data, teacher)   # {alpha: (model, history)}, resumable
    rows = evaluate(s, data, teacher, students)
"""
from __future__ import annotations



from .checks import check_alpha, check_choice, check_temperature
from .data import load_dataset
from .metrics import summarize
from .storage import fingerprint, save_json
from .teachers import check_teacher_classes, dataset_runs_dir, get_teacher, state_dict_hash, teacher_outputs
from .training import TEACHER_MODES, predict, train_student


def load_data(s, root=None):
    p = s.profile
    return load_dataset(s.dataset, root).subset(p.train_subset, p.test_subset).to(s.device)


def load_teacher(s, data):
    teacher = get_teacher(data, s.teacher, profile=s.profile, seed=s.seed).to(s.device)
    return check_teacher_classes(teacher, data)


def dataset_key(s, data):
    """What cached teacher outputs depend on, besides the teacher itself."""
    return dict(dataset=data.name, profile_subset=[s.profile.train_subset, s.profile.test_subset],
                preprocessing="uint8, teacher's own normalisation, no augmentation")


def cached_teacher_logits(s, teacher, data, split="train"):
    x = data.x_train if split == "train" else data.x_test
    return teacher_outputs(teacher, x, cache_key=dict(dataset_key(s, data), split=split))


def default_teacher_mode(s):
    # GPU: the teacher sees each augmented batch (consistent teaching) - cheap there.
    # CPU: reuse outputs computed once on the clean images - 10x+ faster.
    return "online" if s.device.type == "cuda" else "cached"


def student_run_dir(s, data, alpha, teacher_hash, formulation, teacher_mode, temperature):
    p = s.profile
    config = dict(kind="student", dataset=data.name, n_train=len(data.x_train), n_test=len(data.x_test),
                  alpha=alpha, temperature=temperature, formulation=formulation,
                  teacher_mode=teacher_mode if alpha > 0 else None,
                  teacher=teacher_hash if alpha > 0 else None, seed=s.seed,
                  epochs=p.student_epochs, lr=p.student_lr, batch_size=p.batch_size)
    name = f"alpha{alpha:g}-T{temperature:g}-{formulation}-seed{s.seed}-{fingerprint(config)}"
    return dataset_runs_dir(data.name) / "students" / name, config


def distill(s, data, teacher, alphas=None, temperature=None, formulation="hinton", teacher_mode=None):
    """Train (or load, if already finished) one student per alpha.

    Same initial weights, same batches for every alpha: only alpha differs."""
    # Check everything before any work, so a typo fails in a second, not after a teacher pass.
    alphas = [check_alpha(a) for a in (s.alphas if alphas is None else alphas)]
    temperature = check_temperature(s.temperature if temperature is None else temperature)
    teacher_mode = check_choice("teacher_mode", teacher_mode or default_teacher_mode(s), TEACHER_MODES)
    check_teacher_classes(teacher, data)
    t_hash = state_dict_hash(teacher)
    logits = None
    if teacher_mode == "cached" and any(a > 0 for a in alphas):
        logits = cached_teacher_logits(s, teacher, data, "train")
    out = {}
    for alpha in alphas:
        run_dir, config = student_run_dir(s, data, alpha, t_hash, formulation, teacher_mode, temperature)
        out[alpha] = train_student(
            data, alpha, temperature, seed=s.seed, epochs=s.profile.student_epochs,
            teacher=teacher, teacher_logits=logits, teacher_mode=teacher_mode,
            formulation=formulation, lr=s.profile.student_lr, batch_size=s.profile.batch_size,
            run_dir=run_dir, config=config)
        out[alpha][0].run_dir = run_dir  # where its checkpoint and history live
    return out


def evaluate(s, data, teacher, students):
    """One row per model: accuracy on the test set, and fidelity to the teacher."""
    t_logits = cached_teacher_logits(s, teacher, data, "test")
    rows = [dict(model="teacher", **summarize(t_logits, None, data.y_test, data.num_classes))]
    for alpha, (student, _) in students.items():
        logits = predict(student, data.x_test)
        rows.append(dict(model=f"student alpha={alpha:g}", alpha=alpha,
                         **summarize(logits, t_logits, data.y_test, data.num_classes)))
    return rows


def format_table(rows):
    lines = [f"{'model':<22}{'test acc':>10}{'agree w/ T':>12}{'KL to T':>10}"]
    for r in rows:
        lines.append(f"{r['model']:<22}{r['accuracy']:>10.2%}"
                     + (f"{r['agreement']:>12.2%}{r['kl_to_teacher']:>10.3f}" if "agreement" in r else ""))
    return "\n".join(lines)


def save_results(s, rows, name="results"):
    path = dataset_runs_dir(s.dataset) / f"{name}-{s.profile.name}-seed{s.seed}.json"
    save_json(path, dict(settings=s.as_dict(), rows=rows))
    return path

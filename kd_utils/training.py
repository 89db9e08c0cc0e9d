"""Training loops for teachers and students, resumable and reproducible.

One loop (`fit`) serves both. What makes the three students of an experiment
comparable:
  * the student is built right after `torch.manual_seed(seed)`, so every alpha
    starts from identical weights;
  * each epoch's batch order and augmentation come from a generator seeded by
    (seed, epoch), so every alpha sees identical batches, and a resumed run
    sees exactly what an uninterrupted one would have.
A checkpoint is written (atomically) after every epoch. Re-running an
interrupted run continues from the last completed epoch; re-running a
finished run loads it instead of training again.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checks import check_alpha, check_choice, check_temperature
from .data import batch_indices, random_crop_flip
from .losses import check_labels, distillation_loss
from .models import make_student
from .storage import load_json, load_torch, save_json, save_torch

TEACHER_MODES = ("cached", "online")


def _epoch_generator(seed, epoch):
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def cpu_threads():
    """Intra-op threads kd_utils uses on the CPU: KD_THREADS, else half the cores.

    Why not torch's default (all cores): our models are small, so each op is
    short and threads spend much of it waiting for each other; and when anything
    else wants the cores (Jupyter, a browser, DataLoader workers) those waits
    turn into 5-10x slowdowns. Measured in benchmarks/README.md.
    """
    n = os.environ.get("KD_THREADS")
    if n not in (None, ""):
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"KD_THREADS must be a positive integer, got {n!r}")
        return int(n)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
    return max(1, cores // 2)


@contextlib.contextmanager
def _threads_for(device):
    """Use cpu_threads() while training/predicting on the CPU; restore after."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(cpu_threads())
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def predict(model, x, batch_size=1024, device=None):
    """Logits for all of x (float32, on x's device), in eval mode, batch by batch."""
    device = device or x.device
    was_training = model.training
    model.eval()
    out = []
    if torch.device(device).type == "cpu":
        # On a CPU, 1024-image batches overflow the caches: 256 ran ~2x faster here.
        batch_size = min(batch_size, 256)
    with _threads_for(device):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device, non_blocking=True)
            with _autocast(device):
                out.append(model(xb).float())
    model.train(was_training)
    return torch.cat(out).to(x.device) if out else torch.empty(0)


def _autocast(device):
    # bf16 autocast on CUDA: ~2x faster convs on recent GPUs, same accuracy here.
    dev = torch.device(device)
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")


def fit(model, data, batch_loss, *, epochs, seed, lr, batch_size=128, run_dir=None,
        augment=False, desc="training", config=None, progress=True):
    """Train `model` on data.x_train with batch_loss(model, xb, yb, idx) -> (loss, logits).

    Returns the history: one dict per epoch with loss, train and test accuracy.
    With run_dir, checkpoints every epoch and resumes / reuses (see module doc).
    """
    device = data.x_train.device
    run_dir = Path(run_dir) if run_dir else None
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history, start = [], 0
    if run_dir is not None:
        _check_config(run_dir, config)
        if _finished(run_dir):
            model.load_state_dict(load_torch(run_dir / "final.pt", map_location=device))
            if progress:
                print(f"[kd_utils] {desc}: reusing the finished run in {run_dir} (delete it to retrain)")
            return load_json(run_dir / "history.json")["epochs"]
        history, start = _resume(run_dir, model, opt, device, desc, epochs)

    bar = tqdm(total=(epochs - start) * _steps(data, batch_size), desc=desc, leave=True,
                 disable=not progress)  # sweeps show one bar for many runs
    try:
        for epoch in range(start, epochs):
            with _threads_for(device):
                history.append(_train_epoch(model, data, batch_loss, opt, seed, epoch, batch_size, augment, bar))
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", test_acc=f"{history[-1]['test_acc']:.3f}")
            if run_dir is not None:
                _save_checkpoint(run_dir, model, opt, history)
    except KeyboardInterrupt:
        done = len(history)
        where = f"; re-run to resume after epoch {done}" if run_dir else ""
        print(f"[kd_utils] {desc}: interrupted during epoch {done + 1}{where}")
        raise
    finally:
        bar.close()
    if run_dir is not None:
        # final.pt first, then the "finished" flag: a kill in between just resumes
        # from checkpoint.pt (already at the last epoch) and writes both again.
        save_torch(run_dir / "final.pt", model.state_dict())
        save_json(run_dir / "history.json", dict(epochs=history, finished=True))
        (run_dir / "checkpoint.pt").unlink(missing_ok=True)
    return history


def _steps(data, batch_size):
    return (len(data.x_train) + batch_size - 1) // batch_size


def _train_epoch(model, data, batch_loss, opt, seed, epoch, batch_size, augment, bar):
    """One epoch. Everything random is seeded by (seed, epoch), so epoch k of a
    resumed run draws exactly what epoch k of an uninterrupted run drew."""
    device, n = data.x_train.device, len(data.x_train)
    t0 = time.perf_counter()
    g = _epoch_generator(seed, epoch)           # batch order and augmentation
    torch.manual_seed(seed * 1_000_003 + epoch)  # dropout, if any
    model.train()
    tot_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for idx in batch_indices(n, batch_size, g, device=device):
        xb, yb = data.x_train[idx], data.y_train[idx]
        if augment:
            xb = random_crop_flip(xb, g)
        with _autocast(device):
            loss, logits = batch_loss(model, xb, yb, idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # Accumulate on the device: no .item() sync per step.
        tot_loss += loss.detach() * len(idx)
        correct += (logits.argmax(1) == yb).sum()
        bar.update(1)
    test_acc = accuracy_of(model, data.x_test, data.y_test)
    return dict(epoch=epoch + 1, loss=tot_loss.item() / n, train_acc=correct.item() / n,
                test_acc=test_acc, seconds=round(time.perf_counter() - t0, 3))


def _finished(run_dir):
    h = run_dir / "history.json"
    return (run_dir / "final.pt").exists() and h.exists() and load_json(h).get("finished", False)


def _save_checkpoint(run_dir, model, opt, history):
    # The history travels inside the checkpoint, so weights and history can never
    # disagree about how many epochs are done; history.json is a readable copy.
    save_torch(run_dir / "checkpoint.pt", dict(model=model.state_dict(), optimizer=opt.state_dict(),
                                               epoch=len(history), history=history))
    save_json(run_dir / "history.json", dict(epochs=history))


def _resume(run_dir, model, opt, device, desc, epochs):
    """Continue from checkpoint.pt. With none yet, write an epoch-0 checkpoint, so
    a run interrupted during its first epoch restarts from the initial weights
    even if the caller passes the same (now half-trained) model object again."""
    path = run_dir / "checkpoint.pt"
    if not path.exists():
        _save_checkpoint(run_dir, model, opt, [])
        return [], 0
    ck = load_torch(path, map_location=device)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    if ck["epoch"]:
        print(f"[kd_utils] {desc}: resuming after epoch {ck['epoch']} of {epochs} from {run_dir}")
    history = ck.get("history")
    if history is None:  # checkpoints from before the history moved inside them
        history = load_json(run_dir / "history.json")["epochs"][:ck["epoch"]]
    return list(history), ck["epoch"]


def _check_config(run_dir, config):
    """A run folder belongs to one set of settings: never resume or reuse another's."""
    if config is None:
        return
    path = run_dir / "config.json"
    if path.exists():
        old = load_json(path)
        if old != json.loads(json.dumps(config, default=str)):
            diff = {k: (old.get(k), config.get(k)) for k in set(old) | set(config) if old.get(k) != config.get(k)}
            raise ValueError(f"{run_dir} holds a run with other settings ({diff}, as (found, wanted)); "
                             f"use another run_dir, or delete that folder to start over")
    else:
        save_json(path, config)


def accuracy_of(model, x, y):
    logits = predict(model, x)
    return (logits.argmax(1) == y).float().mean().item()


def train_teacher(model, data, *, epochs, seed=0, lr=2e-3, batch_size=128, run_dir=None,
                  augment=None, config=None):
    """Cross-entropy training of a teacher on data (see `fit`)."""
    augment = data.name == "cifar10" if augment is None else augment

    def batch_loss(m, xb, yb, idx):
        logits = m(xb)
        return F.cross_entropy(logits, yb), logits

    return fit(model, data, batch_loss, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
               run_dir=run_dir, augment=augment, desc="teacher", config=config)


def new_student(data, seed):
    """The student every alpha starts from: same seed, same initial weights."""
    torch.manual_seed(seed)
    return make_student(data.image_shape, data.num_classes, *data.stats())


def train_student(data, alpha, temperature, *, seed=0, epochs=2, teacher=None, teacher_logits=None,
                  teacher_mode="cached", formulation="hinton", lr=2e-3, batch_size=128,
                  run_dir=None, augment=None, config=None, student=None, progress=True):
    """Distil one student at (alpha, temperature).

    teacher_mode "cached": use teacher_logits[idx], computed once on the
      un-augmented training images (fast; with augmentation the teacher's
      output is for the clean image, not the crop the student sees).
    teacher_mode "online": run the frozen teacher on exactly the batch the
      student sees ("consistent teaching", Beyer et al. 2022).
    """
    alpha = check_alpha(alpha)
    temperature = check_temperature(temperature)
    check_choice("teacher_mode", teacher_mode, TEACHER_MODES)
    augment = data.name == "cifar10" if augment is None else augment
    if alpha > 0 and teacher_mode == "cached" and teacher_logits is None:
        raise ValueError("teacher_mode='cached' with alpha > 0 needs teacher_logits "
                         "(see teacher_outputs), or use teacher_mode='online' with a teacher")
    if alpha > 0 and teacher_mode == "online" and teacher is None:
        raise ValueError("teacher_mode='online' needs the teacher model")
    if teacher_logits is not None and teacher_logits.shape != (len(data.x_train), data.num_classes):
        raise ValueError(f"teacher_logits must have shape {(len(data.x_train), data.num_classes)} "
                         f"(one row per training image), got {tuple(teacher_logits.shape)}")
    check_labels(data.y_train, data.num_classes)  # once here, not on every step
    if teacher is not None:
        teacher.eval()
    student = student if student is not None else new_student(data, seed)

    def batch_loss(m, xb, yb, idx):
        logits = m(xb)
        t = None
        if alpha > 0:
            if teacher_mode == "online":
                with torch.no_grad():
                    t = teacher(xb).float()
            else:
                t = teacher_logits[idx]
        loss = distillation_loss(logits.float(), t, yb, temperature, alpha, formulation,
                                 check_label_values=False)
        return loss, logits

    history = fit(student, data, batch_loss, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                  run_dir=run_dir, augment=augment, desc=f"student alpha={alpha:g}", config=config,
                  progress=progress)
    return student, history

"""Training: one loop for teachers and students, resumable and reproducible.
Students are comparable because each is built right after torch.manual_seed(seed)
(same initial weights) and each epoch's order and augmentation come from a
generator seeded by (seed, epoch) (same batches, also after a resume). The students
of an experiment train in lockstep: one pass over the batches, the teacher's logits
for a batch fetched once (cached, or one online forward pass) and shared by all."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import runs
from .data import random_crop_flip
from .losses import check_labels, kd_loss
from .models import make_student
from .storage import state_dict_hash

@dataclass
class Trained:
    """A trained model and where it came from."""
    model: torch.nn.Module
    history: list = field(default_factory=list)
    folder: Path | None = None
    source: str = ""

    @cached_property
    def key(self):
        """A hash of the weights: what cached outputs and students depend on."""
        return state_dict_hash(self.model)[:16]

    def __str__(self):
        n = sum(p.numel() for p in self.model.parameters())
        return f"{self.source or type(self.model).__name__}; {n:,} parameters"

@dataclass
class Run:
    """One model being trained: its loss(logits, labels, teacher_logits), its
    optimizer and peak learning rate, its history, and (optionally) the folder it
    checkpoints to."""
    name: str
    model: torch.nn.Module
    loss: callable
    optimizer: torch.optim.Optimizer
    lr: float
    folder: Path | None = None
    history: list = field(default_factory=list)
    finished: bool = False
    uses_teacher: bool = True
    evaluations: int = 10  # about how often the test accuracy is measured (and a checkpoint written)

def new_run(name, model, loss, lr, folder=None, config=None, uses_teacher=True):
    """A Run with a fresh Adam optimizer; with a folder, resumed or reused from it."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    run = Run(name, model, loss, opt, lr, folder, uses_teacher=uses_teacher)
    if folder is not None:
        run.history, run.finished = runs.open_run(folder, config, model, opt)
    return run

def epoch_generator(seed, epoch):
    """The random stream of one epoch: batch order and augmentation."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)

def learning_rate(lr, epoch, epochs):
    """Cosine decay, one value per epoch: lr in epoch 0, falling to near 0 in the last.
    Without it the last epochs' wobble can be as large as the effects we compare."""
    return lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))

def autocast(device, enabled):
    # bf16 autocast: ~2x faster convolutions on recent GPUs; on the CPU, tests use it to
    # run exactly the configuration a CUDA user gets.
    dev = torch.device(device)
    return torch.autocast(dev.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()

def train(run_list, data, s, *, epochs=None, teacher=None, teacher_logits=None, augment=None, progress=True):
    """Train every unfinished run in run_list on data.x_train, together, with the
    seed, batch size, autocast and (by default) epochs and augmentation of settings s.

    teacher_logits: one row per training image (cached outputs), or None;
    teacher: a frozen model run on each (augmented) batch when no logits are given.
    augment: False, True (random crop and flip), or a function (images, generator).
    progress: True (a tqdm bar), False, or a function called as progress(epochs_done, epochs)."""
    todo = [r for r in run_list if not r.finished]
    if not todo:
        return
    epochs = epochs or s.profile.student_epochs
    augment = s.augment if augment is None else augment
    seed, batch_size, use_autocast = s.seed, s.profile.batch_size, s.autocast
    check_labels(data.y_train, data.num_classes)  # once here, not on every step
    device, n = data.x_train.device, len(data.x_train)
    need_teacher = any(r.uses_teacher for r in todo)
    first = min(len(r.history) for r in todo)
    steps = (n + batch_size - 1) // batch_size
    bar = tqdm(total=sum(epochs - len(r.history) for r in todo) * steps,
               desc=", ".join(r.name for r in todo), disable=progress is not True)
    for epoch in range(first, epochs):
        active = [r for r in todo if len(r.history) == epoch]  # a resumed run joins at its epoch
        t0 = time.perf_counter()
        g = epoch_generator(seed, epoch)
        torch.manual_seed(seed * 1_000_003 + epoch)  # dropout, if a model has any
        sums = {r.name: torch.zeros(2, device=device) for r in active}  # loss sum, correct
        for r in active:
            r.model.train()
            for group in r.optimizer.param_groups:
                group["lr"] = learning_rate(r.lr, epoch, epochs)
        for idx in torch.randperm(n, generator=g).to(device).split(batch_size):
            xb, yb = data.x_train[idx], data.y_train[idx]
            if augment:
                xb = random_crop_flip(xb, g) if augment is True else augment(xb, g)
            t = None
            if need_teacher and teacher_logits is not None:
                t = teacher_logits[idx]
            elif need_teacher and teacher is not None:
                with torch.no_grad(), autocast(device, use_autocast):
                    t = teacher(xb).float()
            for r in active:
                with autocast(device, use_autocast):
                    logits = r.model(xb)
                loss = r.loss(logits.float(), yb, t)
                r.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                r.optimizer.step()
                # Sum on the device: no .item() (a GPU sync) per step.
                sums[r.name] += torch.stack([loss.detach() * len(idx), (logits.argmax(1) == yb).sum()])
                bar.update(1)
        for r in active:
            loss_sum, correct = sums[r.name].tolist()
            if not torch.isfinite(torch.tensor(loss_sum)):
                bar.close()
                raise FloatingPointError(f"{r.name}: the training loss became {loss_sum} in epoch {epoch + 1}, "
                                         f"so training stopped and nothing of that epoch was saved. Lower the "
                                         f"learning rate, or use a temperature nearer 1-20")
            # Test accuracy and a checkpoint r.evaluations times a run (every epoch in short runs):
            # with a few hundred images, doing both every epoch would cost more than training.
            tested = (epoch + 1) % max(1, epochs // r.evaluations) == 0 or epoch + 1 == epochs
            r.history.append(dict(epoch=epoch + 1, loss=loss_sum / n, train_acc=correct / n,
                                  test_acc=accuracy_of(r.model, data.x_test, data.y_test, use_autocast)
                                  if tested else None,
                                  seconds=round((time.perf_counter() - t0) / len(active), 3)))
            if r.folder is not None and tested:
                runs.save_checkpoint(r.folder, r.model, r.optimizer, r.history)
        bar.set_postfix({r.name: f"{r.history[-1]['test_acc']:.3f}" for r in active
                         if r.history[-1]["test_acc"] is not None})
        if callable(progress):
            progress(epoch + 1, epochs)
    bar.close()
    for r in todo:
        r.finished = True
        if r.folder is not None:
            runs.finish(r.folder, r.model, r.history)

def predict(model, x, batch_size=None, use_autocast=False):
    """Logits for every image of x, in eval and inference mode (float32). Batches of 1024 on a
    GPU, of 32 on a CPU: a vgg13_bn teacher pass in 25-29% less time (benchmarks/README.md)."""
    batch_size = batch_size or (32 if x.device.type == "cpu" else 1024)
    was_training = model.training
    model.eval()
    with torch.inference_mode(), autocast(x.device, use_autocast):
        out = [model(xb).float() for xb in x.split(batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)  # cat outside inference mode: an ordinary tensor

def accuracy_of(model, x, y, use_autocast=False):
    return (predict(model, x, use_autocast=use_autocast).argmax(1) == y).float().mean().item()

def new_student(data, seed):
    """The student every alpha starts from: same seed, same initial weights."""
    torch.manual_seed(seed)
    return make_student(data.image_shape, data.num_classes, *data.stats()).to(data.x_train.device)

def cross_entropy_loss(logits, labels, teacher_logits=None):
    return F.cross_entropy(logits, labels)

def student_loss(s, alpha):
    """The loss of one student: Hinton's or the blended form at the settings' T."""
    return lambda logits, labels, t: kd_loss(logits, t, labels, s.temperature, alpha, s.formulation)

def distill(s, data, teacher, alphas=None, progress=True):
    """Train (or load, if finished) one student per alpha, in lockstep: same initial
    weights, same batches; only alpha differs. Returns {alpha: Trained}."""
    from .settings import check_alpha
    from .teachers import check_teacher_classes, teacher_outputs

    alphas = s.alphas if alphas is None else tuple(check_alpha(a) for a in alphas)
    check_teacher_classes(teacher.model, data)
    p = s.profile
    teacher_key = teacher.key if any(a > 0 for a in alphas) else None
    run_list = []
    for alpha in alphas:
        config = dict(kind="student", data=data.key, alpha=alpha, seed=s.seed, epochs=p.student_epochs,
                      lr=p.student_lr, batch_size=p.batch_size, augment=s.augment, autocast=s.autocast,
                      **(dict(temperature=s.temperature, formulation=s.formulation) if alpha > 0
                         or s.formulation == "blended" else {}),  # Hinton's alpha = 0 is plain CE: no T
                      **(dict(teacher=teacher_key, teacher_mode=s.teacher_mode) if alpha > 0 else {}))
        name = f"alpha{alpha:g}" + (f"-T{s.temperature:g}-{s.formulation}" if "temperature" in config else "")
        folder = runs.run_folder(s.dataset, "students", f"{name}-seed{s.seed}", config)
        run_list.append(new_run(f"alpha={alpha:g}", new_student(data, s.seed), student_loss(s, alpha),
                                p.student_lr, folder, config, uses_teacher=alpha > 0))
    cached = None
    if s.teacher_mode == "cached" and any(r.uses_teacher and not r.finished for r in run_list):
        cached = teacher_outputs(teacher.model, data.x_train)
    train(run_list, data, s, teacher=teacher.model, teacher_logits=cached, progress=progress)
    return {a: Trained(r.model, r.history, r.folder, f"student alpha={a:g}") for a, r in zip(alphas, run_list)}

def distill_seeds(s, data, teacher, seeds=(0, 1, 2), labels=None, epochs=None):
    """distill() once per seed: {seed: {alpha: Trained}}. Seeds change the initial
    weights and the batch order, so their spread is the training noise.
    labels: the students see only a class-balanced subset of that many labelled
    training images (the same for every seed); the teacher keeps what it learned
    from all of them. epochs: instead of the profile's (few images need more)."""
    if labels is not None:
        data = data.subset(labels)
    p = s.profile if epochs is None else replace(s.profile, student_epochs=epochs)
    return {seed: distill(replace(s, seed=seed, profile=p), data, teacher) for seed in seeds}

"""Training: one loop for teachers and students, resumable and reproducible.

Read it top to bottom: `distill` builds one student per alpha and hands them to `fit`, the
one function that turns models and a loss into trained runs (each in a folder named after
everything it depends on: reused when finished, resumed when interrupted); `train` is the
loop itself. Students are comparable because each is built right after
torch.manual_seed(seed) (same initial weights) and each epoch's order and augmentation
come from a generator seeded by (seed, epoch) (same batches, also after a resume). The
students of an experiment train in lockstep: one pass over the batches, the teacher's
logits for a batch fetched once (cached, or one online forward pass) and shared by all."""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import runs
from .data import random_crop_flip
from .losses import DistillationLoss
from .models import make_student
from .storage import CorruptFileError, content_hash, load_torch, save_torch

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
        return content_hash(self.model.state_dict())[:16]

    def __str__(self):
        return f"{self.source or type(self.model).__name__}; {sum(p.numel() for p in self.model.parameters()):,} parameters"

def distill(s, data, teacher, labels=None, epochs=None, progress=True):
    """One student per alpha of s (same initial weights, same batches: only alpha differs),
    trained or reloaded. labels: train on a class-balanced subset of that many labelled
    images (the teacher keeps what it learned from all). Returns {alpha: Trained}."""
    data = data.subset(labels) if labels else data
    models = {}
    for alpha in s.alphas:
        loss = DistillationLoss(s.temperature, alpha, s.formulation)
        name = f"alpha{alpha:g}" + (f"-T{s.temperature:g}-{s.formulation}" if "temperature" in loss.identity() else "")
        models[f"{name}-seed{s.seed}"] = (new_student(data, s.seed), loss)
    cached = s.teacher_mode == "cached" and any(alpha > 0 for alpha in s.alphas)
    trained = fit(s, data, models, kind="students", epochs=epochs or s.profile.student_epochs, lr=s.profile.student_lr,
                  teacher=teacher, teacher_logits=teacher_outputs(s, teacher, data.x_train) if cached else None,
                  augment=s.augment, progress=progress)
    return dict(zip(s.alphas, trained.values()))

def new_student(data, seed):
    """The student every alpha starts from: same seed, same initial weights."""
    torch.manual_seed(seed)
    return make_student(data).to(data.x_train.device)

@dataclass
class Run:
    """One model being trained, and the folder it checkpoints to (None: not saved)."""
    name: str
    model: torch.nn.Module
    loss: torch.nn.Module           # called as loss(logits, teacher_logits, labels)
    optimizer: torch.optim.Optimizer
    lr: float
    folder: Path | None = None
    history: list = field(default_factory=list)
    finished: bool = False
    teacher_logits: torch.Tensor | None = None  # this run's cached targets, one row per training image

def fit(s, data, models, *, kind, epochs, lr, teacher=None, teacher_logits=None, augment=False,
        optimizer="adam", config=None, evaluations=10, progress=True):
    """Train {name: (model, loss)} together on data, or reload them: returns {name: Trained}.

    teacher: a Trained teacher, run on every batch unless teacher_logits (one row per
    training image, or {name: rows}) are given. augment: False, True (crops and flips) or a
    function (images, generator). kind: the runs/ subfolder (None: nothing saved).
    config: anything else the runs depend on. This is where a run's identity is written."""
    run_list = []
    for name, (model, loss) in models.items():
        logits = teacher_logits.get(name) if isinstance(teacher_logits, dict) else teacher_logits
        ident = dict(kind=kind, data=data.key, seed=s.seed, epochs=epochs, lr=lr, batch_size=s.profile.batch_size,
                     optimizer=optimizer, augment=getattr(augment, "__name__", augment), **loss.identity(),
                     **(config or {}))
        if loss.uses_teacher and teacher is not None:
            ident.update(teacher=teacher.key, teacher_mode="online" if logits is None else "cached")
        opt = (torch.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam" else
               torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4))
        run = Run(name, model, loss, opt, lr, teacher_logits=logits)
        if kind is not None:
            run.folder = runs.run_folder(s, data.name, kind, name, ident)
            run.history, run.finished = runs.open_run(run.folder, ident, model, opt)
        run_list.append(run)
    train(run_list, data, s, epochs=epochs, teacher=None if teacher is None else teacher.model, augment=augment,
          evaluations=evaluations, progress=progress)
    return {r.name: Trained(r.model, r.history, r.folder, f"{kind or 'model'} {r.name}") for r in run_list}

def epoch_generator(seed, epoch):
    """The random stream of one epoch: batch order and augmentation."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)

def learning_rate(lr, epoch, epochs):
    """Cosine decay, one value per epoch: lr in epoch 0, falling to near 0 in the last.
    Without it the last epochs' wobble can be as large as the effects we compare."""
    return lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))

def autocast(device, precision):
    """bf16 or fp16 autocast (fp16 needs a gradient scaler); fp32: none. On the CPU, tests
    use it to run exactly the configuration a GPU user gets."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

def train(run_list, data, s, *, epochs, teacher=None, augment=False, progress=True, evaluations=10):
    """Train every unfinished run together on data.x_train, with the seed, batch size,
    precision and threads of settings s. The test accuracy is measured (and a checkpoint
    written) `evaluations` times a run. progress: True (a bar), False, or progress(done, epochs)."""
    todo = [r for r in run_list if not r.finished]
    if not todo:
        return
    if s.device.type == "cpu":
        torch.set_num_threads(s.threads)  # here, for every loop alike: another count rounds differently
    labels_ok = len(data.y_train) and 0 <= data.y_train.min() and data.y_train.max() < data.num_classes
    if not labels_ok:  # checked once here (reading values waits for a GPU), not on every step
        raise ValueError(f"labels must be class indices in [0, {data.num_classes - 1}]")
    device, n, batch_size = data.x_train.device, len(data.x_train), s.profile.batch_size
    scalers = {r.name: torch.amp.GradScaler(device.type, enabled=s.precision == "fp16") for r in todo}
    steps = math.ceil(n / batch_size)
    bar = tqdm(total=sum(epochs - len(r.history) for r in todo) * steps, desc=", ".join(r.name for r in todo),
               disable=progress is not True)
    for epoch in range(min(len(r.history) for r in todo), epochs):
        active = [r for r in todo if len(r.history) == epoch]  # a resumed run joins at its epoch
        t0 = time.perf_counter()
        g = epoch_generator(s.seed, epoch)
        torch.manual_seed(s.seed * 1_000_003 + epoch)  # dropout, if a model has any
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
            if teacher is not None and any(r.loss.uses_teacher and r.teacher_logits is None for r in active):
                with torch.no_grad(), autocast(device, s.precision):
                    t = teacher(xb).float()
            for r in active:
                with autocast(device, s.precision):
                    logits = r.model(xb)
                loss = r.loss(logits.float(), t if r.teacher_logits is None else r.teacher_logits[idx], yb)
                r.optimizer.zero_grad(set_to_none=True)
                scalers[r.name].scale(loss).backward()
                scalers[r.name].step(r.optimizer)
                scalers[r.name].update()
                # Summed on the device: no .item() (a GPU sync) per step.
                sums[r.name] += torch.stack([loss.detach() * len(idx), (logits.argmax(1) == yb).sum()])
                bar.update(1)
        for r in active:
            loss_sum, correct = sums[r.name].tolist()
            if not math.isfinite(loss_sum):
                bar.close()
                raise FloatingPointError(f"{r.name}: the training loss became {loss_sum} in epoch {epoch + 1}, so "
                                         f"training stopped and nothing of that epoch was saved. Lower the learning "
                                         f"rate, or use a temperature nearer 1-20")
            tested = (epoch + 1) % max(1, epochs // evaluations) == 0 or epoch + 1 == epochs
            acc = (predict(r.model, data.x_test, s.precision).argmax(1) == data.y_test).float().mean().item() \
                if tested else None
            r.history.append(dict(epoch=epoch + 1, loss=loss_sum / n, train_acc=correct / n, test_acc=acc,
                                  seconds=round((time.perf_counter() - t0) / len(active), 3)))
            if r.folder is not None and tested:
                runs.save_checkpoint(r.folder, r.model, r.optimizer, r.history)
        bar.set_postfix({r.name: f"{r.history[-1]['test_acc']:.3f}" for r in active if r.history[-1]["test_acc"]})
        if callable(progress):
            progress(epoch + 1, epochs)
    bar.close()
    for r in todo:
        r.finished = True
        if r.folder is not None:
            runs.finish(r.folder, r.model, r.history)

def predict(model, x, precision="fp32", batch_size=None):
    """Logits for every image of x, in eval and inference mode (float32). Batches of 1024 on a
    GPU, of 32 on a CPU: a vgg13_bn teacher pass in 25-29% less time (benchmarks/README.md)."""
    batch_size = batch_size or (32 if x.device.type == "cpu" else 1024)
    was_training = model.training
    model.eval()
    with torch.inference_mode(), autocast(x.device, precision):
        out = [model(xb).float() for xb in x.split(batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)  # cat outside inference mode: an ordinary tensor

def teacher_outputs(s, teacher, x):
    """The teacher's logits for every image of x, computed once and cached in runs/cache/,
    keyed by the hashes of the teacher's weights and of the images themselves (a stale
    cache can never be reused). A damaged cache file is rebuilt, with a warning."""
    path = s.runs_dir / "cache" / f"teacher-logits-{teacher.key}-{content_hash(x)[:16]}.pt"
    if path.exists():
        try:
            logits = load_torch(path, x.device)
            if logits.shape[0] == len(x) and torch.isfinite(logits).all():
                return logits
        except (CorruptFileError, AttributeError):
            pass
        warnings.warn(f"teacher-output cache {runs.shown(path)} is damaged or not a logits file; rebuilding it",
                      stacklevel=2)
    logits = predict(teacher.model, x)
    save_torch(path, logits.cpu())
    return logits

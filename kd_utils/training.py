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
from .models import count_parameters, make_student
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
        return f"{self.source or type(self.model).__name__}; {count_parameters(self.model):,} parameters"

def distill(s, data, teacher, labels=None, epochs=None, progress=True):
    """{alpha: Trained}: one student per alpha of s, same start and batches; labels: only that many labelled images."""
    data = data.subset(labels) if labels else data
    losses = {a: DistillationLoss(s.temperature, a, s.formulation) for a in s.alphas}
    models = {f"alpha{a:g}" + (f"-T{s.temperature:g}-{s.formulation}" if "temperature" in loss.identity() else "")
              + f"-seed{s.seed}": (new_student(data, s.seed), loss) for a, loss in losses.items()}
    cached = teacher_outputs(s, teacher, data.x_train) if s.teacher_mode == "cached" and max(s.alphas) > 0 else None
    trained = fit(s, data, models, kind="students", epochs=epochs or s.profile.student_epochs, lr=s.profile.student_lr,
                  teacher=teacher, teacher_logits=cached, augment=s.augment, progress=progress)
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
    scaler: object = None                       # set by train(): fp16's gradient scaler
    sums: torch.Tensor | None = None            # this epoch's loss sum and correct count

def fit(s, data, models, *, kind, epochs, lr, teacher=None, teacher_logits=None, augment=False,
        optimizer="adam", config=None, evaluations=10, progress=True):
    """Train {name: (model, loss)} together on data, or reload them: {name: Trained}. A run's folder, runs/<dataset>/
    <kind>/<name>-<hash>, is named after all it depends on. teacher: a Trained, run on every batch unless
    teacher_logits (a row per training image, or {name: rows}) are given. augment: True or f(images, generator)."""
    run_list = []
    for name, (model, loss) in models.items():
        logits = teacher_logits.get(name) if isinstance(teacher_logits, dict) else teacher_logits
        opt = torch.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam" else torch.optim.SGD(
            model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        run_list.append(run := Run(name, model, loss, opt, lr, teacher_logits=logits))
        if kind is not None:
            ident = dict(kind=kind, data=data.key, seed=s.seed, epochs=epochs, lr=lr, batch_size=s.profile.batch_size,
                         optimizer=optimizer, augment=getattr(augment, "__name__", augment), **loss.identity(),
                         **(dict(teacher=teacher.key if teacher else content_hash(logits)[:16], teacher_mode="online"
                                 if logits is None else "cached") if loss.uses_teacher else {}), **(config or {}))
            run.folder = runs.run_folder(s, data, kind, name, ident)
            run.history, run.finished = runs.open_run(run.folder, ident, model, opt)
    train(run_list, data, s, epochs=epochs, teacher=teacher.model if teacher else None, augment=augment,
          evaluations=evaluations, progress=progress)
    return {r.name: Trained(r.model, r.history, r.folder, f"{kind or 'model'} {r.name}") for r in run_list}

def epoch_generator(seed, epoch):
    """The random stream of one epoch: batch order and augmentation."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)

def learning_rate(lr, epoch, epochs):
    """Cosine decay, one value per epoch, from lr to near 0: else the last epochs' wobble rivals the effects we compare."""
    return lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))

def autocast(device, precision):
    """bf16 or fp16 autocast (fp16 needs a gradient scaler), or none (fp32). Tests force each on the CPU."""
    dtype = dict(bf16=torch.bfloat16, fp16=torch.float16).get(precision)
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype else contextlib.nullcontext()

def train(run_list, data, s, *, epochs, teacher=None, augment=False, progress=True, evaluations=10):
    """The loop, for every unfinished run at once; a test and a checkpoint `evaluations` times a run."""
    todo, n, device = [r for r in run_list if not r.finished], len(data.x_train), data.x_train.device
    if todo and not 0 <= int(data.y_train.min()) <= int(data.y_train.max()) < data.num_classes:  # once, not per step
        raise ValueError(f"labels must be class indices from 0 to {data.num_classes - 1}")
    torch.set_num_threads(s.threads)  # here, for every loop alike: another thread count rounds differently
    bar = tqdm(total=sum(epochs - len(r.history) for r in todo) * math.ceil(n / s.profile.batch_size),
               disable=progress is not True or not todo)  # nothing to train: no empty bar
    for epoch in range(min((len(r.history) for r in todo), default=epochs), epochs):
        active = [r for r in todo if len(r.history) == epoch]  # a resumed run joins at its epoch
        t0, g = time.perf_counter(), epoch_generator(s.seed, epoch)
        online = teacher is not None and any(r.teacher_logits is None and r.loss.uses_teacher for r in active)
        torch.manual_seed(s.seed * 1_000_003 + epoch)  # dropout, if a model has any
        for r in active:
            r.model.train()
            r.sums = torch.zeros(2, device=device)  # loss sum and correct count, kept on the device: no sync a step
            r.scaler = r.scaler or torch.amp.GradScaler(device.type, enabled=s.precision == "fp16")  # fp16 only
            for group in r.optimizer.param_groups:
                group["lr"] = learning_rate(r.lr, epoch, epochs)
        for idx in torch.randperm(n, generator=g).to(device).split(s.profile.batch_size):
            xb, yb, t = data.x_train[idx], data.y_train[idx], None
            if augment:
                xb = augment(xb, g) if callable(augment) else random_crop_flip(xb, g)
            if online:  # the teacher on this very (augmented) batch, once for all the students
                with torch.no_grad(), autocast(device, s.precision):
                    t = teacher(xb).float()
            for r in active:
                with autocast(device, s.precision):
                    logits = r.model(xb).float()
                loss = r.loss(logits, t if r.teacher_logits is None else r.teacher_logits[idx], yb)
                r.optimizer.zero_grad()
                r.scaler.scale(loss).backward()
                r.scaler.step(r.optimizer)
                r.scaler.update()
                r.sums += torch.stack([loss.detach() * len(idx), (logits.argmax(1) == yb).sum()])
            bar.update(len(active))
        for r in active:
            loss_sum, correct = r.sums.tolist()
            if not math.isfinite(loss_sum):
                raise FloatingPointError(f"{r.name}: the training loss became {loss_sum} in epoch {epoch + 1}, so nothing "
                                         f"of it was saved; lower the learning rate, or use a temperature nearer 1-20")
            tested = (epoch + 1) % max(1, epochs // evaluations) == 0 or epoch + 1 == epochs
            r.history.append(dict(epoch=epoch + 1, loss=loss_sum / n, train_acc=correct / n, seconds=round(
                (time.perf_counter() - t0) / len(active), 3), test_acc=accuracy_of(r.model, data, s) if tested else None))
            r.finished = epoch + 1 == epochs  # the last epoch is always tested: its save marks the run finished
            if r.folder is not None and tested:
                runs.save_checkpoint(r.folder, r.model, r.optimizer, r.history, finished=r.finished)
        if callable(progress):
            progress(epoch + 1, epochs)
    bar.close()

def accuracy_of(model, data, s):
    """Test accuracy, a number from 0 to 1."""
    return (predict(model, data.x_test, s.precision).argmax(1) == data.y_test).float().mean().item()

def predict(model, x, precision="fp32", batch_size=None):
    """Logits (float32) in eval mode, batches of 32 on a CPU (vgg13_bn 25-29% faster, benchmarks/README.md), 1024 on a GPU."""
    model.eval()
    with torch.inference_mode(), autocast(x.device, precision):
        out = [model(xb).float() for xb in x.split(batch_size or (32 if x.device.type == "cpu" else 1024))]
    return torch.cat(out) if out else torch.empty(0)  # cat outside inference mode: an ordinary tensor

def teacher_outputs(s, teacher, x):
    """The teacher's logits for x, cached in runs/cache/ under the hashes of its weights and of x: never stale."""
    path = s.runs_dir / "cache" / f"teacher-logits-{teacher.key}-{content_hash(x)[:16]}.pt"
    try:
        if path.exists() and len(logits := load_torch(path, x.device)) == len(x) and torch.isfinite(logits).all():
            return logits
    except (CorruptFileError, TypeError):
        warnings.warn(f"teacher-output cache {runs.shown(path)} is damaged; rebuilding it", stacklevel=2)
    save_torch(path, (logits := predict(teacher.model, x)).cpu())
    return logits

"""Side by side, in one run: a tutorial-style distillation loop against kd_utils' path.

(a) reference: what typical tutorials write. A dataset that turns each image into a PIL
    image and transforms it (ToTensor -> Normalize, plus RandomCrop + RandomHorizontalFlip
    for CIFAR-shaped data), as torchvision's CIFAR10/FashionMNIST classes do, through a
    torch DataLoader, torch's default thread count, and the teacher's forward pass on
    every batch of every epoch, for every student, one student after another.
(b) kd_utils, through its public API: uint8 tensors in memory (on the device), batches by
    index, `kd.fit`'s loop; teacher outputs computed once (`kd.teacher_outputs`) and
    reused, or (online mode) one teacher forward per batch shared by the three students
    that `kd.distill` trains in lockstep; the alpha = 0 student needs no teacher at all.

Both use the same data, models, batch size, optimizer (Adam) and loss (`kd.DistillationLoss`),
so what differs is the data pipeline, the teacher's work and the thread setting.
Weights are random: speed does not depend on them.

    python benchmarks/benchmark_distillation.py --device cpu
    python benchmarks/benchmark_distillation.py --device cpu --data synthetic-cifar --teacher vgg13_bn \
        --train-subset 2560 --test-subset 512 --epochs 8
    python benchmarks/benchmark_distillation.py --device cuda --data synthetic-cifar --teacher vgg13_bn

Prints images/s, the three-student experiment's time, the ratios, peak memory, the
device and library versions; saves a JSON in benchmarks/results/.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

import kd_utils as kd
from kd_utils.settings import default_precision, default_threads
from kd_utils.storage import save_json

ROOT = Path(__file__).resolve().parent
ALPHAS = (0.0, 0.5, 1.0)
TARGETS_CPU = dict(steps_ratio=15.0, experiment_ratio=8.0)  # issue 14, CPU, synthetic-cifar + vgg13_bn


# ------------------------------------------------------------------ data, models

def synthetic_cifar(n_train, n_test, seed=0):
    """CIFAR-10-shaped random uint8 images: honest for throughput, meaningless for accuracy."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n_train + n_test, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    return kd.Dataset("synthetic-cifar", [str(i) for i in range(10)],
                      x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def load(args, s):
    if args.data == "fashion-mnist":
        return kd.load_dataset("fashion-mnist", s.data_dir).subset(args.train_subset, args.test_subset)
    return synthetic_cifar(args.train_subset or 50_000, args.test_subset or 10_000, args.seed)


def make_teacher(args, data):
    torch.manual_seed(args.seed)
    if args.teacher == "vgg13_bn":
        return kd.freeze(kd.vgg13_bn("chenyaofo", data.num_classes))
    return kd.freeze(kd.models.make_cnn_teacher(data))


class TutorialImages(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 / FashionMNIST do per image: array -> PIL -> transform."""

    def __init__(self, x, y, transform):
        x = x.permute(0, 2, 3, 1).numpy()  # HWC, as CIFAR10 stores it
        self.x = x[..., 0] if x.shape[-1] == 1 else x
        self.y = y.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.x[i])), self.y[i]


def reference_datasets(data, mean, std, augment):
    norm = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    aug = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    return (TutorialImages(data.x_train, data.y_train, transforms.Compose(aug + norm)),
            TutorialImages(data.x_test, data.y_test, transforms.Compose(norm)))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


LOADS = {}  # the 1-minute load average at the start and end of each timed part


@contextlib.contextmanager
def part(name):
    LOADS[name] = [round(os.getloadavg()[0], 2)]
    yield
    LOADS[name].append(round(os.getloadavg()[0], 2))


@contextlib.contextmanager
def threads(n):
    """Run with n torch intra-op threads (None: leave as is), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(n or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------ (a) reference

def reference_batches(ds, args, device, shuffle=True, forever=True):
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=shuffle, num_workers=args.workers,
                        pin_memory=device.type == "cuda")
    while True:
        for xb, yb in loader:
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        if not forever:
            return


def reference_step(student, opt, teacher, xb, yb, loss_fn, laps=None, device=None):
    """One tutorial step: teacher forward, student step, loss.item(). laps: a list to which
    the teacher's and the student's times are appended (synchronising at each boundary)."""
    t0 = time.perf_counter()
    with torch.no_grad():
        t = teacher.net(xb)  # the tutorial normalised already: the inner networks
    if laps is not None:
        sync(device)
        t1 = time.perf_counter()
    loss = loss_fn(student.net(xb), t, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    loss.item()  # tutorials log it every step
    if laps is not None:
        laps += [t1 - t0, time.perf_counter() - t1]


def reference_steps(args, data, teacher, train_ds, device, n_threads, breakdown=False):
    """Steady-state images/s of the tutorial loop; with breakdown, ms per batch spent
    waiting for the DataLoader, in the teacher, in the student step (an instrumented pass)."""
    with threads(n_threads):
        student = kd.new_student(data, args.seed).to(device)
        opt = torch.optim.Adam(student.parameters(), lr=args.lr)
        loss_fn = kd.DistillationLoss(args.temperature, 0.5)
        batches = reference_batches(train_ds, args, device)
        spent = np.zeros(3)
        for i in range(args.warmup + args.steps):
            if i == args.warmup:
                sync(device)
                start, spent[:] = time.perf_counter(), 0
            t0 = time.perf_counter()
            xb, yb = next(batches)
            laps = [] if breakdown else None
            if breakdown:
                sync(device)
                laps.append(time.perf_counter() - t0)
            reference_step(student, opt, teacher, xb, yb, loss_fn, laps, device)
            if breakdown:
                spent += laps
        sync(device)
        if breakdown:
            return {k: round(v / args.steps * 1e3, 3) for k, v in zip(("data", "teacher", "student"), spent)}
        return args.steps * args.batch_size / (time.perf_counter() - start)


def reference_experiment(args, data, teacher, train_ds, test_ds, device, n_threads):
    """Three students, one after another, N epochs each, test accuracy after every epoch."""
    with threads(n_threads):
        sync(device)
        t0 = time.perf_counter()
        accs = {}
        for alpha in ALPHAS:
            student = kd.new_student(data, args.seed).to(device)
            opt = torch.optim.Adam(student.parameters(), lr=args.lr)
            loss_fn = kd.DistillationLoss(args.temperature, alpha)
            for _ in range(args.epochs):
                student.train()
                for xb, yb in reference_batches(train_ds, args, device, forever=False):
                    reference_step(student, opt, teacher, xb, yb, loss_fn)
                student.eval()
                correct = 0
                with torch.no_grad():
                    for xb, yb in reference_batches(test_ds, args, device, shuffle=False, forever=False):
                        correct += (student.net(xb).argmax(1) == yb).sum().item()
                accs[alpha] = correct / len(test_ds)
        sync(device)
        return time.perf_counter() - t0, accs


# ------------------------------------------------------------- (b) kd_utils

def kd_settings(args, device):
    """kd_utils' settings for this benchmark. The flags are set on the result, so that a KD_*
    variable in the environment (which would beat a value given to kd.settings) cannot
    change what is measured."""
    s = kd.settings(dataset="fashion-mnist" if args.data == "fashion-mnist" else "cifar10", device=str(device),
                    verbose=False)
    profile = dataclasses.replace(s.profile, student_epochs=args.epochs, batch_size=args.batch_size,
                                  student_lr=args.lr)
    augment = args.teacher_mode == "online" and args.data == "synthetic-cifar"  # as kd.settings' "auto" decides
    return dataclasses.replace(s, profile=profile, teacher_mode=args.teacher_mode, seed=args.seed,
                               temperature=args.temperature, alphas=ALPHAS, augment=augment,
                               precision=default_precision(device),
                               threads=args.threads or default_threads())


def kd_steps(args, s, data, teacher, logits, channels_last=False, compile=False):
    """Steady-state images/s of kd.fit's loop (one student, alpha 0.5, nothing saved): a
    warm-up run of --warmup batches, then whole epochs until at least --steps batches, timed.
    Returns (images/s, warm-up seconds)."""
    model = kd.new_student(data, args.seed)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = torch.compile(model) if compile else model
    loss = kd.DistillationLoss(s.temperature, 0.5)
    small_test = dict(x_test=data.x_test[:1], y_test=data.y_test[:1])  # evaluation is not a step
    n = len(data.x_train)
    times = []
    for part in ("warmup", "timed"):
        size = min(n, args.warmup * args.batch_size) if part == "warmup" else n
        part_data = dataclasses.replace(data, x_train=data.x_train[:size], y_train=data.y_train[:size], **small_test)
        epochs = 1 if part == "warmup" else -(-args.steps * args.batch_size // n)
        sync(s.device)
        t0 = time.perf_counter()
        if size:
            kd.fit(s, part_data, {part: (model, loss)}, kind=None, epochs=epochs, lr=args.lr, teacher=teacher,
                   teacher_logits=None if logits is None else logits[:size], augment=s.augment, progress=False)
        sync(s.device)
        times.append(time.perf_counter() - t0)
    return epochs * n / times[1], times[0]


def kd_experiment(args, s, data, teacher):
    """The notebooks' path: kd.distill (the three students in lockstep, checkpoints and
    all) in a fresh runs folder, so the teacher pass (cached mode) is really computed;
    it is timed on its own first, and distill then finds it in the cache."""
    with tempfile.TemporaryDirectory() as tmp:
        s = dataclasses.replace(s, runs_dir=Path(tmp))
        sync(s.device)
        t0 = time.perf_counter()
        if s.teacher_mode == "cached":
            kd.teacher_outputs(s, teacher, data.x_train)
        sync(s.device)
        t_teacher = time.perf_counter() - t0
        students = kd.distill(s, data, teacher, progress=False)
        sync(s.device)
        total = time.perf_counter() - t0
    return total, t_teacher, {a: st.history[-1]["test_acc"] for a, st in students.items()}


# ---------------------------------------------------------------- reporting

def peak_rss_mib():
    # ru_maxrss is in KiB on Linux. Children: the largest DataLoader worker so far.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return dict(self_mib=round(own, 1), largest_child_mib=round(kids, 1))


def environment(device, default_threads):
    cpu = platform.processor()
    if Path("/proc/cpuinfo").exists():
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), cpu)
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    try:
        commit, dirty = git("rev-parse", "--short", "HEAD"), bool(git("status", "--porcelain", "--", "kd_utils", "benchmarks"))
    except OSError:
        commit, dirty = "unknown", None
    return dict(python=platform.python_version(), torch=torch.__version__, torchvision=torchvision.__version__,
                numpy=np.__version__, platform=platform.platform(), cpu=cpu, cpu_count=os.cpu_count(),
                torch_default_threads=default_threads, device=str(device), device_name=kd.device_name(device),
                commit=commit, uncommitted_changes=dirty, load_average_at_start=os.getloadavg(),
                **(dict(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
                   if device.type == "cuda" else {}))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "synthetic-cifar"])
    ap.add_argument("--steps", type=int, default=200, help="timed student steps per loop, at least (default 200)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per student in the experiment (default 2)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--train-subset", type=int, default=None,
                    help="training images (default 20000 for fashion-mnist, 0 = all 60000 as the cpu profile "
                         "trains; 50000 for synthetic-cifar)")
    ap.add_argument("--test-subset", type=int, default=None, help="test images (default: all 10000)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers for the reference (default 2)")
    ap.add_argument("--teacher", default="cnn", choices=["cnn", "vgg13_bn"],
                    help="cnn (the Fashion-MNIST teacher) or vgg13_bn (CIFAR's; random weights)")
    ap.add_argument("--teacher-mode", default="auto", choices=["auto", "cached", "online"],
                    help="kd_utils' teacher: auto = kd_utils' default (cached on CPU, online on CUDA)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU: kd_utils' torch threads (default: kd_utils' default, half the cores)")
    ap.add_argument("--compile", action="store_true", help="CUDA: also time a torch.compile'd student")
    ap.add_argument("--skip-experiment", action="store_true", help="only the steps comparison")
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<device>-<data>-<date>.json)")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is visible to torch here; use --device cpu")
    for name in ("steps", "epochs", "batch_size", "workers", "warmup", "threads"):
        value = getattr(args, name)
        if value is not None and value < (0 if name in ("workers", "warmup") else 1):
            ap.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    for name in ("train_subset", "test_subset"):
        if (getattr(args, name) or 0) < 0:
            ap.error(f"--{name.replace('_', '-')} must be 0 (all images) or a positive number of images, "
                     f"got {getattr(args, name)}")
    if args.teacher == "vgg13_bn" and args.data != "synthetic-cifar":
        ap.error("--teacher vgg13_bn takes 32x32 RGB images: use it with --data synthetic-cifar")
    if args.data == "fashion-mnist":  # 0 = all 60,000 images, as the cpu profile trains
        args.train_subset = 20_000 if args.train_subset is None else (args.train_subset or None)
    if args.teacher_mode == "auto":
        args.teacher_mode = "online" if args.device == "cuda" else "cached"
    return args


def main(argv=None):
    args = parse_args(argv)
    LOADS.clear()
    device = torch.device(args.device)
    default_threads = torch.get_num_threads()  # torch's own, before kd_utils' loop sets its count
    env = environment(device, default_threads)
    s = kd_settings(args, device)
    data = load(args, s)
    kd_threads = s.threads
    ref_threads = default_threads if device.type == "cpu" else None
    teacher = make_teacher(args, data).to(device)
    trained_teacher = kd.Trained(teacher, source="benchmark teacher")  # what kd.fit and kd.distill take
    # The tutorial normalises once, with the teacher's statistics for vgg13_bn, else the data's.
    mean, std = ((teacher.mean.flatten().tolist(), teacher.std.flatten().tolist()) if args.teacher == "vgg13_bn"
                 else data.stats())
    train_ds, test_ds = reference_datasets(data, mean, std, augment=args.data == "synthetic-cifar")
    dev_data = data.to(device)
    on_target = device.type == "cpu" and args.data == "synthetic-cifar" and args.teacher == "vgg13_bn"

    print(f"benchmark: {args.data}, {len(data.x_train):,} train / {len(data.x_test):,} test images, "
          f"batch {args.batch_size}, device {env['device_name']}"
          + ("" if device.type == "cuda" else f" ({env['cpu']})"))
    print(f"  torch {torch.__version__}, torchvision {torchvision.__version__}; torch threads: (a) "
          f"{torch.get_num_threads() if ref_threads is None else ref_threads}, (b) {kd_threads}; (a) DataLoader "
          f"num_workers={args.workers}; (b) teacher {s.teacher_mode}, augmentation {s.augment}, "
          f"precision {s.precision}; load average {os.getloadavg()[0]:.2f}")
    result = dict(args=vars(args), environment=env, settings=s.as_dict(),
                  dataset=dict(name=args.data, n_train=len(data.x_train), n_test=len(data.x_test)))

    # --- steady-state student steps (alpha = 0.5: both terms of the loss)
    logits = kd.predict(teacher, dev_data.x_train) if s.teacher_mode == "cached" else None
    with part("steps (b)"):
        kd_ips, kd_first = kd_steps(args, s, dev_data, trained_teacher, logits)
    mem_kd = peak_rss_mib()
    with part("steps (a)"):
        ref_ips = reference_steps(args, data, teacher, train_ds, device, ref_threads)
    steps = dict(reference_images_per_s=round(ref_ips, 1), kd_utils_images_per_s=round(kd_ips, 1),
                 ratio=round(kd_ips / ref_ips, 2), steps=args.steps, warmup=args.warmup, alpha=0.5,
                 reference_threads=ref_threads, kd_utils_threads=kd_threads if device.type == "cpu" else None)
    print(f"\nstudent training steps (alpha 0.5, at least {args.steps} steps x {args.batch_size} images, "
          f"after {args.warmup} warm-up steps):")
    print(f"  (a) reference  (DataLoader + per-image transforms, teacher every batch): {ref_ips:>10,.0f} images/s")
    print(f"  (b) kd_utils   (kd.fit: tensors, batches by index, teacher {s.teacher_mode}):  "
          f"{kd_ips:>10,.0f} images/s")
    print(f"  ratio (b)/(a): {kd_ips / ref_ips:.1f}x"
          + (f"   [CPU target >= {TARGETS_CPU['steps_ratio']:g}x]" if on_target else ""))
    # What bounds the ratio: caching and tensors can remove (a)'s data wait and teacher
    # forward, never its student step, which (b) runs with the same code.
    with part("steps (a), instrumented"):
        parts = reference_steps(args, data, teacher, train_ds, device, ref_threads, breakdown=True)
    kd_ms = args.batch_size / kd_ips * 1e3
    ceiling = sum(parts.values()) / parts["student"]
    steps.update(reference_ms_per_batch=parts, kd_utils_ms_per_batch=round(kd_ms, 3),
                 ceiling_if_b_were_only_a_student_step=round(ceiling, 2))
    print(f"  where (a)'s time goes, ms per batch (instrumented pass): DataLoader wait {parts['data']:.1f}, "
          f"teacher forward {parts['teacher']:.1f}, student step {parts['student']:.1f}; (b): {kd_ms:.1f} in all")
    print(f"  ceiling: if (b) were nothing but (a)'s student step, (b)/(a) would be "
          f"{sum(parts.values()):.1f} / {parts['student']:.1f} = {ceiling:.1f}x")
    if device.type == "cpu" and kd_threads != default_threads:
        # How much of the gap is the thread setting, and how much the pipeline and the teacher?
        with part("steps, threads swapped"):
            ref_same = reference_steps(args, data, teacher, train_ds, device, kd_threads)
        with part("steps, threads swapped (b)"):  # kd_utils' loop sets the count of its settings
            kd_default, _ = kd_steps(args, dataclasses.replace(s, threads=default_threads), dev_data,
                                     trained_teacher, logits)
        steps.update(reference_with_kd_threads_images_per_s=round(ref_same, 1),
                     kd_utils_with_default_threads_images_per_s=round(kd_default, 1))
        print(f"  threads swapped: (a) with {kd_threads}: {ref_same:,.0f} images/s, (b) with "
              f"{default_threads}: {kd_default:,.0f} images/s")
    if device.type == "cuda":  # precision / layout / compile variants of (b)
        variants = {}
        for name, kw in [("fp32", dict(precision="fp32")), ("bf16", {}), ("bf16+channels_last", dict(channels_last=True))] \
                + ([("bf16+channels_last+compile", dict(channels_last=True, compile=True))] if args.compile else []):
            s_var = dataclasses.replace(s, precision=kw.pop("precision", "bf16"))
            ips, first = kd_steps(args, s_var, dev_data, trained_teacher, logits, **kw)
            variants[name] = dict(images_per_s=round(ips, 1), warmup_seconds=round(first, 2))
            print(f"  (b) {name:<28} {ips:>10,.0f} images/s   (first {args.warmup} steps {first:.2f} s)")
        steps["cuda_variants"] = variants
    result["steps"] = steps

    # --- the whole three-student experiment
    if not args.skip_experiment:
        with part("experiment (b)"):
            kd_total, kd_teacher, kd_accs = kd_experiment(args, s, dev_data, trained_teacher)
        mem_kd = peak_rss_mib()
        with part("experiment (a)"):
            ref_total, ref_accs = reference_experiment(args, data, teacher, train_ds, test_ds, device, ref_threads)
        imgs = len(ALPHAS) * args.epochs * len(data.x_train)
        print(f"\nthree-student experiment (alphas {', '.join(f'{a:g}' for a in ALPHAS)}; {args.epochs} "
              f"epoch(s) each on {len(data.x_train):,} images; test accuracy after every epoch):")
        print(f"  (a) reference, one student after another: {ref_total:8.1f} s   "
              f"({imgs / ref_total:,.0f} student images/s overall)")
        print(f"  (b) kd.distill, three in lockstep:        {kd_total:8.1f} s   ({imgs / kd_total:,.0f} student "
              f"images/s overall, including the one-off teacher pass of {kd_teacher:.2f} s)")
        print(f"  speed-up (a)/(b): {ref_total / kd_total:.1f}x"
              + (f"   [CPU target >= {TARGETS_CPU['experiment_ratio']:g}x]" if on_target else ""))
        result["experiment"] = dict(
            alphas=list(ALPHAS), epochs=args.epochs, reference_seconds=round(ref_total, 2),
            kd_utils_seconds=round(kd_total, 2), kd_utils_teacher_pass_seconds=round(kd_teacher, 3),
            ratio=round(ref_total / kd_total, 2), kd_utils_loop="kd.distill (lockstep)",
            test_accuracy=dict(reference={str(a): round(v, 4) for a, v in ref_accs.items()},
                               kd_utils={str(a): round(v, 4) for a, v in kd_accs.items()}))

    mem_all = peak_rss_mib()
    result["peak_memory"] = dict(after_kd_utils=mem_kd, after_both=mem_all,
                                 note="one process runs (b) then (a): ru_maxrss after (b) is (b)'s peak; "
                                      "after both it is the larger of the two. Children are DataLoader workers.")
    print(f"\npeak resident memory: {mem_kd['self_mib']:.0f} MiB after (b); {mem_all['self_mib']:.0f} MiB "
          f"after (a) too (largest DataLoader worker {mem_all['largest_child_mib']:.0f} MiB)")
    if device.type == "cuda":
        result["peak_memory"]["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        print(f"peak CUDA memory allocated: {result['peak_memory']['cuda_max_allocated_mib']:.0f} MiB")
    env["load_average_at_end"] = os.getloadavg()
    result["load_average_per_part"] = dict(LOADS)  # other jobs on the machine change everything
    print("load average (1 min) at the start and end of each part: "
          + "; ".join(f"{k} {v[0]:.1f}-{v[-1]:.1f}" for k, v in LOADS.items()))
    result["notes"] = ("Timings on a shared machine: other processes may have been running "
                       "(see load averages). Weights are random; accuracies are only a sanity check.")
    now = datetime.datetime.now(datetime.timezone.utc)
    result["date"] = now.isoformat(timespec="seconds")
    out = Path(args.out) if args.out else ROOT / "results" / f"{args.device}-{args.data}-{now:%Y-%m-%dT%H%M}.json"
    save_json(out, result)  # atomic: an interrupted run leaves no half-written JSON
    print(f"saved {out}")
    return result


if __name__ == "__main__":
    main()

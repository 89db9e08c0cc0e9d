"""Side by side, in one run: a tutorial-style distillation loop against kd_utils' path.

(a) reference: what typical tutorials write. A torchvision dataset with per-image
    transforms (PIL -> ToTensor -> Normalize, plus RandomCrop + RandomHorizontalFlip
    for CIFAR-shaped data) through a torch DataLoader, and the teacher's forward pass
    on every batch of every epoch, for every student.
(b) kd_utils: uint8 tensors in memory (on the device), batches by index, batched
    augmentation, teacher outputs computed once and reused by every student; the
    alpha = 0 student needs no teacher at all.

Both use the same data, models (CNN teacher, LeNet student), batch size, optimizer
(Adam), loss (kd_utils.distillation_loss) and training-step code, so what differs is
the data pipeline and the teacher caching. Weights are random: speed does not depend
on them.

    python benchmarks/benchmark_distillation.py --device cpu
    python benchmarks/benchmark_distillation.py --device cuda --data synthetic-cifar --compile

Prints images/s, the three-student experiment's time, the ratios, peak memory, the
device and library versions; saves a JSON in benchmarks/results/.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

from kd_utils.data import Dataset, balanced_indices, batch_indices, data_dir, load_dataset, random_crop_flip
from kd_utils.losses import distillation_loss
from kd_utils.models import freeze, make_cnn_teacher, vgg13_bn
from kd_utils.storage import save_json
from kd_utils.teachers import teacher_outputs
from kd_utils.training import _threads_for, accuracy_of, cpu_threads, new_student, predict, train_student

ROOT = Path(__file__).resolve().parent
ALPHAS = (0.0, 0.5, 1.0)
TARGETS_CPU = dict(steps_ratio=15.0, experiment_ratio=8.0)


# ------------------------------------------------------------------ data

def synthetic_cifar(n_train, n_test, seed=0):
    """CIFAR-10-shaped random uint8 images: honest for throughput, meaningless for accuracy."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n_train + n_test, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    return Dataset("synthetic-cifar", [str(i) for i in range(10)],
                   x[:n_train], y[:n_train], x[n_train:], y[n_train:])


class TutorialCIFAR(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per image (HWC uint8 -> PIL -> transform).
    The real class needs the real files (it checks their MD5), so we mimic it."""

    def __init__(self, x, y, transform):
        self.x = x.permute(0, 2, 3, 1).numpy()  # HWC, as CIFAR10 stores it
        self.y = y.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.x[i])), self.y[i]


def reference_datasets(args, data, mean, std):
    """torchvision datasets with per-image transforms, holding the same images as `data`."""
    norm = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    if args.data == "fashion-mnist":
        tf = transforms.Compose(norm)
        train = torchvision.datasets.FashionMNIST(str(data_dir()), train=True, download=False, transform=tf)
        test = torchvision.datasets.FashionMNIST(str(data_dir()), train=False, download=False, transform=tf)
        # the same class-balanced subset kd_utils' profiles use
        if args.train_subset:
            train = Subset(train, balanced_indices(train.targets, args.train_subset).tolist())
        if args.test_subset:
            test = Subset(test, balanced_indices(test.targets, args.test_subset).tolist())
        return train, test
    aug = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    return (TutorialCIFAR(data.x_train, data.y_train, transforms.Compose(aug + norm)),
            TutorialCIFAR(data.x_test, data.y_test, transforms.Compose(norm)))


def load(args):
    if args.data == "fashion-mnist":
        # load_dataset also unpacks the IDX files into data/FashionMNIST/raw for torchvision
        return load_dataset("fashion-mnist").subset(args.train_subset, args.test_subset)
    return synthetic_cifar(args.train_subset or 50_000, args.test_subset or 10_000, args.seed)


def make_teacher(args, data):
    torch.manual_seed(args.seed)
    if args.teacher == "vgg13_bn":
        return freeze(vgg13_bn("chenyaofo", data.num_classes))
    return freeze(make_cnn_teacher(data.image_shape, data.num_classes, *data.stats()))


# ---------------------------------------------------------- shared step

def train_step(model, opt, xb, yb, t_logits, alpha, temperature, amp=False):
    """One student step; the same code for both loops."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        logits = model(xb)
    loss = distillation_loss(logits.float(), t_logits, yb, temperature, alpha)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), logits.detach()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------ (a) reference

def reference_loader(ds, args, device, shuffle):
    return DataLoader(ds, batch_size=args.batch_size, shuffle=shuffle, num_workers=args.workers,
                      pin_memory=device.type == "cuda")


def reference_batches(loader, device):
    """Endless (x, y) batches, epoch after epoch, as a tutorial's loop sees them."""
    while True:
        for xb, yb in loader:
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)


def reference_student(data, args, device):
    # new_student gives the same initial weights as kd_utils; the tutorial feeds
    # already-normalised floats, so it calls the inner network (no second normalisation).
    return new_student(data, args.seed).to(device)


def reference_steps(args, data, teacher, train_ds, device, threads=None):
    """Steady-state images/s of the tutorial loop (teacher forward on every batch).
    threads: torch intra-op threads for this measurement (default: torch's default)."""
    if threads is not None:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return reference_steps(args, data, teacher, train_ds, device)
        finally:
            torch.set_num_threads(before)
    student = reference_student(data, args, device)
    opt = torch.optim.Adam(student.parameters(), lr=args.lr)
    batches = reference_batches(reference_loader(train_ds, args, device, True), device)
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            sync(device)
            t0 = time.perf_counter()
        xb, yb = next(batches)
        with torch.no_grad():
            t = teacher.net(xb)
        loss, _ = train_step(student.net, opt, xb, yb, t, 0.5, args.temperature)
        loss.item()  # tutorials log loss.item() every step
    sync(device)
    return args.steps * args.batch_size / (time.perf_counter() - t0)


def reference_breakdown(args, data, teacher, train_ds, device):
    """Where the tutorial loop's time goes, per batch: waiting for the DataLoader, the
    teacher's forward pass, the student's step. A separate, instrumented pass (it
    synchronises at every boundary), so the plain images/s above stay unperturbed."""
    student = reference_student(data, args, device)
    opt = torch.optim.Adam(student.parameters(), lr=args.lr)
    batches = reference_batches(reference_loader(train_ds, args, device, True), device)
    spent = dict(data=0.0, teacher=0.0, student=0.0)
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            spent = dict.fromkeys(spent, 0.0)
        sync(device)
        t0 = time.perf_counter()
        xb, yb = next(batches)
        sync(device)
        t1 = time.perf_counter()
        with torch.no_grad():
            t = teacher.net(xb)
        sync(device)
        t2 = time.perf_counter()
        loss, _ = train_step(student.net, opt, xb, yb, t, 0.5, args.temperature)
        loss.item()
        t3 = time.perf_counter()
        spent["data"] += t1 - t0
        spent["teacher"] += t2 - t1
        spent["student"] += t3 - t2
    return {k: round(v / args.steps * 1e3, 3) for k, v in spent.items()}


def reference_experiment(args, data, teacher, train_ds, test_ds, device):
    """Three students, N epochs each, test accuracy after every epoch."""
    sync(device)
    t0 = time.perf_counter()
    train_loader = reference_loader(train_ds, args, device, True)
    test_loader = reference_loader(test_ds, args, device, False)
    accs = {}
    for alpha in ALPHAS:
        student = reference_student(data, args, device)
        opt = torch.optim.Adam(student.parameters(), lr=args.lr)
        for _ in range(args.epochs):
            student.train()
            running = 0.0
            for xb, yb in train_loader:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                with torch.no_grad():
                    t = teacher.net(xb)  # every batch, every epoch, every student
                loss, _ = train_step(student.net, opt, xb, yb, t, alpha, args.temperature)
                running += loss.item()
            student.eval()
            correct = 0
            with torch.no_grad():
                for xb, yb in test_loader:
                    correct += (student.net(xb.to(device)).argmax(1).cpu() == yb).sum().item()
            accs[alpha] = correct / len(test_ds)
    sync(device)
    return time.perf_counter() - t0, accs


# ------------------------------------------------------------- (b) kd_utils

def kd_batches(data, args):
    """Endless (idx, x, y) batches by index, with batched augmentation for CIFAR."""
    epoch = 0
    while True:
        g = torch.Generator().manual_seed(args.seed * 1_000_003 + epoch)
        for idx in batch_indices(len(data.x_train), args.batch_size, g, device=data.x_train.device):
            xb = data.x_train[idx]
            if args.augment:
                xb = random_crop_flip(xb, g)
            yield idx, xb, data.y_train[idx]
        epoch += 1


def kd_steps(args, data, teacher, logits, device, amp=False, channels_last=False, compile=False,
             kd_threads=True):
    """Steady-state images/s of kd_utils' loop: index, (augment), cached logits or online teacher.
    kd_threads: run under kd_utils' CPU thread setting (as fit does), else torch's default."""
    if kd_threads:
        with _threads_for(device):
            return kd_steps(args, data, teacher, logits, device, amp, channels_last, compile, False)
    student = new_student(data, args.seed).to(device)
    if channels_last:
        student = student.to(memory_format=torch.channels_last)
    model = torch.compile(student) if compile else student
    opt = torch.optim.Adam(student.parameters(), lr=args.lr)
    batches = kd_batches(data, args)
    sync(device)
    t_start = time.perf_counter()
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            sync(device)
            t0 = time.perf_counter()
        idx, xb, yb = next(batches)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        if args.teacher_mode == "online":
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                t = teacher(xb).float()
        else:
            t = logits[idx]
        train_step(model, opt, xb, yb, t, 0.5, args.temperature, amp=amp)
    sync(device)
    end = time.perf_counter()
    return args.steps * args.batch_size / (end - t0), t0 - t_start


def kd_experiment(args, data, teacher, device):
    """The notebooks' path: teacher_outputs once (fresh cache), then train_student per alpha."""
    sync(device)
    t0 = time.perf_counter()
    logits = None
    if args.teacher_mode == "cached":
        with tempfile.TemporaryDirectory() as tmp:  # a fresh cache: the pass is really computed
            logits = teacher_outputs(teacher, data.x_train, runs_dir=tmp,
                                     cache_key=dict(dataset=data.name, split="train", bench=True))
    sync(device)
    t_teacher = time.perf_counter() - t0
    accs = {}
    for alpha in ALPHAS:
        student, _ = train_student(data, alpha, args.temperature, seed=args.seed, epochs=args.epochs,
                                   teacher=teacher, teacher_logits=logits if alpha > 0 else None,
                                   teacher_mode=args.teacher_mode, lr=args.lr,
                                   batch_size=args.batch_size, augment=args.augment)
        accs[alpha] = accuracy_of(student, data.x_test, data.y_test)
    sync(device)
    return time.perf_counter() - t0, t_teacher, accs


# ---------------------------------------------------------------- reporting

def peak_rss_mib():
    # ru_maxrss is in KiB on Linux. Children: the largest DataLoader worker so far.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return dict(self_mib=round(own, 1), largest_child_mib=round(kids, 1))


def environment(device):
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "kd_utils", "benchmarks"],
                                    cwd=ROOT, capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = "unknown", None
    env = dict(python=platform.python_version(), torch=torch.__version__, torchvision=torchvision.__version__,
               numpy=np.__version__, platform=platform.platform(), cpu=cpu, cpu_count=os.cpu_count(),
               torch_threads=torch.get_num_threads(), device=str(device), commit=commit,
               uncommitted_changes=dirty, load_average_at_start=os.getloadavg())
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "synthetic-cifar"])
    ap.add_argument("--steps", type=int, default=200, help="timed student steps per loop (default 200)")
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
    ap.add_argument("--compile", action="store_true", help="CUDA: also time torch.compile'd student steps")
    ap.add_argument("--skip-experiment", action="store_true", help="only the steps comparison")
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<device>-<data>-<date>.json)")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is visible to torch here; use --device cpu")
    for name in ("steps", "epochs", "batch_size", "workers", "warmup"):
        if getattr(args, name) < (0 if name in ("workers", "warmup") else 1):
            ap.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
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
    args.augment = args.data == "synthetic-cifar"
    return args


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    env = environment(device)
    data = load(args)
    mean, std = data.stats()
    teacher = make_teacher(args, data).to(device)
    if args.teacher == "vgg13_bn":  # the reference normalises with the teacher's own statistics
        mean, std = teacher.mean.flatten().tolist(), teacher.std.flatten().tolist()
    train_ds, test_ds = reference_datasets(args, data, mean, std)
    gpu_data = data.to(device)
    on_target = device.type == "cpu" and args.data == "fashion-mnist"  # where the issue sets targets

    print(f"benchmark: {args.data}, {len(data.x_train):,} train / {len(data.x_test):,} test images, "
          f"batch {args.batch_size}, device {device}"
          + (f" ({env['gpu']})" if "gpu" in env else f" ({env['cpu']}, {env['cpu_count']} cores)"))
    print(f"  torch {torch.__version__}, torchvision {torchvision.__version__}, torch threads "
          f"{torch.get_num_threads()}, reference DataLoader num_workers={args.workers}, "
          f"kd_utils teacher mode: {args.teacher_mode}, load average {os.getloadavg()[0]:.2f}")
    result = dict(args={k: v for k, v in vars(args).items()}, environment=env,
                  dataset=dict(name=args.data, n_train=len(data.x_train), n_test=len(data.x_test)))

    # --- steady-state student steps (alpha = 0.5: both terms of the loss)
    logits = None
    if args.teacher_mode == "cached":
        logits = predict(teacher, gpu_data.x_train)
    kd_ips, kd_first = kd_steps(args, gpu_data, teacher, logits, device, amp=device.type == "cuda")
    mem_kd = peak_rss_mib()
    ref_ips = reference_steps(args, data, teacher, train_ds, device)
    steps = dict(reference_images_per_s=round(ref_ips, 1), kd_utils_images_per_s=round(kd_ips, 1),
                 ratio=round(kd_ips / ref_ips, 2), steps=args.steps, warmup=args.warmup, alpha=0.5,
                 reference_threads=torch.get_num_threads(),
                 kd_utils_threads=cpu_threads() if device.type == "cpu" else None)
    print(f"\nstudent training steps (alpha 0.5, {args.steps} steps x {args.batch_size} images, "
          f"after {args.warmup} warm-up steps):")
    print(f"  (a) reference  (DataLoader + per-image transforms, teacher every batch): {ref_ips:>10,.0f} images/s")
    print(f"  (b) kd_utils   (tensors, batches by index, teacher {args.teacher_mode}):{'':>9}"
          f"{kd_ips:>10,.0f} images/s")
    print(f"  ratio (b)/(a): {kd_ips / ref_ips:.1f}x" + (f"   [CPU target >= {TARGETS_CPU['steps_ratio']:g}x]"
                                                       if on_target else ""))
    # What bounds the ratio: caching and tensors can remove (a)'s data wait and teacher
    # forward, never its student step, which (b) runs with the same code.
    parts = reference_breakdown(args, data, teacher, train_ds, device)
    kd_ms = args.batch_size / kd_ips * 1e3
    ceiling = sum(parts.values()) / parts["student"]
    steps.update(reference_ms_per_batch=parts, kd_utils_ms_per_batch=round(kd_ms, 3),
                 ceiling_if_b_were_only_a_student_step=round(ceiling, 2))
    print(f"  where (a)'s time goes, ms per batch (instrumented pass): DataLoader wait {parts['data']:.1f}, "
          f"teacher forward {parts['teacher']:.1f}, student step {parts['student']:.1f}; (b): {kd_ms:.1f} in all")
    print(f"  ceiling: if (b) were nothing but (a)'s student step, (b)/(a) would be "
          f"{sum(parts.values()):.1f} / {parts['student']:.1f} = {ceiling:.1f}x")
    if device.type == "cpu" and cpu_threads() != torch.get_num_threads():
        # How much of the gap is kd_utils' thread setting, and how much the pipeline + caching?
        ref_same = reference_steps(args, data, teacher, train_ds, device, threads=cpu_threads())
        kd_default, _ = kd_steps(args, gpu_data, teacher, logits, device, kd_threads=False)
        steps.update(reference_with_kd_threads_images_per_s=round(ref_same, 1),
                     kd_utils_with_default_threads_images_per_s=round(kd_default, 1))
        print(f"  threads: (a) and (b) above use {torch.get_num_threads()} and {cpu_threads()} torch threads; "
              f"swapped: (a) with {cpu_threads()}: {ref_same:,.0f} images/s, (b) with "
              f"{torch.get_num_threads()}: {kd_default:,.0f} images/s")

    if device.type == "cuda":  # precision / layout / compile variants of (b)
        variants = {}
        for name, kw in [("fp32", {}), ("bf16", dict(amp=True)),
                         ("bf16+channels_last", dict(amp=True, channels_last=True))] + \
                        ([("bf16+channels_last+compile", dict(amp=True, channels_last=True, compile=True))]
                         if args.compile else []):
            ips, first = kd_steps(args, gpu_data, teacher, logits, device, **kw)
            variants[name] = dict(images_per_s=round(ips, 1), warmup_seconds=round(first, 2))
            print(f"  (b) {name:<28} {ips:>10,.0f} images/s   (first {args.warmup} steps {first:.2f} s)")
        steps["cuda_variants"] = variants
    result["steps"] = steps

    # --- the whole three-student experiment
    if not args.skip_experiment:
        kd_total, kd_teacher, kd_accs = kd_experiment(args, gpu_data, teacher, device)
        mem_kd = peak_rss_mib()
        ref_total, ref_accs = reference_experiment(args, data, teacher, train_ds, test_ds, device)
        imgs = len(ALPHAS) * args.epochs * len(data.x_train)
        print(f"\nthree-student experiment (alphas {', '.join(f'{a:g}' for a in ALPHAS)}; {args.epochs} "
              f"epoch(s) each on {len(data.x_train):,} images; test accuracy after every epoch):")
        print(f"  (a) reference: {ref_total:8.1f} s   ({imgs / ref_total:,.0f} student images/s overall)")
        print(f"  (b) kd_utils:  {kd_total:8.1f} s   ({imgs / kd_total:,.0f} student images/s overall, "
              f"including the one-off teacher pass of {kd_teacher:.2f} s)")
        print(f"  speed-up (a)/(b): {ref_total / kd_total:.1f}x"
              + (f"   [CPU target >= {TARGETS_CPU['experiment_ratio']:g}x]" if on_target else ""))
        result["experiment"] = dict(
            alphas=list(ALPHAS), epochs=args.epochs, reference_seconds=round(ref_total, 2),
            kd_utils_seconds=round(kd_total, 2), kd_utils_teacher_pass_seconds=round(kd_teacher, 3),
            ratio=round(ref_total / kd_total, 2),
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
    result["notes"] = ("Timings on a shared machine: other processes may have been running "
                       "(see load averages). Weights are random; accuracies are only a sanity check. "
                       + ("No GPU was available for this run: GPU figures not measured."
                          if device.type == "cpu" else ""))
    now = datetime.datetime.now(datetime.timezone.utc)
    result["date"] = now.isoformat(timespec="seconds")
    out = Path(args.out) if args.out else ROOT / "results" / f"{args.device}-{args.data}-{now:%Y-%m-%dT%H%M}.json"
    save_json(out, result)  # atomic: an interrupted run leaves no half-written JSON
    print(f"saved {out}")
    return result


if __name__ == "__main__":
    main()

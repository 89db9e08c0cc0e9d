"""Where one lockstep step of notebook 03's GPU default spends its time: vgg13_bn teacher
online on a random-crop-and-flipped batch, three LeNet students, bf16 autocast (on a CPU: fp32).

    python benchmarks/profile_step.py --device cuda      (prints tables; --out FILE.json)

Times each part alone (ms per batch of 128, after a warm-up, synchronised), then one whole
lockstep epoch of kd.fit's loop, then torch.profiler's top operators over that epoch. Synthetic
CIFAR-shaped data and a random-weight teacher: timings only, no accuracies.
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kd_utils as kd  # noqa: E402
from benchmark_distillation import synthetic_cifar  # noqa: E402
from kd_utils.training import autocast  # noqa: E402


def ms_per_call(fn, device, n=50, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize() if device.type == "cuda" else None
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize() if device.type == "cuda" else None
    return round(1000 * (time.perf_counter() - t0) / n, 3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--images", type=int, default=12_800, help="training images in the timed epoch")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    s = kd.settings(dataset="cifar10", device=args.device, teacher_mode="online", augment=True,
                    precision="bf16" if device.type == "cuda" else "fp32", verbose=False)
    data = synthetic_cifar(args.images, 1024).to(device)
    torch.manual_seed(0)
    teacher = kd.freeze(kd.vgg13_bn("chenyaofo", 10)).to(device)
    students = [kd.new_student(data, seed) for seed in range(3)]
    xb, yb = data.x_train[:128], data.y_train[:128]
    g = torch.Generator().manual_seed(0)
    out = dict(device=kd.device_name(device), torch=torch.__version__, batch_size=s.profile.batch_size,
               precision=s.precision, parts_ms={})

    def teacher_forward():
        with torch.no_grad(), autocast(device, s.precision):
            return teacher(xb).float()

    t = teacher_forward()
    opt = torch.optim.Adam(students[0].parameters(), lr=1e-3)
    opt_fused = torch.optim.Adam(students[1].parameters(), lr=1e-3, fused=True) if device.type == "cuda" else None

    def student_step(model=students[0], opt=opt, loss_fn=kd.DistillationLoss(4.0, 0.5)):
        with autocast(device, s.precision):
            logits = model(xb)
        loss = loss_fn(logits.float(), t, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    parts = out["parts_ms"]
    parts["crop_flip"] = ms_per_call(lambda: kd.random_crop_flip(xb, g), device)
    parts["teacher_forward"] = ms_per_call(teacher_forward, device)
    parts["student_forward"] = ms_per_call(lambda: students[0](xb), device)
    parts["student_step_adam_foreach"] = ms_per_call(student_step, device)
    if opt_fused is not None:
        parts["student_step_adam_fused"] = ms_per_call(lambda: student_step(students[1], opt_fused), device)
    print(json.dumps(parts, indent=1), flush=True)

    def epoch(images):
        part = dataclasses.replace(data, x_train=data.x_train[:images], y_train=data.y_train[:images],
                                   x_test=data.x_test[:128], y_test=data.y_test[:128])
        runs = {f"a{a}": (kd.new_student(data, 0), kd.DistillationLoss(4.0, a)) for a in (0.0, 0.5, 1.0)}
        kd.fit(s, part, runs, kind=None, epochs=1, lr=1e-3, teacher=kd.Trained(teacher), augment=s.augment,
               progress=False)

    epoch(1280)  # warm-up
    torch.cuda.synchronize() if device.type == "cuda" else None
    t0 = time.perf_counter()
    epoch(args.images)
    torch.cuda.synchronize() if device.type == "cuda" else None
    steps = -(-args.images // s.profile.batch_size)
    out["lockstep_ms_per_step"] = round(1000 * (time.perf_counter() - t0) / steps, 3)
    out["lockstep_epoch_50000_s_estimate"] = round(out["lockstep_ms_per_step"] * 391 / 1000, 2)
    print(f"lockstep step (teacher + 3 students): {out['lockstep_ms_per_step']} ms "
          f"-> 50,000-image epoch about {out['lockstep_epoch_50000_s_estimate']} s", flush=True)

    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        epoch(min(args.images, 3840))
    for key in ["self_cpu_time_total"] + (["self_device_time_total"] if device.type == "cuda" else []):
        table = prof.key_averages().table(sort_by=key, row_limit=25)
        print(table, flush=True)
        out[f"top_by_{key}"] = table
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""The one-off teacher pass on the CPU: kd.predict against the way it was computed before.

Times the logits of a random-weight vgg13_bn for --images CIFAR-shaped uint8 images:
  before     torch.no_grad, batches of 1,024, NCHW (kd_utils until 2026-11-25)
  kd.predict what kd.teacher_outputs runs now
and, with --grid, every combination of no_grad / inference_mode, NCHW / channels_last input,
and batch size, so the choice in kd.predict can be checked on another machine. Variants are
interleaved over --rounds (this machine's speed drifts) at each of --threads; the median is
reported (wall clock, and the process's CPU time, which with one thread is less sensitive
to other jobs), with the load average, and the largest difference from `before`'s logits.

    python benchmarks/teacher_pass.py [--images 2560] [--rounds 3] [--threads 1 2] [--grid]
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import os
import statistics
import time
from pathlib import Path

import torch

import kd_utils as kd
from kd_utils.storage import save_json

ROOT = Path(__file__).resolve().parent


def forward(model, x, batch_size, mode, channels_last):
    """One way of computing the logits (eval mode), as the variants differ."""
    with (torch.inference_mode() if mode == "inference_mode" else torch.no_grad()):
        out = [model(xb.contiguous(memory_format=torch.channels_last) if channels_last else xb).float()
               for xb in x.split(batch_size)]
    return torch.cat(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2560)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--grid", action="store_true", help="also time every mode x layout x batch size")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    model = kd.freeze(kd.vgg13_bn("chenyaofo"))
    x = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    variants = {"before": lambda: forward(model, x, 1024, "no_grad", False), "kd.predict": lambda: kd.predict(model, x)}
    if args.grid:
        for mode, cl, bs in itertools.product(("no_grad", "inference_mode"), (False, True), (32, 64, 128, 256, 512, 1024)):
            variants[f"{mode} {'channels_last' if cl else 'NCHW'} {bs}"] = \
                lambda mode=mode, cl=cl, bs=bs: forward(model, x, bs, mode, cl)
    reference = forward(model, x, 1024, "no_grad", False)
    seconds = {(t, v): [] for t in args.threads for v in variants}
    cpu = {key: [] for key in seconds}  # process CPU time: with 1 thread, less sensitive to other jobs
    diff, loads = {}, []
    before_threads = torch.get_num_threads()
    for _ in range(args.rounds):
        for t in args.threads:
            torch.set_num_threads(t)
            for name, run in variants.items():
                t0, c0 = time.perf_counter(), time.process_time()
                logits = run()
                seconds[t, name].append(time.perf_counter() - t0)
                cpu[t, name].append(time.process_time() - c0)
                diff[name] = max(diff.get(name, 0.0), (logits - reference).abs().max().item())
        loads.append(os.getloadavg()[0])
    torch.set_num_threads(before_threads)

    print(f"teacher pass: random vgg13_bn (chenyaofo layout), {args.images:,} CIFAR-shaped images, "
          f"median of {args.rounds} interleaved rounds, load average {min(loads):.2f}-{max(loads):.2f}")
    rows = []
    for (t, name), s in seconds.items():
        rows.append(dict(threads=t, variant=name, median_s=round(statistics.median(s), 2),
                         rounds_s=[round(v, 2) for v in s], median_cpu_s=round(statistics.median(cpu[t, name]), 2),
                         max_abs_diff_from_before=diff[name]))
        print(f"  {t} thread(s)  {name:<32} {rows[-1]['median_s']:7.2f} s   "
              f"({args.images / rows[-1]['median_s']:,.0f} images/s; CPU {rows[-1]['median_cpu_s']:.2f} s; "
              f"max |logit diff| {diff[name]:.1e})")
    now = datetime.datetime.now(datetime.timezone.utc)
    result = dict(date=now.isoformat(timespec="seconds"), device=kd.device_name("cpu"), torch=torch.__version__,
                  images=args.images, rounds=args.rounds, load_average_per_round=loads, rows=rows)
    out = Path(args.out) if args.out else ROOT / "results" / f"teacher-pass-cpu-{now:%Y-%m-%dT%H%M}.json"
    save_json(out, result)
    print(f"saved {out}")
    return result


if __name__ == "__main__":
    main()

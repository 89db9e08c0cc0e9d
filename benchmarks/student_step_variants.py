"""Can the student's training step itself get faster on a CPU? Variants of one LeNet step.

The distillation benchmark shows kd_utils' path reaching its ceiling: all that is left of a
batch is the student's forward and backward pass. This script asks whether that pass can
be made cheaper, on the Fashion-MNIST shapes (128 x 1 x 28 x 28, cached teacher logits,
alpha 0.5, T 4), by timing the same step written several ways, interleaved over several
rounds (this machine's speed drifts, so every variant sees the same drift):

  plain            what kd_utils does (Normalized LeNet, Adam)
  channels_last    the images and weights in NHWC layout
  fused_adam       Adam(fused=True)
  compile          torch.compile'd student (inductor, C++ on the CPU; compile time reported)
  three_as_one     the three students of notebook 03 as one network: a shared first conv
                   with 3x6 channels, a grouped second conv, batched matmuls; per student

and prints where a plain step's time goes (torch.profiler, top operators).

    python benchmarks/student_step_variants.py [--threads 1] [--rounds 5] [--no-compile]
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import kd_utils as kd
from kd_utils.models import LeNetStudent
from kd_utils.storage import save_json

ROOT = Path(__file__).resolve().parent
N, B, K = 20_000, 128, 3


class ThreeLeNets(nn.Module):
    """K LeNet students in one module: same input, separate weights (grouped conv, bmm)."""

    def __init__(self, k=K):
        super().__init__()
        self.k = k
        self.conv1 = nn.Conv2d(1, 6 * k, 5, padding=2)      # all students read the same image
        self.conv2 = nn.Conv2d(6 * k, 16 * k, 5, groups=k)  # each student its own 6 -> 16
        self.w = nn.ParameterList([nn.Parameter(torch.randn(k, i, o) * i ** -0.5)
                                   for i, o in ((400, 120), (120, 84), (84, 10))])
        self.b = nn.ParameterList([nn.Parameter(torch.zeros(k, 1, o)) for o in (120, 84, 10)])

    def forward(self, x):
        x = x.float().div_(255).sub_(0.286).div_(0.353)
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        h = h.reshape(x.shape[0], self.k, 400).transpose(0, 1)  # k, B, 400
        for i, (w, b) in enumerate(zip(self.w, self.b)):
            h = torch.baddbmm(b, h, w)
            if i < 2:
                h = F.relu(h)
        return h  # k, B, 10


def make_step(variant, x, y, t):
    torch.manual_seed(0)
    loss_fn = kd.DistillationLoss(4.0, 0.5)
    if variant == "three_as_one":
        model = ThreeLeNets()
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)

        def step(idx):
            logits = model(x[idx])
            loss = sum(loss_fn(logits[j], t[idx], y[idx]) for j in range(K))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step, K  # one step trains K students

    model = kd.Normalized(LeNetStudent(1, 10, 28), [0.286], [0.353])
    cl = variant == "channels_last"
    if cl:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, **({"fused": True} if variant == "fused_adam" else {}))
    run = torch.compile(model) if variant == "compile" else model

    def step(idx):
        xb = x[idx]
        if cl:
            xb = xb.contiguous(memory_format=torch.channels_last)
        loss = loss_fn(run(xb), t[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step, 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (kd_utils uses 1 on 2 cores)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60, help="timed steps per variant per round")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (N, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (N,), generator=g)
    t = torch.randn(N, 10, generator=g)
    idxs = [torch.randint(0, N, (B,), generator=g) for _ in range(args.steps)]

    variants = ["plain", "channels_last", "fused_adam", "three_as_one"] + ([] if args.no_compile else ["compile"])
    steps, warmup_s = {}, {}
    for v in variants:
        steps[v] = make_step(v, x, y, t)
        t0 = time.perf_counter()
        for idx in idxs[:5]:
            steps[v][0](idx)
        warmup_s[v] = time.perf_counter() - t0
    ms = {v: [] for v in variants}  # ms per student per batch, one figure per round
    for _ in range(args.rounds):
        for v in variants:
            step, per = steps[v]
            t0 = time.perf_counter()
            for idx in idxs:
                step(idx)
            ms[v].append((time.perf_counter() - t0) / len(idxs) / per * 1e3)

    print(f"LeNet student step, batch {B}, Fashion-MNIST shapes, {args.threads} thread(s), "
          f"{args.rounds} interleaved rounds of {args.steps} steps; ms per student per batch:")
    summary = {}
    for v in variants:
        med = statistics.median(ms[v])
        summary[v] = dict(median_ms=round(med, 2), min_ms=round(min(ms[v]), 2), max_ms=round(max(ms[v]), 2),
                          rounds_ms=[round(m, 2) for m in ms[v]], first_5_steps_s=round(warmup_s[v], 2))
        print(f"  {v:<14} median {med:6.2f}  (rounds {min(ms[v]):.2f}-{max(ms[v]):.2f})   "
              f"{B / med * 1e3:>8,.0f} images/s   first 5 steps {warmup_s[v]:.1f} s")

    from torch.profiler import ProfilerActivity, profile
    step = steps["plain"][0]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for idx in idxs[:30]:
            step(idx)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    top = [dict(op=e.key, share=round(e.self_cpu_time_total / total, 3)) for e in events[:6]]
    print("where a plain step's time goes (self CPU time, torch.profiler, 30 steps):")
    for row in top:
        print(f"  {row['share']:6.1%}  {row['op']}")

    now = datetime.datetime.now(datetime.timezone.utc)
    result = dict(date=now.isoformat(timespec="seconds"), torch=torch.__version__, threads=args.threads,
                  batch=B, variants=summary, profile_top=top,
                  load_average=list(os.getloadavg()))
    out = Path(args.out) if args.out else ROOT / "results" / f"student-step-variants-cpu-{now:%Y-%m-%dT%H%M}.json"
    save_json(out, result)  # atomic: an interrupted run leaves no half-written JSON
    print(f"saved {out}")
    return result


if __name__ == "__main__":
    main()

"""Command line mirroring the notebooks:

    python -m kd_utils teacher  --dataset fashion-mnist --profile cpu
    python -m kd_utils distill  --alphas 0 0.5 1 --temperature 4
    python -m kd_utils report   (reads the saved results; trains nothing)

KD_* environment variables beat flags, which beat the defaults (the rule of kd.settings).
Runs go under runs/ (KD_RUNS_DIR); finished runs are reused, interrupted ones resume.
"""
from __future__ import annotations

import argparse
import sys

from . import data as kd_data, metrics, runs, teachers, training
from .settings import DATASETS, FORMULATIONS, PRECISIONS, PROFILES, TEACHER_MODES, settings
from .storage import load_json

def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m kd_utils", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["teacher", "distill", "report"])
    ap.add_argument("--dataset", help=f"{', '.join(DATASETS)} or imagefolder:PATH (default: cifar10)")
    ap.add_argument("--profile", choices=[*PROFILES, "auto"])
    ap.add_argument("--alphas", nargs="+", help="teacher weights, e.g. 0 0.5 1")
    ap.add_argument("--temperature")
    ap.add_argument("--seed")
    ap.add_argument("--teacher", help="auto, download, train, train-vgg13_bn, or a weights file")
    ap.add_argument("--formulation", choices=FORMULATIONS)
    # Part of each student's run key: to hand runs to CPU laptops, whose notebooks default to
    # "cached", pre-compute on the GPU box with --teacher-mode cached.
    ap.add_argument("--teacher-mode", choices=["auto", *TEACHER_MODES])
    ap.add_argument("--precision", choices=["auto", *PRECISIONS])
    args = ap.parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
    if "alphas" in flags:
        flags["alphas"] = " ".join(flags["alphas"])  # parsed as KD_ALPHAS is
    try:
        s = settings(**flags)
        if args.command == "report":
            return report(s)
        data = kd_data.load_data(s)
        teacher = teachers.get_teacher(s, data)
        print(f"teacher: {teacher}")
        students = training.distill(s, data, teacher) if args.command == "distill" else {}
        rows = metrics.evaluate(s, data, teacher, students)
        print(metrics.format_table(rows))
        print(f"saved {runs.shown(runs.save_results(s, args.command, rows, teacher=str(teacher)))}")
    except (ValueError, TypeError, RuntimeError, OSError, FloatingPointError) as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    return 0

def report(s):
    """Print every saved results table for the dataset, oldest first; train nothing. A file
    that cannot be read is named in one line and skipped."""
    folder = runs.dataset_dir(s, s.dataset) / "results"
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    shown = 0
    for path in files:
        try:
            record = load_json(path)
            st, table = record["settings"], metrics.format_table(record["rows"])
            print(f"== {runs.shown(path)}\n{st['dataset']}, {st['profile']['name']} profile, seed {st['seed']}, "
                  f"T={st['temperature']:g}, {st['formulation']}, teacher outputs {st['teacher_mode']}\n{table}")
            shown += 1
        except (ValueError, KeyError, TypeError) as e:
            print(f"skipped {runs.shown(path)}: not a results file of ours ({type(e).__name__}: {e})", file=sys.stderr)
    if not shown:
        print(f"error: no saved results for {s.dataset} in {runs.shown(folder)}; run `python -m kd_utils distill` "
              f"(or teacher) first", file=sys.stderr)
        return 2
    return 0

"""Command line mirroring the notebooks:

    python -m kd_utils teacher  --dataset fashion-mnist --profile cpu
    python -m kd_utils distill  --alphas 0 0.5 1 --temperature 4
    python -m kd_utils report   (reads the saved results; trains nothing)

Flags beat environment variables (KD_DATASET, ...), which beat the defaults.
Runs go under runs/ (KD_RUNS_DIR); finished runs are reused, interrupted ones resume.
"""
from __future__ import annotations

import argparse
import sys

from ..settings import DATASETS, FORMULATIONS, PROFILES, TEACHER_MODES


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m kd_utils", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["teacher", "distill", "report"])
    ap.add_argument("--dataset", help=f"{', '.join(DATASETS)} or imagefolder:PATH (default: KD_DATASET or cifar10)")
    ap.add_argument("--profile", choices=[*PROFILES, "auto"], help="default: KD_PROFILE or auto")
    ap.add_argument("--alphas", type=float, nargs="+", help="teacher weights, e.g. 0 0.5 1")
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--teacher", help="auto, download, train, or a weights file")
    ap.add_argument("--formulation", choices=FORMULATIONS)
    # Part of each student's run key: to hand runs to CPU laptops, whose notebooks default
    # to "cached", pre-compute on the GPU box with --teacher-mode cached.
    ap.add_argument("--teacher-mode", choices=["auto", *TEACHER_MODES],
                    help="teacher outputs during distillation: auto = online on CUDA, else cached")
    args = ap.parse_args(argv)

    from .. import data as kd_data, metrics, runs, teachers, training
    from ..settings import from_env, settings  # (kd_utils.settings is the function, not the module)

    flags = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
    try:
        s = settings(env=False, **{**from_env(), **flags})
        if args.command == "report":
            return report(s, runs)
        data = kd_data.load_data(s)
        teacher = teachers.get_teacher(s, data)
        print(f"teacher: {teacher}")
        students = training.distill(s, data, teacher) if args.command == "distill" else {}
        rows = metrics.evaluate(data, teacher, students)
        print(metrics.format_table(rows))
        print(f"saved {runs.shown(runs.save_results(s, args.command, rows, teacher=str(teacher)))}")
    except (ValueError, TypeError, RuntimeError, OSError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def report(s, runs):
    """Print every saved results table for the dataset; train nothing."""
    from ..metrics import format_table
    from ..storage import load_json

    files = sorted((runs.dataset_dir(s.dataset) / "results").glob("*.json"), key=lambda p: p.stat().st_mtime)
    found = [(f, load_json(f)) for f in files]  # oldest first
    if not found:
        print(f"error: no saved results for {s.dataset} in {runs.shown(runs.dataset_dir(s.dataset))}; "
              f"run `python -m kd_utils distill` (or teacher) first", file=sys.stderr)
        return 2
    for path, record in found:
        st = record["settings"]
        print(f"== {runs.shown(path)}\n{st['dataset']}, {st['profile']['name']} profile, seed {st['seed']}, "
              f"T={st['temperature']:g}, {st['formulation']}, teacher outputs {st['teacher_mode']}")
        print(format_table(record["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

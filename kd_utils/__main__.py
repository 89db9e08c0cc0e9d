"""Command line mirroring the notebooks:

    python -m kd_utils teacher  --dataset fashion-mnist --profile cpu
    python -m kd_utils distill  --alphas 0 0.5 1 --temperature 4
    python -m kd_utils report

Runs go under runs/ (KD_RUNS_DIR); finished runs are reused, interrupted ones resume.
"""
from __future__ import annotations

import argparse
import sys

from .data import DATASETS, DataUnavailableError


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m kd_utils", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["teacher", "distill", "report"])
    ap.add_argument("--dataset", help=f"{', '.join(DATASETS)} or imagefolder:PATH (default: KD_DATASET or cifar10)")
    ap.add_argument("--profile", help="smoke, cpu, full or auto (default: KD_PROFILE or auto)")
    ap.add_argument("--alphas", type=float, nargs="+", help="teacher weights, e.g. 0 0.5 1")
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--teacher", help="auto, download, train, or a weights file")
    ap.add_argument("--formulation", default="hinton", choices=["hinton", "blended"])
    # Part of each student's run key: to hand runs to CPU laptops, whose notebooks
    # default to "cached", pre-compute with --teacher-mode cached (or set TEACHER_MODE there).
    ap.add_argument("--teacher-mode", default="auto", choices=["auto", "cached", "online"],
                    help="teacher outputs during distillation: auto = online on CUDA, else cached")
    args = ap.parse_args(argv)

    import os

    # Command-line flags beat environment variables, which beat the defaults.
    for flag, env in (("dataset", "KD_DATASET"), ("profile", "KD_PROFILE"), ("seed", "KD_SEED"),
                      ("temperature", "KD_TEMPERATURE"), ("teacher", "KD_TEACHER")):
        if getattr(args, flag) is not None:
            os.environ[env] = str(getattr(args, flag))
    if args.alphas is not None:
        os.environ["KD_ALPHAS"] = " ".join(map(str, args.alphas))

    from . import experiment as ex
    from .profiles import settings
    from .teachers import describe_teacher

    try:
        s = settings()
        data = ex.load_data(s)
        teacher = ex.load_teacher(s, data)
    except (DataUnavailableError, ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"teacher: {describe_teacher(teacher)}")
    if args.command == "teacher":
        rows = ex.evaluate(s, data, teacher, {})
    else:
        students = ex.distill(s, data, teacher, formulation=args.formulation,
                              teacher_mode=None if args.teacher_mode == "auto" else args.teacher_mode)
        rows = ex.evaluate(s, data, teacher, students)
    print(ex.format_table(rows))
    print(f"saved {ex.save_results(s, rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

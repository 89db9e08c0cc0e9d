"""Write the recorded run's provenance into figures/manifest.json (called by `make record`).

Usage: python tools/record_provenance.py runs/executed/timings.txt
       python tools/record_provenance.py runs/executed/timing-one.txt --alone   (make record-notebook)
The timings file has one line per notebook: "<path> <seconds> s". With --alone, the notebook was
recorded by itself after the series (`make record-notebook`): it gets an entry of its own.
"""
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

import kd_utils as kd
from kd_utils.figures import device_name, record


def main(timings_path, alone=False):
    seconds = {}
    for line in Path(timings_path).read_text().splitlines():
        path, secs, _ = line.rsplit(" ", 2)
        seconds[Path(path).name] = int(secs)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "kd_utils"], capture_output=True,
                           text=True).stdout.strip()
    s = kd.settings(verbose=False)  # the KD_* variables of the recorded run: its data, profile and folders
    steer = " ".join(f"{k}={os.environ[k]}" for k in ("KD_DATASET", "KD_PROFILE", "KD_TEACHER") if os.environ.get(k))
    command = (f"make record-notebook  ({steer}, this notebook alone, with the runs already in {kd.shown(s.runs_dir)})"
               if alone else f"{os.environ.get('KD_RECORD_COMMAND', 'make record')}  ({steer}, from an empty "
                             f"{kd.shown(s.runs_dir)})")
    entry = dict(command=command, dataset=s.dataset, profile=s.profile.name, seed=s.seed,
                 date=datetime.date.today().isoformat(), device=device_name(s.device),
                 cpu=platform.processor() or platform.machine(), threads=s.threads, torch=torch.__version__,
                 code_commit=commit + (" (with uncommitted changes to kd_utils/)" if dirty else ""),
                 notebook_seconds=seconds, total_seconds=sum(seconds.values()))
    record(s, "run", f"recorded_alone_{Path(next(iter(seconds))).stem}" if alone else "recorded_tutorial", entry)
    print(f"recorded: {sum(seconds.values())} s for {len(seconds)} notebooks, commit {entry['code_commit']}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], alone="--alone" in sys.argv[2:]))

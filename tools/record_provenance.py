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

from kd_utils.figures import device_name, record


def main(timings_path, alone=False):
    seconds = {}
    for line in Path(timings_path).read_text().splitlines():
        path, secs, _ = line.rsplit(" ", 2)
        seconds[Path(path).name] = int(secs)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "kd_utils"], capture_output=True,
                           text=True).stdout.strip()
    command = ("make record-notebook  (KD_DATASET=fashion-mnist KD_PROFILE=cpu, this notebook alone, with the "
               "runs already in runs/record/)" if alone else
               "make record  (KD_DATASET=fashion-mnist KD_PROFILE=cpu, from an empty runs/record/)")
    entry = dict(command=command,
                 dataset=os.environ.get("KD_DATASET"), profile=os.environ.get("KD_PROFILE"), seed=0,
                 date=datetime.date.today().isoformat(), device=device_name("cpu"),
                 cpu=platform.processor() or platform.machine(), torch=torch.__version__,
                 code_commit=commit + (" (with uncommitted changes to kd_utils/)" if dirty else ""),
                 notebook_seconds=seconds, total_seconds=sum(seconds.values()))
    record("run", f"recorded_alone_{Path(next(iter(seconds))).stem}" if alone else "recorded_tutorial", entry)
    print(f"recorded: {sum(seconds.values())} s for {len(seconds)} notebooks, commit {entry['code_commit']}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], alone="--alone" in sys.argv[2:]))

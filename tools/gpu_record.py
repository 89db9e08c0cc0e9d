"""`make gpu-record`: the course's own setting recorded on a CUDA GPU, in one call of under 10 minutes (issue 23).

CIFAR-10 as the JPEG copy (extracted from KD_CIFAR10_JPEG, carry/cifar10-jpeg.tar.gz or ../shared/data/), the seeds'
vgg13_bn teacher trained there (`KD_TEACHER=train-vgg13_bn`: no download is possible), then notebooks 02, 03 and 04
in the `full` profile: online teacher, crops and flips on the device, the three students in lockstep, the few-label
students over 3 seeds. It writes, under $OUT (the device tool's folder that comes back) or runs/gpu-record/out/:
  notebooks/   the executed notebooks 02-04: copy them over notebooks/ to make them the stored outputs;
  figures/     their figures and manifest.json (record entries: device, dataset, teacher accuracy and time);
  gpu-record-<date>.json   device, versions, each notebook's status and seconds, the teacher's accuracy and
               training time; every path in it relative to the repository.
`--rehearse-on-cpu` runs the same steps on the CPU in the smoke profile with the CNN teacher, to check the script.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("02_teacher", "03_distill_students", "04_analysis")
LIMIT_S = 540  # the three notebooks together; a device call may run 600 s


def extract_copy():
    """data/cifar10-jpeg/, from the first tarball found (once)."""
    folder = ROOT / "data" / "cifar10-jpeg"
    if not (folder / ".extracted").exists():
        places = [Path(os.environ.get("KD_CIFAR10_JPEG", "/nonexistent")), ROOT / "carry" / "cifar10-jpeg.tar.gz",
                  ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"]
        tar = next((p for p in places if p.is_file()), None)
        if tar is None:
            sys.exit(f"gpu-record: no CIFAR-10 JPEG copy; looked in {', '.join(map(str, places))}")
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-xzf", str(tar), "-C", str(folder)], check=True)
        (folder / ".extracted").touch()
    return folder.relative_to(ROOT)


def main(rehearse=False):
    import torch

    import kd_utils as kd

    out = Path(os.environ.get("OUT") or ROOT / "runs" / "gpu-record" / "out")
    if not rehearse and not torch.cuda.is_available():
        print("gpu-record: no CUDA GPU here; use --rehearse-on-cpu to check the script on the CPU")
        return 0
    folder = extract_copy()
    env = dict(os.environ, KD_DATASET=f"imagefolder:{folder}", KD_PROFILE="smoke" if rehearse else "full",
               KD_TEACHER="train" if rehearse else "train-vgg13_bn", KD_DEVICE="cpu" if rehearse else "cuda",
               KD_RUNS_DIR=str(ROOT / "runs" / "gpu-record" / "runs"), KD_FIGURES_DIR=str(out / "figures"),
               KD_RECORD_COMMAND="make gpu-record", MPLBACKEND="Agg")
    report, deadline = dict(notebooks={}), time.monotonic() + LIMIT_S
    for name in NOTEBOOKS:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=-1",
               "--output-dir", str(out / "notebooks"), f"notebooks/{name}.ipynb"]
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=max(1, deadline - time.monotonic())).returncode
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            status = f"stopped at the {LIMIT_S} s limit"
        report["notebooks"][name] = dict(status=status, seconds=round(time.perf_counter() - t0, 1))
        print(f"gpu-record: {name}: {status} in {report['notebooks'][name]['seconds']} s", flush=True)
        if status != "ok":
            break
    out.mkdir(parents=True, exist_ok=True)  # also when notebook 02 failed before writing anything
    timings = out / "timings.txt"
    timings.write_text("".join(f"notebooks/{n}.ipynb {round(r['seconds'])} s\n" for n, r in report["notebooks"].items()))
    subprocess.run([sys.executable, "tools/record_provenance.py", str(timings)], cwd=ROOT, env=env)
    manifest = kd.storage.load_json(out / "figures" / "manifest.json") if (out / "figures" / "manifest.json").exists() else {}
    teacher_runs = sorted((ROOT / "runs" / "gpu-record" / "runs").glob("*/teachers/*/run.pt"), key=os.path.getmtime)
    history = kd.load_torch(teacher_runs[-1])["history"] if teacher_runs else []  # the newest: this run's teacher
    report.update(date=datetime.datetime.now().isoformat(timespec="seconds"), rehearsal=rehearse,
                  device=kd.device_name("cpu" if rehearse else "cuda"),
                  torch=torch.__version__, dataset="CIFAR-10 (JPEG copy)", settings={k: v for k, v in env.items()
                                                                                      if k.startswith("KD_")},
                  teacher_accuracy=manifest.get("results", {}).get("04_comparison", {}).get("teacher_accuracy"),
                  teacher_train_seconds=round(sum(h["seconds"] for h in history), 1),
                  teacher_epochs=len(history), teacher_test_accuracy_by_epoch=[h["test_acc"] for h in history])
    text = json.dumps(report, indent=2).replace(str(ROOT) + "/", "").replace(str(out) + "/", "$OUT/")
    path = out / f"gpu-record-{datetime.datetime.now():%Y-%m-%dT%H%M}.json"
    path.write_text(text + "\n")
    print(f"gpu-record: {path.name} written; teacher {report['teacher_accuracy']}, {report['teacher_train_seconds']} s")
    return 0 if all(r["status"] == "ok" for r in report["notebooks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main(rehearse="--rehearse-on-cpu" in sys.argv[1:]))

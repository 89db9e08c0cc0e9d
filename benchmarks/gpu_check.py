"""`make gpu-check`: on a machine with CUDA, run what only a GPU can check, in about 8 minutes.

1. the CUDA-only tests (`pytest -m gpu tests`);
2. notebook 03 on CUDA, smoke profile, Fashion-MNIST;
3. notebook 03 on CUDA, full profile: on CIFAR-10 with the pre-trained vgg13_bn when both can
   be had (on disk or downloaded), else on synthetic CIFAR-shaped images (random uint8, written
   as an image folder) with a random-weight vgg13_bn, online teacher and augmentation as
   CIFAR-10 gets them (accuracies then mean nothing; the timings do);
4. `benchmarks/benchmark_distillation.py --device cuda --data synthetic-cifar --teacher vgg13_bn --epochs 1`.

Each step has a time limit; a failed step is reported and the next one still runs. One JSON
summary (device name, each step's status, seconds, output tail, the students' epoch times)
goes to benchmarks/results/gpu-check-<date>.json; executed notebooks and runs go to
runs/gpu-check/ (ignored by git), and so does everything a rehearsal writes. Without CUDA it prints one line and exits 0.
`--rehearse-on-cpu` runs the same steps on the CPU at toy sizes, to check the script itself.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMITS_S = dict(tests=60, smoke=60, full=300, benchmark=120)  # with the CIFAR-10 check and the synthetic
# data, about 10 minutes at the very worst (a lent GPU machine gives a session 15 minutes in all). On an H200
# the full profile needed about 4.4 s per three-student epoch, 180 s was too short (benchmarks/README.md)
NOTEBOOK = ROOT / "notebooks" / "03_distill_students.ipynb"


def run_step(name, cmd, limit, env=None):
    """Run cmd (its own process group, killed whole at the limit); return a summary."""
    print(f"[gpu-check] {name}: {' '.join(map(str, cmd))}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(map(str, cmd)), cwd=ROOT, env={**os.environ, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, rc = proc.communicate(timeout=limit)[0], proc.returncode
        status = "ok" if rc == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # nbconvert's kernel and DataLoader workers too
        out, rc, status = proc.communicate()[0], None, f"timed out after {limit} s"
    if name == "tests" and rc == 5:
        status = "no tests are marked gpu (nothing to run)"
    seconds = round(time.perf_counter() - t0, 1)
    print(f"[gpu-check] {name}: {status} ({seconds} s)", flush=True)
    if status not in ("ok",) and not status.startswith("no tests"):
        print("\n".join(out.splitlines()[-25:]), flush=True)
    def relative(text):  # the JSON holds no machine paths: the repository's are written relative to it
        return text.replace(sys.executable, "python").replace(str(ROOT) + "/", "")
    return dict(command=relative(" ".join(map(str, cmd))), status=status, returncode=rc, seconds=seconds,
                output_tail=relative(out[-3000:]))


def cifar10_available(limit=20):
    """Can CIFAR-10 and its teacher (KD_TEACHER, else the pre-trained vgg13_bn) be had:
    on disk, or downloaded now? Asked the way notebook 03 asks, in a subprocess."""
    code = "import kd_utils as kd; s = kd.settings(verbose=False); kd.get_teacher(s, kd.load_data(s))"
    env = {**os.environ, "KD_DATASET": "cifar10", "KD_PROFILE": "smoke", "KD_DEVICE": "cpu"}
    try:
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                              timeout=limit).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def synthetic_cifar_folder(folder, n_train, n_test):
    """Random CIFAR-shaped images as an image folder (the notebooks read imagefolder:PATH),
    and a random-weight vgg13_bn state_dict; returns (dataset, teacher file)."""
    import numpy as np
    import torch
    from PIL import Image

    import kd_utils as kd

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)
        for c in range(10):
            (folder / split / kd.CLASSES["cifar10"][c]).mkdir(parents=True, exist_ok=True)
        for i, (img, c) in enumerate(zip(images, labels)):
            Image.fromarray(img).save(folder / split / kd.CLASSES["cifar10"][c] / f"{i:05d}.png", compress_level=0)
    torch.manual_seed(0)
    torch.save(kd.vgg13_bn("chenyaofo").net.state_dict(), folder / "vgg13_bn-random.pt")
    return f"imagefolder:{folder}", str(folder / "vgg13_bn-random.pt")


def student_epochs(runs_dir):
    """Epoch times of the students a notebook trained (the history in each run folder's run.pt)."""
    import kd_utils as kd

    out = {}
    for f in sorted(Path(runs_dir).glob("*/students/*/run.pt")):
        epochs = kd.load_torch(f)["history"]
        if epochs:
            secs = sorted(e["seconds"] for e in epochs)
            out[f.parent.name] = dict(epochs=len(epochs), median_epoch_s=secs[len(secs) // 2],
                                      total_s=round(sum(secs), 2), last_test_acc=round(epochs[-1]["test_acc"], 4))
    return out


def notebook_step(name, limit, env, work):
    runs = work / f"runs-{name}"
    shutil.rmtree(runs, ignore_errors=True)
    env = dict(KD_RUNS_DIR=str(runs), KD_FIGURES_DIR=str(runs / "figures"), MPLBACKEND="Agg", **env)
    cmd = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", NOTEBOOK,
           "--ExecutePreprocessor.timeout=-1", "--output-dir", work, "--output", f"03-{name}.ipynb"]
    result = run_step(f"notebook 03, {name}", cmd, limit, env)
    result.update(environment={k: v for k, v in env.items() if k.startswith("KD_")},
                  students=student_epochs(runs))
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    rehearse = "--rehearse-on-cpu" in argv
    try:
        import torch
        cuda = torch.cuda.is_available()
    except Exception as e:  # noqa: BLE001 - a broken install must not print a traceback here
        print(f"gpu-check: no CUDA GPU (torch could not be imported: {type(e).__name__}); nothing was run.")
        return 0
    if not cuda and not rehearse:
        print("gpu-check: no CUDA GPU is visible to torch on this machine; nothing was run.")
        return 0

    import kd_utils as kd

    device = "cpu" if rehearse else "cuda"
    limits = {k: v * (4 if rehearse else 1) for k, v in LIMITS_S.items()}  # a CPU is slower
    stamp = datetime.datetime.now(datetime.timezone.utc)
    work = ROOT / "runs" / "gpu-check"
    work.mkdir(parents=True, exist_ok=True)
    summary = dict(date=stamp.isoformat(timespec="seconds"), device=kd.device_name(device),
                   rehearsal_on_cpu=rehearse, torch=torch.__version__, cuda=torch.version.cuda, steps={})
    steps = summary["steps"]
    print(f"[gpu-check] device: {summary['device']}" + ("  (rehearsal on the CPU, toy sizes)" if rehearse else ""))

    steps["tests"] = run_step("tests", [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"], limits["tests"])

    base = dict(KD_DEVICE=device)
    steps["notebook03_smoke"] = notebook_step("smoke", limits["smoke"],
                                              dict(base, KD_PROFILE="smoke", KD_DATASET="fashion-mnist"), work)

    if not rehearse and cifar10_available():
        teacher = os.environ.get("KD_TEACHER", "auto")
        what, env = f"CIFAR-10 with the teacher {teacher!r}", dict(KD_DATASET="cifar10", KD_TEACHER=teacher)
    else:
        n_train, n_test = (600, 200) if rehearse else (50_000, 10_000)
        what = (f"SYNTHETIC CIFAR-shaped images ({n_train:,} train / {n_test:,} test, random pixels and labels) "
                f"and a RANDOM-weight vgg13_bn: CIFAR-10 or its pre-trained teacher could not be had; "
                f"timings are real, accuracies mean nothing")
        t0 = time.perf_counter()
        try:
            dataset, teacher = synthetic_cifar_folder(work / "synthetic-cifar", n_train, n_test)
            env = dict(KD_DATASET=dataset, KD_TEACHER=teacher, KD_TEACHER_MODE="online", KD_AUGMENT="1")
        except Exception as e:  # noqa: BLE001 - report it and go on to the benchmark
            env, what = None, f"{what}; but writing them failed: {type(e).__name__}: {e}"
        summary["synthetic_data_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"[gpu-check] full profile on {what}", flush=True)
    if env is None:
        steps["notebook03_full"] = dict(status="not run", data=what)
    else:
        profile = dict(KD_PROFILE="smoke" if rehearse else "full")
        steps["notebook03_full"] = dict(notebook_step("full", limits["full"], dict(base, **env, **profile), work),
                                        data=what)

    results = work if rehearse else ROOT / "benchmarks" / "results"  # a rehearsal's JSON is not a result
    bench_json = results / f"{device}-synthetic-cifar-{stamp:%Y-%m-%dT%H%M}.json"
    cmd = [sys.executable, "benchmarks/benchmark_distillation.py", "--device", device, "--data", "synthetic-cifar",
           "--teacher", "vgg13_bn", "--out", bench_json]
    if not rehearse:
        cmd += ["--epochs", "1"]  # the tutorial loop's three students x 50,000 images fit the time limit
    else:
        cmd += ["--train-subset", "256", "--test-subset", "64", "--steps", "3", "--warmup", "1", "--epochs", "1"]
    steps["benchmark"] = run_step("benchmark", cmd, limits["benchmark"])
    if bench_json.exists():
        b = json.loads(bench_json.read_text())
        steps["benchmark"].update(json=str(bench_json.relative_to(ROOT)), steps=b.get("steps"),
                                  experiment=b.get("experiment"))

    name = f"gpu-check-{'cpu-rehearsal-' if rehearse else ''}{stamp:%Y-%m-%dT%H%M}.json"
    out = kd.storage.save_json(results / name, summary)
    print(f"[gpu-check] " + "; ".join(f"{k}: {v['status']}" for k, v in steps.items()))
    print(f"[gpu-check] saved {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

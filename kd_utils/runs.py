"""Run folders: what makes re-running a cell cheap and safe (an interrupted run
resumes, a finished one is reused); nothing here is about learning. A folder,
runs/<dataset>/<kind>/<name>-<hash>/, is named after a hash of everything its run
depends on (data content, teacher, alpha, T, seed, epochs...), and holds config.json,
checkpoint.pt (after every epoch), history.json and final.pt (+ .sha256 files)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .storage import fingerprint, load_json, load_torch, project_dir, save_json, save_torch

def runs_dir() -> Path:
    path = Path(os.environ.get("KD_RUNS_DIR") or project_dir() / "runs")
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"KD_RUNS_DIR={path} is a file, not a folder; point it at a folder")
    return path

def dataset_dir(dataset) -> Path:
    """runs/<dataset>/, with imagefolder:PATH made into one safe folder name."""
    return runs_dir() / dataset.replace(":", "_").replace("/", "_")

# The training loop's own recipe (optimizer, schedule) is part of every run's
# identity: a run made by an older loop is never reused by this one.
LOOP_VERSION = "adam, cosine decay per epoch"

def run_folder(dataset, kind, name, config) -> Path:
    """The one place a config becomes a folder."""
    return dataset_dir(dataset) / kind / f"{name}-{fingerprint(dict(config, loop=LOOP_VERSION))}"

def open_run(folder, config, model, optimizer):
    """Prepare `model` (and its optimizer) to train in `folder`; returns (history, finished).
    A finished run's weights are loaded; an interrupted one continues after its last
    completed epoch; a new one writes config.json and an epoch-0 checkpoint."""
    folder, config = Path(folder), dict(config, loop=LOOP_VERSION)
    device = next(model.parameters()).device
    if (folder / "config.json").exists():
        found = load_json(folder / "config.json")
        if found != json.loads(json.dumps(config, default=str)):
            diff = {k: (found.get(k), config.get(k)) for k in set(found) | set(config) if found.get(k) != config.get(k)}
            raise ValueError(f"{folder} holds a run with other settings ({diff}, as (found, wanted)); "
                             f"delete that folder to start over")
        history = load_json(folder / "history.json") if (folder / "history.json").exists() else {}
        if history.get("finished"):
            model.load_state_dict(load_torch(folder / "final.pt", device, verify=True))
            print(f"[kd_utils] reusing the finished run in {shown(folder)} (delete it to retrain)")
            return history["epochs"], True
    else:
        save_json(folder / "config.json", config)
    if not (folder / "checkpoint.pt").exists():
        save_checkpoint(folder, model, optimizer, [])
        return [], False
    ck = load_torch(folder / "checkpoint.pt", device, verify=True)
    model.load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optimizer"])
    if ck["history"]:
        print(f"[kd_utils] resuming {shown(folder)} after epoch {len(ck['history'])}")
    return list(ck["history"]), False

def save_checkpoint(folder, model, optimizer, history):
    # The history travels inside the checkpoint, so weights and history can
    # never disagree about how many epochs are done; history.json is a copy to read.
    save_torch(folder / "checkpoint.pt", dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                                              history=history))
    save_json(folder / "history.json", dict(epochs=history))

def finish(folder, model, history):
    # final.pt first, then the "finished" flag: a kill in between only resumes
    # from checkpoint.pt (already at the last epoch) and writes both again.
    save_torch(folder / "final.pt", model.state_dict())
    save_json(folder / "history.json", dict(epochs=history, finished=True))
    for f in ("checkpoint.pt", "checkpoint.pt.sha256"):
        (folder / f).unlink(missing_ok=True)

def shown(path) -> str:
    """A path as stored outputs should show it: relative to the project, no home folders."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(project_dir()))
    except ValueError:
        return str(path)

def save_results(s, name, rows, **extra):
    """One results file per experiment (named after everything it depends on), so
    no other run, T or alpha list can overwrite it."""
    record = dict(settings=s.as_dict(), **extra, rows=rows)
    key = fingerprint(s.as_dict(), extra)
    return save_json(dataset_dir(s.dataset) / "results" / f"{name}-{s.profile.name}-seed{s.seed}-{key}.json", record)

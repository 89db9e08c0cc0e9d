"""Run folders: what makes re-running a cell cheap and safe (an interrupted run resumes,
a finished one is reused); nothing here is about learning. A folder,
runs/<dataset>/<kind>/<name>-<hash>/, is named after a hash of everything its run
depends on (the data's content, teacher, alpha, T, seed, epochs...). It holds
config.json (that, for people to read) and run.pt: the model, its history and, while
training, its optimizer, written together, so they never disagree about the epochs done."""
from __future__ import annotations

from pathlib import Path

from .storage import CorruptFileError, content_hash, load_torch, project_dir, save_json, save_torch

# The training loop's own recipe is part of every run's identity: a run made by an
# older loop is never reused by this one.
LOOP_VERSION = "adam or sgd, lr schedule per epoch, v3"

def dataset_dir(s, dataset_name) -> Path:
    """runs/<dataset>/: an image folder by its folder's name (as data.name), never its path."""
    return s.runs_dir / ((project_dir() / dataset_name[12:]).resolve().name if dataset_name.startswith("imagefolder:")
                         else dataset_name)

def run_folder(s, data, kind, name, config) -> Path:
    """The one place a config becomes a folder: runs/<data.name>/<kind>/<name>-<hash>."""
    return s.runs_dir / data.name / kind / f"{name}-{content_hash(dict(config, loop=LOOP_VERSION))[:16]}"

def open_run(folder, config, model, optimizer):
    """(history, finished) of the run in `folder`, its weights loaded: reused if finished, else resumed; or ([], False)."""
    if not (folder / "config.json").exists():
        save_json(folder / "config.json", dict(config, loop=LOOP_VERSION))
    start = {k: v.clone() for k, v in model.state_dict().items()}  # a failed load may have copied part of the file
    try:
        saved = load_torch(folder / "run.pt", next(model.parameters()).device)
        model.load_state_dict(saved["model"])
        if not saved["finished"]:
            optimizer.load_state_dict(saved["optimizer"])
    except FileNotFoundError:
        return [], False
    except (CorruptFileError, KeyError, RuntimeError, ValueError) as e:  # ValueError: another optimizer's state
        model.load_state_dict(start)
        print(f"[kd_utils] {shown(folder)}: its checkpoint is damaged ({str(e).splitlines()[0]}); starting over")
        return [], False
    print(f"[kd_utils] reusing the finished run in {shown(folder)} (delete it to retrain)" if saved["finished"] else
          f"[kd_utils] resuming {shown(folder)} after epoch {len(saved['history'])}")
    return list(saved["history"]), saved["finished"]

def save_checkpoint(folder, model, optimizer, history, finished=False):
    """run.pt, written whole; a finished run drops its optimizer state (with Adam, two thirds of the file)."""
    save_torch(folder / "run.pt", dict(model=model.state_dict(), history=history, finished=finished,
                                       optimizer=None if finished else optimizer.state_dict()))

def shown(path) -> str:
    """A path as printed outputs show it: relative to the project, else its last four parts: never a home folder."""
    path = Path(path).resolve()
    return str(path.relative_to(project_dir())) if path.is_relative_to(project_dir()) else ".../" + "/".join(path.parts[1:][-4:])

def save_results(s, name, rows, **extra):
    """One results file per experiment (named after everything it depends on), so no
    other run, T or alpha list can overwrite it."""
    record = dict(settings=s.as_dict(), **extra, rows=rows)
    key = content_hash(s.as_dict(), extra)[:16]
    return save_json(dataset_dir(s, s.dataset) / "results" / f"{name}-{s.profile.name}-seed{s.seed}-{key}.json", record)

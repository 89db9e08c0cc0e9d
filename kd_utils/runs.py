"""Run folders: what makes re-running a cell cheap and safe (an interrupted run resumes,
a finished one is reused); nothing here is about learning. A folder,
runs/<dataset>/<kind>/<name>-<hash>/, is named after a hash of everything its run
depends on (the data's content, teacher, alpha, T, seed, epochs...). It holds
config.json, checkpoint.pt (the model, its optimizer and its history, written together)
while training, and final.pt + history.json once finished."""
from __future__ import annotations

from pathlib import Path

from .storage import CorruptFileError, content_hash, load_json, load_torch, project_dir, save_json, save_torch

# The training loop's own recipe is part of every run's identity: a run made by an
# older loop is never reused by this one.
LOOP_VERSION = "adam or sgd, lr schedule per epoch, v3"

def dataset_dir(s, dataset_name) -> Path:
    """runs/<dataset>/: an image folder by its folder's name (as data.name), never its path."""
    return s.runs_dir / ((project_dir() / dataset_name[12:]).resolve().name if dataset_name.startswith("imagefolder:")
                         else dataset_name)

def run_folder(s, dataset_name, kind, name, config) -> Path:
    """The one place a config becomes a folder."""
    return dataset_dir(s, dataset_name) / kind / f"{name}-{content_hash(dict(config, loop=LOOP_VERSION))[:16]}"

def open_run(folder, config, model, optimizer):
    """(history, finished) of the run in `folder`, its weights loaded: a finished run is reused, an interrupted one
    resumes from its last checkpoint; an unreadable checkpoint (a crash while it was written) counts as missing."""
    if not (folder / "config.json").exists():  # for people to read: the folder's name holds its hash
        save_json(folder / "config.json", dict(config, loop=LOOP_VERSION))
    device = next(model.parameters()).device
    done = load_json(folder / "history.json") if (folder / "history.json").exists() else {}
    if done.get("finished") and (folder / "final.pt").exists():
        model.load_state_dict(load_torch(folder / "final.pt", device))
        print(f"[kd_utils] reusing the finished run in {shown(folder)} (delete it to retrain)")
        return done["epochs"], True
    try:
        ck = load_torch(folder / "checkpoint.pt", device)
        model.load_state_dict(ck["model"]), optimizer.load_state_dict(ck["optimizer"])
        print(f"[kd_utils] resuming {shown(folder)} after epoch {len(ck['history'])}")
        return list(ck["history"]), False
    except (FileNotFoundError, CorruptFileError, KeyError, RuntimeError) as e:
        if not isinstance(e, FileNotFoundError):
            print(f"[kd_utils] {shown(folder)}: its checkpoint is damaged ({str(e).splitlines()[0]}); starting over")
        return [], False

def save_checkpoint(folder, model, optimizer, history):
    # The history travels inside the checkpoint, so weights and history can never
    # disagree about how many epochs are done.
    save_torch(folder / "checkpoint.pt", dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                                              history=history))

def finish(folder, model, history):
    # final.pt first, then the "finished" flag: a kill in between resumes from the last checkpoint.
    save_torch(folder / "final.pt", model.state_dict())
    save_json(folder / "history.json", dict(epochs=history, finished=True))
    (folder / "checkpoint.pt").unlink(missing_ok=True)

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

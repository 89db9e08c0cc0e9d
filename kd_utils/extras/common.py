"""What every extras notebook shares: its images (one loader, one validation
split) and the run folder of each model it trains."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ..data import balanced_indices, load_data as load_profile_data
from ..runs import run_folder
from ..storage import load_json, load_torch
from ..training import new_run


def validation_split(labels, n_val, n_train=None):
    """(train_idx, val_idx): a class-balanced validation set of n_val images
    carved out of a training set with these labels, and n_train (class-balanced;
    None: all) of the rest to train on.

    Deterministic (the same for every seed and every run): the split is part of
    the experiment, not something a seed should change. n_val = 0: no validation."""
    n = len(labels)
    if not 0 <= n_val < n:
        raise ValueError(f"n_val must be between 0 and {n - 1} (the training set has {n} images), got {n_val}")
    val_idx = balanced_indices(labels, n_val) if n_val else torch.zeros(0, dtype=torch.long)
    is_val = torch.zeros(n, dtype=torch.bool)
    is_val[val_idx] = True
    rest = torch.nonzero(~is_val).squeeze(1)
    if n_train is not None:
        if not 0 < n_train <= len(rest):
            raise ValueError(f"n_train must be between 1 and {len(rest)} (training images left after "
                             f"{n_val} for validation), got {n_train}")
        rest = rest[balanced_indices(labels.cpu()[rest], n_train)]
    return rest, val_idx


def load_data(s, size, pool=None):
    """(data, val) for an extras experiment of settings s, sized by `size`
    (n_train, n_val, n_test: see kd.extras.sizes), on s.device.

    data: size.n_train training images and size.n_test TEST images;
    val:  the same training images, with the VALIDATION images (size.n_val, held
          out from the training set) as its test set, so that training curves and
          choices never look at the test set; None when size.n_val is 0.
    pool: kd.load_data(s), if already loaded (the images are carved from it)."""
    pool = load_profile_data(s) if pool is None else pool
    train_idx, val_idx = validation_split(pool.y_train, size.n_val, size.n_train)
    test_idx = balanced_indices(pool.y_test, size.n_test)
    dev = pool.x_train.device
    train_idx, val_idx, test_idx = train_idx.to(dev), val_idx.to(dev), test_idx.to(dev)
    data = replace(pool, x_train=pool.x_train[train_idx], y_train=pool.y_train[train_idx],
                   x_test=pool.x_test[test_idx], y_test=pool.y_test[test_idx])
    if not size.n_val:
        return data, None
    return data, replace(data, x_test=pool.x_train[val_idx], y_test=pool.y_train[val_idx])


def student_run(s, data, kind, name, model, loss, config, uses_teacher=True):
    """A kd.new_run for one model of an extras experiment, resumed or reused from
    runs/<dataset>/<kind>/<name>-<hash>/. config says what else the run depends
    on (it must hold lr and epochs); the data's content, the seed, the batch size
    and autocast are added here."""
    config = dict(kind=kind, **config, data=data.key, seed=s.seed, batch_size=s.profile.batch_size,
                  autocast=s.autocast)
    folder = run_folder(data.name, kind, name, config)
    return new_run(name, model, loss, config["lr"], folder, config, uses_teacher)


def load_finished(folder, model):
    """The weights of a finished run, checked; an error naming the folder otherwise."""
    folder = Path(folder)
    history = load_json(folder / "history.json") if (folder / "history.json").exists() else {}
    if not history.get("finished"):
        raise FileNotFoundError(f"{folder} holds no finished run; train it first")
    model.load_state_dict(load_torch(folder / "final.pt", verify=True))
    return model

"""Profiles (how much to compute) and the settings every notebook starts from.

smoke: CI - a tiny subset, seconds per notebook.
cpu:   a laptop in class - minutes, cached teacher outputs.
full:  a GPU - the whole data set and a real schedule.
auto:  full when CUDA or MPS is there, else cpu.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import torch

from .checks import check_alpha, check_choice, check_temperature
from .data import DATASETS


@dataclass(frozen=True)
class Profile:
    name: str
    train_subset: int | None   # None = the whole training set
    test_subset: int | None
    teacher_epochs: int
    student_epochs: int
    batch_size: int = 128
    student_lr: float = 2e-3
    teacher_lr: float = 2e-3


PROFILES = {
    "smoke": Profile("smoke", train_subset=2000, test_subset=1000, teacher_epochs=2, student_epochs=2),
    "cpu": Profile("cpu", train_subset=None, test_subset=None, teacher_epochs=5, student_epochs=8),
    "full": Profile("full", train_subset=None, test_subset=None, teacher_epochs=30, student_epochs=30),
}
PROFILE_NAMES = tuple(PROFILES) + ("auto",)


def pick_device(requested=None):
    """cuda, then mps, then cpu (or KD_DEVICE / the argument)."""
    requested = requested or os.environ.get("KD_DEVICE")
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def get_profile(name=None, device=None) -> Profile:
    name = name or os.environ.get("KD_PROFILE") or "auto"
    check_choice("profile", name, PROFILE_NAMES)
    if name == "auto":
        name = "full" if pick_device(device).type in ("cuda", "mps") else "cpu"
    return PROFILES[name]


@dataclass
class Settings:
    dataset: str
    profile: Profile
    seed: int
    temperature: float
    alphas: tuple
    device: torch.device
    teacher: str = "auto"
    extra: dict = field(default_factory=dict)

    def describe(self):
        p = self.profile
        subset = f"{p.train_subset or 'all'} train / {p.test_subset or 'all'} test images"
        return (f"dataset={self.dataset}  profile={p.name} ({subset}, teacher {p.teacher_epochs} "
                f"epochs, students {p.student_epochs} epochs)  device={self.device}  seed={self.seed}  "
                f"T={self.temperature:g}  alphas={list(self.alphas)}")

    def as_dict(self):
        d = asdict(self)
        d["device"] = str(self.device)
        return d


def check_teacher_source(teacher):
    """auto, download, train, or an existing weights file: fail here, not after loading data."""
    from pathlib import Path

    if teacher in ("auto", "download", "train") or Path(teacher).is_file():
        return teacher
    raise ValueError(f"unknown teacher {teacher!r}: not a file, and not one of 'auto', 'download', "
                     f"'train' (or give the path to a .pt weights file)")


def _env(name, cast, default):
    v = os.environ.get(name)
    return cast(v) if v not in (None, "") else default


def settings(dataset="cifar10", profile="auto", seed=0, temperature=4.0,
             alphas=(0.0, 0.5, 1.0), teacher="auto", device=None, verbose=True, **extra):
    """The parameters cell of every notebook. KD_DATASET, KD_PROFILE, KD_SEED,
    KD_TEMPERATURE, KD_ALPHAS ("0 0.5 1"), KD_TEACHER and KD_DEVICE override them."""
    dataset = _env("KD_DATASET", str, dataset)
    if not str(dataset).startswith("imagefolder:"):
        check_choice("dataset", dataset, DATASETS + ("imagefolder:PATH",))
    dev = pick_device(device)
    prof = get_profile(_env("KD_PROFILE", str, profile), dev)
    alphas = _env("KD_ALPHAS", lambda s: [float(a) for a in s.replace(",", " ").split()], alphas)
    s = Settings(
        dataset=dataset, profile=prof, seed=_env("KD_SEED", int, int(seed)),
        temperature=check_temperature(_env("KD_TEMPERATURE", float, temperature)),
        alphas=tuple(check_alpha(a) for a in alphas), device=dev,
        teacher=check_teacher_source(_env("KD_TEACHER", str, teacher)), extra=extra,
    )
    if verbose:
        print(s.describe())
    return s

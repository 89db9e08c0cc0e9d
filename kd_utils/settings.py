"""The settings every notebook starts from: one frozen object, checked once, here:
`s = kd.settings(dataset="fashion-mnist", profile="cpu", temperature=4.0)`.
KD_* environment variables override the notebook's values (that is how `make record`
and CI steer the notebooks). Profiles say how much to compute: smoke (CI, seconds),
cpu (a laptop in class, minutes), full (a GPU), auto (full with CUDA or MPS, else cpu).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

DATASETS = ("cifar10", "fashion-mnist", "mnist")
FORMULATIONS = ("hinton", "blended")
TEACHER_MODES = ("cached", "online")

@dataclass(frozen=True)
class Profile:
    name: str
    train_subset: int | None   # None = the whole training set
    test_subset: int | None
    teacher_epochs: int
    student_epochs: int
    few_labels: int            # notebooks 03-04's few-label students: labelled images,
    few_label_epochs: int      # and epochs (600 images: 5 batches an epoch; 200 epochs = 1,000 steps)
    batch_size: int = 128
    student_lr: float = 2e-3
    teacher_lr: float = 2e-3

PROFILES = {
    "smoke": Profile("smoke", 2000, 1000, teacher_epochs=2, student_epochs=2, few_labels=200, few_label_epochs=3),
    "cpu": Profile("cpu", None, None, teacher_epochs=5, student_epochs=8, few_labels=600, few_label_epochs=200),
    "full": Profile("full", None, None, teacher_epochs=30, student_epochs=30, few_labels=600, few_label_epochs=200),
}

@dataclass(frozen=True)
class Settings:
    dataset: str
    profile: Profile
    seed: int
    temperature: float
    alphas: tuple
    formulation: str
    teacher: str          # auto, download, train, or a weights file
    teacher_mode: str     # cached: teacher outputs computed once; online: teacher on every batch
    device: torch.device
    augment: bool         # random crops and flips (only with an online teacher)
    autocast: bool        # bf16 autocast (CUDA's default; on the CPU it stands in for it in tests)

    def describe(self):
        p = self.profile
        subset = f"{p.train_subset or 'all'} train / {p.test_subset or 'all'} test images"
        return (f"dataset={self.dataset}  profile={p.name} ({subset}, teacher {p.teacher_epochs} epochs, "
                f"students {p.student_epochs} epochs)  device={self.device}  seed={self.seed}\n"
                f"T={self.temperature:g}  alphas={list(self.alphas)}  loss={self.formulation}  "
                f"teacher={self.teacher} ({self.teacher_mode})  augment={self.augment}  autocast={self.autocast}")

    def as_dict(self):
        return dict(asdict(self), device=str(self.device))

def check_temperature(temperature, what="temperature", low=0.0, high=math.inf):
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {temperature!r}") from None
    if not (math.isfinite(t) and t > low and t <= high):
        allowed = "a finite number > 0" if high == math.inf else f"between {low:g} and {high:g}"
        raise ValueError(f"{what} must be {allowed} (1 = ordinary softmax, larger = softer), "
                         f"got {temperature!r}")
    return t

def check_alpha(alpha, what="alpha"):
    try:
        a = float(alpha) + 0.0  # + 0.0 turns -0.0 into 0.0
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {alpha!r}") from None
    if not (0.0 <= a <= 1.0):  # also rejects NaN
        raise ValueError(f"{what} must be in [0, 1] (0 = hard labels only, 1 = teacher only), got {alpha!r}")
    return a

def check_choice(what, value, allowed):
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; valid {what}s are: {', '.join(map(repr, allowed))}")
    return value

def pick_device(requested=None):
    """cuda, then mps, then cpu (or the one asked for)."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")

def default_threads():
    """Half the cores. Our models are small, so each op is short: threads spend much
    of it waiting for each other, and when anything else wants the cores (Jupyter,
    a browser) those waits become 5-10x slowdowns (benchmarks/README.md)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
    return max(1, cores // 2)

DEFAULTS = dict(dataset="cifar10", profile="auto", seed=0, temperature=4.0, alphas=(0.0, 0.5, 1.0),
                formulation="hinton", teacher="auto", teacher_mode="auto", device=None, augment="auto",
                autocast="auto", threads=None)

def _numbers(text):
    if "," in text:  # '0,5' could be one number with a decimal comma, or two
        raise ValueError
    return [float(v) for v in text.split()]

def _switch(text):
    return {"auto": "auto", "1": True, "true": True, "0": False, "false": False}[text.lower()]

# setting: (variable, parser, what a valid value looks like)
ENV = dict(dataset=("KD_DATASET", str, ""), profile=("KD_PROFILE", str, ""),
           seed=("KD_SEED", int, "a whole number, e.g. 0"),
           temperature=("KD_TEMPERATURE", float, "a number with a decimal point, e.g. 4 or 0.5"),
           alphas=("KD_ALPHAS", _numbers, "numbers separated by spaces, e.g. '0 0.5 1'"),
           formulation=("KD_FORMULATION", str, ""), teacher=("KD_TEACHER", str, ""),
           teacher_mode=("KD_TEACHER_MODE", str, ""), device=("KD_DEVICE", str, ""),
           augment=("KD_AUGMENT", _switch, "1, 0 or auto"), autocast=("KD_AUTOCAST", _switch, "1, 0 or auto"),
           threads=("KD_THREADS", int, "a whole number >= 1"))

def from_env():
    """The settings given by environment variables, parsed; errors name the variable."""
    out = {}
    for key, (var, parse, valid) in ENV.items():
        text = os.environ.get(var, "").strip()
        if text:
            try:
                out[key] = parse(text)
            except (ValueError, KeyError):
                raise ValueError(f"{var}={text!r} is not valid: use {valid}") from None
    return out

def settings(*, env=True, verbose=True, **values) -> Settings:
    """The parameters cell of every notebook, checked. Unknown names are refused;
    environment variables override `values` (unless env=False)."""
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown}; valid settings are: {', '.join(DEFAULTS)}")
    v = {**DEFAULTS, **values, **(from_env() if env else {})}
    dataset = str(v["dataset"])
    if not dataset.startswith("imagefolder:"):
        check_choice("dataset", dataset, DATASETS + ("imagefolder:PATH",))
    device = pick_device(v["device"])
    profile = check_choice("profile", v["profile"], tuple(PROFILES) + ("auto",))
    if profile == "auto":
        profile = "full" if device.type in ("cuda", "mps") else "cpu"
    seed = v["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise ValueError(f"seed must be a whole number from 0 to {2**31 - 1}, got {seed!r}")
    if isinstance(v["alphas"], (str, int, float)):
        raise TypeError(f"alphas must be a list of teacher weights, e.g. (0.0, 0.5, 1.0), got {v['alphas']!r}")
    alphas = tuple(dict.fromkeys(check_alpha(a) for a in v["alphas"]))
    if not alphas:
        raise ValueError("alphas must list at least one teacher weight, e.g. (0.0, 0.5, 1.0)")
    teacher = str(v["teacher"])
    if teacher not in ("auto", "download", "train") and not Path(teacher).is_file():
        raise ValueError(f"unknown teacher {teacher!r}: not a file, and not one of 'auto', 'download', "
                         f"'train' (or give the path to a .pt weights file)")
    mode = v["teacher_mode"]
    mode = ("online" if device.type == "cuda" else "cached") if mode == "auto" else mode
    check_choice("teacher_mode", mode, TEACHER_MODES)
    # Augmenting with cached teacher outputs would teach the clean image's answer for a crop.
    augment = (dataset == "cifar10" and mode == "online") if v["augment"] == "auto" else bool(v["augment"])
    if augment and mode == "cached":
        raise ValueError("augment=True needs teacher_mode='online': cached teacher outputs are for the "
                         "clean images, not the crops the students see")
    threads = default_threads() if v["threads"] is None else v["threads"]
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads (KD_THREADS) must be a whole number >= 1, got {threads!r}")
    if device.type == "cpu":
        # Once here, for every loop alike: another thread count can round differently.
        torch.set_num_threads(threads)
    s = Settings(dataset=dataset, profile=PROFILES[profile], seed=seed,
                 temperature=check_temperature(v["temperature"], low=0.05, high=100),
                 alphas=alphas, formulation=check_choice("formulation", v["formulation"], FORMULATIONS),
                 teacher=teacher, teacher_mode=mode, device=device, augment=augment,
                 autocast=device.type == "cuda" if v["autocast"] == "auto" else bool(v["autocast"]))
    if verbose:
        print(s.describe())
    return s


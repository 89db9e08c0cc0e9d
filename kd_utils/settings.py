"""The settings every notebook starts from: one frozen object, checked once, here:
`s = kd.settings(dataset="fashion-mnist", profile="cpu", temperature=4.0)`.

One precedence rule everywhere: a KD_* environment variable beats the value written
in a notebook cell or given as a command-line flag, which beats the default. (That is
how `make record` and CI steer notebooks without editing them.) Strings are parsed the
same way wherever they come from. Profiles say how much to compute: smoke (CI,
seconds), cpu (a laptop in class, minutes), full (a GPU), auto (full on CUDA or MPS).
"""
from __future__ import annotations

import numbers
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .storage import project_dir

DATASETS = ("cifar10", "fashion-mnist", "mnist")
FORMULATIONS = ("hinton", "blended")
TEACHER_MODES = ("cached", "online")
TEACHERS = ("auto", "download", "train", "train-vgg13_bn")
PRECISIONS = ("bf16", "fp16", "fp32")
TEMPERATURE_RANGE = (0.05, 1000.0)  # the one range for T, in the loss, the settings and the plots

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
    teacher: str          # auto, download, train, train-vgg13_bn, or a weights file
    teacher_mode: str     # cached: teacher outputs computed once; online: teacher on every batch
    device: torch.device
    augment: bool         # random crops and flips of 32x32 colour images (only with an online teacher)
    precision: str        # autocast: bf16, fp16 (with a gradient scaler) or fp32 (none)
    threads: int          # CPU threads while training (results are bit-identical only at one count)
    data_dir: Path
    runs_dir: Path
    figures_dir: Path

    def describe(self):
        p, s = self.profile, self
        return (f"dataset={s.dataset}  profile={p.name} ({p.train_subset or 'all'} train / {p.test_subset or 'all'} test images, "
                f"teacher {p.teacher_epochs} epochs, students {p.student_epochs})  device={s.device}  seed={s.seed}\nT={s.temperature:g}  "
                f"alphas={list(s.alphas)}  loss={s.formulation}  teacher={s.teacher} ({s.teacher_mode})  augment={s.augment}  "
                f"precision={s.precision}  threads={s.threads}")

    def as_dict(self):
        return {k: str(v) if isinstance(v, (Path, torch.device)) else v for k, v in asdict(self).items()
                if not k.endswith("_dir")}

def check_temperature(temperature, what="temperature"):
    low, high = TEMPERATURE_RANGE  # `not low <= T <= high` also refuses NaN
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not low <= temperature <= high:
        raise ValueError(f"{what} must be a number from {low:g} to {high:g} (1 = ordinary softmax, larger = softer), "
                         f"got {temperature!r}")
    return float(temperature)

def check_alpha(alpha, what="alpha"):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{what} must be a number in [0, 1] (0 = hard labels only, 1 = teacher only), got {alpha!r}")
    return float(alpha) + 0.0  # + 0.0 turns -0.0 into 0.0

def check_choice(what, value, allowed):
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; valid {what}s are: {', '.join(map(repr, allowed))}")
    return value

def check_whole(what, value, low, high):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"{what} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)

def image_shape(dataset):
    """What the images look like, known from the name alone: image folders are read as 32x32 RGB."""
    return (1, 28, 28) if dataset in ("fashion-mnist", "mnist") else (3, 32, 32)

def default_precision(device):
    """bf16 where the GPU has it natively (compute capability >= 8), fp16 on older GPUs (Colab's T4), else fp32."""
    return "fp32" if device.type != "cuda" else "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"

def default_threads():
    """Half the cores. Our models are small, so each op is short: threads spend much of it waiting for
    each other, and when anything else wants the cores (Jupyter, a browser) those waits become 5-10x
    slowdowns (benchmarks/README.md)."""
    return max(1, len(os.sched_getaffinity(0)) // 2)

def _switch(text):
    return {"auto": "auto", "1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}[text.lower()]

def _numbers(text):
    if "," in text:  # '0,5' could be one number with a decimal comma, or two
        raise ValueError
    return tuple(float(v) for v in text.split())

# setting: (environment variable, parser of a string); a string is parsed alike wherever it comes from
PARSERS = dict(dataset=("KD_DATASET", str), profile=("KD_PROFILE", str), seed=("KD_SEED", int),
               temperature=("KD_TEMPERATURE", float), alphas=("KD_ALPHAS", _numbers),
               formulation=("KD_FORMULATION", str), teacher=("KD_TEACHER", str), teacher_mode=("KD_TEACHER_MODE", str),
               device=("KD_DEVICE", str), augment=("KD_AUGMENT", _switch), precision=("KD_PRECISION", str),
               threads=("KD_THREADS", int), data_dir=("KD_DATA_DIR", Path), runs_dir=("KD_RUNS_DIR", Path),
               figures_dir=("KD_FIGURES_DIR", Path))
DEFAULTS = dict(dataset="cifar10", profile="auto", seed=0, temperature=4.0, alphas=(0.0, 0.5, 1.0),
                formulation="hinton", teacher="auto", teacher_mode="auto", device=None, augment="auto",
                precision="auto", threads=None, data_dir=None, runs_dir=None, figures_dir=None)

HINTS = dict(seed="a whole number, e.g. 0", temperature="a number, e.g. 4 or 0.5", threads="a whole number, e.g. 1",
             alphas="numbers separated by spaces, e.g. '0 0.5 1'", augment="1, 0, true, false or auto")

def _parse(key, value, where):
    try:
        return PARSERS[key][1](value.strip()) if isinstance(value, str) else value
    except (ValueError, KeyError):
        raise ValueError(f"{where}={value!r} is not valid: use {HINTS[key]}") from None

def settings(*, verbose=True, **values) -> Settings:
    """The parameters cell of every notebook, checked once, here; KD_* environment variables win."""
    if set(values) - set(DEFAULTS):
        raise TypeError(f"unknown setting(s) {sorted(set(values) - set(DEFAULTS))}; valid: {', '.join(DEFAULTS)}")
    v = {**DEFAULTS, **{k: _parse(k, x, k) for k, x in values.items()},
         **{k: _parse(k, os.environ[var], var) for k, (var, _) in PARSERS.items() if os.environ.get(var, "").strip()}}
    device = _device(v["device"])
    mode = ("online" if device.type == "cuda" else "cached") if v["teacher_mode"] == "auto" else v["teacher_mode"]
    # 32x32 colour images get crops and flips if the teacher sees them too: cached outputs describe the clean image
    augment = image_shape(v["dataset"]) == (3, 32, 32) and mode == "online" if v["augment"] == "auto" else v["augment"]
    if not isinstance(augment, bool) or (augment and mode == "cached"):
        raise ValueError(f"augment must be True, False or 'auto', and True needs teacher_mode='online' (cached "
                         f"outputs are for the clean images, not the crops the students see); got {augment!r}")
    runs_dir = Path(v["runs_dir"] or project_dir() / "runs")
    s = Settings(dataset=_dataset(v["dataset"]), seed=check_whole("seed", v["seed"], 0, 2**31 - 1),
                 profile=PROFILES[("full" if device.type != "cpu" else "cpu") if v["profile"] == "auto"
                                  else check_choice("profile", v["profile"], (*PROFILES, "auto"))],
                 temperature=check_temperature(v["temperature"]), alphas=_alphas(v["alphas"]),
                 formulation=check_choice("formulation", v["formulation"], FORMULATIONS), teacher=_teacher(v["teacher"]),
                 teacher_mode=check_choice("teacher_mode", mode, TEACHER_MODES), device=device, augment=augment,
                 precision=default_precision(device) if v["precision"] == "auto" else
                 check_choice("precision", v["precision"], PRECISIONS),
                 threads=check_whole("threads", default_threads() if v["threads"] is None else v["threads"], 1, 1024),
                 data_dir=Path(v["data_dir"] or project_dir() / "data"), runs_dir=runs_dir,
                 figures_dir=Path(v["figures_dir"] or runs_dir / "figures"))
    for name, folder in (("data_dir", s.data_dir), ("runs_dir", s.runs_dir), ("figures_dir", s.figures_dir)):
        if folder.exists() and not folder.is_dir():  # refused now, not when a result is written
            raise NotADirectoryError(f"{name} ({PARSERS[name][0]}) is {folder}, a file, not a folder: point it at a folder")
    if verbose:
        print(s.describe())
    return s

def _device(name):
    here = ["cpu", *["mps"] * torch.backends.mps.is_available(), *["cuda"] * torch.cuda.is_available()]
    if str(name or here[-1]).split(":")[0] not in here:  # no name: the fastest here, cuda > mps > cpu
        raise ValueError(f"unknown device {name!r}; valid devices here are: {', '.join(here)}")
    return torch.device(name or here[-1])

def _dataset(name):
    return name if str(name).startswith("imagefolder:") else check_choice("dataset", name, DATASETS + ("imagefolder:PATH",))

def _alphas(alphas):
    alphas = tuple(check_alpha(a) for a in alphas) if isinstance(alphas, (tuple, list)) else ()
    if not alphas or len({f"{a:g}" for a in alphas}) < len(alphas):  # names and tables show alpha with :g
        raise ValueError(f"alphas must be a list of teacher weights that differ as printed, e.g. (0.0, 0.5, 1.0)")
    return alphas

def _teacher(teacher):
    if teacher not in TEACHERS and not Path(str(teacher)).is_file():
        raise ValueError(f"unknown teacher {teacher!r}: not a file, and not one of {', '.join(TEACHERS)}")
    return str(teacher)


"""The settings every notebook starts from: one frozen object, checked once, here:
`s = kd.settings(dataset="fashion-mnist", profile="cpu", temperature=4.0)`.

One precedence rule everywhere: a KD_* environment variable beats the value written
in a notebook cell or given as a command-line flag, which beats the default. (That is
how `make record` and CI steer notebooks without editing them.) Strings are parsed the
same way wherever they come from. Profiles say how much to compute: smoke (CI,
seconds), cpu (a laptop in class, minutes), full (a GPU), auto (full on CUDA or MPS).
"""
from __future__ import annotations

import math
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
        p = self.profile
        subset = f"{p.train_subset or 'all'} train / {p.test_subset or 'all'} test images"
        return (f"dataset={self.dataset}  profile={p.name} ({subset}, teacher {p.teacher_epochs} epochs, "
                f"students {p.student_epochs} epochs)  device={self.device}  seed={self.seed}\n"
                f"T={self.temperature:g}  alphas={list(self.alphas)}  loss={self.formulation}  "
                f"teacher={self.teacher} ({self.teacher_mode})  augment={self.augment}  precision={self.precision}")

    def as_dict(self):
        return {k: str(v) if isinstance(v, (Path, torch.device)) else v for k, v in asdict(self).items()
                if not k.endswith("_dir")}

def check_temperature(temperature, what="temperature"):
    low, high = TEMPERATURE_RANGE
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"{what} must be a number, got {temperature!r}")
    if not low <= temperature <= high:  # also refuses NaN
        raise ValueError(f"{what} must be between {low:g} and {high:g} (1 = ordinary softmax, larger = softer), "
                         f"got {temperature!r}")
    return float(temperature)

def check_alpha(alpha, what="alpha"):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"{what} must be a number, got {alpha!r}")
    if not 0.0 <= alpha <= 1.0:  # also refuses NaN
        raise ValueError(f"{what} must be in [0, 1] (0 = hard labels only, 1 = teacher only), got {alpha!r}")
    return float(alpha) + 0.0  # + 0.0 turns -0.0 into 0.0

def check_choice(what, value, allowed):
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; valid {what}s are: {', '.join(map(repr, allowed))}")
    return value

def image_shape(dataset):
    """What the images look like, known from the name alone: image folders are read as 32x32 RGB."""
    return (1, 28, 28) if dataset in ("fashion-mnist", "mnist") else (3, 32, 32)

def default_precision(device):
    """bf16 autocast where the GPU has it natively (compute capability >= 8.0), fp16 with a
    gradient scaler on older CUDA GPUs (Colab's T4), none on a CPU or MPS."""
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"

def default_threads():
    """Half the cores. Our models are small, so each op is short: threads spend much of it
    waiting for each other, and when anything else wants the cores (Jupyter, a browser)
    those waits become 5-10x slowdowns (benchmarks/README.md)."""
    return max(1, len(os.sched_getaffinity(0)) // 2 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2) // 2)

def _whole(text, low=0, high=2**31 - 1):
    v = int(text)
    if not low <= v <= high:
        raise ValueError
    return v

def _numbers(text):
    if "," in text:  # '0,5' could be one number with a decimal comma, or two
        raise ValueError
    return tuple(float(v) for v in text.split())

def _switch(text):
    return {"auto": "auto", "1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}[text.lower()]

def _device(text):
    check_choice("device", torch.device(text).type, ("cpu", "cuda", "mps"))
    return text

# setting: (environment variable, parser of a string, what a valid value looks like)
PARSERS = dict(dataset=("KD_DATASET", str, ""), profile=("KD_PROFILE", str, ""),
               seed=("KD_SEED", _whole, "a whole number from 0 to 2147483647, e.g. 0"),
               temperature=("KD_TEMPERATURE", float, "a number, e.g. 4 or 0.5"),
               alphas=("KD_ALPHAS", _numbers, "numbers separated by spaces, e.g. '0 0.5 1'"),
               formulation=("KD_FORMULATION", str, ""), teacher=("KD_TEACHER", str, ""),
               teacher_mode=("KD_TEACHER_MODE", str, ""), device=("KD_DEVICE", _device, "cpu, cuda or mps"),
               augment=("KD_AUGMENT", _switch, "1, 0, true, false or auto"),
               precision=("KD_PRECISION", str, ""), threads=("KD_THREADS", lambda t: _whole(t, 1, 1024),
                                                             "a whole number from 1 to 1024"),
               data_dir=("KD_DATA_DIR", Path, ""), runs_dir=("KD_RUNS_DIR", Path, ""),
               figures_dir=("KD_FIGURES_DIR", Path, ""))
DEFAULTS = dict(dataset="cifar10", profile="auto", seed=0, temperature=4.0, alphas=(0.0, 0.5, 1.0),
                formulation="hinton", teacher="auto", teacher_mode="auto", device=None, augment="auto",
                precision="auto", threads=None, data_dir=None, runs_dir=None, figures_dir=None)

def _parse(key, value, source):
    """A string is parsed as the environment's would be; errors name where it came from."""
    var, parse, valid = PARSERS[key]
    if not isinstance(value, str):
        return value
    try:
        return parse(value.strip())
    except (ValueError, KeyError, RuntimeError):
        where = f"{var}={value!r}" if source == "env" else f"{key}={value!r}"
        raise ValueError(f"{where} is not valid: use {valid or 'one of the values listed in the README'}") from None

def settings(*, verbose=True, **values) -> Settings:
    """The parameters cell of every notebook, checked. Unknown names are refused;
    KD_* environment variables win over `values` (see the module's docstring)."""
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown}; valid settings are: {', '.join(DEFAULTS)}")
    env = {k: os.environ[var] for k, (var, _, _) in PARSERS.items() if os.environ.get(var, "").strip()}
    v = {**DEFAULTS, **{k: _parse(k, x, "cell") for k, x in values.items()},
         **{k: _parse(k, x, "env") for k, x in env.items()}}
    dataset = v["dataset"]
    if not (isinstance(dataset, str) and dataset.startswith("imagefolder:")):
        check_choice("dataset", dataset, DATASETS + ("imagefolder:PATH",))
    device = torch.device(v["device"]) if v["device"] else torch.device(
        "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
    profile = check_choice("profile", v["profile"], (*PROFILES, "auto"))
    profile = ("full" if device.type in ("cuda", "mps") else "cpu") if profile == "auto" else profile
    seed = v["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise ValueError(f"seed must be a whole number from 0 to {2**31 - 1}, got {seed!r}")
    if not isinstance(v["alphas"], (tuple, list)) or not v["alphas"]:
        raise TypeError(f"alphas must be a list of teacher weights, e.g. (0.0, 0.5, 1.0), got {v['alphas']!r}")
    alphas = tuple(check_alpha(a) for a in v["alphas"])
    if len({f"{a:g}" for a in alphas}) < len(alphas):  # run names and tables show alpha with :g
        raise ValueError(f"alphas must differ from each other, got {list(alphas)}")
    teacher = str(v["teacher"])
    if teacher not in TEACHERS and not Path(teacher).is_file():
        raise ValueError(f"unknown teacher {teacher!r}: not a file, and not one of {', '.join(map(repr, TEACHERS))} "
                         f"(or give the path to a .pt weights file)")
    mode = ("online" if device.type == "cuda" else "cached") if v["teacher_mode"] == "auto" else v["teacher_mode"]
    check_choice("teacher_mode", mode, TEACHER_MODES)
    # 32x32 colour images are augmented (crops and flips) when the teacher sees the crops too:
    # cached outputs describe the clean image, not the crop the student sees.
    augment = (image_shape(dataset) == (3, 32, 32) and mode == "online") if v["augment"] == "auto" else v["augment"]
    if not isinstance(augment, bool):
        raise TypeError(f"augment must be True, False or 'auto', got {augment!r}")
    if augment and mode == "cached":
        raise ValueError("augment=True needs teacher_mode='online': cached teacher outputs are for the "
                         "clean images, not the crops the students see")
    precision = default_precision(device) if v["precision"] == "auto" else check_choice("precision", v["precision"],
                                                                                        PRECISIONS)
    threads = default_threads() if v["threads"] is None else v["threads"]
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 1024:
        raise ValueError(f"threads must be a whole number from 1 to 1024, got {threads!r}")
    runs_dir = Path(v["runs_dir"] or project_dir() / "runs")
    s = Settings(dataset=dataset, profile=PROFILES[profile], seed=seed, temperature=check_temperature(v["temperature"]),
                 alphas=alphas, formulation=check_choice("formulation", v["formulation"], FORMULATIONS),
                 teacher=teacher, teacher_mode=mode, device=device, augment=augment, precision=precision,
                 threads=threads, data_dir=Path(v["data_dir"] or project_dir() / "data"), runs_dir=runs_dir,
                 figures_dir=Path(v["figures_dir"] or runs_dir / "figures"))
    for name in ("data_dir", "runs_dir", "figures_dir"):
        if getattr(s, name).exists() and not getattr(s, name).is_dir():
            raise NotADirectoryError(f"{name} ({PARSERS[name][0]}) is {getattr(s, name)}, a file, not a folder; "
                                     f"point it at a folder")
    if verbose:
        print(s.describe())
    return s

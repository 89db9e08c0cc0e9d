"""kd_utils: the small module behind the knowledge-distillation notebooks.

One concept per file, each importing only those above it:
  storage.py      files written atomically, loaded safely, hashed
  settings.py     the settings object every notebook starts from; profiles; checks
  data.py         datasets as tensors (torchvision's, or your image folder), batched augmentation
  models.py       LeNet student, CNN teacher, vgg13_bn (two zoo layouts)
  losses.py       DistillationLoss (Hinton's form and the seeds' blended form)
  temperature.py  softmax with temperature, entropy, the slider plot
  runs.py         run folders: checkpoints, resume, results files
  training.py     distill -> fit -> train: the loop; predict; the teacher-output cache
  teachers.py     get a teacher: a download, a file, or trained here
  metrics.py      accuracy, confusions, agreement, KL to the teacher, paired differences
  figures.py      save_figure + manifest, shared plots
  cli.py          `python -m kd_utils ...`
Loaded when first used: kd_utils.extras (notebooks 04-05's experiments, 04b's playground)
and kd_utils.exercises (the self-checking exercises).
"""
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from .data import CLASSES, DataUnavailableError, Dataset, load_data, load_dataset, random_crop_flip
from .figures import (bar_chart, confusion_change_heatmap, confusion_heatmap, device_name, grouped_bars, model_color,
                      plot_differences, plot_history, plot_soft_targets, record_results, save_figure, show_image,
                      soft_targets_grid)
from .losses import DistillationLoss, soft_cross_entropy
from .metrics import (accuracy, accuracy_stderr, agreement, compare_over_seeds, compare_to_baseline, confusion_matrix,
                      evaluate, format_table, kl_to_teacher, most_confused_pairs, paired_difference, per_class_accuracy,
                      summarize)
from .models import ZOO, Normalized, count_parameters, freeze, make_student, vgg13_bn
from .runs import save_results, shown
from .settings import PROFILES, Settings, settings
from .storage import CorruptFileError, UnsafeCheckpointError, load_torch, save_torch
from .teachers import TeacherMismatchError, get_teacher, train_teacher
from .temperature import entropy, plot_softmax, probability_ratios, soft_term_gradient, softmax_with_temperature
from .training import (Trained, distill, epoch_generator, fit, learning_rate, new_student, predict, teacher_outputs,
                       train)

try:
    __version__ = version("kd_utils")  # the one place it is written: pyproject.toml
except PackageNotFoundError:
    __version__ = "unknown"

def __getattr__(name):  # kd.extras and kd.exercises load when first used
    if name in ("extras", "exercises"):
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'kd_utils' has no attribute {name!r}")

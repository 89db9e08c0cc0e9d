"""kd_utils: the small module behind the knowledge-distillation notebooks.

One concept per file:
  settings.py     the settings object every notebook starts from; profiles; checks
  temperature.py  softmax with temperature, entropy, the slider plot
  losses.py       distillation_loss (Hinton's and the seeds' blended form)
  data.py         datasets as tensors, batches, batched augmentation
  models.py       LeNet student, vgg13_bn (two zoo layouts), CNN teacher
  training.py     the training loop (students in lockstep), distill, predict
  teachers.py     get a teacher; train one; cache its outputs
  runs.py         run folders: checkpoints, resume, results files
  metrics.py      accuracy, confusion, agreement, KL to teacher, paired differences
  figures.py      save_figure + manifest, shared plots
  storage.py      atomic writes, checksummed safe loading, hashes
Beyond the core: kd_utils.extras (notebooks 05-08) and kd_utils.exercises.
"""
from importlib.metadata import PackageNotFoundError, version

from .data import CLASSES, DataUnavailableError, Dataset, load_data, load_dataset, random_crop_flip
from .figures import (bar_chart, confusion_change_heatmap, confusion_heatmap, device_name, grouped_bars,
                      model_color, plot_differences, plot_history, plot_soft_targets, record_results,
                      save_figure, show_image, soft_targets_grid)
from .losses import distillation_loss, kd_loss, soft_cross_entropy
from .metrics import (accuracy, accuracy_stderr, agreement, compare_over_seeds, compare_to_baseline, confusion_matrix, evaluate,
                      format_table, kl_to_teacher, most_confused_pairs, paired_difference, per_class_accuracy,
                      summarize, weight_difference)
from .models import LeNetStudent, Normalized, count_parameters, freeze, make_student
from .runs import runs_dir, save_results, shown
from .settings import FORMULATIONS, PROFILES, TEACHER_MODES, Settings, settings
from .storage import CorruptFileError, UnsafeCheckpointError, load_torch, save_torch
from .teachers import TeacherMismatchError, get_teacher, teacher_outputs, train_teacher
from .temperature import (entropy, plot_softmax, probability_ratios, soft_term_gradient,
                          softmax_with_temperature)
from .training import Trained, distill, distill_seeds, epoch_generator, new_run, new_student, predict, train
from .extras.teacher_files import ZOO, vgg13_bn
from . import exercises, extras  # noqa: E402  kd.exercises.check_...(), kd.extras.<notebook 05-08 module>

try:
    __version__ = version("kd_utils")  # the one place it is written: pyproject.toml
except PackageNotFoundError:
    __version__ = "unknown"


"""kd_utils: the small module behind the knowledge-distillation notebooks.

One concept per file:
  temperature.py  softmax with temperature, entropy, the slider plot
  losses.py       distillation_loss (Hinton's and the seeds' blended form)
  data.py         datasets as tensors, batches, batched augmentation
  models.py       LeNet student, vgg13_bn (two zoo layouts), CNN teacher
  teachers.py     get a teacher; cache its outputs
  training.py     train_teacher, train_student (resumable, reproducible)
  metrics.py      accuracy, confusion, agreement, KL to teacher
  profiles.py     smoke / cpu / full / auto, and the notebooks' settings
  experiment.py   the three-student experiment in a few calls
  figures.py      save_figure + manifest, shared plots
  storage.py      atomic writes, safe loading, hashes, verified downloads
  hinton.py       notebook 07: Hinton's MNIST MLPs, batched jitter, the omitted class
  hints.py        notebook 08: FitNets hints, teacher ensembles, their students
  exercises.py    self-checking exercises: check_...(learner's answer)
"""
from .data import CLASSES, DATASETS, DataUnavailableError, Dataset, load_dataset, random_crop_flip
from .experiment import (cached_teacher_logits, distill, evaluate, format_table, load_data,
                         load_teacher, save_results)
from .figures import (bar_chart, confusion_change_heatmap, confusion_heatmap, grouped_bars,
                      plot_history, record, record_results, save_figure, show_image)
from .losses import FORMULATIONS, distillation_loss, soft_cross_entropy
from .metrics import (accuracy, accuracy_stderr, agreement, compare_to_baseline, confusion_matrix,
                      kl_to_teacher, most_confused_pairs, paired_difference, per_class_accuracy,
                      summarize, weight_difference)
from .models import LeNetStudent, count_parameters, freeze, make_student, vgg13_bn
from .profiles import PROFILES, get_profile, pick_device, settings
from .storage import UnsafeCheckpointError, load_torch, save_torch
from .teachers import get_teacher, teacher_outputs
from .temperature import entropy, plot_softmax, probability_ratios, softmax_with_temperature
from .training import new_student, predict, train_student, train_teacher
from . import exercises  # noqa: E402  kd.exercises.check_...(): the notebooks' exercises

__version__ = "0.1.0"

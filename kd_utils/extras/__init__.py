"""Beyond the core: what only notebooks 04b-08 (and 04's curve) need, built on the core's training
loop (kd.train), teachers, run folders and metrics.

  sizes.py        how big each experiment is in each profile (one table)
  common.py       load_data (one loader, one validation split), student_run
  sweeps.py       05: temperature x alpha x seed, chosen on validation
  compression.py  06: quantization, pruning, size and latency
  hinton.py       07: Hinton et al.'s MNIST experiment
  hints.py        08: hints (FitNets), ensembles, augmentation
  labels.py       04: when does distillation help? accuracy against labelled images, with controls
  playground.py   04b: train one student at a chosen T and alpha; every try kept and plotted
"""
from . import sizes
from .common import load_data, student_run, validation_split
from . import compression, hinton, hints, labels, playground, sweeps  # noqa: E402  (they use the above)

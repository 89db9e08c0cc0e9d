"""Beyond the core: what only one notebook needs and would distract from its lesson, built on the
core's fit(), teachers, run folders and metrics. Each module loads when first used
(`kd.extras.playground`):

  labels.py       04: when does distillation help? accuracy against labelled images, with controls
  playground.py   04b: train one student at a chosen T and alpha; every try kept and plotted
  sweeps.py       05: the plots of the temperature x alpha sweep
"""
from importlib import import_module

def __getattr__(name):
    try:
        return import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":  # a module it needs is missing: say that
            raise
        raise AttributeError(f"kd_utils.extras has no module {name!r}") from None

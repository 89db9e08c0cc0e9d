"""How big each extras notebook's experiment is in each profile: one table.

    size = kd.extras.sizes.size_for(s, "sweep")         # notebook 05
    size = kd.extras.sizes.size_for(s, "hinton")        # notebook 07
    size = kd.extras.sizes.size_for(s, "beyond")        # notebook 08
    size = kd.extras.sizes.size_for(s, "labels")        # notebook 04's curve
    size = kd.extras.sizes.size_for(s, "playground")    # notebook 04b's playground

Every size names its images the same way (kd.extras.load_data reads them):
n_train training images, n_val validation images carved from the training set
(0: none), n_test test images; None means all of them. Learning rate and batch
size are the profile's unless a size says otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ..settings import check_alpha, check_temperature


@dataclass(frozen=True)
class SweepSize:
    """Notebook 05: students over temperature x alpha x seed."""
    n_train: int | None
    n_val: int
    n_test: int | None
    epochs: int
    seeds: int           # seeds per cell
    temperatures: tuple
    alphas: tuple


@dataclass(frozen=True)
class HintonSize:
    """Notebook 07: Hinton et al.'s MLPs (the regularisation the paper points to, unless said otherwise)."""
    n_train: int | None
    n_val: int
    n_test: int | None
    teacher_epochs: int
    student_epochs: int
    teacher_dropout: float = 0.5   # hidden units, as in the dropout paper the teacher follows
    input_dropout: float = 0.2     # input pixels, likewise
    jitter_pixels: int = 2
    lr: float = 1e-3


@dataclass(frozen=True)
class BeyondSize:
    """Notebook 08: several teachers, hints, augmentation."""
    n_train: int | None
    n_val: int
    n_test: int | None
    teacher_epochs: int
    student_epochs: int
    n_teachers: int      # members of the ensemble


@dataclass(frozen=True)
class LabelsSize:
    """Notebook 04's curve: students on labelled sets of these sizes, these seeds."""
    sizes: tuple
    seeds: tuple


@dataclass(frozen=True)
class PlaygroundSize:
    """Notebook 04b: one try = one student on `labels` labelled images for `steps` steps."""
    labels: tuple         # the labelled-set sizes the menu offers; the first is the starting one
    steps: int            # Adam steps per try, whatever the labelled-set size
    baseline_seeds: tuple


@dataclass(frozen=True)
class Sizes:
    sweep: SweepSize
    hinton: HintonSize
    beyond: BeyondSize
    labels: LabelsSize
    playground: PlaygroundSize


# smoke: seconds (CI). cpu: minutes on a 2-core laptop. full: a GPU.
# Hinton's cpu recipe was chosen on validation accuracy (Fashion-MNIST, 2-core CPU,
# 2026-11-23; the table is in notebook 07): on Fashion-MNIST the dropout paper's rates gave a
# teacher consistently better than the unregularised student only on 5,000 images for
# 40 epochs, and jitter cost accuracy (items fill the frame; the jitter was for MNIST).
SIZES = {
    "smoke": Sizes(
        sweep=SweepSize(n_train=1000, n_val=400, n_test=1000, epochs=2, seeds=2,
                        temperatures=(1.0, 4.0), alphas=(0.0, 0.5)),
        hinton=HintonSize(n_train=1000, n_val=500, n_test=1000, teacher_epochs=2, student_epochs=2,
                          teacher_dropout=0.2, input_dropout=0.0),
        beyond=BeyondSize(n_train=1000, n_val=0, n_test=1000, teacher_epochs=1, student_epochs=1, n_teachers=2),
        labels=LabelsSize(sizes=(50, 200), seeds=(0, 1)),
        playground=PlaygroundSize(labels=(200, 100), steps=20, baseline_seeds=(0, 1))),
    "cpu": Sizes(
        # Sweep: 4,000 images x 25 epochs = 800 Adam steps per student (32 batches an epoch), enough
        # for the hard-label student's validation accuracy to level off under the cosine decay (3
        # epochs, 96 steps, measured how fast students start, not where they end). A step of the
        # LeNet student costs ~16 ms on one thread of a busy 2-core CPU, so the grid is 3 x 3 to keep
        # notebook 05 near 8 minutes: 27 students of 800 steps (the blended form at T = 1 is
        # Hinton's loss, so it is not trained twice).
        sweep=SweepSize(n_train=4000, n_val=2000, n_test=None, epochs=25, seeds=3,
                        temperatures=(1.0, 4.0, 20.0), alphas=(0.0, 0.5, 1.0)),
        hinton=HintonSize(n_train=5000, n_val=5000, n_test=None, teacher_epochs=40, student_epochs=40,
                          jitter_pixels=0),
        beyond=BeyondSize(n_train=6000, n_val=0, n_test=5000, teacher_epochs=2, student_epochs=4, n_teachers=3),
        labels=LabelsSize(sizes=(100, 300, 1000, 3000), seeds=(0, 1, 2)),
        # 800 steps: one try in about 12 s on one core of this project's 2-core CPU (notebook 04b's header),
        # long enough for distilled students to leave the hard-label band behind (dev runs, 600 labels, T = 4,
        # alpha = 0.5: +0.7 points after 425 steps, one seed; +3.4 after 855 steps, 3 seeds)
        playground=PlaygroundSize(labels=(600, 300, 1000), steps=800, baseline_seeds=(0, 1, 2))),
    "full": Sizes(
        sweep=SweepSize(n_train=None, n_val=5000, n_test=None, epochs=10, seeds=5,
                        temperatures=(1.0, 2.0, 4.0, 8.0, 20.0), alphas=(0.0, 0.25, 0.5, 0.75, 0.9, 1.0)),
        hinton=HintonSize(n_train=None, n_val=5000, n_test=None, teacher_epochs=60, student_epochs=60),
        beyond=BeyondSize(n_train=None, n_val=0, n_test=None, teacher_epochs=30, student_epochs=30, n_teachers=3),
        labels=LabelsSize(sizes=(100, 300, 1000, 3000, 10000, 30000), seeds=(0, 1, 2)),
        playground=PlaygroundSize(labels=(600, 300, 1000, 3000), steps=1000, baseline_seeds=(0, 1, 2))),
}


PARTS = tuple(f.name for f in fields(Sizes))


def size_for(s, part, **overrides):
    """The size of one notebook's experiment ("sweep", "hinton" or "beyond") in
    settings s's profile, with any field replaced (None keeps it), checked."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; the parts are {', '.join(map(repr, PARTS))}")
    size = getattr(SIZES[s.profile.name], part)
    allowed = [f.name for f in fields(size)]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {part} size field(s) {unknown}; valid fields are: {allowed}")
    size = replace(size, **{k: v for k, v in overrides.items() if v is not None})
    for f in allowed:
        v = getattr(size, f)
        if f.endswith(("epochs", "seeds", "n_teachers")) and part not in ("labels", "playground") and (not isinstance(v, int) or v < 1):
            raise ValueError(f"{f} must be a whole number >= 1, got {v!r}")
    if part == "sweep":
        size = replace(size, temperatures=tuple(check_temperature(t) for t in size.temperatures),
                       alphas=tuple(check_alpha(a) for a in size.alphas))
    return size

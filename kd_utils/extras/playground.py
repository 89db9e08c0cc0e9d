"""Notebook 04b's playground: train one student at a temperature and alpha of your choice,
in seconds, and see where it lands beside every try made before.

A try is one LeNet student trained on a few labelled images (a class-balanced subset, the
same for every try) for a fixed number of steps, from the teacher's cached outputs, then
tested on the whole test set. The hard-label students (alpha = 0; T plays no part) are the
baseline, one per seed. Tries are appended, one JSON line each, to a file in
runs/<dataset>/playground/, re-read before every use: a restarted kernel, a second notebook
or another day's class on the same runs/ sees every try. Clear appends a marker; nothing
before it is deleted.

    pg = Playground(s, data, teacher)
    pg.try_student(labels=600, temperature=4, alpha=0.5)   # what the Train button does
    pg.show(temperature=2, alpha=1.0)                       # the widgets
"""
from __future__ import annotations

import dataclasses
import datetime
import io
import json
import os
import time
import warnings

from .. import runs
from ..losses import DistillationLoss
from ..metrics import accuracy, agreement
from ..settings import check_choice
from ..storage import content_hash
from ..training import fit, new_student, predict, teacher_outputs

# What the sliders offer: every value is valid, so no bad combination can reach training.
TEMPERATURES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
ALPHAS = (0.25, 0.5, 0.75, 1.0)

@dataclasses.dataclass(frozen=True)
class Size:
    labels: tuple          # the labelled-set sizes the menu offers; the first is the starting one
    steps: int             # Adam steps per try, whatever the labelled-set size
    baseline_seeds: tuple

# cpu: 800 steps, one try in about 12 s on one core of this project's 2-core CPU (04b's header), long enough for
# distilled students to leave the hard-label band (dev runs, 600 labels, T = 4, alpha = 0.5: +0.7 points after
# 425 steps, one seed; +3.4 after 855 steps, 3 seeds).
SIZES = {"smoke": Size((200, 100), 20, (0, 1)), "cpu": Size((600, 300, 1000), 800, (0, 1, 2)),
         "full": Size((600, 300, 1000, 3000), 1000, (0, 1, 2))}
FIELDS = ("labels", "T", "alpha", "seed", "steps", "accuracy", "agreement", "seconds")

class Playground:
    def __init__(self, s, data, teacher):
        self.s, self.data, self.teacher = s, data, teacher
        self.size = SIZES[s.profile.name]
        self.test_logits = teacher_outputs(s, teacher, data.x_test)
        self.baselines = {}  # labels -> rows of the hard-label students, one per seed
        # One file of tries per (data, teacher, recipe): tries made under another recipe are not mixed in.
        key = content_hash(dict(data=data.key, teacher=teacher.key, steps=self.size.steps, lr=s.profile.student_lr,
                                batch_size=s.profile.batch_size, formulation=s.formulation, loop=runs.LOOP_VERSION))
        self.path = runs.dataset_dir(s, data.name) / "playground" / f"tries-{key[:16]}.jsonl"
        if self.path.exists() and not self.path.is_file():
            raise IsADirectoryError(f"{runs.shown(self.path)} should be the playground's tries file, but it is a "
                                    f"folder; move it away")

    @property
    def tries(self):
        """Every try since the last Clear, from the file (another kernel's tries included).
        A line that cannot be read (cut short by a crash, edited by hand) is skipped, with a warning."""
        out = []
        for i, line in enumerate(self.path.read_text().splitlines() if self.path.exists() else []):
            try:
                row = json.loads(line)
                if row.get("cleared"):
                    out = []
                    continue
                out.append({k: row[k] for k in (*FIELDS, "when")})
            except (ValueError, KeyError, TypeError, AttributeError):
                warnings.warn(f"{runs.shown(self.path)} line {i + 1} is not a try; skipped", stacklevel=2)
        return out

    def _append(self, record):
        # One write() of one line in append mode: another kernel's lines are never overwritten.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)

    def train_student(self, labels, temperature, alpha, seed, progress=False):
        """Train (or load, if this exact run finished before) one student; returns its row.
        alpha = 0 is the hard-label baseline: plain cross-entropy, whatever the formulation and T."""
        check_choice("labelled-set size", labels, self.size.labels)
        s, sub = dataclasses.replace(self.s, seed=seed), self.data.subset(labels)
        loss = DistillationLoss(temperature, alpha, s.formulation) if alpha > 0 else DistillationLoss(alpha=0.0)
        epochs, steps = self.schedule(labels)
        t0 = time.perf_counter()
        name = f"n{labels}-alpha{alpha:g}" + (f"-T{temperature:g}" if alpha > 0 else "") + f"-seed{seed}"
        run = fit(s, sub, {name: (new_student(sub, seed), loss)},
                  kind="playground", epochs=epochs, lr=s.profile.student_lr, teacher=self.teacher,
                  teacher_logits=teacher_outputs(s, self.teacher, sub.x_train) if alpha > 0 else None,
                  evaluations=1, progress=progress)
        out = predict(next(iter(run.values())).model, self.data.x_test)
        return dict(labels=labels, T=temperature if alpha > 0 else None, alpha=alpha, seed=seed,
                    steps=steps, accuracy=accuracy(out, self.data.y_test),
                    agreement=agreement(out, self.test_logits), seconds=round(time.perf_counter() - t0, 1))

    def schedule(self, labels):
        """(epochs, steps) of a try: about size.steps steps at every size, rounded to whole epochs."""
        epochs = max(1, round(self.size.steps * self.s.profile.batch_size / labels))
        return epochs, epochs * -(-labels // self.s.profile.batch_size)

    def baseline(self, labels):
        """The hard-label students at this size, one per baseline seed (trained once, then loaded)."""
        if labels not in self.baselines:
            self.baselines[labels] = [self.train_student(labels, 1.0, 0.0, seed) for seed in self.size.baseline_seeds]
        return self.baselines[labels]

    def try_student(self, labels, temperature, alpha, progress=False):
        """One try, at the next seed for this setting (pressing again shows the seed noise),
        appended to the tries file at once, then returned."""
        if temperature not in TEMPERATURES or alpha not in ALPHAS:
            raise ValueError(f"T = {temperature!r}, alpha = {alpha!r} is not offered by the playground: T is one of "
                             f"{', '.join(f'{t:g}' for t in TEMPERATURES)}, alpha one of {', '.join(map(str, ALPHAS))}")
        row = self.train_student(labels, temperature, alpha, self.count(labels, temperature, alpha), progress)
        row["when"] = datetime.datetime.now().isoformat(timespec="seconds")
        self._append(row)
        return row

    def count(self, labels, temperature, alpha):
        """How many tries this setting has (the next one gets this number as its seed)."""
        return sum((t["labels"], t["T"], t["alpha"]) == (labels, temperature, alpha) for t in self.tries)

    def clear(self):
        """Start an empty list of tries; the old ones stay in the file, before the marker."""
        self._append(dict(cleared=datetime.datetime.now().isoformat(timespec="seconds")))

    def plot(self, labels, axes=None):
        """Test accuracy and agreement with the teacher against T: one colour per alpha, a dot per
        try, a line through the mean at each T only where a T has two tries or more; the
        hard-label baseline as a band (mean +- SD over its seeds). Returns the figure."""
        import matplotlib.pyplot as plt
        import numpy as np

        fig, axes = plt.subplots(1, 2, figsize=(11, 4)) if axes is None else (axes[0].figure, axes)
        base, tries = self.baseline(labels), [t for t in self.tries if t["labels"] == labels]
        colors = plt.get_cmap("viridis")(np.linspace(0.15, 0.85, len(ALPHAS)))
        for ax, key, what in zip(axes, ("accuracy", "agreement"), ("test accuracy", "agreement with the teacher")):
            b = 100 * np.array([r[key] for r in base])
            sd = b.std(ddof=1) if len(b) > 1 else 0.0
            ax.axhspan(b.mean() - sd, b.mean() + sd, color="0.8", zorder=0,
                       label=f"alpha = 0 (hard labels): mean {b.mean():.1f}, band ± 1 SD over {len(b)} seeds")
            ax.axhline(b.mean(), color="0.5", lw=1, zorder=0)
            for alpha, color in zip(ALPHAS, colors):
                mine = [t for t in tries if t["alpha"] == alpha]
                if mine:
                    ax.scatter([t["T"] for t in mine], [100 * t[key] for t in mine], color=color, s=28, zorder=3,
                               edgecolor="k", linewidth=0.4, label=f"alpha = {alpha:g} ({len(mine)} {'try' if len(mine) == 1 else 'tries'})")
                    means = {T: np.mean([100 * t[key] for t in mine if t["T"] == T]) for T in sorted({t["T"] for t in mine})
                             if sum(t["T"] == T for t in mine) > 1}
                    ax.plot(list(means), list(means.values()), color=color, zorder=2)
            ax.set_xscale("log", base=2)
            ax.set_xticks(TEMPERATURES, [f"{T:g}" for T in TEMPERATURES])
            ax.set(xlim=(TEMPERATURES[0] / 1.3, TEMPERATURES[-1] * 1.3), xlabel="temperature T", ylabel=f"{what} (%)")
            ax.grid(alpha=0.3)
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=min(len(names), 3), fontsize=8, frameon=False)
        fig.suptitle(f"{len(tries)} tries, {labels} labelled images, {base[0]['steps']} steps each ({self.s.dataset}, "
                     f"{self.s.profile.name} profile)\ny axes span the tries and the band, not 0-100%; a line joins the "
                     f"means at each T that has 2 tries or more", fontsize=10)
        fig.tight_layout(rect=(0, 0.04 + 0.04 * ((len(names) + 2) // 3), 1, 1))
        return fig

    def tries_table(self, labels):
        """The tries at this size as an HTML table, newest first (one row, class kd-try, per try)."""
        rows = "".join(f"<tr class='kd-try'><td>{i + 1}</td><td>{t['T']:g}</td><td>{t['alpha']:g}</td>"
                       f"<td>{t['seed']}</td><td>{100 * t['accuracy']:.2f}</td><td>{100 * t['agreement']:.2f}</td>"
                       f"<td>{t['seconds']:.1f}</td></tr>"
                       for i, t in reversed(list(enumerate(t for t in self.tries if t["labels"] == labels))))
        head = "<tr><th>#</th><th>T</th><th>alpha</th><th>seed</th><th>test acc %</th><th>agree %</th><th>s</th></tr>"
        return f"<table style='font-size:90%'>{head}{rows}</table>"

    def show(self, temperature=4.0, alpha=0.5, labels=None):
        """Display the playground's widgets. If no try with these starting values exists yet,
        Train is pressed once, so that the cell trains (and is tested headless) on its own."""
        from IPython.display import display

        ui = PlaygroundWidgets(self, temperature, alpha, labels or self.size.labels[0])
        display(ui.box)
        if not self.count(ui.labels.value, ui.temperature.value, ui.alpha.value):
            ui.train.click()
            print(f"Train pressed once with the starting values: trained and plotted in {ui.press_seconds:.1f} s")
        return ui

class PlaygroundWidgets:
    """The sliders, buttons, progress bar, plot and list of tries; one training at a time."""

    def __init__(self, pg, temperature, alpha, labels):
        import ipywidgets as w

        self.pg, self.busy, self.press_seconds = pg, False, None
        self.temperature = w.SelectionSlider(options=[(f"{T:g}", T) for T in TEMPERATURES], value=temperature,
                                             description="T")
        self.alpha = w.SelectionSlider(options=[(f"{a:g}", a) for a in ALPHAS], value=alpha, description="alpha")
        self.labels = w.Dropdown(options=pg.size.labels, value=labels, description="labels")
        self.train = w.Button(description="Train", button_style="primary", icon="play")
        self.clear = w.Button(description="Clear", icon="trash")
        self.progress, self.status = w.IntProgress(value=0, min=0, max=1), w.HTML()
        self.image, self.table = w.Image(format="png"), w.HTML()
        for widget, css in ((self.train, "kd-train"), (self.clear, "kd-clear"), (self.progress, "kd-progress"),
                            (self.image, "kd-plot"), (self.table, "kd-tries")):
            widget.add_class(css)
        self.box = w.VBox([w.HBox([self.temperature, self.alpha, self.labels]),
                           w.HBox([self.train, self.clear, self.progress, self.status]), self.image, self.table])
        self.box.add_class("kd-playground")
        self.train.on_click(self.on_train)
        self.clear.on_click(self.on_clear)
        self.labels.observe(lambda change: self.redraw(), names="value")
        self.redraw()

    def redraw(self):
        import matplotlib.pyplot as plt

        fig = self.pg.plot(self.labels.value)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)  # shown through the Image widget only
        self.image.value, self.table.value = buf.getvalue(), self.pg.tries_table(self.labels.value)

    def on_train(self, _button=None):
        if self.busy:  # a press while training is ignored: never two trainings at once
            return
        self.busy = self.train.disabled = self.clear.disabled = True
        t0 = time.perf_counter()
        T, alpha, n = self.temperature.value, self.alpha.value, self.labels.value
        self.status.value, self.progress.value = f"training at T = {T:g}, alpha = {alpha:g} on {n} labelled images ...", 0

        def progress(done, total):
            self.progress.max, self.progress.value = total, done

        try:
            row = self.pg.try_student(n, T, alpha, progress=progress)
            self.redraw()
            self.press_seconds = time.perf_counter() - t0  # the whole press: training, testing, plotting
            self.status.value = (f"T = {T:g}, alpha = {alpha:g}, seed {row['seed']}: {100 * row['accuracy']:.2f}% "
                                 f"(trained, tested and plotted in {self.press_seconds:.1f} s)")
        except Exception as e:  # noqa: BLE001 - say it in the widget, keep the playground usable
            self.status.value = f"<b>training failed</b>: {type(e).__name__}: {e}"
            raise
        finally:
            self.busy = self.train.disabled = self.clear.disabled = False

    def on_clear(self, _button=None):
        if not self.busy:
            self.pg.clear()
            self.status.value = "cleared (the old tries stay in the file, before the marker)"
            self.redraw()

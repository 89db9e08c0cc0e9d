"""Notebook 04b's playground: train one student at a temperature and alpha of your choice,
in seconds, and see where it lands beside every try made before.

A try is one LeNet student trained on a few labelled images (a class-balanced subset, the
same for every try) for a fixed number of steps, from the teacher's cached outputs, then
tested on the whole test set. The hard-label students (alpha = 0; T plays no part) are the
baseline, one per seed. Tries are kept in runs/<dataset>/playground/, so a restarted kernel,
or another day's class, sees the tries made before; Clear moves them aside, never deletes.

    pg = Playground(s, data, teacher)
    pg.try_student(labels=600, temperature=4, alpha=0.5)   # what the Train button does
    pg.show(temperature=2, alpha=1.0)                       # the widgets
"""
from __future__ import annotations

import dataclasses
import datetime
import io
import time

from .. import runs
from ..metrics import accuracy, agreement
from ..storage import fingerprint, load_json, save_json
from ..teachers import teacher_outputs
from ..training import cross_entropy_loss, new_student, predict, student_loss, train
from .common import student_run
from .sizes import size_for

# What the sliders offer: every value is valid, so no bad combination can reach training.
TEMPERATURES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
ALPHAS = (0.25, 0.5, 0.75, 1.0)


class Playground:
    def __init__(self, s, data, teacher):
        self.s, self.data, self.teacher = s, data, teacher
        self.size = size_for(s, "playground")
        self.test_logits = teacher_outputs(teacher.model, data.x_test)
        self.baselines = {}  # labels -> rows of the hard-label students, one per seed
        # One file of tries per (data, teacher, recipe): tries made under another recipe are not mixed in.
        key = fingerprint(dict(data=data.key, teacher=teacher.key, steps=self.size.steps, lr=s.profile.student_lr,
                               batch_size=s.profile.batch_size, formulation=s.formulation, loop=runs.LOOP_VERSION))
        self.path = runs.dataset_dir(s.dataset) / "playground" / f"tries-{key[:16]}.json"
        self.tries = load_json(self.path)["tries"] if self.path.exists() else []

    def train_student(self, labels, temperature, alpha, seed, progress=False):
        """Train (or load, if this exact run finished before) one student; returns its row."""
        check_choice("labels", labels, self.size.labels)
        if alpha > 0:
            check_choice("temperature", temperature, TEMPERATURES)
            check_choice("alpha", alpha, ALPHAS)
        s, sub = dataclasses.replace(self.s, seed=seed), self.data.subset(labels)
        epochs = max(1, round(self.size.steps * s.profile.batch_size / labels))  # the same steps at every size
        T = temperature if alpha > 0 else None  # a hard-label student does not depend on T
        config = dict(teacher=self.teacher.key if alpha > 0 else None, alpha=alpha, temperature=T,
                      formulation=s.formulation, epochs=epochs, lr=s.profile.student_lr)
        name = f"n{labels}-alpha{alpha:g}" + (f"-T{T:g}" if alpha > 0 else "") + f"-seed{seed}"
        logits = teacher_outputs(self.teacher.model, sub.x_train) if alpha > 0 else None
        # hard labels: plain cross-entropy, whatever the formulation (the blended form at alpha = 0 would need a T)
        loss = student_loss(dataclasses.replace(s, temperature=T), alpha) if alpha > 0 else cross_entropy_loss
        run = student_run(s, sub, "playground", name, new_student(sub, seed), loss, config, uses_teacher=alpha > 0)
        run.evaluations = 1  # the test set is used once, below
        t0 = time.perf_counter()
        train([run], sub, s, epochs=epochs, teacher_logits=logits, augment=False, progress=progress)
        out = predict(run.model, self.data.x_test)
        return dict(labels=labels, T=T, alpha=alpha, seed=seed, steps=epochs * -(-labels // s.profile.batch_size),
                    accuracy=accuracy(out, self.data.y_test), agreement=agreement(out, self.test_logits),
                    seconds=round(time.perf_counter() - t0, 1))

    def baseline(self, labels):
        """The hard-label students at this size, one per baseline seed (trained once, then loaded)."""
        if labels not in self.baselines:
            self.baselines[labels] = [self.train_student(labels, None, 0.0, seed) for seed in self.size.baseline_seeds]
        return self.baselines[labels]

    def try_student(self, labels, temperature, alpha, progress=False):
        """One try: the next seed for this (labels, T, alpha), so pressing again shows the seed noise.
        The try is saved at once (atomically), then returned."""
        row = self.train_student(labels, temperature, alpha, self.count(labels, temperature, alpha), progress)
        row["when"] = datetime.datetime.now().isoformat(timespec="seconds")
        self.tries.append(row)
        save_json(self.path, dict(tries=self.tries))
        return row

    def count(self, labels, temperature, alpha):
        """How many tries this setting has (the next one gets this number as its seed)."""
        return sum(t["labels"] == labels and t["T"] == temperature and t["alpha"] == alpha for t in self.tries)

    def has_try(self, labels, temperature, alpha):
        return self.count(labels, temperature, alpha) > 0

    def clear(self):
        """Start an empty list of tries; the old list is kept beside it, with the time in its name."""
        if self.tries:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            save_json(self.path.with_name(f"{self.path.stem}-cleared-{stamp}.json"), dict(tries=self.tries))
        self.tries = []
        save_json(self.path, dict(tries=self.tries))

    def plot(self, labels, axes=None):
        """Test accuracy and agreement with the teacher against T: one colour per alpha, a dot
        per try, a line through the mean at each T; the hard-label baseline as a band (mean +- SD
        over its seeds). Returns the figure."""
        import matplotlib.pyplot as plt
        import numpy as np

        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        fig = axes[0].figure
        base = self.baseline(labels)
        tries = [t for t in self.tries if t["labels"] == labels]
        colors = plt.get_cmap("viridis")(np.linspace(0.15, 0.85, len(ALPHAS)))
        for ax, key, what in zip(axes, ("accuracy", "agreement"), ("test accuracy", "agreement with the teacher")):
            b = 100 * np.array([r[key] for r in base])
            sd = b.std(ddof=1) if len(b) > 1 else 0.0
            ax.axhspan(b.mean() - sd, b.mean() + sd, color="0.8", zorder=0,
                       label=f"alpha = 0 (hard labels): mean {b.mean():.1f}, band ± 1 SD over {len(b)} seeds")
            ax.axhline(b.mean(), color="0.5", lw=1, zorder=0)
            for alpha, color in zip(ALPHAS, colors):
                mine = [t for t in tries if t["alpha"] == alpha]
                if not mine:
                    continue
                ax.scatter([t["T"] for t in mine], [100 * t[key] for t in mine], color=color, s=28, zorder=3,
                           edgecolor="k", linewidth=0.4, label=f"alpha = {alpha:g} ({len(mine)} {'try' if len(mine) == 1 else 'tries'})")
                Ts = sorted({t["T"] for t in mine})
                ax.plot(Ts, [100 * np.mean([t[key] for t in mine if t["T"] == T]) for T in Ts], color=color, zorder=2)
            ax.set_xscale("log", base=2)
            ax.set_xticks(TEMPERATURES, [f"{T:g}" for T in TEMPERATURES])
            ax.set_xlim(TEMPERATURES[0] / 1.3, TEMPERATURES[-1] * 1.3)
            ax.set_xlabel("temperature T")
            ax.set_ylabel(f"{what} (%)")
            ax.grid(alpha=0.3)
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=min(len(names), 3), fontsize=8, frameon=False)
        fig.suptitle(f"{len(tries)} {'try' if len(tries) == 1 else 'tries'}, {labels} labelled images, "
                     f"{base[0]['steps']} steps each ({self.s.dataset}, {self.s.profile.name} profile)", fontsize=10)
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
        ui = PlaygroundWidgets(self, temperature, alpha, labels or self.size.labels[0])
        from IPython.display import display

        display(ui.box)
        if not self.has_try(ui.labels.value, ui.temperature.value, ui.alpha.value):
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
        self.progress = w.IntProgress(value=0, min=0, max=1, description="")
        self.status = w.HTML()
        self.image = w.Image(format="png")
        self.table = w.HTML()
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
        self.image.value = buf.getvalue()
        self.table.value = self.pg.tries_table(self.labels.value)

    def on_train(self, _button=None):
        if self.busy:  # a press while training is ignored: never two trainings at once
            return
        self.busy, self.train.disabled, self.clear.disabled = True, True, True
        t0 = time.perf_counter()
        T, alpha, n = self.temperature.value, self.alpha.value, self.labels.value
        self.status.value = f"training at T = {T:g}, alpha = {alpha:g} on {n} labelled images ..."
        self.progress.value = 0

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
            self.busy, self.train.disabled, self.clear.disabled = False, False, False

    def on_clear(self, _button=None):
        if self.busy:
            return
        self.pg.clear()
        self.status.value = "cleared (the old tries are kept in a file beside the new list)"
        self.redraw()


def check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} = {value!r} is not offered by the playground; choose one of {list(allowed)}")
    return value

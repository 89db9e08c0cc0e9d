"""Notebook 04b's playground (issue 15): a try trains one student and is kept; tries survive a
kernel restart and are shared by playgrounds on one runs/ folder (issue 22); the sliders offer only
valid values; a press while training is ignored."""
import dataclasses
import json

import pytest
import torch
import traitlets

from kd_testdata import make_dataset, toy_settings, toy_teacher
from kd_utils.extras import playground
from kd_utils.extras.playground import ALPHAS, TEMPERATURES, Playground
from kd_utils.losses import DistillationLoss
from kd_utils.settings import check_alpha, check_temperature
import kd_utils.training as training

@pytest.fixture
def pg():
    """A smoke-profile playground (labelled sets of 200 and 100, 20 steps) on 300 toy images."""
    data = make_dataset(n_train=300, n_test=64, shape=(1, 16, 16), num_classes=4, name="toy")
    s = toy_settings()
    s = dataclasses.replace(s, profile=dataclasses.replace(s.profile, name="smoke"))
    return Playground(s, data, toy_teacher(data))


def test_a_try_trains_one_student_and_is_saved_at_once(pg):
    row = pg.try_student(200, 4.0, 0.5)
    assert (row["labels"], row["T"], row["alpha"], row["seed"]) == (200, 4.0, 0.5, 0)
    assert 0 <= row["accuracy"] <= 1 and 0 <= row["agreement"] <= 1
    assert row["steps"] == round(20 * 32 / 200) * 7  # 20 steps asked; 3 epochs of 7 batches of at most 32
    assert [json.loads(line) for line in pg.path.read_text().splitlines()] == [row]


def test_tries_survive_a_kernel_restart_and_a_repeated_try_takes_the_next_seed(pg):
    first = pg.try_student(200, 4.0, 1.0)
    restarted = Playground(pg.s, pg.data, pg.teacher)  # a new kernel: only the files remain
    assert restarted.tries == [first]
    second = restarted.try_student(200, 4.0, 1.0)
    assert second["seed"] == 1 and restarted.count(200, 4.0, 1.0) == 2 and restarted.count(200, 2.0, 1.0) == 0
    assert [t["seed"] for t in Playground(pg.s, pg.data, pg.teacher).tries] == [0, 1]


def test_the_baseline_ignores_T_and_is_trained_once(pg, monkeypatch):
    steps = []
    original = DistillationLoss.forward  # one call per step
    monkeypatch.setattr(DistillationLoss, "forward", lambda self, *a: (steps.append(1), original(self, *a))[1])
    rows = pg.baseline(100)
    assert [r["seed"] for r in rows] == [0, 1] and all(r["alpha"] == 0 and r["T"] is None for r in rows)
    assert len(steps) == sum(r["steps"] for r in rows) > 0
    pg.baselines.clear()  # as after a kernel restart: the finished runs are loaded, not retrained
    again = pg.baseline(100)
    assert len(steps) == sum(r["steps"] for r in rows)
    assert [dict(r, seconds=0) for r in again] == [dict(r, seconds=0) for r in rows]


def test_clear_empties_the_list_and_keeps_the_old_tries_in_the_file(pg):
    row = pg.try_student(200, 2.0, 0.5)
    pg.clear()
    assert pg.tries == [] and Playground(pg.s, pg.data, pg.teacher).tries == []
    assert json.loads(pg.path.read_text().splitlines()[0]) == row


def test_two_playgrounds_on_one_tries_file_see_each_others_tries_and_clears(pg):
    """Two open notebooks (or a class sharing runs/): neither loses the other's tries, a repeated
    setting takes the next seed across both, and a Clear in one is seen by the other."""
    other = Playground(pg.s, pg.data, pg.teacher)
    first = pg.try_student(200, 4.0, 0.5)
    second = other.try_student(200, 4.0, 0.5)
    assert second["seed"] == 1 and pg.tries == other.tries == [first, second]
    other.clear()
    assert pg.tries == []


def test_only_offered_alphas_and_temperatures_become_tries(pg):
    """alpha <= 0 once trained a hard-label student recorded with alpha -0.5 and T None, after which
    the tries table raised on every restart."""
    for alpha in (-0.5, 0.0, 1.5):
        with pytest.raises(ValueError, match="not offered"):
            pg.try_student(200, 4.0, alpha)
    assert pg.tries == []


@pytest.mark.parametrize("content", ["[]", '{"labels": 200, "T": 4.0}', '{"labels": 200, "T"', "garbage"])
def test_a_tries_file_of_the_wrong_shape_costs_its_bad_lines_only(pg, content):
    pg.path.parent.mkdir(parents=True, exist_ok=True)
    pg.path.write_text(content + "\n")
    with pytest.warns(UserWarning, match="line 1 is not a try"):
        assert pg.tries == []
    row = pg.try_student(200, 4.0, 0.5)
    with pytest.warns(UserWarning):
        assert pg.tries == [row]
    pg.tries_table(200)  # no TypeError from a bad row


def test_a_folder_in_place_of_the_tries_file_is_named_in_one_line(pg):
    pg.path.mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match="tries file"):
        Playground(pg.s, pg.data, pg.teacher)


def test_the_sliders_offer_only_values_settings_accepts_and_other_values_are_refused(pg):
    ui = playground.PlaygroundWidgets(pg, 4.0, 0.5, 200)
    assert [v for _, v in ui.temperature.options] == list(TEMPERATURES)
    assert [v for _, v in ui.alpha.options] == list(ALPHAS)
    assert list(ui.labels.options) == list(pg.size.labels)
    assert all(check_temperature(T) == T for T in TEMPERATURES) and all(check_alpha(a) == a for a in ALPHAS)
    with pytest.raises(ValueError, match="not offered"):
        pg.try_student(200, 3.0, 0.5)
    with pytest.raises(ValueError, match="labelled-set size"):
        pg.try_student(123, 4.0, 0.5)
    with pytest.raises(traitlets.TraitError):  # the slider itself refuses a value it does not offer
        ui.temperature.value = 3.0


def test_pressing_train_adds_one_try_redraws_and_is_ignored_while_training(pg):
    ui = playground.PlaygroundWidgets(pg, 4.0, 0.5, 200)
    image_before = ui.image.value
    seen = {}
    original = pg.try_student

    def try_student(*args, **kwargs):
        ui.train.click()  # a second press while training
        seen["disabled"] = ui.train.disabled
        return original(*args, **kwargs)

    pg.try_student = try_student
    ui.temperature.value = 8.0
    ui.train.click()
    assert len(pg.tries) == 1 and pg.tries[0]["T"] == 8.0  # the second press trained nothing
    assert seen["disabled"] and not ui.train.disabled
    assert ui.image.value != image_before and ui.table.value.count("class='kd-try'") == 1
    assert ui.progress.value == ui.progress.max > 1  # one tick per epoch
    assert ui.press_seconds > 0 and "plotted in" in ui.status.value


def test_show_trains_once_with_its_starting_values_unless_that_try_exists(pg, monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a: None)
    pg.show(temperature=2.0, alpha=1.0, labels=200)
    pg.show(temperature=2.0, alpha=1.0, labels=200)
    assert [(t["T"], t["alpha"]) for t in pg.tries] == [(2.0, 1.0)]


def test_the_plot_has_one_point_per_try_and_the_baseline_band(pg):
    for T in (1.0, 4.0):
        pg.try_student(200, T, 0.5)
    pg.try_student(200, 4.0, 1.0)
    fig = pg.plot(200)
    acc = fig.axes[0]
    points = sum(len(c.get_offsets()) for c in acc.collections if hasattr(c, "get_offsets") and len(c.get_offsets()))
    assert points == 3
    assert any("alpha = 0" in t.get_text() for t in fig.legends[0].get_texts())


def test_train_reports_progress_once_per_epoch():
    data = make_dataset(n_train=64, n_test=16, shape=(1, 16, 16), num_classes=4)
    calls = []
    [run] = training.fit(toy_settings(), data, {"p": (training.new_student(data, 0), DistillationLoss(alpha=0.0))},
                         kind=None, epochs=3, lr=1e-3, progress=lambda done, total: calls.append((done, total))).values()
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert torch.isfinite(torch.tensor(run.history[-1]["loss"]))


def test_choosing_another_labelled_set_size_shows_its_own_tries_and_band(pg):
    pg.try_student(200, 4.0, 0.5)
    ui = playground.PlaygroundWidgets(pg, 4.0, 0.5, 200)
    image_200 = ui.image.value
    assert ui.table.value.count("class='kd-try'") == 1
    ui.labels.value = 100
    assert ui.table.value.count("class='kd-try'") == 0 and ui.image.value != image_200
    assert 100 in pg.baselines  # its own band, trained for the new size


def test_the_blended_formulation_trains_tries_and_a_hard_label_baseline(pg):
    pg.s = dataclasses.replace(pg.s, formulation="blended")
    assert 0 <= pg.try_student(200, 4.0, 0.5)["accuracy"] <= 1
    assert [r["alpha"] for r in pg.baseline(200)] == [0.0, 0.0]  # plain cross-entropy: the blended form needs a T


def test_the_line_through_means_is_drawn_only_where_a_temperature_has_two_tries(pg):
    """One try per T is one seed: joining single tries by a line would draw noise as a trend."""
    for T in (1.0, 4.0):
        pg.try_student(200, T, 0.5)
    assert all(len(line.get_xdata()) == 0 for line in pg.plot(200).axes[0].get_lines()[1:])
    pg.try_student(200, 4.0, 0.5)
    assert [list(line.get_xdata()) for line in pg.plot(200).axes[0].get_lines()[1:]] == [[4.0]]

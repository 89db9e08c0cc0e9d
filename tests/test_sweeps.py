"""Specification of notebook 05's figures (kd_utils.extras.sweeps): the heatmap of each cell's
difference from alpha = 0, the two loss formulations side by side, and the training curves.
The sweep itself, the validation split and the paired comparisons are in the notebook, guarded
there by asserts."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kd_utils as kd  # noqa: E402
from kd_utils.extras import sweeps  # noqa: E402


def hexes(colors):
    return {mcolors.to_hex(c) for c in colors}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------- the heatmap

CELLS = [dict(temperature=T, alpha=a, difference=d, stderr=se, verdict=v)
         for T, a, d, se, v in [(1.0, 0.5, 0.10, 0.005, "better"), (1.0, 1.0, 0.002, 0.004, "within noise"),
                                (4.0, 0.5, -0.03, 0.01, "worse"), (4.0, 1.0, 0.001, 0.003, "within noise")]]


def test_difference_heatmap_shows_points_centred_at_zero_and_boxes_the_real_differences():
    ax = sweeps.difference_heatmap(CELLS, title="validation accuracy minus alpha = 0")
    mesh = ax.collections[0]
    assert mesh.norm.vmin == pytest.approx(-10.0) and mesh.norm.vmax == pytest.approx(10.0)  # symmetric, in points
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1"]  # alphas as written, not 1.0
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "4"]
    assert [t.get_text() for t in ax.texts] == ["+10.00\n±0.50", "+0.20\n±0.40", "-3.00\n±1.00", "+0.10\n±0.30"]
    boxed = sorted((p.get_x(), p.get_y()) for p in ax.patches)
    assert boxed == [(0, 0), (0, 1)]  # (alpha 0.5, T 1) better and (alpha 0.5, T 4) worse; the rest within noise
    assert ax.get_title() == "validation accuracy minus alpha = 0"
    assert "percentage points" in mesh.colorbar.ax.get_ylabel()


def test_difference_heatmap_keeps_other_units_as_they_are_and_small_differences_pale():
    small = [dict(c, difference=c["difference"] / 100, stderr=c["stderr"] / 100) for c in CELLS]
    ax = sweeps.difference_heatmap(small, unit="nats", cmap="RdBu_r")
    assert ax.texts[0].get_text() == "+0.001\n±0.000"
    assert ax.collections[0].norm.vmax == pytest.approx(0.005)  # the floor: 0.001 alone would look large
    assert "nats" in ax.collections[0].colorbar.ax.get_ylabel()
    ax = sweeps.difference_heatmap([dict(c, difference=0.001) for c in CELLS])
    assert ax.collections[0].norm.vmax == pytest.approx(0.5)  # at least half a point either way
    with pytest.raises(ValueError, match="no cell"):
        sweeps.difference_heatmap([])


# ------------------------------------------------------ the two formulations

ROWS = [dict(formulation=f, temperature=T, alpha=0.5, seed=k, val_acc=v + (0.02 if f == "hinton" else 0.0))
        for f in ("blended", "hinton") for T, vals in [(20.0, (0.70, 0.72, 0.74)), (4.0, (0.80, 0.81, 0.79))]
        for k, v in enumerate(vals)]
BASELINE = [dict(val_acc=v) for v in (0.75, 0.76, 0.77)]


def line(ax, marker):
    (found,) = [ln for ln in ax.get_lines() if ln.get_marker() == marker and len(ln.get_xdata())]
    return found


def test_plot_formulations_draws_the_mean_over_seeds_per_temperature_in_the_colour_of_alpha():
    ax = sweeps.plot_formulations(ROWS, "val_acc", "validation accuracy", baseline=BASELINE)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "20"]  # in order of T, not of the rows
    hinton, blended = line(ax, "o"), line(ax, "s")
    assert list(hinton.get_ydata()) == pytest.approx([0.82, 0.74])
    assert list(blended.get_ydata()) == pytest.approx([0.80, 0.72])
    assert hinton.get_linestyle() != blended.get_linestyle()
    alpha = hexes([kd.model_color("alpha=0.5")])
    assert hexes([hinton.get_color()]) == hexes([blended.get_color()]) == alpha
    # error bars of one standard error over seeds: T = 20, hinton, values 0.72, 0.74, 0.76
    se = torch.tensor([0.72, 0.74, 0.76]).std().item() / 3 ** 0.5
    tops = [np.nanmax(np.asarray(ln.get_ydata(), dtype=float)) for ln in ax.get_lines() if len(ln.get_xdata())]
    assert 0.74 + se == pytest.approx(sorted(tops, key=lambda top: abs(top - 0.74 - se))[0], abs=1e-6)
    base = [ln for ln in ax.get_lines() if ln.get_label() == "alpha=0 (hard labels)"]
    assert base and base[0].get_ydata()[0] == pytest.approx(0.76)
    assert hexes([base[0].get_color()]) == hexes([kd.model_color("alpha=0")])
    assert ax.yaxis.get_major_formatter()(0.8, 0).endswith("%")
    assert "validation accuracy" in ax.get_ylabel()


def test_plot_formulations_wants_one_alpha():
    with pytest.raises(ValueError, match="one alpha"):
        sweeps.plot_formulations(ROWS + [dict(ROWS[0], alpha=1.0)], "val_acc", "validation accuracy")


# --------------------------------------------------------------- the curves

def history(start, tested_every=2, epochs=5):
    return [dict(epoch=e, test_acc=start + 0.01 * e if e % tested_every == 0 or e == epochs else None)
            for e in range(1, epochs + 1)]


def test_plot_curves_one_panel_per_temperature_one_line_per_alpha():
    histories = {(T, a): history(0.5 + a / 10 + T / 100) for T in (20.0, 1.0) for a in (0.0, 1.0)}
    grid = sweeps.plot_curves(histories)
    axes = list(grid.axes.flat)
    assert [ax.get_title() for ax in axes] == ["T = 1", "T = 20"]
    for ax, T in zip(axes, (1.0, 20.0)):
        lines = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
        assert hexes([ln.get_color() for ln in lines]) == hexes([kd.model_color("alpha=0"),
                                                                kd.model_color("alpha=1")])
        for ln in lines:
            assert list(ln.get_xdata()) == [2, 4, 5]  # only the epochs whose accuracy was measured
        assert sorted(ln.get_ydata()[0] for ln in lines) == pytest.approx([0.52 + T / 100, 0.62 + T / 100])
        assert all(float(x).is_integer() for x in ax.get_xticks())  # no "epoch 1.5"
        assert ax.yaxis.get_major_formatter()(0.5, 0).endswith("%")
    assert axes[0].get_ylabel() == "validation accuracy"

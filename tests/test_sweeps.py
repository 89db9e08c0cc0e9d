"""Specification of kd_utils.extras' shared data (one loader, one validation
split that never touches the test set), its size table, and of the sweeps:
grids of students over T x alpha x seed, and the rule that calls a difference
real only when it beats the seed-to-seed noise, seed by seed (paired)."""
import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from kd_testdata import make_dataset

import kd_utils as kd
from kd_utils.extras import sweeps


def tiny_settings(**values):
    s = kd.settings(dataset="mnist", profile="smoke", env=False, verbose=False, **values)
    return replace(s, profile=replace(s.profile, batch_size=16))


def frozen_teacher(data, seed=1):
    torch.manual_seed(seed)
    return kd.Trained(kd.freeze(kd.models.make_cnn_teacher(data.image_shape, data.num_classes, *data.stats())))


# ------------------------------------------------------------- the shared data

def test_validation_split_is_disjoint_balanced_and_deterministic():
    labels = torch.arange(100) % 10
    train_idx, val_idx = kd.extras.validation_split(labels, 20, 50)
    again = kd.extras.validation_split(labels, 20, 50)
    assert torch.equal(train_idx, again[0]) and torch.equal(val_idx, again[1])
    assert len(val_idx) == 20 and len(train_idx) == 50
    assert not set(val_idx.tolist()) & set(train_idx.tolist())
    assert torch.bincount(labels[val_idx], minlength=10).tolist() == [2] * 10
    assert torch.bincount(labels[train_idx], minlength=10).tolist() == [5] * 10


def test_validation_split_uses_all_the_rest_without_n_train():
    train_idx, val_idx = kd.extras.validation_split(torch.arange(40) % 10, 10)
    assert len(train_idx) == 30
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(40))
    train_idx, val_idx = kd.extras.validation_split(torch.arange(40) % 10, 0)
    assert len(val_idx) == 0 and train_idx.tolist() == list(range(40))


@pytest.mark.parametrize("n_val,n_train,match", [(-1, None, "n_val must be between 0 and 39"),
                                                  (40, None, "n_val must be between 0 and 39"),
                                                  (10, 31, "n_train must be between 1 and 30")])
def test_validation_split_rejects_impossible_sizes(n_val, n_train, match):
    with pytest.raises(ValueError, match=match):
        kd.extras.validation_split(torch.arange(40) % 10, n_val, n_train)


def test_load_data_takes_validation_from_the_training_set_and_leaves_the_test_set_alone():
    pool = make_dataset(n_train=100, n_test=30)
    s = tiny_settings()
    data, val = kd.extras.load_data(s, SimpleNamespace(n_train=50, n_val=20, n_test=None), pool)
    train_idx, val_idx = kd.extras.validation_split(pool.y_train, 20, 50)
    assert torch.equal(data.x_train, pool.x_train[train_idx]) and torch.equal(val.x_train, data.x_train)
    assert torch.equal(val.x_test, pool.x_train[val_idx]) and torch.equal(val.y_test, pool.y_train[val_idx])
    assert torch.equal(data.x_test, pool.x_test) and torch.equal(data.y_test, pool.y_test)
    data, val = kd.extras.load_data(s, SimpleNamespace(n_train=None, n_val=0, n_test=10), pool)
    assert val is None and torch.equal(data.x_train, pool.x_train)
    assert torch.bincount(data.y_test, minlength=10).tolist() == [1] * 10


# ------------------------------------------------------------------ the sizes

def test_size_for_follows_the_profile_and_checks_overrides():
    s = tiny_settings()
    assert kd.extras.sizes.size_for(s, "sweep") == kd.extras.sizes.SIZES["smoke"].sweep
    big = kd.extras.sizes.size_for(s, "sweep", seeds=4, temperatures=(1, 3), alphas=None)
    assert big.seeds == 4 and big.temperatures == (1.0, 3.0)
    assert big.alphas == kd.extras.sizes.SIZES["smoke"].sweep.alphas
    with pytest.raises(ValueError, match="unknown sweep size field"):
        kd.extras.sizes.size_for(s, "sweep", temps=(1,))
    with pytest.raises(ValueError, match="temperature must be"):
        kd.extras.sizes.size_for(s, "sweep", temperatures=(0,))
    with pytest.raises(ValueError, match="seeds must be a whole number >= 1"):
        kd.extras.sizes.size_for(s, "sweep", seeds=0)
    with pytest.raises(ValueError, match="unknown part"):
        kd.extras.sizes.size_for(s, "sweeps")


def test_every_profile_sizes_every_part_with_the_same_image_fields():
    for sizes in kd.extras.sizes.SIZES.values():
        for part in (sizes.sweep, sizes.hinton, sizes.beyond):
            assert {"n_train", "n_val", "n_test"} <= set(vars(part))


# ------------------------------------------------------------------ the sweep

SIZE = kd.extras.sizes.SweepSize(n_train=None, n_val=20, n_test=None, epochs=1, seeds=2,
                                 temperatures=(1.0, 4.0), alphas=(0.0, 1.0))


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    # trained once for the module
    root = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KD_RUNS_DIR", str(root))
        s = tiny_settings()
        data, val = kd.extras.load_data(s, SIZE, make_dataset(n_train=60, n_test=10))
        teacher = frozen_teacher(data)
        rows = sweeps.run_sweep(s, val, teacher, SIZE)
        yield SimpleNamespace(s=s, data=data, val=val, teacher=teacher, rows=rows, root=root)


def finished_runs(root):
    return sorted(root.glob("mnist/sweeps/*/final.pt"))


def test_run_sweep_gives_one_row_per_cell_and_seed(grid):
    assert len(grid.rows) == 2 * 2 * 2
    assert {(r["temperature"], r["alpha"], r["seed"]) for r in grid.rows} == {
        (T, a, s) for T in (1.0, 4.0) for a in (0.0, 1.0) for s in (0, 1)}
    for r in grid.rows:
        assert r["formulation"] == "hinton"
        assert 0 <= r["val_acc"] <= 1 and 0 <= r["agreement"] <= 1 and r["kl_to_teacher"] >= 0


def test_hinton_alpha0_is_trained_once_per_seed_and_shared_across_T(grid):
    a0 = {(r["temperature"], r["seed"]): r for r in grid.rows if r["alpha"] == 0}
    for seed in (0, 1):
        assert a0[(1.0, seed)]["folder"] == a0[(4.0, seed)]["folder"]
    # 2 seeds x (1 shared alpha=0 + 2 temperatures at alpha=1) runs on disk
    assert len(finished_runs(grid.root)) == 6


def test_scores_are_measured_on_the_validation_images_against_the_teacher(grid):
    r = grid.rows[0]
    student = kd.predict(sweeps.load_student(grid.val, r["folder"]), grid.val.x_test)
    teacher = kd.predict(grid.teacher.model, grid.val.x_test)
    assert r["agreement"] == pytest.approx(kd.agreement(student, teacher))
    assert r["val_acc"] == pytest.approx(kd.accuracy(student, grid.val.y_test))


def test_run_sweep_reuses_finished_runs(grid, monkeypatch):
    monkeypatch.setenv("KD_RUNS_DIR", str(grid.root))
    stamps = {p: p.stat().st_mtime_ns for p in finished_runs(grid.root)}
    assert sweeps.run_sweep(grid.s, grid.val, grid.teacher, SIZE) == grid.rows
    assert stamps == {p: p.stat().st_mtime_ns for p in finished_runs(grid.root)}


def test_evaluate_on_test_scores_each_seed_of_one_cell_on_the_test_set(grid, monkeypatch):
    monkeypatch.setenv("KD_RUNS_DIR", str(grid.root))
    out = sweeps.evaluate_on_test(grid.rows, grid.data, grid.teacher, temperature=4, alpha=1.0)
    assert [r["seed"] for r in out] == [0, 1]
    r1 = [r for r in grid.rows if (r["temperature"], r["alpha"], r["seed"]) == (4.0, 1.0, 1)][0]
    logits = kd.predict(sweeps.load_student(grid.data, r1["folder"]), grid.data.x_test)
    assert out[1]["test_acc"] == pytest.approx(kd.accuracy(logits, grid.data.y_test))
    with pytest.raises(ValueError, match="no hinton students at T=3, alpha=1"):
        sweeps.evaluate_on_test(grid.rows, grid.data, grid.teacher, temperature=3, alpha=1.0, formulation="hinton")


ROWS = [dict(temperature=T, alpha=a, seed=s, val_acc=v)
        for (T, a, vals) in [(1.0, 0.0, (0.80, 0.81, 0.79)), (1.0, 0.5, (0.90, 0.91, 0.89)),
                             (4.0, 0.0, (0.80, 0.81, 0.79)), (4.0, 0.5, (0.78, 0.83, 0.80))]
        for s, v in enumerate(vals)]


def test_grid_table_gives_mean_std_and_count_per_cell():
    mean, std, count = sweeps.grid_table(ROWS, "val_acc")
    assert mean.loc[1.0, 0.5] == pytest.approx(0.90)
    assert std.loc[1.0, 0.5] == pytest.approx(0.01)
    assert count.loc[4.0, 0.0] == 3
    assert sweeps.best_cell(ROWS) == (1.0, 0.5)


def test_paired_over_seeds_takes_the_difference_seed_by_seed():
    out = sweeps.paired_over_seeds({0: 0.90, 1: 0.91, 2: 0.89}, {0: 0.80, 1: 0.815, 2: 0.79})
    diffs = torch.tensor([0.10, 0.095, 0.10], dtype=torch.float64)
    assert out["difference"] == pytest.approx(diffs.mean().item())
    assert out["stderr"] == pytest.approx(diffs.std().item() / math.sqrt(3))
    assert out["seeds"] == 3 and out["verdict"] == "better"
    assert sweeps.paired_over_seeds({0: 0.78, 1: 0.83, 2: 0.80}, {0: 0.80, 1: 0.81, 2: 0.79})["verdict"] == "within noise"
    assert sweeps.paired_over_seeds({0: 0.70, 1: 0.715}, {0: 0.80, 1: 0.81})["verdict"] == "worse"
    # a KL divergence or a loss: lower is better
    assert sweeps.paired_over_seeds({0: 0.70, 1: 0.715}, {0: 0.80, 1: 0.81}, higher_is_better=False)["verdict"] == "better"


def test_pairing_sees_a_small_steady_gain_that_the_spread_between_seeds_hides():
    # Seeds differ by 5 points; within each seed, a beats b by about 1 point.
    a, b = {0: 0.80, 1: 0.85, 2: 0.90}, {0: 0.79, 1: 0.845, 2: 0.888}
    assert sweeps.paired_over_seeds(a, b)["verdict"] == "better"
    unpaired_se = math.sqrt(torch.tensor(list(a.values())).var().item() / 3
                            + torch.tensor(list(b.values())).var().item() / 3)
    assert sweeps.paired_over_seeds(a, b)["difference"] < 2 * unpaired_se  # unpaired: within noise


def test_paired_over_seeds_needs_the_same_seeds_and_says_when_it_cannot_measure_noise():
    with pytest.raises(ValueError, match="same seeds"):
        sweeps.paired_over_seeds({0: 0.9, 1: 0.8}, {0: 0.8, 2: 0.7})
    one = sweeps.paired_over_seeds({0: 0.9}, {0: 0.8})
    assert one["difference"] == pytest.approx(0.1)
    assert math.isnan(one["stderr"]) and one["verdict"].startswith("unknown")


def test_compare_cells_compares_each_cell_with_alpha0_at_the_same_T_seed_by_seed():
    rows = {(r["temperature"], r["alpha"]): r for r in sweeps.compare_cells(ROWS, "val_acc")}
    assert set(rows) == {(1.0, 0.5), (4.0, 0.5)}
    assert rows[(1.0, 0.5)]["difference"] == pytest.approx(0.10)
    assert rows[(1.0, 0.5)]["verdict"] == "better"
    assert rows[(4.0, 0.5)]["verdict"] == "within noise"
    kl = [dict(r, kl_to_teacher=1 - r["val_acc"]) for r in ROWS]  # the better students are closer
    assert {(c["temperature"], c["verdict"]) for c in sweeps.compare_cells(kl, "kl_to_teacher")} == {
        (1.0, "better"), (4.0, "within noise")}


def test_difference_heatmap_is_centred_at_zero_without_the_baseline_column():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = sweeps.difference_heatmap(ROWS, "val_acc")
    mesh = ax.collections[0]
    assert mesh.norm.vmin == pytest.approx(-mesh.norm.vmax)      # symmetric: 0 is the middle colour
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5"]  # alpha = 0 is the baseline, not a cell
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "4"]
    texts = [t.get_text() for t in ax.texts]
    assert "+10.00\n±0.00" in texts                               # points, mean of per-seed differences
    assert len(ax.patches) == 1                                    # the one real difference is boxed
    plt.close(ax.figure)


def test_plot_formulations_colours_students_by_their_alpha():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    rows = [dict(r, formulation=f) for f in ("hinton", "blended") for r in ROWS if r["alpha"] == 0.5]
    ax = sweeps.plot_formulations(rows, baseline=[r for r in ROWS if r["alpha"] == 0])
    colours = {mcolors.to_hex(line.get_color()) for line in ax.get_lines()}
    assert mcolors.to_hex(kd.model_color("alpha=0.5")) in colours
    assert mcolors.to_hex(kd.model_color("alpha=0")) in colours
    plt.close(ax.figure)

"""Specification of kd_utils.sweeps: a deterministic validation split that
never touches the test set, grids of students over T x alpha x seed, and the
rule that calls a difference real only when it beats the seed-to-seed noise."""
import math

import pytest
import torch

from conftest import make_dataset
from kd_utils import sweeps
from kd_utils.profiles import settings


def test_validation_split_is_disjoint_balanced_and_deterministic():
    data = make_dataset(n_train=100, n_test=30)
    a = sweeps.validation_split(data, n_val=20, n_train=50)
    b = sweeps.validation_split(data, n_val=20, n_train=50)
    assert torch.equal(a.val_idx, b.val_idx) and torch.equal(a.train_idx, b.train_idx)
    assert len(a.val_idx) == 20 and len(a.train_idx) == 50
    assert not set(a.val_idx.tolist()) & set(a.train_idx.tolist())
    # validation images come from the TRAINING set; the test set is not used
    assert torch.equal(a.data.x_test, data.x_train[a.val_idx])
    assert torch.equal(a.data.y_test, data.y_train[a.val_idx])
    assert torch.equal(a.data.x_train, data.x_train[a.train_idx])
    assert torch.bincount(a.data.y_test, minlength=10).tolist() == [2] * 10


def test_validation_split_uses_all_the_rest_without_n_train():
    data = make_dataset(n_train=40, n_test=10)
    split = sweeps.validation_split(data, n_val=10)
    assert len(split.train_idx) == 30
    assert sorted(split.train_idx.tolist() + split.val_idx.tolist()) == list(range(40))


@pytest.mark.parametrize("n_val,n_train,match", [(0, None, "n_val must be between 1 and 39"),
                                                  (40, None, "n_val must be between 1 and 39"),
                                                  (10, 31, "n_train must be between 1 and 30")])
def test_validation_split_rejects_impossible_sizes(n_val, n_train, match):
    with pytest.raises(ValueError, match=match):
        sweeps.validation_split(make_dataset(n_train=40, n_test=10), n_val, n_train)


def test_sweep_size_follows_the_profile_and_overrides(monkeypatch):
    monkeypatch.delenv("KD_PROFILE", raising=False)
    s = settings("mnist", "smoke", verbose=False)
    assert sweeps.sweep_size(s) == sweeps.SWEEP_SIZES["smoke"]
    big = sweeps.sweep_size(s, seeds=4, temperatures=(1, 3), alphas=None)
    assert big.seeds == 4 and big.temperatures == (1.0, 3.0)
    assert big.alphas == sweeps.SWEEP_SIZES["smoke"].alphas
    with pytest.raises(ValueError, match="unknown sweep field"):
        sweeps.sweep_size(s, temps=(1,))
    with pytest.raises(ValueError, match="temperature must be"):
        sweeps.sweep_size(s, temperatures=(0,))


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    # trained once for the module; tests that train again use their own folder
    tmp_path = tmp_path_factory.mktemp("sweep")
    data = make_dataset(n_train=60, n_test=10)
    split = sweeps.validation_split(data, n_val=20)
    torch.manual_seed(0)
    teacher_logits = torch.randn(60, 10) * 3
    rows = sweeps.run_sweep(split, teacher_logits, temperatures=(1, 4), alphas=(0.0, 1.0), seeds=(0, 1),
                            epochs=1, batch_size=16, run_root=tmp_path)
    return split, teacher_logits, rows, tmp_path


def test_run_sweep_gives_one_row_per_cell_and_seed(grid):
    split, _, rows, _ = grid
    assert len(rows) == 2 * 2 * 2
    assert {(r["temperature"], r["alpha"], r["seed"]) for r in rows} == {
        (T, a, s) for T in (1.0, 4.0) for a in (0.0, 1.0) for s in (0, 1)}
    for r in rows:
        assert 0 <= r["val_acc"] <= 1 and 0 <= r["agreement"] <= 1 and r["kl_to_teacher"] >= 0


def test_hinton_alpha0_is_trained_once_per_seed_and_shared_across_T(grid):
    _, _, rows, root = grid
    a0 = {(r["temperature"], r["seed"]): r for r in rows if r["alpha"] == 0}
    for seed in (0, 1):
        assert a0[(1.0, seed)]["run_dir"] == a0[(4.0, seed)]["run_dir"]
    # 2 seeds x (1 shared alpha=0 + 2 temperatures at alpha=1) runs on disk
    assert len([p for p in root.iterdir() if (p / "final.pt").exists()]) == 6


def test_agreement_is_measured_against_the_teacher_on_validation_images(grid):
    split, teacher_logits, rows, _ = grid
    r = rows[0]
    student = sweeps.load_student(split.data, r["run_dir"])
    from kd_utils.training import predict
    s = predict(student, split.data.x_test).argmax(1)
    t = teacher_logits[split.val_idx].argmax(1)
    assert r["agreement"] == pytest.approx((s == t).float().mean().item())


def test_run_sweep_reuses_finished_runs(grid):
    split, teacher_logits, rows, root = grid
    stamps = {p: (p / "final.pt").stat().st_mtime_ns for p in root.iterdir()}
    again = sweeps.run_sweep(split, teacher_logits, temperatures=(1, 4), alphas=(0.0, 1.0), seeds=(0, 1),
                             epochs=1, batch_size=16, run_root=root)
    assert again == rows
    assert stamps == {p: (p / "final.pt").stat().st_mtime_ns for p in root.iterdir()}


def test_run_sweep_rejects_teacher_logits_for_another_set(grid):
    split, _, _, root = grid
    with pytest.raises(ValueError, match="one row per image of the original training set"):
        sweeps.run_sweep(split, torch.randn(10, 10), (1,), (0.5,), (0,), epochs=1, run_root=root)


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


def test_difference_vs_noise_uses_the_combined_standard_error():
    out = sweeps.difference_vs_noise([0.90, 0.91, 0.89], [0.80, 0.81, 0.79])
    assert out["difference"] == pytest.approx(0.10)
    assert out["stderr"] == pytest.approx(math.sqrt(0.01 ** 2 / 3 * 2))
    assert out["verdict"] == "higher"
    assert sweeps.difference_vs_noise([0.78, 0.83, 0.80], [0.80, 0.81, 0.79])["verdict"] == "within noise"
    assert sweeps.difference_vs_noise([0.7, 0.71], [0.80, 0.81, 0.79])["verdict"] == "lower"
    one = sweeps.difference_vs_noise([0.9], [0.8])
    assert math.isnan(one["stderr"]) and one["verdict"].startswith("unknown")


def test_compare_cells_compares_each_cell_with_alpha0_at_the_same_T():
    rows = {(r["temperature"], r["alpha"]): r for r in sweeps.compare_cells(ROWS, "val_acc")}
    assert set(rows) == {(1.0, 0.5), (4.0, 0.5)}
    assert rows[(1.0, 0.5)]["verdict"] == "higher"
    assert rows[(4.0, 0.5)]["verdict"] == "within noise"


def test_evaluate_on_test_scores_each_seed_of_one_cell_on_the_test_set(grid):
    split, _, rows, _ = grid
    data = make_dataset(n_train=60, n_test=10)
    t_test = torch.randn(10, 10)
    out = sweeps.evaluate_on_test(rows, data, t_test, temperature=4, alpha=1.0)
    assert [r["seed"] for r in out] == [0, 1]
    from kd_utils.training import predict
    r1 = [r for r in rows if (r["temperature"], r["alpha"], r["seed"]) == (4.0, 1.0, 1)][0]
    logits = predict(sweeps.load_student(data, r1["run_dir"]), data.x_test)
    assert out[1]["test_acc"] == pytest.approx((logits.argmax(1) == data.y_test).float().mean().item())
    with pytest.raises(ValueError, match="no hinton students at T=3, alpha=1"):
        sweeps.evaluate_on_test(rows, data, t_test, temperature=3, alpha=1.0)

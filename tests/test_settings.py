"""settings(): one frozen object, checked once, that every notebook and the command
line start from. One precedence rule: a KD_* environment variable beats the value
given in the cell, which beats the default; a string is parsed the same way wherever
it comes from; a bad value is refused with its name (the variable's, for the environment)."""
import dataclasses
from pathlib import Path

import pytest
import torch

import kd_utils as kd
from kd_utils.settings import DEFAULTS, PARSERS, default_threads


def settings(**values):
    """The values a test does not set: fashion-mnist, smoke, cpu, quiet."""
    return kd.settings(**{**dict(dataset="fashion-mnist", profile="smoke", device="cpu", verbose=False), **values})


# ------------------------------------------------------------------ defaults

def test_on_the_cpu_auto_means_cached_teacher_outputs_no_augmentation_fp32():
    s = settings(teacher_mode="auto", augment="auto", precision="auto")
    assert (s.teacher_mode, s.augment, s.precision) == ("cached", False, "fp32")
    assert s.profile.name == "smoke" and s.device == torch.device("cpu")
    assert settings(profile="auto").profile.name == "cpu"  # on the CPU, auto is the cpu profile


def test_32x32_colour_images_are_augmented_when_the_teacher_runs_online():
    """A GPU's default (online teacher) can be asked for on the CPU: CIFAR-10 is then augmented;
    digits never are (a flipped 2 is not a 2); cached outputs are for clean images only."""
    assert settings(dataset="cifar10", teacher_mode="online").augment is True
    assert settings(dataset="mnist", teacher_mode="online").augment is False
    assert settings(dataset="cifar10", teacher_mode="cached").augment is False


def test_augment_true_with_cached_teacher_outputs_is_refused():
    with pytest.raises(ValueError, match="True needs teacher_mode='online'"):
        settings(dataset="cifar10", teacher_mode="cached", augment=True)


def test_settings_are_frozen():
    s = settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.temperature = 2.0


def test_unknown_settings_are_refused_with_the_valid_ones():
    with pytest.raises(TypeError, match=r"unknown setting\(s\) \['temprature'\]; valid: dataset, profile, seed, "
                                        r"temperature, alphas"):
        settings(temprature=2.0)


def test_every_setting_has_an_environment_variable():
    assert set(PARSERS) == set(DEFAULTS)
    assert {var for var, *_ in PARSERS.values()} == {f"KD_{k.upper()}" for k in DEFAULTS}


# ----------------------------------------------------------------- precedence

@pytest.mark.parametrize("key, default, cell, env, from_env", [
    ("temperature", 4.0, 2.0, "2.5", 2.5),
    ("alphas", (0.0, 0.5, 1.0), (0.5,), "0 1", (0.0, 1.0)),
    ("seed", 0, 3, "7", 7),
    ("threads", default_threads(), 2, "3", 3),
    ("formulation", "hinton", "blended", "hinton", "hinton"),
    ("teacher_mode", "cached", "online", "cached", "cached"),  # auto on the CPU: cached
    ("precision", "fp32", "bf16", "fp16", "fp16"),
    ("augment", True, False, "1", True),  # cifar10 with an online teacher: augmented by default
])
def test_an_environment_variable_beats_the_cells_value_which_beats_the_default(monkeypatch, key, default, cell, env,
                                                                               from_env):
    monkeypatch.delenv("KD_THREADS")  # conftest's one thread, itself an instance of the rule
    base = dict(dataset="cifar10", device="cpu", verbose=False)
    if key == "augment":
        base["teacher_mode"] = "online"  # augment's default depends on it
    if key == "teacher_mode":
        base["augment"] = False  # augment=True would refuse a cached teacher
    assert getattr(kd.settings(**base), key) == default
    assert getattr(kd.settings(**base, **{key: cell}), key) == cell
    monkeypatch.setenv(PARSERS[key][0], env)
    assert getattr(kd.settings(**base, **{key: cell}), key) == from_env


def test_an_empty_environment_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv("KD_TEMPERATURE", "  ")
    assert settings(temperature=3.0).temperature == 3.0


@pytest.mark.parametrize("key, text, expected", [
    ("augment", "false", False), ("augment", "no", False), ("augment", "0", False),
    ("augment", "True", True), ("augment", "yes", True), ("augment", "1", True),
    ("temperature", "2.5", 2.5), ("alphas", "0 0.5", (0.0, 0.5)), ("seed", "7", 7), ("threads", " 2 ", 2),
])
def test_a_string_in_the_cell_is_parsed_exactly_as_the_same_string_in_the_environment(monkeypatch, key, text,
                                                                                          expected):
    monkeypatch.delenv("KD_THREADS")
    extra = dict(dataset="cifar10", teacher_mode="online")  # so that augment=True is allowed
    from_cell = getattr(settings(**extra, **{key: text}), key)
    monkeypatch.setenv(PARSERS[key][0], text)
    from_env = getattr(settings(**extra), key)
    assert from_cell == from_env == expected and type(from_cell) is type(expected)


# ------------------------------------------------------------------ bad values

@pytest.mark.parametrize("var, value, message", [
    ("KD_SEED", "x", r"KD_SEED='x' is not valid: use a whole number"),
    ("KD_TEMPERATURE", "0,5", r"KD_TEMPERATURE='0,5' is not valid: use a number, e.g. 4 or 0.5"),
    ("KD_ALPHAS", "0,5", r"KD_ALPHAS='0,5' is not valid: use numbers separated by spaces, e.g. '0 0.5 1'"),
    ("KD_ALPHAS", "0,1", r"KD_ALPHAS='0,1' is not valid: use numbers separated by spaces"),
    ("KD_THREADS", "two", r"KD_THREADS='two' is not valid: use a whole number"),
    ("KD_AUGMENT", "maybe", r"KD_AUGMENT='maybe' is not valid: use 1, 0, true, false or auto"),
    ("KD_SEED", str(2**70), r"seed must be a whole number from 0 to 2147483647, got 1180591620717411303424"),
    ("KD_THREADS", "0", r"threads must be a whole number from 1 to 1024, got 0"),
    ("KD_DEVICE", "meta", r"unknown device 'meta'; valid devices here are: cpu"),
    ("KD_PROFILE", "huge", r"unknown profile 'huge'; valid profiles are: 'smoke', 'cpu', 'full', 'auto'"),
])
def test_a_bad_environment_variable_is_refused_with_what_is_allowed(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=message):
        settings()


def test_a_bad_string_in_the_cell_is_named_by_the_setting():
    with pytest.raises(ValueError, match=r"augment='maybe' is not valid: use 1, 0, true, false or auto"):
        settings(augment="maybe")


@pytest.mark.parametrize("augment", [1, 0, 1.0, None, [True]])
def test_augment_that_is_neither_a_bool_nor_a_string_is_refused(augment):
    with pytest.raises(ValueError, match="augment must be True, False or 'auto'"):
        settings(dataset="cifar10", teacher_mode="online", augment=augment)


@pytest.mark.parametrize("device", ["meta", torch.device("meta"), "xla"])
def test_a_device_other_than_cpu_cuda_or_mps_is_refused_and_named(device):
    with pytest.raises(ValueError, match=r"unknown device .*(meta|xla).*; valid devices here are: cpu"):
        settings(device=device)


@pytest.mark.parametrize("key, value", [
    ("seed", -1), ("seed", 2**31), ("seed", True), ("seed", 1.0),
    ("threads", 0), ("threads", 1025), ("threads", True), ("threads", 2.0),
])
def test_seed_and_threads_out_of_range_or_not_whole_numbers_are_refused(monkeypatch, key, value):
    monkeypatch.delenv("KD_THREADS")
    with pytest.raises(ValueError, match=f"{key} must be a whole number from"):
        settings(**{key: value})


@pytest.mark.parametrize("alphas", [(0.5, 0.5), (0, -0.0), (1, 1.0)])
def test_duplicate_alphas_are_refused(alphas):
    """Each alpha names a run and a table row (printed with :g): two the same would overwrite each other."""
    with pytest.raises(ValueError, match="alphas must be a list of teacher weights that differ as printed"):
        settings(alphas=alphas)


@pytest.mark.parametrize("alphas", [(), (0.5, 1.5), (-0.1,), (True,), 0.5])
def test_alphas_must_be_a_list_of_weights_in_0_1(alphas):
    with pytest.raises(ValueError, match="alpha"):
        settings(alphas=alphas)


def test_alphas_become_floats_and_minus_zero_is_zero():
    s = settings(alphas=[1, 0.5, -0.0])
    assert s.alphas == (1.0, 0.5, 0.0)
    assert str(s.alphas[-1]) == "0.0"  # not "-0.0": the same run folder as alpha = 0


@pytest.mark.parametrize("key, value, message", [
    ("dataset", "imagenet", "unknown dataset 'imagenet'; valid datasets are: 'cifar10', 'fashion-mnist', 'mnist', "
                            "'imagefolder:PATH'"),
    ("formulation", "keras", "unknown formulation 'keras'"),
    ("teacher_mode", "sometimes", "unknown teacher_mode 'sometimes'"),
    ("precision", "fp64", "unknown precision 'fp64'; valid precisions are: 'bf16', 'fp16', 'fp32'"),
    ("teacher", "no/such/file.pt", "unknown teacher 'no/such/file.pt': not a file"),
])
def test_a_value_outside_the_choices_is_refused_with_the_valid_ones(key, value, message):
    with pytest.raises(ValueError, match=message):
        settings(**{key: value})


def test_an_image_folder_dataset_and_a_weights_file_teacher_are_accepted(tmp_path):
    (tmp_path / "teacher.pt").write_bytes(b"")
    s = settings(dataset=f"imagefolder:{tmp_path}", teacher=str(tmp_path / "teacher.pt"))
    assert s.dataset == f"imagefolder:{tmp_path}" and s.teacher == str(tmp_path / "teacher.pt")


# --------------------------------------------------------------------- folders

def test_the_folders_come_from_KD_DATA_DIR_KD_RUNS_DIR_and_KD_FIGURES_DIR(monkeypatch, tmp_path):
    for var in ("KD_DATA_DIR", "KD_RUNS_DIR", "KD_FIGURES_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    s = settings(data_dir=tmp_path / "cell", runs_dir=str(tmp_path / "cell"))
    assert (s.data_dir, s.runs_dir, s.figures_dir) == (tmp_path / "kd_data_dir", tmp_path / "kd_runs_dir",
                                                       tmp_path / "kd_figures_dir")
    assert all(isinstance(p, Path) for p in (s.data_dir, s.runs_dir, s.figures_dir))


def test_without_the_variables_the_folders_are_the_cells_and_figures_go_inside_runs(monkeypatch, tmp_path):
    for var in ("KD_DATA_DIR", "KD_RUNS_DIR", "KD_FIGURES_DIR"):
        monkeypatch.delenv(var)
    s = settings(data_dir=tmp_path / "d", runs_dir=str(tmp_path / "r"))
    assert (s.data_dir, s.runs_dir, s.figures_dir) == (tmp_path / "d", tmp_path / "r", tmp_path / "r" / "figures")


def test_by_default_the_folders_are_in_the_project_also_from_notebooks(monkeypatch, tmp_path):
    """Notebooks run from notebooks/: data and runs still go to <project>/data and <project>/runs."""
    for var in ("KD_DATA_DIR", "KD_RUNS_DIR", "KD_FIGURES_DIR"):
        monkeypatch.delenv(var)
    (tmp_path / "kd_utils").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    s = settings()
    assert (s.data_dir, s.runs_dir, s.figures_dir) == (tmp_path / "data", tmp_path / "runs",
                                                       tmp_path / "runs" / "figures")


@pytest.mark.parametrize("var", ["KD_DATA_DIR", "KD_RUNS_DIR", "KD_FIGURES_DIR"])
def test_a_folder_that_is_a_file_is_refused(monkeypatch, tmp_path, var):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(var, str(tmp_path / "a-file"))
    with pytest.raises(NotADirectoryError, match=rf"\({var}\) is {tmp_path / 'a-file'}, a file, not a folder"):
        settings()


def test_as_dict_leaves_the_folders_out():
    """Results files are keyed by s.as_dict(): what ran, not where its files lie."""
    d = settings().as_dict()
    assert not any(k.endswith("_dir") for k in d) and d["device"] == "cpu" and d["profile"]["name"] == "smoke"


# --------------------------------------------------------------------- output

def test_describe_says_what_will_run(capsys):
    kd.settings(dataset="fashion-mnist", profile="smoke", device="cpu", temperature=3, alphas=(0, 1))
    out = capsys.readouterr().out
    assert "dataset=fashion-mnist  profile=smoke (2000 train / 1000 test images" in out
    assert "T=3  alphas=[0.0, 1.0]  loss=hinton  teacher=auto (cached)" in out
    settings()
    assert capsys.readouterr().out == ""  # verbose=False: nothing

"""Bad input fails at once, with a message that says what was wrong and what is allowed.

One test per row of the table in docs/troubleshooting.md. (distillation_loss's own
argument checks are specified in test_losses.py; these go through the entry points a
learner uses: settings, train_student, distill, get_teacher, load_dataset, the CLI.)
"""
import math

import pytest
import torch

import kd_utils as kd
from kd_utils import experiment
from kd_utils.data import DataUnavailableError, load_dataset
from kd_utils.models import freeze, make_cnn_teacher
from kd_utils.profiles import get_profile
from kd_utils.teachers import TeacherMismatchError, get_teacher
from reliability_helpers import runs, tiny_data, tiny_settings, tiny_teacher  # noqa: F401

TEMPERATURE_RULE = r"temperature must be a finite number > 0"
ALPHA_RULE = r"alpha must be in \[0, 1\] \(0 = hard labels only, 1 = teacher only\)"


@pytest.mark.parametrize("temperature", [0, -1.0, math.nan, math.inf])
def test_temperature_must_be_finite_and_positive(temperature):
    with pytest.raises(ValueError, match=f"{TEMPERATURE_RULE}.*got {temperature!r}"):
        kd.settings("fashion-mnist", "smoke", temperature=temperature, verbose=False)


def test_temperature_from_the_environment_is_checked_too(monkeypatch):
    monkeypatch.setenv("KD_TEMPERATURE", "-4")
    with pytest.raises(ValueError, match=TEMPERATURE_RULE):
        kd.settings("fashion-mnist", "smoke", verbose=False)


def test_temperature_that_is_not_a_number_says_so():
    with pytest.raises(TypeError, match="temperature must be a number, got 'hot'"):
        kd.settings("fashion-mnist", "smoke", temperature="hot", verbose=False)


@pytest.mark.parametrize("alpha", [5, 1.01, -0.1, math.nan])
def test_alpha_must_be_in_the_unit_interval(alpha):
    with pytest.raises(ValueError, match=ALPHA_RULE):
        kd.settings("fashion-mnist", "smoke", alphas=(0.0, alpha), verbose=False)


def test_alpha_is_checked_by_distill_before_any_work(runs):
    data = tiny_data()
    with pytest.raises(ValueError, match=f"{ALPHA_RULE}, got 5"):
        experiment.distill(tiny_settings(), data, tiny_teacher(data), alphas=(0.5, 5))
    assert not runs.exists()  # nothing was trained or cached


def test_teacher_logits_of_another_shape_are_refused(runs):
    data = tiny_data()
    wrong = torch.zeros(len(data.x_train), data.num_classes + 1)
    with pytest.raises(ValueError, match=r"teacher_logits must have shape \(96, 4\).*got \(96, 5\)"):
        kd.train_student(data, 0.5, 4.0, epochs=1, teacher_logits=wrong)


def test_labels_out_of_range_are_refused():
    data = tiny_data()
    data.y_train[3] = data.num_classes  # one label too many
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\] for 4 classes, got values from 0 to 4"):
        kd.train_student(data, 0.0, 4.0, epochs=1, batch_size=len(data.x_train))


def test_a_teacher_for_another_number_of_classes_is_refused(runs):
    data = tiny_data(classes=4)
    torch.manual_seed(0)
    teacher = freeze(make_cnn_teacher(data.image_shape, 10, *data.stats()))
    with pytest.raises(TeacherMismatchError, match=r"outputs 10 classes, but tiny has 4 \(class0, class1"):
        experiment.distill(tiny_settings(), data, teacher)


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown dataset 'cifar100'; valid datasets are: 'cifar10', "
                                         "'fashion-mnist', 'mnist', 'imagefolder:PATH'"):
        load_dataset("cifar100")


def test_unknown_dataset_in_settings_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown dataset 'fashion_mnist'; valid datasets are"):
        kd.settings("fashion_mnist", "smoke", verbose=False)


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'fast'; valid profiles are: 'smoke', 'cpu', 'full', 'auto'"):
        get_profile("fast")


def test_unknown_teacher_lists_the_valid_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="unknown teacher 'resnet18'.*'auto', 'download', 'train'"):
        kd.settings("fashion-mnist", "smoke", teacher="resnet18", verbose=False)
    with pytest.raises(FileNotFoundError, match="teacher must be one of: auto, download, train"):
        get_teacher(tiny_data(), "resnet18")


def test_the_downloadable_teacher_is_only_for_cifar10():
    with pytest.raises(ValueError, match="for cifar10, not tiny; use teacher='train'"):
        get_teacher(tiny_data(), "download")


def test_unknown_formulation_and_teacher_mode_list_the_valid_ones(runs):
    data = tiny_data()
    with pytest.raises(ValueError, match="valid formulations are: 'hinton', 'blended'"):
        kd.train_student(data, 0.0, 4.0, epochs=1, formulation="hinten")
    with pytest.raises(ValueError, match="valid teacher_modes are: 'cached', 'online'"):
        experiment.distill(tiny_settings(), data, tiny_teacher(data), teacher_mode="live")


def test_missing_data_while_offline_says_how_to_get_it(tmp_path, monkeypatch, no_dataset_downloads):
    monkeypatch.setenv("KD_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataUnavailableError) as err:
        load_dataset("cifar10")
    message = str(err.value)
    assert no_dataset_downloads  # the download was tried (and failed: we are offline)
    assert "not in" in message and str(tmp_path / "empty") in message
    assert "With internet: run again" in message
    assert "KD_DATASET=fashion-mnist" in message  # the offline alternative


def test_the_command_line_reports_bad_input_in_one_line(monkeypatch, capsys):
    from kd_utils.__main__ import main

    for var in ("KD_DATASET", "KD_PROFILE", "KD_SEED", "KD_ALPHAS", "KD_TEMPERATURE", "KD_TEACHER"):
        monkeypatch.setenv(var, "")
    assert main(["distill", "--dataset", "fashion-mnist", "--profile", "fast"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown profile 'fast'; valid profiles are:")
    assert "Traceback" not in err

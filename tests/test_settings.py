"""settings(): one frozen object, checked once, that every notebook and the command
line start from. Environment variables override the notebook's values; a bad one
is named in the error."""
import dataclasses

import pytest
import torch

import kd_utils as kd


def settings(**values):
    return kd.settings(**{**dict(dataset="fashion-mnist", profile="smoke", device="cpu", verbose=False), **values})


def test_on_the_cpu_auto_means_cached_teacher_outputs_no_augmentation_no_autocast():
    s = settings(teacher_mode="auto", augment="auto", autocast="auto")
    assert (s.teacher_mode, s.augment, s.autocast) == ("cached", False, False)
    assert s.profile.name == "smoke" and s.device == torch.device("cpu")
    assert settings(profile="auto").profile.name == "cpu"  # no GPU here


def test_the_gpu_default_can_be_asked_for_on_the_cpu():
    s = settings(dataset="cifar10", teacher_mode="online", autocast=True)
    assert (s.teacher_mode, s.augment, s.autocast) == ("online", True, True)  # cifar10 + online: augment


def test_settings_are_frozen():
    s = settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.temperature = 2.0


def test_environment_variables_override_the_notebooks_values(monkeypatch):
    monkeypatch.setenv("KD_TEMPERATURE", "2.5")
    monkeypatch.setenv("KD_ALPHAS", "0 1")
    monkeypatch.setenv("KD_SEED", "7")
    s = settings(temperature=4.0, alphas=(0.5,), seed=0)
    assert (s.temperature, s.alphas, s.seed) == (2.5, (0.0, 1.0), 7)
    assert settings(env=False, temperature=4.0).temperature == 4.0


def test_alphas_are_numbers_without_duplicates_and_minus_zero_is_zero():
    s = settings(alphas=[1, 0.5, 0.5, -0.0])
    assert s.alphas == (1.0, 0.5, 0.0)
    assert str(s.alphas[-1]) == "0.0"  # not "-0.0": the same run folder as alpha = 0


def test_unknown_settings_are_refused_with_the_valid_ones():
    with pytest.raises(TypeError, match=r"unknown setting\(s\) \['temprature'\]; valid settings are: dataset, "
                                        r"profile, seed, temperature, alphas"):
        settings(temprature=2.0)


@pytest.mark.parametrize("var, value, message", [
    ("KD_SEED", "x", r"KD_SEED='x' is not valid: use a whole number"),
    ("KD_TEMPERATURE", "0,5", r"KD_TEMPERATURE='0,5' is not valid: use a number with a decimal point"),
    ("KD_ALPHAS", "0,5", r"KD_ALPHAS='0,5' is not valid: use numbers separated by spaces, e.g. '0 0.5 1'"),
    ("KD_ALPHAS", "0,1", r"KD_ALPHAS='0,1' is not valid: use numbers separated by spaces"),
    ("KD_THREADS", "two", r"KD_THREADS='two' is not valid: use a whole number >= 1"),
    ("KD_THREADS", "0", r"threads \(KD_THREADS\) must be a whole number >= 1, got 0"),
    ("KD_AUGMENT", "maybe", r"KD_AUGMENT='maybe' is not valid: use 1, 0 or auto"),
    ("KD_SEED", str(2**70), r"seed must be a whole number from 0 to 2147483647, got 1180591620717411303424"),
])
def test_a_bad_environment_variable_is_named_with_what_is_allowed(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=message):
        settings()


def test_kd_threads_sets_torchs_cpu_threads(monkeypatch):
    monkeypatch.setenv("KD_THREADS", "1")
    torch.set_num_threads(2)
    settings()
    assert torch.get_num_threads() == 1


def test_describe_says_what_will_run(capsys):
    kd.settings(dataset="fashion-mnist", profile="smoke", device="cpu", temperature=3, alphas=(0, 1))
    out = capsys.readouterr().out
    assert "dataset=fashion-mnist  profile=smoke (2000 train / 1000 test images" in out
    assert "T=3  alphas=[0.0, 1.0]  loss=hinton  teacher=auto (cached)" in out

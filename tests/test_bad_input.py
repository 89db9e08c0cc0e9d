"""Bad input fails at once, with a message that says what was wrong and what to do:
one test per row of the table in docs/troubleshooting.md, in the table's order, each
through the entry point a learner uses (settings, the loss, distill, get_teacher, the
loaders, the command line). test_doc_table_has_one_test_per_row keeps the two in step."""
import math
import os
import re
from pathlib import Path

import pytest
import torch

import kd_utils as kd
import kd_utils.storage as storage
from kd_testdata import make_image_folder, toy_data, toy_settings, toy_teacher
from kd_utils.models import make_cnn_teacher, make_student
from kd_utils.storage import CorruptFileError, UnsafeCheckpointError
from kd_utils.teachers import TeacherMismatchError

ROOT = Path(__file__).resolve().parents[1]


def settings(**values):
    return kd.settings(**{**dict(dataset="fashion-mnist", profile="smoke", device="cpu", verbose=False), **values})


def batch(n=4, c=10):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, c, generator=g), torch.randn(n, c, generator=g), torch.arange(n) % c


def test_doc_table_has_one_test_per_row():
    rows = [line for line in (ROOT / "docs" / "troubleshooting.md").read_text().splitlines()
            if line.startswith("| `")]
    tests = [name for name in globals() if name.startswith("test_row_")]
    assert len(rows) == len(tests)


@pytest.mark.parametrize("temperature", [0, 0.01, 1e-320, 101, math.nan, math.inf])
def test_row_settings_temperature_range(temperature, monkeypatch, cli):
    with pytest.raises(ValueError, match=r"temperature must be between 0.05 and 100 \(1 = ordinary softmax, "
                                         rf"larger = softer\), got {re.escape(repr(temperature))}"):
        settings(temperature=temperature)
    monkeypatch.setenv("KD_TEMPERATURE", "-4")
    code, _, err = cli("distill")
    assert code == 2 and err.startswith("error: temperature must be between 0.05 and 100")


@pytest.mark.parametrize("temperature", [0, -1.0, math.nan, math.inf])
def test_row_loss_temperature(temperature):
    with pytest.raises(ValueError, match=r"temperature must be a finite number > 0 \(1 = ordinary softmax"):
        kd.distillation_loss(*batch(), temperature, 0.5)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        kd.softmax_with_temperature(torch.zeros(3), temperature)


def test_row_temperature_not_a_number():
    with pytest.raises(TypeError, match="temperature must be a number, got 'hot'"):
        settings(temperature="hot")
    with pytest.raises(TypeError, match="temperature must be a number, got None"):
        kd.distillation_loss(*batch(), None, 0.5)


@pytest.mark.parametrize("alpha", [5, 1.01, -0.1, math.nan])
def test_row_alpha_outside_0_1(alpha, runs, data, teacher):
    rule = r"alpha must be in \[0, 1\] \(0 = hard labels only, 1 = teacher only\), got "
    with pytest.raises(ValueError, match=rule):
        settings(alphas=(0.0, alpha))
    with pytest.raises(ValueError, match=rule):
        kd.distillation_loss(*batch(), 4.0, alpha)
    with pytest.raises(ValueError, match=rule):
        kd.distill(toy_settings(), data, teacher, alphas=(0.5, alpha), progress=False)
    assert not runs.exists()  # checked before any work: nothing trained or cached


def test_row_alphas_not_a_list(runs):
    with pytest.raises(TypeError, match=r"alphas must be a list of teacher weights, e\.g\. \(0\.0, 0\.5, 1\.0\), "
                                        r"got 0\.5"):
        settings(alphas=0.5)
    with pytest.raises(ValueError, match="alphas must list at least one teacher weight"):
        settings(alphas=())


def test_row_kd_alphas_with_a_comma(monkeypatch):
    monkeypatch.setenv("KD_ALPHAS", "0,5")
    with pytest.raises(ValueError, match=r"KD_ALPHAS='0,5' is not valid: use numbers separated by spaces, "
                                         r"e\.g\. '0 0\.5 1'"):
        settings()


@pytest.mark.parametrize("var, value, message", [
    ("KD_SEED", "x", r"KD_SEED='x' is not valid: use a whole number, e\.g\. 0"),
    ("KD_TEMPERATURE", "0,5", r"KD_TEMPERATURE='0,5' is not valid: use a number with a decimal point, "
                              r"e\.g\. 4 or 0\.5"),
])
def test_row_environment_variable_does_not_parse(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=message):
        settings()


@pytest.mark.parametrize("seed", [-1, 1.5, 2**31, True])
def test_row_seed_out_of_range(seed):
    with pytest.raises(ValueError, match=rf"seed must be a whole number from 0 to 2147483647, got {seed!r}"):
        settings(seed=seed)


@pytest.mark.parametrize("value", ["0", "-2"])
def test_row_kd_threads(monkeypatch, value):
    monkeypatch.setenv("KD_THREADS", value)
    with pytest.raises(ValueError, match=rf"threads \(KD_THREADS\) must be a whole number >= 1, got {value}"):
        settings()


def test_row_unknown_setting():
    with pytest.raises(TypeError, match=r"unknown setting\(s\) \['temprature'\]; valid settings are: dataset, "
                                        r"profile, seed, temperature"):
        settings(temprature=2.0)


def test_row_unknown_dataset(cli):
    valid = "valid datasets are: 'cifar10', 'fashion-mnist', 'mnist', 'imagefolder:PATH'"
    with pytest.raises(ValueError, match=f"unknown dataset 'cifar100'; {valid}"):
        kd.load_dataset("cifar100")
    with pytest.raises(ValueError, match=f"unknown dataset 'fashion_mnist'; {valid}"):
        settings(dataset="fashion_mnist")
    assert cli("distill", "--dataset", "cifar100")[2] == f"error: unknown dataset 'cifar100'; {valid}\n"


def test_row_unknown_profile(cli, capsys):
    with pytest.raises(ValueError, match="unknown profile 'fast'; valid profiles are: 'smoke', 'cpu', 'full', 'auto'"):
        settings(profile="fast")
    with pytest.raises(SystemExit):
        cli("distill", "--profile", "fast")
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_row_unknown_teacher(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="unknown teacher 'resnet18': not a file, and not one of 'auto', "
                                         "'download', 'train'"):
        settings(teacher="resnet18")


def test_row_unknown_formulation_or_teacher_mode():
    with pytest.raises(ValueError, match="unknown formulation 'hinten'; valid formulations are: 'hinton', 'blended'"):
        settings(formulation="hinten")
    with pytest.raises(ValueError, match="unknown formulation 'keras'; valid formulations are"):
        kd.distillation_loss(*batch(), 4.0, 0.5, formulation="keras")
    with pytest.raises(ValueError, match="unknown teacher_mode 'live'; valid teacher_modes are: 'cached', 'online'"):
        settings(teacher_mode="live")


def test_row_augment_needs_an_online_teacher():
    with pytest.raises(ValueError, match="augment=True needs teacher_mode='online': cached teacher outputs are "
                                         "for the clean images"):
        settings(augment=True, teacher_mode="cached")


def test_row_logits_of_different_shapes():
    s, t, y = batch()
    with pytest.raises(ValueError, match=r"student and teacher logits must have the same shape, got \(4, 10\) "
                                         r"and \(4, 5\)"):
        kd.distillation_loss(s, t[:, :5], y, 4.0, 0.5)


def test_row_labels_out_of_range(runs, data):
    data.y_train[3] = data.num_classes  # one label too many
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\] for 4 classes, got values from 0 to 4"):
        kd.distill(toy_settings(), data, toy_teacher(data), progress=False)
    s, t, _ = batch()
    with pytest.raises(ValueError, match=r"labels must be in \[0, 9\] for 10 classes, got values from 0 to 10"):
        kd.distillation_loss(s, t, torch.tensor([0, 1, 2, 10]), 4.0, 0.5)


def test_row_teacher_for_another_number_of_classes(runs, data):
    torch.manual_seed(0)
    teacher = kd.Trained(kd.freeze(make_cnn_teacher(data.image_shape, 10, *data.stats())))
    with pytest.raises(TeacherMismatchError, match=r"the teacher outputs 10 classes, but toy has 4 \(class0, "
                                                   r"class1, class2, class3\); use a teacher trained on toy"):
        kd.distill(toy_settings(), data, teacher, progress=False)
    assert not runs.exists()  # nothing was trained or cached


def refuses_weights_file(path, state_dict, data, match, **settings):
    """get_teacher on a weights file holding state_dict raises TeacherMismatchError matching match."""
    torch.save(state_dict, path)
    with pytest.raises(TeacherMismatchError, match=match):
        kd.get_teacher(toy_settings(teacher=str(path), **settings), data)


def test_row_weights_file_with_another_head(tmp_path, data):
    path = tmp_path / "teacher.pt"
    refuses_weights_file(path, make_cnn_teacher(data.image_shape, 5, [0.5], [0.2]).state_dict(), data,
                         f"{path}: the teacher has 5 output classes, but toy has 4; use a teacher trained on toy")


def test_row_weights_file_of_another_architecture(tmp_path, data):
    path = tmp_path / "student.pt"
    refuses_weights_file(path, make_student(data.image_shape, 4, [0.5], [0.2]).state_dict(), data,
                         f"{path} is not a CNNTeacher teacher for toy .* checkpoint: "
                         f"missing net.features.1.weight.*; unexpected net.features.3")
    cifar = toy_data(shape=(3, 32, 32), name="cifar10", num_classes=10)
    refuses_weights_file(path, {"features.0.weight": torch.zeros(64, 3, 3, 3), "fc.weight": torch.zeros(10, 512)},
                         cifar, f"{path}: expected vgg13_bn weights, but not a vgg13_bn "
                                r"state_dict: no 'classifier.0.weight' key \(found keys like", dataset="cifar10")


def test_row_download_only_for_cifar10(data):
    with pytest.raises(ValueError, match="the downloadable teacher is for cifar10, not toy; use teacher='train'"):
        kd.get_teacher(toy_settings(teacher="download"), data)


def test_row_unsafe_checkpoint(tmp_path, data):
    path = tmp_path / "teacher.pt"
    torch.save({"x": os.system}, path)
    with pytest.raises(UnsafeCheckpointError, match=f"refusing to load {path}: it holds pickled Python objects "
                                                    r"\(posix.system\), not only tensors, and loading those could "
                                                    "run code"):
        kd.get_teacher(toy_settings(teacher=str(path)), data)


def test_row_truncated_pytorch_file(tmp_path, data):
    path = tmp_path / "teacher.pt"
    storage.save_torch(path, toy_teacher(data).model.state_dict())
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptFileError, match=rf"{path} is not a readable PyTorch file \(.*\): it is truncated "
                                               r"or damaged; delete it \(or its run folder\) to rebuild it"):
        kd.get_teacher(toy_settings(teacher=str(path)), data)


def test_row_checksum_mismatch(runs, data, teacher):
    [student] = kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False).values()
    final = student.folder / "final.pt"
    (student.folder / "final.pt.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(CorruptFileError, match=rf"{final} does not match its checksum \(final.pt.sha256 differs\): "
                                               r"the file was damaged or not finished"):
        kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)


def test_row_damaged_json(runs, data, teacher):
    [student] = kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False).values()
    (student.folder / "config.json").write_text('{"kind": "stu')
    with pytest.raises(CorruptFileError, match=rf"{student.folder / 'config.json'} is not valid JSON \(.*\); it "
                                               r"was damaged or cut short: delete it \(or its run folder\)"):
        kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)


def test_row_damaged_cache_is_rebuilt(runs, data, teacher):
    kd.teacher_outputs(teacher.model, data.x_train)
    [cache] = (runs / "cache").glob("*.pt")
    cache.write_bytes(b"")
    with pytest.warns(UserWarning, match=r"teacher-output cache .*teacher-logits-.*\.pt is damaged, unfinished "
                                         r"or not a logits file; rebuilding it"):
        kd.teacher_outputs(teacher.model, data.x_train)


def test_row_cannot_write(runs, data, teacher, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "fsync", full)
    folder = runs / "toy" / "students"
    with pytest.raises(OSError, match=rf"could not write {folder}/alpha0-seed0-\w+/config.json: No space left on "
                                      rf"device\. Check that .* is a writable folder with free space \(or point "
                                      r"KD_RUNS_DIR / KD_FIGURES_DIR elsewhere\)"):
        kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)


def test_row_runs_dir_is_a_file(tmp_path, monkeypatch, data, teacher):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("KD_RUNS_DIR", str(tmp_path / "afile"))
    with pytest.raises(NotADirectoryError, match=f"KD_RUNS_DIR={tmp_path / 'afile'} is a file, not a folder; "
                                                 "point it at a folder"):
        kd.distill(toy_settings(), data, teacher, progress=False)


def test_row_loss_became_nan(runs, data, teacher):
    with pytest.raises(FloatingPointError, match=r"alpha=0\.5: the training loss became nan in epoch 1, so "
                                                 r"training stopped and nothing of that epoch was saved\. Lower the "
                                                 "learning rate, or use a temperature nearer 1-20"):
        kd.distill(toy_settings(alphas=(0.5,), temperature=1e-320), data, teacher, progress=False)


def test_row_data_missing_offline(offline):
    with pytest.raises(kd.DataUnavailableError) as err:
        kd.load_dataset("cifar10")
    message = str(err.value)
    assert offline  # the download was tried (and failed: we are offline)
    assert message.startswith(f"The cifar10 data is not in {os.environ['KD_DATA_DIR']}/cifar-10-batches-py and "
                              "could not be downloaded (no network?)")
    assert "With internet, run again" in message and "KD_DATASET=fashion-mnist" in message


def test_row_damaged_data_files(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in kd.data.IDX_FILES:
        (raw / name).write_bytes(b"\x00\x00\x08\x03" + bytes(20))
    with pytest.raises(kd.DataUnavailableError, match=rf"the fashion-mnist files in {raw} are damaged or "
                                                      r"truncated \(.*\); delete that folder to fetch them again"):
        kd.load_dataset("fashion-mnist", root=tmp_path)


def test_row_image_folder_layout(tmp_path, cli):
    root = make_image_folder(tmp_path / "shapes", splits=("train",))
    message = f"imagefolder:{root} has no test folder; expected torchvision's ImageFolder layout"
    with pytest.raises(kd.DataUnavailableError, match=message):
        kd.load_dataset(f"imagefolder:{root}")
    code, _, err = cli("teacher", "--dataset", f"imagefolder:{root}", "--profile", "smoke")
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1


def test_row_unreadable_image(tmp_path):
    root = make_image_folder(tmp_path / "shapes")
    (root / "train" / "squares" / "notes.jpg").write_text("not a photo")
    with pytest.raises(kd.DataUnavailableError, match=f"cannot read image {root}/train/squares/notes.jpg: .*; "
                                                      "remove or replace that file"):
        kd.load_dataset(f"imagefolder:{root}")


def test_row_pretrained_download_failed():
    with pytest.raises(RuntimeError, match=r"could not download the pre-trained vgg13_bn teacher \("):
        kd.get_teacher(toy_settings(dataset="cifar10", teacher="download"),
                       toy_data(shape=(3, 32, 32), name="cifar10", num_classes=10))


def test_row_not_the_published_weights():
    dest = Path(os.environ["KD_DATA_DIR"]) / "weights" / "cifar10_vgg13_bn-c01e4a43.pt"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"something else")
    with pytest.raises(CorruptFileError, match=f"{dest} is not the published cifar10_vgg13_bn-c01e4a43.pt"):
        kd.get_teacher(toy_settings(dataset="cifar10", teacher="download"),
                       toy_data(shape=(3, 32, 32), name="cifar10", num_classes=10))


def test_row_run_folder_with_other_settings(runs, data, teacher):
    [student] = kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False).values()
    config = storage.load_json(student.folder / "config.json")
    storage.save_json(student.folder / "config.json", dict(config, seed=5))
    with pytest.raises(ValueError, match=rf"{student.folder} holds a run with other settings \({{'seed': \(5, 0\)}}, "
                                         r"as \(found, wanted\)\); delete that folder to start over"):
        kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)


def test_row_record_results_takes_the_settings_values():
    with pytest.raises(TypeError, match="record_results takes formulation, temperature from the settings, which "
                                        "trained the models"):
        kd.record_results("03_students", [], settings(), formulation="blended", temperature=2.0)


def test_row_report_without_results(cli):
    code, _, err = cli("report", "--dataset", "fashion-mnist")
    assert code == 2
    assert err.startswith(f"error: no saved results for fashion-mnist in {os.environ['KD_RUNS_DIR']}/fashion-mnist; "
                          "run `python -m kd_utils distill` (or teacher) first")


def test_row_resuming(runs, data, teacher, monkeypatch, capsys):
    s, original, calls = toy_settings(alphas=(0.0,)), kd.training.kd_loss, []

    def stopped_in_epoch_2(*args):  # 3 batches an epoch
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(*args)

    with monkeypatch.context() as m:
        m.setattr(kd.training, "kd_loss", stopped_in_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            kd.distill(s, data, teacher, progress=False)
    kd.distill(s, data, teacher, progress=False)
    assert re.search(r"\[kd_utils\] resuming .*/toy/students/alpha0-seed0-\w+ after epoch 1\n", capsys.readouterr().out)


def test_row_reusing(runs, data, teacher, capsys):
    kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)
    kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)
    assert re.search(r"\[kd_utils\] reusing the finished run in .*/toy/students/alpha0-seed0-\w+ \(delete it to "
                     r"retrain\)", capsys.readouterr().out)

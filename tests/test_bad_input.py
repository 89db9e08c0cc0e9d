"""Bad input fails at once, with a message that says what was wrong and what is allowed:
one test per row of the table in docs/troubleshooting.md, in the table's order, each
through the entry points a learner uses (settings, the loss, distill, get_teacher, the
loaders, the command line). test_doc_table_has_one_test_per_row keeps the two in step."""
import math
import os
import re
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure

import kd_utils as kd
import kd_utils.storage as storage
from kd_testdata import loss_steps, make_image_folder, toy_data, toy_settings, toy_teacher, write_idx
from kd_utils.models import make_cnn_teacher, make_student, vgg13_bn
from kd_utils.storage import CorruptFileError, UnsafeCheckpointError
from kd_utils.teachers import TeacherMismatchError

ROOT = Path(__file__).resolve().parents[1]
CIFAR = dict(shape=(3, 32, 32), name="cifar10", num_classes=10)


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


# ------------------------------------------------------------------ settings and the loss

@pytest.mark.parametrize("temperature", [0, 0.01, 1e-320, 1001, -4.0, math.nan, math.inf, None])
def test_row_temperature_range(temperature, monkeypatch, cli):
    rule = r"temperature must be a number from 0\.05 to 1000 \(1 = ordinary softmax, larger = softer\), got "
    with pytest.raises(ValueError, match=rule + re.escape(repr(temperature))):
        settings(temperature=temperature)
    with pytest.raises(ValueError, match=rule):
        kd.DistillationLoss(temperature=temperature)
    with pytest.raises(ValueError, match=rule):
        kd.softmax_with_temperature(torch.zeros(3), temperature)
    monkeypatch.setenv("KD_TEMPERATURE", "-4")
    code, _, err = cli("distill")
    assert code == 2 and re.match("error: " + rule + "-4.0\n$", err)


@pytest.mark.parametrize("alpha", [5, 1.01, -0.1, math.nan, None, "0.5"])
def test_row_alpha_outside_0_1(alpha):
    rule = r"alpha must be a number in \[0, 1\] \(0 = hard labels only, 1 = teacher only\), got "
    with pytest.raises(ValueError, match=rule + re.escape(repr(alpha))):
        settings(alphas=(0.0, alpha))
    with pytest.raises(ValueError, match=rule + re.escape(repr(alpha))):
        kd.DistillationLoss(alpha=alpha)


@pytest.mark.parametrize("alphas", [0.5, (), (0.5, 0.5), (0.5, 0.50000001)])
def test_row_alphas_not_a_list_of_different_weights(alphas):
    with pytest.raises(ValueError, match=r"alphas must be a list of teacher weights that differ as printed, "
                                         r"e\.g\. \(0\.0, 0\.5, 1\.0\)"):
        settings(alphas=alphas)


def test_row_kd_alphas_with_a_comma(monkeypatch):
    monkeypatch.setenv("KD_ALPHAS", "0,5")
    with pytest.raises(ValueError, match=r"KD_ALPHAS='0,5' is not valid: use numbers separated by spaces, "
                                         r"e\.g\. '0 0\.5 1'"):
        settings()


@pytest.mark.parametrize("var, value, message", [
    ("KD_SEED", "x", r"KD_SEED='x' is not valid: use a whole number, e\.g\. 0"),
    ("KD_TEMPERATURE", "0,5", r"KD_TEMPERATURE='0,5' is not valid: use a number, e\.g\. 4 or 0\.5"),
    ("KD_THREADS", "many", r"KD_THREADS='many' is not valid: use a whole number, e\.g\. 1"),
    ("KD_AUGMENT", "maybe", r"KD_AUGMENT='maybe' is not valid: use 1, 0, true, false or auto"),
    (None, "hot", r"temperature='hot' is not valid: use a number, e\.g\. 4 or 0\.5"),  # a string in a cell
])
def test_row_a_string_that_does_not_parse(monkeypatch, var, value, message):
    if var:
        monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=message):
        settings() if var else settings(temperature=value)


@pytest.mark.parametrize("name, value, low, high", [("seed", -1, 0, 2**31 - 1), ("seed", 1.5, 0, 2**31 - 1),
                                                    ("seed", 2**31, 0, 2**31 - 1), ("seed", True, 0, 2**31 - 1),
                                                    ("threads", 0, 1, 1024), ("threads", "0", 1, 1024)])
def test_row_whole_number_out_of_range(monkeypatch, name, value, low, high):
    monkeypatch.delenv("KD_THREADS")  # conftest's KD_THREADS=1 would beat a value in the cell
    if isinstance(value, str):
        monkeypatch.setenv(f"KD_{name.upper()}", value)
    with pytest.raises(ValueError, match=rf"{name} must be a whole number from {low} to {high}, got "
                                         rf"{re.escape(repr(value if not isinstance(value, str) else int(value)))}"):
        settings() if isinstance(value, str) else settings(**{name: value})


def test_row_unknown_setting():
    with pytest.raises(TypeError, match=r"unknown setting\(s\) \['temprature'\]; valid: dataset, profile, seed, "
                                        r"temperature"):
        settings(temprature=2.0)


def test_row_unknown_dataset(tmp_path, cli):
    valid = r"valid datasets are: '?cifar10'?, '?fashion-mnist'?, '?mnist'?, '?imagefolder:PATH'?$"
    with pytest.raises(ValueError, match=f"unknown dataset 'cifar100'; {valid}"):
        kd.load_dataset("cifar100", tmp_path)
    with pytest.raises(ValueError, match=f"unknown dataset 'fashion_mnist'; {valid}"):
        settings(dataset="fashion_mnist")
    assert re.match(f"error: unknown dataset 'cifar100'; {valid[:-1]}\n$", cli("distill", "--dataset", "cifar100")[2])


def test_row_unknown_profile(cli, capsys):
    with pytest.raises(ValueError, match="unknown profile 'fast'; valid profiles are: 'smoke', 'cpu', 'full', 'auto'"):
        settings(profile="fast")
    with pytest.raises(SystemExit):
        cli("distill", "--profile", "fast")
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_row_unknown_teacher(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="unknown teacher 'resnet18': not a file, and not one of auto, download, "
                                         "train, train-vgg13_bn"):
        settings(teacher="resnet18")


@pytest.mark.parametrize("name, value, valid", [
    ("formulation", "hinten", "'hinton', 'blended'"), ("teacher_mode", "live", "'cached', 'online'"),
    ("precision", "fp8", "'bf16', 'fp16', 'fp32'"), ("device", "gpu", "cpu")])
def test_row_unknown_option(name, value, valid):
    with pytest.raises(ValueError, match=rf"unknown {name} '{value}'; valid {name}s (here )?are: {valid}"):
        settings(**{name: value})
    if name == "formulation":
        with pytest.raises(ValueError, match=f"unknown formulation '{value}'; valid formulations are: {valid}"):
            kd.DistillationLoss(formulation=value)


@pytest.mark.parametrize("augment", [True, 5])
def test_row_augment_needs_an_online_teacher(augment):
    with pytest.raises(ValueError, match=r"augment must be True, False or 'auto', and True needs "
                                         r"teacher_mode='online' \(cached outputs are for the clean images, not "
                                         rf"the crops the students see\); got {augment}"):
        settings(augment=augment, teacher_mode="cached")


def test_row_logits_of_different_shapes():
    s, t, y = batch()
    with pytest.raises(ValueError, match=r"alpha = 0\.5 needs teacher logits of the student's shape \(4, 10\), "
                                         r"got \(4, 5\)"):
        kd.DistillationLoss(alpha=0.5)(s, t[:, :5], y)
    with pytest.raises(ValueError, match=r"alpha = 1 needs teacher logits of the student's shape \(4, 10\), got None"):
        kd.DistillationLoss(alpha=1.0)(s, None, y)


def test_row_labels_out_of_range(runs, data, teacher):
    data.y_train[3] = data.num_classes  # one label too many
    with pytest.raises(ValueError, match=r"labels must be class indices from 0 to 3"):
        kd.distill(toy_settings(), data, teacher, progress=False)


# ------------------------------------------------------------------ teachers and their files

def refuses_weights_file(path, state_dict, data, match):
    """get_teacher on a weights file holding state_dict raises TeacherMismatchError matching match."""
    torch.save(state_dict, path)
    with pytest.raises(TeacherMismatchError, match=match):
        kd.get_teacher(toy_settings(teacher=str(path)), data)


def test_row_teacher_for_another_number_of_classes(tmp_path, runs, data):
    refuses_weights_file(tmp_path / "teacher.pt", make_cnn_teacher(toy_data(num_classes=5)).state_dict(), data,
                         r"the teacher outputs 5 classes, but toy has 4 \(class0, class1, class2, class3\); use one "
                         r"trained on it \(KD_TEACHER=train\)")
    refuses_weights_file(tmp_path / "cifar100_vgg13_bn.pt", vgg13_bn("chenyaofo", 100).net.state_dict(),
                         toy_data(**CIFAR), "the teacher outputs 100 classes, but cifar10 has 10")
    assert not runs.exists()  # nothing was trained or cached


def test_row_weights_file_of_another_architecture(tmp_path, data):
    path = tmp_path / "student.pt"
    refuses_weights_file(path, make_student(data).state_dict(), data,
                         rf"{path} is not a CNNTeacher teacher for toy \(images \(1, 16, 16\)\): "
                         r"missing net.features.1.weight; .*; unexpected net.features.3.weight; .*"
                         r"net.features.0.weight: expected \(32, 1, 3, 3\), found \(6, 1, 5, 5\)")
    refuses_weights_file(path, [torch.zeros(3)], data, f"{path}: expected a state_dict \\(a dict of tensors\\), "
                                                       "found list")
    refuses_weights_file(path, {"mean": torch.zeros(1), "std": torch.ones(1)}, data,
                         f"{path} is not a vgg13_bn or CNN teacher: it has no classifier.<i>.weight")
    refuses_weights_file(path, {"classifier.0.weight": torch.zeros(256, 512), "classifier.6.weight": torch.zeros(10, 256)},
                         toy_data(**CIFAR), rf"{path}: a vgg13_bn head of shape \(256, 512\) matches neither zoo")


def test_row_download_only_for_cifar10(data, offline):
    with pytest.raises(ValueError, match=r"the downloadable teacher takes CIFAR-10's 32x32 colour images, not "
                                         r"toy's \(1, 16, 16\); use teacher='train'"):
        kd.get_teacher(toy_settings(teacher="download"), data)
    assert not offline  # refused before anything was downloaded


def test_row_train_vgg13_bn_needs_a_gpu(data, runs):
    with pytest.raises(RuntimeError, match=r"teacher='train-vgg13_bn' needs a CUDA GPU: on a 2-core CPU one epoch "
                                           r"takes about 12 minutes .*; use teacher='train' \(our CNN, minutes\) or "
                                           "'download'"):
        kd.get_teacher(toy_settings(teacher="train-vgg13_bn"), data)
    assert not runs.exists()


def test_row_unsafe_checkpoint(tmp_path, data):
    path, marker = tmp_path / "teacher.pt", tmp_path / "code-ran"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"x": RunsCode()}, path)
    with pytest.raises(UnsafeCheckpointError, match=f"refusing to load {path}: it holds pickled Python objects, "
                                                    r"which could run code; use a plain state_dict from a source "
                                                    "you trust"):
        kd.get_teacher(toy_settings(teacher=str(path)), data)
    assert not marker.exists()


def test_row_truncated_pytorch_file(tmp_path, data):
    path = tmp_path / "teacher.pt"
    storage.save_torch(path, toy_teacher(data).model.state_dict())
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptFileError, match=rf"{path} is not a readable PyTorch file \(\w+\): truncated or damaged"):
        kd.get_teacher(toy_settings(teacher=str(path)), data)


def test_row_checksum_mismatch(runs, data):
    """A weights file of ours (a trained teacher's run.pt) damaged after it was written is refused when loaded."""
    teacher = kd.train_teacher(toy_settings(), data, epochs=1)
    weights = teacher.folder / "run.pt"
    raw = bytearray(weights.read_bytes())
    at = raw.find(teacher.model.state_dict()["net.classifier.1.weight"].numpy().tobytes())
    assert at >= 0  # the flipped byte is inside a tensor
    raw[at + 999] ^= 0x01
    weights.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=rf"{weights} does not match the checksum it holds: the file was damaged"):
        kd.get_teacher(toy_settings(teacher=str(weights)), data)


def test_row_damaged_json(runs, data, teacher):
    manifest = toy_settings().figures_dir / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text('{"figures": {"01_soft')
    with pytest.raises(CorruptFileError, match=rf"{manifest} is not valid JSON \(.*\): it was damaged or cut short"):
        kd.save_figure(Figure(), "any", toy_settings())


def test_row_damaged_cache_is_rebuilt(runs, data, teacher):
    kd.teacher_outputs(toy_settings(), teacher, data.x_train)
    [cache] = (runs / "cache").glob("*.pt")
    cache.write_bytes(b"")
    with pytest.warns(UserWarning, match=r"teacher-output cache .*/cache/teacher-logits-\w+-\w+\.pt is damaged; "
                                         "rebuilding it"):
        kd.teacher_outputs(toy_settings(), teacher, data.x_train)


def interrupt_in_epoch_2(monkeypatch, s, data, teacher):
    """kd.distill of one student stopped in its second epoch (3 batches an epoch), after
    epoch 1's checkpoint."""
    with monkeypatch.context() as m:
        loss_steps(m, fail_on=4)
        with pytest.raises(KeyboardInterrupt):
            kd.distill(s, data, teacher, progress=False)


def test_row_damaged_checkpoint_starts_over(runs, data, teacher, monkeypatch, capsys):
    s = toy_settings(alphas=(0.0,))
    interrupt_in_epoch_2(monkeypatch, s, data, teacher)
    [checkpoint] = runs.glob("toy/students/*/run.pt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:500])  # a crash while it was written
    capsys.readouterr()
    [student] = kd.distill(s, data, teacher, progress=False).values()
    assert re.search(rf"\[kd_utils\] .*/toy/students/{checkpoint.parent.name}: its checkpoint is damaged \(.*\); "
                     "starting over\n", capsys.readouterr().out)
    assert len(student.history) == 2


def test_row_cannot_write(runs, data, teacher, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "fsync", full)
    folder = runs / "toy" / "students"
    with pytest.raises(OSError, match=rf"could not write {folder}/alpha0-seed0-\w+/config.json: No space left on "
                                      rf"device; is {folder}/alpha0-seed0-\w+ a writable folder with free space\?"):
        kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)


@pytest.mark.parametrize("var", ["KD_RUNS_DIR", "KD_DATA_DIR", "KD_FIGURES_DIR"])
def test_row_folder_is_a_file(tmp_path, monkeypatch, var):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv(var, str(tmp_path / "afile"))
    with pytest.raises(NotADirectoryError, match=rf"\w+_dir \({var}\) is {tmp_path / 'afile'}, a file, not a folder: "
                                                 "point it at a folder"):
        settings()


def test_row_loss_became_nan(runs, data):
    with pytest.raises(FloatingPointError, match=r"diverging: the training loss became nan in epoch 1, so nothing "
                                                 r"of it was saved; lower the learning rate, or use a temperature "
                                                 "nearer 1-20"):
        kd.fit(toy_settings(), data, {"diverging": (kd.new_student(data, 0), kd.DistillationLoss(alpha=0.0))},
               kind="students", epochs=2, lr=1e10, progress=False)  # a learning rate far too large


# ------------------------------------------------------------------ data

@pytest.mark.parametrize("case", ["offline", "damaged files"])
def test_row_data_not_available(offline, tmp_path, case):
    if case == "damaged files":
        raw = tmp_path / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                     "t10k-labels-idx1-ubyte"):
            write_idx(raw / name, [[[0]]])  # the right format, the wrong sizes
    with pytest.raises(kd.DataUnavailableError) as err:
        kd.load_dataset("mnist", tmp_path)
    message = str(err.value)
    assert message.startswith(f"The mnist data is not in {tmp_path} and could not be downloaded (")
    assert "KD_DATASET=fashion-mnist" in message
    assert bool(offline) == (case == "offline")  # a download was tried only for missing files


def test_row_image_folder_layout(tmp_path, cli):
    root = make_image_folder(tmp_path / "shapes", splits=("train",))
    message = f"imagefolder:{root} has no test/ folder; expected {root}/train/<class>/*.png and"
    with pytest.raises(kd.DataUnavailableError, match=re.escape(message)):
        kd.load_dataset(f"imagefolder:{root}", tmp_path)
    code, _, err = cli("teacher", "--dataset", f"imagefolder:{root}", "--profile", "smoke")
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1
    make_image_folder(tmp_path / "other", classes=("circles", "squares", "stars"), splits=("test",))
    (tmp_path / "other" / "test").rename(root / "test")
    with pytest.raises(kd.DataUnavailableError, match=r"train/ has the classes \['circles', 'squares'\] and test/ "
                                                      r"has \['circles', 'squares', 'stars'\]; both need the same"):
        kd.load_dataset(f"imagefolder:{root}", tmp_path)


def test_row_unreadable_image(tmp_path):
    root = make_image_folder(tmp_path / "shapes")
    (root / "train" / "squares" / "notes.jpg").write_text("not a photo")
    with pytest.raises(kd.DataUnavailableError, match=f"cannot read image {root}/train/squares/notes.jpg: .*; "
                                                      "remove or replace it"):
        kd.load_dataset(f"imagefolder:{root}", tmp_path)


def test_row_pretrained_download_failed():
    with pytest.raises(RuntimeError, match=r"could not download the pre-trained vgg13_bn teacher \(.*\)\. With "
                                           r"internet, run again .*or train one: KD_TEACHER=train"):
        kd.get_teacher(toy_settings(dataset="cifar10", teacher="download"), toy_data(**CIFAR))


def test_row_not_the_published_weights():
    dest = Path(os.environ["KD_DATA_DIR"]) / "weights" / "cifar10_vgg13_bn-c01e4a43.pt"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"something else")
    with pytest.raises(CorruptFileError, match=f"{dest} is not the published cifar10_vgg13_bn-c01e4a43.pt"):
        kd.get_teacher(toy_settings(dataset="cifar10", teacher="download"), toy_data(**CIFAR))


# ------------------------------------------------------------------ results and runs

def test_row_record_results_takes_the_settings_values():
    with pytest.raises(TypeError, match="record_results takes formulation, temperature from the settings"):
        kd.record_results("03_students", [], settings(), formulation="blended", temperature=2.0)


def test_row_report_without_results(cli):
    code, _, err = cli("report", "--dataset", "fashion-mnist")
    assert code == 2
    assert re.match(r"error: no saved results for fashion-mnist in .*/fashion-mnist/results; run `python -m "
                    r"kd_utils distill` \(or teacher\) first\n$", err)


@pytest.mark.parametrize("content", ['{"rows": [', '{"rows": []}', '[1, 2]', '{"settings": 1, "rows": [{}]}'])
def test_row_report_skips_a_damaged_or_foreign_results_file(cli, runs, image_folder, content):
    code, _, _ = cli("distill", "--dataset", image_folder, "--profile", "smoke", "--alphas", "0")
    assert code == 0
    [good] = runs.glob("shapes/results/*.json")
    bad = good.with_name("zz-bad.json")
    bad.write_text(content)
    code, out, err = cli("report", "--dataset", image_folder, "--profile", "smoke")
    assert code == 0
    assert re.match(rf"skipped .*/{bad.name}: not a results file of ours \(\w+Error: .*\)\n$", err)
    assert f"== " in out and good.name in out and "student alpha=0" in out  # the rest is printed


def test_row_resuming(runs, data, teacher, monkeypatch, capsys):
    interrupt_in_epoch_2(monkeypatch, toy_settings(alphas=(0.0,)), data, teacher)
    kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)
    assert re.search(r"\[kd_utils\] resuming .*/toy/students/alpha0-seed0-\w+ after epoch 1\n", capsys.readouterr().out)


def test_row_reusing(runs, data, teacher, capsys):
    kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)
    kd.distill(toy_settings(alphas=(0.0,)), data, teacher, progress=False)
    assert re.search(r"\[kd_utils\] reusing the finished run in .*/toy/students/alpha0-seed0-\w+ \(delete it to "
                     r"retrain\)", capsys.readouterr().out)

"""Nothing unsafe: no code runs from a checkpoint, downloads are hash-checked, writes are
atomic with the usual permissions, and our own files are checked against their checksum."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kd_utils.storage as storage
from kd_testdata import toy_data, toy_settings
from kd_utils.extras.teacher_files import ZOO, load_vgg13_bn, pretrained_vgg_path
from kd_utils.models import make_cnn_teacher, make_student
from kd_utils.storage import (CorruptFileError, UnsafeCheckpointError, load_json, load_torch, save_json,
                              save_torch, sha256_file)
from kd_utils.teachers import TeacherMismatchError, get_teacher

ROOT = Path(__file__).resolve().parents[1]


class MakesMarker:
    """Unpickling this object would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def leftovers(folder):
    """Temporary files left in a folder."""
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------ unpickling

def test_a_checkpoint_that_would_run_code_is_refused_in_our_own_words(tmp_path):
    marker, evil = tmp_path / "code-ran", tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": MakesMarker(marker)}, evil)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_torch(evil)
    assert not marker.exists()
    message = str(err.value)
    assert message.startswith(f"refusing to load {evil}: it holds pickled Python objects (")
    assert "could run code" in message and "plain state_dict" in message
    # torch's own text advises exactly what must not be done
    assert "weights_only=False" not in message and "add_safe_globals" not in message


def test_get_teacher_refuses_a_code_running_weights_file(tmp_path):
    marker, evil = tmp_path / "code-ran", tmp_path / "teacher.pt"
    torch.save(MakesMarker(marker), evil)
    with pytest.raises(UnsafeCheckpointError):
        get_teacher(toy_settings(teacher=str(evil)), toy_data())
    assert not marker.exists()


def python_sources():
    return [f for pattern in ("kd_utils/**/*.py", "benchmarks/*.py", "notebooks/*.ipynb", "tools/*.py")
            for f in sorted(ROOT.glob(pattern))]


def test_every_torch_load_in_the_project_is_weights_only():
    offenders = [f"{f.name}: {call}" for f in python_sources()
                 for call in re.findall(r"torch\.load\((?:[^()]|\([^()]*\))*\)", f.read_text())
                 if "weights_only=True" not in call.replace("\\", "")]
    assert offenders == []


def test_kd_utils_writes_files_only_through_the_atomic_helpers():
    # A raw write (torch.save to a path, open(..., "w"), savefig to a file, json.dump) could
    # leave a half-written file behind. Writing to an in-memory buffer is fine.
    raw = re.compile(r"torch\.save\(|open\([^)]*['\"][wax]b?\+?['\"]|\.savefig\(|json\.dump\(|"
                     r"\.write_(text|bytes)\(|shutil\.copy")
    offenders = [f"{f.name}: {line.strip()}" for f in sorted(ROOT.glob("kd_utils/**/*.py"))
                 if f.name != "storage.py" for line in f.read_text().splitlines()
                 if raw.search(line) and "buf" not in line]
    assert offenders == []


# ------------------------------------------------------------ atomic writes

def test_a_failure_while_writing_a_checkpoint_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_torch(path, {"w": torch.ones(3)})
    before = path.read_bytes()

    def save_half_then_fail(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # the kernel was interrupted mid-write

    monkeypatch.setattr(storage.torch, "save", save_half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        save_torch(path, {"w": torch.zeros(3)})
    assert path.read_bytes() == before
    assert torch.equal(load_torch(path, verify=True)["w"], torch.ones(3))
    assert leftovers(tmp_path) == []


def test_a_failure_while_writing_json_keeps_the_previous_file(tmp_path):
    path = tmp_path / "history.json"
    save_json(path, {"epochs": [1, 2]})
    with pytest.raises(TypeError, match="cannot write object to JSON"):
        save_json(path, {"epochs": [1, 2, 3], "bad": object()})
    assert load_json(path) == {"epochs": [1, 2]}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                 "data/0: file write failed"),  # how torch.save reports a full disk
    OSError(28, "No space left on device")])
def test_a_full_disk_is_one_error_naming_the_file_and_the_old_file_survives(tmp_path, monkeypatch, error):
    path = tmp_path / "final.pt"
    save_torch(path, {"w": torch.ones(3)})

    def full(obj, f):
        f.write(b"PK\x03\x04 the first bytes")
        raise error

    monkeypatch.setattr(storage.torch, "save", full)
    with pytest.raises(OSError) as err:
        save_torch(path, {"w": torch.zeros(3)})
    assert str(err.value).startswith(f"could not write {path}: ")
    assert f"Check that {tmp_path} is a writable folder with free space" in str(err.value)
    assert torch.equal(load_torch(path, verify=True)["w"], torch.ones(3))
    assert leftovers(tmp_path) == []


def test_files_get_the_usual_permissions_of_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_json(tmp_path / "a.json", {})
        save_torch(tmp_path / "b.pt", {})
    finally:
        os.umask(old)
    for name in ("a.json", "b.pt", "b.pt.sha256"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name  # readable by the class


def test_temporary_files_of_a_killed_writer_are_removed_and_a_live_writers_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a process that has ended
    stale = tmp_path / f".checkpoint.pt.{dead}.abc123.tmp"
    live = tmp_path / f".checkpoint.pt.{os.getppid()}.def456.tmp"  # still running (pytest's parent)
    stale.write_bytes(b"x" * 1000)
    live.write_bytes(b"y")
    save_torch(tmp_path / "checkpoint.pt", {"w": torch.ones(1)})
    assert not stale.exists() and live.exists()


# ------------------------------------------------------------ checksums

def test_our_files_carry_a_checksum_that_load_checks(tmp_path):
    path = save_torch(tmp_path / "final.pt", {"w": torch.arange(1000.0)})
    assert (tmp_path / "final.pt.sha256").read_text().strip() == sha256_file(path)
    data = bytearray(path.read_bytes())
    data[data.find(torch.arange(1000.0).numpy().tobytes()) + 2000] ^= 0xFF  # a byte of the numbers
    path.write_bytes(bytes(data))
    assert not torch.equal(load_torch(path)["w"], torch.arange(1000.0))  # still loads: silently wrong
    with pytest.raises(CorruptFileError, match=f"{re.escape(str(path))} does not match its checksum "
                                               r"\(final.pt.sha256 differs\).*delete it"):
        load_torch(path, verify=True)
    (tmp_path / "final.pt.sha256").unlink()
    with pytest.raises(CorruptFileError, match=r"final.pt.sha256 is missing"):
        load_torch(path, verify=True)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip", b"garbage"])
def test_a_truncated_or_foreign_file_is_one_error_naming_it(tmp_path, content):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match=f"{re.escape(str(path))} is not a readable PyTorch file"):
        load_torch(path)


def test_truncated_json_is_one_error_naming_it(tmp_path):
    path = tmp_path / "history.json"
    path.write_text('{"epochs": [{"epoch": 1, "lo')
    with pytest.raises(CorruptFileError, match=f"{re.escape(str(path))} is not valid JSON.*delete it"):
        load_json(path)


# ------------------------------------------------------------ downloads

@pytest.fixture
def served(tmp_path, monkeypatch):
    """chenyaofo's vgg13_bn URL pointed at a local file; torch.hub's real download (hash-checked)."""
    import torch.hub as hub

    src = tmp_path / "server" / "cifar10_vgg13_bn-c01e4a43.pt"
    src.parent.mkdir()
    src.write_bytes(b"pretend these are weights" * 100)
    monkeypatch.setattr(hub, "download_url_to_file", _real_download)
    monkeypatch.setitem(ZOO["chenyaofo"], "url", src.as_uri())
    return src


_real_download = torch.hub.download_url_to_file  # before the autouse `offline` fixture replaces it


def test_a_download_with_the_right_hash_is_kept(served, monkeypatch):
    monkeypatch.setitem(ZOO["chenyaofo"], "sha256", sha256_file(served)[:8])
    path = pretrained_vgg_path()
    assert path.read_bytes() == served.read_bytes()
    assert pretrained_vgg_path() == path  # found in place the second time


def test_a_download_with_the_wrong_hash_leaves_nothing(served, monkeypatch):
    monkeypatch.setitem(ZOO["chenyaofo"], "sha256", "00000000")
    with pytest.raises(RuntimeError, match=r"could not download the pre-trained vgg13_bn teacher \(invalid hash"):
        pretrained_vgg_path()
    assert list((Path(os.environ["KD_DATA_DIR"]) / "weights").iterdir()) == []


def test_a_wrong_file_where_the_pretrained_teacher_belongs_is_refused_not_deleted():
    dest = Path(os.environ["KD_DATA_DIR"]) / "weights" / "cifar10_vgg13_bn-c01e4a43.pt"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"not the published weights")
    with pytest.raises(CorruptFileError, match="is not the published cifar10_vgg13_bn-c01e4a43.pt"):
        pretrained_vgg_path()
    assert dest.exists()  # the learner's own file is reported, not deleted


def test_the_pretrained_teacher_offline_says_what_to_do_and_leaves_nothing():
    with pytest.raises(RuntimeError, match="(?s)could not download the pre-trained vgg13_bn.*KD_TEACHER=train"):
        pretrained_vgg_path()
    assert list((Path(os.environ["KD_DATA_DIR"]) / "weights").iterdir()) == []


# ------------------------------------------------------------ wrong weights

def vgg_like_state_dict(num_classes):
    # Just the keys load_vgg13_bn looks at first: enough to be recognised as chenyaofo's layout.
    return {"features.0.weight": torch.zeros(64, 3, 3, 3), "classifier.0.weight": torch.zeros(512, 512),
            "classifier.6.weight": torch.zeros(num_classes, 512)}


def test_vgg_weights_for_another_number_of_classes_are_refused(tmp_path):
    path = tmp_path / "cifar100_vgg13_bn.pt"
    torch.save(vgg_like_state_dict(100), path)
    with pytest.raises(TeacherMismatchError, match="100 output classes, but cifar10 has 10"):
        load_vgg13_bn(path, 10, "cifar10")


def test_weights_of_another_architecture_are_refused_by_load_vgg13_bn(tmp_path):
    path = tmp_path / "lenet.pt"
    torch.save(make_student((3, 32, 32), 10, [0.5] * 3, [0.2] * 3).net.state_dict(), path)
    with pytest.raises(TeacherMismatchError, match="expected vgg13_bn weights.*found keys"):
        load_vgg13_bn(path)


def test_get_teacher_names_expected_and_found_classes(tmp_path):
    data = toy_data()
    path = tmp_path / "teacher.pt"
    torch.save(make_cnn_teacher(data.image_shape, 5, [0.5], [0.2]).state_dict(), path)
    with pytest.raises(TeacherMismatchError, match="the teacher has 5 output classes, but toy has 4"):
        get_teacher(toy_settings(teacher=str(path)), data)


def test_get_teacher_names_what_is_missing_from_a_foreign_checkpoint(tmp_path):
    data = toy_data()
    path = tmp_path / "student.pt"
    torch.save(make_student(data.image_shape, data.num_classes, [0.5], [0.2]).state_dict(), path)
    with pytest.raises(TeacherMismatchError, match="is not a CNNTeacher teacher .*missing net.features.1.weight"):
        get_teacher(toy_settings(teacher=str(path)), data)


def test_a_teacher_saved_by_the_project_loads_back_identically(tmp_path):
    data = toy_data()
    torch.manual_seed(0)
    model = make_cnn_teacher(data.image_shape, data.num_classes, *data.stats())
    save_torch(tmp_path / "teacher.pt", model.state_dict())
    loaded = get_teacher(toy_settings(teacher=str(tmp_path / "teacher.pt")), data)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()))

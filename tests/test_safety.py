"""Nothing unsafe: no code runs from a checkpoint, downloads are hash-checked, writes are
atomic with the usual permissions, and our own .pt files carry the SHA-256 of their
content inside them, checked when they are loaded."""
import hashlib
import os
import re
from pathlib import Path

import pytest
import torch

import kd_utils.storage as storage
from kd_testdata import make_dataset, toy_data, toy_settings
from kd_utils.models import ZOO, make_cnn_teacher, make_student, vgg13_bn
from kd_utils.storage import CorruptFileError, UnsafeCheckpointError, load_json, load_torch, save_json, save_torch
from kd_utils.teachers import TeacherMismatchError, get_teacher, pretrained_vgg_path

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
    assert message.startswith(f"refusing to load {evil}: it holds pickled Python objects")
    assert "could run code" in message and "plain state_dict" in message
    # torch's own text advises exactly what must not be done
    assert "weights_only" not in message and "add_safe_globals" not in message and "can still be loaded" not in message


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
    calls = [(f.name, call) for f in python_sources()
             for call in re.findall(r"torch\.load\((?:[^()]|\([^()]*\))*\)", f.read_text())]
    assert any(name == "storage.py" for name, _ in calls)  # the pattern finds them
    assert [f"{name}: {call}" for name, call in calls if "weights_only=True" not in call.replace("\\", "")] == []


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

def test_an_interrupt_while_writing_keeps_the_previous_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_torch(path, {"w": torch.ones(3)})
    before = path.read_bytes()

    def interrupted(fd):  # the data is in the temporary file, not yet moved into place
        raise KeyboardInterrupt  # the kernel was interrupted mid-write

    monkeypatch.setattr(storage.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_torch(path, {"w": torch.zeros(3)})
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    assert torch.equal(load_torch(path)["w"], torch.ones(3))


def test_a_full_disk_is_one_error_naming_the_file_and_the_old_file_survives(tmp_path, monkeypatch):
    path = tmp_path / "final.pt"
    save_torch(path, {"w": torch.ones(3)})

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "fsync", full)
    with pytest.raises(OSError) as err:
        save_torch(path, {"w": torch.zeros(3)})
    assert str(err.value) == f"could not write {path}: No space left on device; is {tmp_path} a writable folder " \
                             f"with free space?"
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    assert torch.equal(load_torch(path)["w"], torch.ones(3))


def test_files_get_the_usual_permissions_of_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_json(tmp_path / "a.json", {})
        save_torch(tmp_path / "b.pt", {})
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.pt"]  # one file each, no sidecar
    for p in tmp_path.iterdir():
        assert p.stat().st_mode & 0o777 == 0o644, p.name  # readable by the class


# ------------------------------------------------------------ checksums

def test_a_byte_flipped_inside_a_tensor_is_refused_though_the_file_still_parses(tmp_path):
    path = save_torch(tmp_path / "final.pt", {"w": torch.arange(1000.0)})
    assert load_torch(path)["w"].equal(torch.arange(1000.0))
    data = bytearray(path.read_bytes())
    data[data.find(torch.arange(1000.0).numpy().tobytes()) + 2000] ^= 0xFF  # a byte of the numbers
    path.write_bytes(bytes(data))
    found = torch.load(path, weights_only=True)["content"]["w"]  # torch alone reads other numbers
    assert not torch.equal(found, torch.arange(1000.0))
    with pytest.raises(CorruptFileError, match=f"{re.escape(str(path))} does not match the checksum it holds"):
        load_torch(path)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip", b"garbage"])
def test_a_truncated_or_foreign_file_is_one_error_naming_it(tmp_path, content):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match=f"{re.escape(str(path))} is not a readable PyTorch file"):
        load_torch(path)


def test_a_truncated_file_of_ours_is_one_error_naming_it(tmp_path):
    path = save_torch(tmp_path / "final.pt", {"w": torch.arange(1000.0)})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match=f"{re.escape(str(path))} is not a readable PyTorch file"):
        load_torch(path)


def test_a_plain_state_dict_of_a_model_zoo_loads_as_it_is(tmp_path):
    """Files of others have no checksum of ours inside: they are loaded (safely) as they are."""
    torch.save({"fc.weight": torch.ones(2, 2)}, tmp_path / "zoo.pt")
    assert torch.equal(load_torch(tmp_path / "zoo.pt")["fc.weight"], torch.ones(2, 2))


def test_truncated_json_is_one_error_naming_it(tmp_path):
    path = tmp_path / "history.json"
    path.write_text('{"epochs": [{"epoch": 1, "lo')
    with pytest.raises(CorruptFileError, match=f"{re.escape(str(path))} is not valid JSON"):
        load_json(path)


# ------------------------------------------------------------ downloads

_real_download = torch.hub.download_url_to_file  # before the autouse `offline` fixture replaces it


@pytest.fixture
def serve(tmp_path, monkeypatch):
    """serve(prefix): chenyaofo's vgg13_bn URL pointed at a local file whose name carries
    `prefix` as the published hash prefix (None: the file's real one); torch.hub's real,
    hash-checked download. Returns the served file."""
    import torch.hub as hub

    def serve(prefix=None):
        content = b"pretend these are weights" * 100
        prefix = prefix or hashlib.sha256(content).hexdigest()[:8]
        src = tmp_path / "server" / f"cifar10_vgg13_bn-{prefix}.pt"
        src.parent.mkdir()
        src.write_bytes(content)
        monkeypatch.setattr(hub, "download_url_to_file", _real_download)
        monkeypatch.setitem(ZOO["chenyaofo"], "url", src.as_uri())
        return src

    return serve


COLOUR = make_dataset(n_train=8, n_test=4, shape=(3, 32, 32))  # images the downloadable teacher can take


def weights_folder():
    return Path(os.environ["KD_DATA_DIR"]) / "weights"


def test_a_download_with_the_right_hash_is_kept(serve):
    served = serve()
    path = pretrained_vgg_path(toy_settings(), COLOUR)
    assert path.read_bytes() == served.read_bytes() and path.parent == weights_folder()
    assert pretrained_vgg_path(toy_settings(), COLOUR) == path  # found in place the second time


def test_a_download_with_the_wrong_hash_leaves_nothing(serve):
    serve("00000000")
    with pytest.raises(RuntimeError, match=r"could not download the pre-trained vgg13_bn teacher \(invalid hash"):
        pretrained_vgg_path(toy_settings(), COLOUR)
    assert list(weights_folder().iterdir()) == []


def test_a_wrong_file_where_the_pretrained_teacher_belongs_is_refused_not_deleted():
    dest = weights_folder() / "cifar10_vgg13_bn-c01e4a43.pt"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"not the published weights")
    with pytest.raises(CorruptFileError, match="is not the published cifar10_vgg13_bn-c01e4a43.pt"):
        pretrained_vgg_path(toy_settings(), COLOUR)
    assert dest.exists()  # the learner's own file is reported, not deleted


def test_the_pretrained_teacher_offline_says_what_to_do_and_leaves_nothing():
    with pytest.raises(RuntimeError, match="(?s)could not download the pre-trained vgg13_bn.*KD_TEACHER=train"):
        pretrained_vgg_path(toy_settings(), COLOUR)
    assert list(weights_folder().iterdir()) == []


# ------------------------------------------------------------ wrong weights

CIFAR = dict(shape=(3, 32, 32), name="cifar10", num_classes=10)


def test_vgg_weights_for_another_number_of_classes_are_refused(tmp_path):
    path = tmp_path / "cifar100_vgg13_bn.pt"
    torch.save(vgg13_bn("chenyaofo", 100).net.state_dict(), path)
    with pytest.raises(TeacherMismatchError, match="the teacher outputs 100 classes, but cifar10 has 10"):
        get_teacher(toy_settings(teacher=str(path)), toy_data(**CIFAR))


def test_a_vgg_head_of_neither_zoo_is_refused(tmp_path):
    path = tmp_path / "vgg.pt"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "classifier.0.weight": torch.zeros(256, 512),
                "classifier.6.weight": torch.zeros(10, 256)}, path)
    with pytest.raises(TeacherMismatchError, match=r"a vgg13_bn head of shape \(256, 512\) matches neither zoo"):
        get_teacher(toy_settings(teacher=str(path)), toy_data(**CIFAR))


def test_get_teacher_names_what_is_missing_from_a_foreign_checkpoint(tmp_path):
    data = toy_data()
    path = tmp_path / "student.pt"
    torch.save(make_student(data).state_dict(), path)
    with pytest.raises(TeacherMismatchError, match=r"is not a CNNTeacher teacher for toy \(images \(1, 16, 16\)\): "
                                                   "missing net.features.1.weight"):
        get_teacher(toy_settings(teacher=str(path)), data)


@pytest.mark.parametrize("wrapped", ["plain", "in a checkpoint's 'model'", "DataParallel's module. prefix"])
def test_a_teacher_saved_by_the_project_loads_back_identically(tmp_path, wrapped):
    data = toy_data()
    torch.manual_seed(0)
    model = make_cnn_teacher(data)
    sd = model.state_dict()
    content = {"plain": sd, "in a checkpoint's 'model'": dict(model=sd, history=[]),
               "DataParallel's module. prefix": {f"module.{k}": v for k, v in sd.items()}}[wrapped]
    save_torch(tmp_path / "teacher.pt", content)
    loaded = get_teacher(toy_settings(teacher=str(tmp_path / "teacher.pt")), data)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()))
    assert not loaded.model.training and not any(p.requires_grad for p in loaded.model.parameters())

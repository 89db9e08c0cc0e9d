"""Nothing unsafe: no code runs from a checkpoint, downloads are verified, writes are atomic."""
import io
import os
import re
import urllib.request
from pathlib import Path

import pytest
import torch

import kd_utils.storage as storage
from kd_utils.models import make_cnn_teacher, make_student
from kd_utils.storage import (DownloadError, HashMismatchError, UnsafeCheckpointError, download,
                              load_torch, save_json, save_torch, sha256_file)
from kd_utils.teachers import TeacherMismatchError, get_teacher, load_vgg13_bn
from reliability_helpers import tiny_data

ROOT = Path(__file__).resolve().parents[1]


class _MakesMarker:
    """Unpickling this object would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


# ------------------------------------------------------------ unpickling

def test_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": _MakesMarker(marker)}, evil)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match="could run code"):
        load_torch(evil)
    assert not marker.exists()


def test_get_teacher_refuses_a_code_running_weights_file(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "teacher.pt"
    torch.save(_MakesMarker(marker), evil)
    with pytest.raises(UnsafeCheckpointError):
        get_teacher(tiny_data(), str(evil))
    assert not marker.exists()


def _python_sources():
    files = sorted((ROOT / "kd_utils").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    files += sorted((ROOT / "notebooks").glob("*.ipynb"))
    return [f for f in files if f.exists()]


def test_every_torch_load_in_the_project_is_weights_only():
    offenders = []
    for f in _python_sources():
        for call in re.findall(r"torch\.load\((?:[^()]|\([^()]*\))*\)", f.read_text()):
            if "weights_only=True" not in call.replace("\\", ""):
                offenders.append(f"{f.name}: {call}")
    assert offenders == []


def test_kd_utils_writes_files_only_through_the_atomic_helpers():
    # Raw writes (torch.save to a path, open(..., "w"), savefig to a file, json.dump) outside
    # storage.py could leave half-written files behind. Writing to an in-memory buffer is fine.
    raw = re.compile(r"torch\.save\(|open\([^)]*['\"][wax]b?\+?['\"]|\.savefig\(|json\.dump\(|"
                     r"\.write_(text|bytes)\(|shutil\.copy")
    offenders = [f"{f.name}: {line.strip()}" for f in sorted((ROOT / "kd_utils").glob("*.py"))
                 if f.name != "storage.py" for line in f.read_text().splitlines()
                 if raw.search(line) and "buf" not in line]
    assert offenders == []


# ------------------------------------------------------------ atomic writes

def _no_temp_files(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".")] == []


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
    assert torch.equal(load_torch(path)["w"], torch.ones(3))
    assert _no_temp_files(tmp_path)


def test_a_failure_while_writing_json_keeps_the_previous_file(tmp_path):
    path = tmp_path / "history.json"
    save_json(path, {"epochs": [1, 2]})
    with pytest.raises(TypeError, match="cannot write"):
        save_json(path, {"epochs": [1, 2, 3], "bad": object()})
    assert storage.load_json(path) == {"epochs": [1, 2]}
    assert _no_temp_files(tmp_path)


# ------------------------------------------------------------ downloads

def _served_file(tmp_path, data=b"pretend these are weights" * 100):
    src = tmp_path / "server" / "weights.pt"
    src.parent.mkdir()
    src.write_bytes(data)
    return src, src.as_uri(), sha256_file(src)


def test_download_with_the_right_hash_puts_the_file_in_place(tmp_path):
    src, url, digest = _served_file(tmp_path)
    dest = tmp_path / "dl" / "weights.pt"
    assert download(url, dest, sha256=digest) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert _no_temp_files(dest.parent)


def test_download_accepts_a_torch_hub_style_hash_prefix(tmp_path):
    _, url, digest = _served_file(tmp_path)
    assert download(url, tmp_path / "dl" / "w.pt", sha256=digest[:8]).exists()


def test_download_with_the_wrong_hash_leaves_nothing(tmp_path):
    _, url, digest = _served_file(tmp_path)
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    dest = tmp_path / "dl" / "weights.pt"
    with pytest.raises(HashMismatchError, match=f"expected one starting with {wrong}"):
        download(url, dest, sha256=wrong)
    assert list(dest.parent.iterdir()) == []


class _TruncatedResponse(io.BytesIO):
    headers = {"Content-Length": "1000"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_truncated_download_is_reported_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _TruncatedResponse(b"x" * 400))
    dest = tmp_path / "dl" / "weights.pt"
    with pytest.raises(DownloadError, match="stopped at 400 of 1000 bytes"):
        download("https://example.invalid/weights.pt", dest, sha256=None)
    assert list(dest.parent.iterdir()) == []


def test_a_too_short_hash_is_refused_before_downloading(tmp_path):
    _, url, _ = _served_file(tmp_path)
    with pytest.raises(ValueError, match="8 to 64 hex digits"):
        download(url, tmp_path / "dl" / "w.pt", sha256="c0")
    assert not (tmp_path / "dl" / "w.pt").exists()


# ------------------------------------------------------------ wrong weights

def _vgg_like_state_dict(num_classes):
    # Just the keys load_vgg13_bn looks at first: enough to be recognised as chenyaofo's layout.
    return {"features.0.weight": torch.zeros(64, 3, 3, 3), "classifier.0.weight": torch.zeros(512, 512),
            "classifier.6.weight": torch.zeros(num_classes, 512)}


def test_vgg_weights_for_another_number_of_classes_are_refused(tmp_path):
    path = tmp_path / "cifar100_vgg13_bn.pt"
    torch.save(_vgg_like_state_dict(100), path)
    with pytest.raises(TeacherMismatchError, match="100 output classes, but cifar10 has 10"):
        load_vgg13_bn(path, 10, "cifar10")


def test_weights_of_another_architecture_are_refused_by_load_vgg13_bn(tmp_path):
    path = tmp_path / "lenet.pt"
    torch.save(make_student((3, 32, 32), 10, [0.5] * 3, [0.2] * 3).net.state_dict(), path)
    with pytest.raises(TeacherMismatchError, match="expected vgg13_bn weights.*found keys"):
        load_vgg13_bn(path)


def test_get_teacher_names_expected_and_found_classes(tmp_path):
    data = tiny_data(classes=4)
    path = tmp_path / "teacher.pt"
    torch.save(make_cnn_teacher(data.image_shape, 5, [0.5], [0.2]).state_dict(), path)
    with pytest.raises(TeacherMismatchError, match="5 output classes, but tiny has 4"):
        get_teacher(data, str(path))


def test_get_teacher_names_what_is_missing_from_a_foreign_checkpoint(tmp_path):
    data = tiny_data()
    path = tmp_path / "student.pt"
    torch.save(make_student(data.image_shape, data.num_classes, [0.5], [0.2]).state_dict(), path)
    with pytest.raises(TeacherMismatchError, match="not a CNNTeacher teacher .*missing net.features.1.weight"):
        get_teacher(data, str(path))


def test_a_teacher_saved_by_the_project_loads_back_identically(tmp_path):
    data = tiny_data()
    torch.manual_seed(0)
    model = make_cnn_teacher(data.image_shape, data.num_classes, *data.stats())
    save_torch(tmp_path / "teacher.pt", model.state_dict())
    loaded = get_teacher(data, str(tmp_path / "teacher.pt"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_a_wrong_file_where_the_pretrained_teacher_belongs_is_refused(tmp_path):
    from kd_utils.teachers import pretrained_vgg_path

    dest = tmp_path / "cifar10_vgg13_bn-c01e4a43.pt"
    dest.write_bytes(b"not the published weights")
    with pytest.raises(HashMismatchError, match="is not the published cifar10_vgg13_bn-c01e4a43.pt"):
        pretrained_vgg_path(tmp_path)
    assert dest.exists()  # the learner's own file is reported, not deleted


def test_the_pretrained_teacher_offline_says_what_to_do_and_leaves_nothing(tmp_path, monkeypatch):
    import urllib.error

    from kd_utils.teachers import pretrained_vgg_path

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match="(?s)could not download the pre-trained vgg13_bn.*KD_TEACHER=train"):
        pretrained_vgg_path(tmp_path / "weights")
    assert list((tmp_path / "weights").iterdir()) == []

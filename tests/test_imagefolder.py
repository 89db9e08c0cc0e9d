"""Bring your own data: imagefolder:PATH, a folder in torchvision's ImageFolder layout
(PATH/train/<class>/*.png, PATH/test/<class>/*.png), loads as 32x32 RGB; a wrong layout
or an unreadable file is refused in one clear DataUnavailableError; its runs are filed
under the folder's base name."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import kd_utils as kd
from kd_testdata import make_image_folder, toy_settings
from kd_utils import runs


def load(root):
    return kd.load_dataset(f"imagefolder:{root}", root=os.environ["KD_DATA_DIR"])  # the test's own data folder


def test_an_image_folder_loads_as_32x32_rgb_with_classes_from_the_train_folders(tmp_path):
    root = make_image_folder(tmp_path / "shapes", per_class=(10, 4))
    Image.new("L", (30, 30), 200).save(root / "train" / "squares" / "gray.PNG")  # grayscale: made RGB; any case
    (root / "train" / "squares" / "notes.txt").write_text("not an image")      # not an image suffix: ignored
    (root / "train" / "squares" / "x.png").mkdir()                             # a folder named x.png: ignored
    data = load(root)
    assert data.name == "shapes" and data.classes == ["circles", "squares"]
    assert data.x_train.shape == (21, 3, 32, 32) and data.x_train.dtype == torch.uint8
    assert data.x_test.shape == (8, 3, 32, 32)
    assert data.y_train.tolist() == [0] * 10 + [1] * 11
    # the centre of every square is its fill color, brighter than the background
    assert (data.x_train[data.y_train == 1][:, :, 16, 16] > 60).any(1).all()


@pytest.mark.parametrize("hidden", [".ipynb_checkpoints", "__MACOSX", ".DS_Store-folder"])
def test_hidden_folders_and_files_are_skipped(tmp_path, hidden):
    """Jupyter's checkpoints, macOS zip leftovers and dot-files are not classes, nor images."""
    root = make_image_folder(tmp_path / "shapes", per_class=(3, 2))
    for split in ("train", "test"):
        (root / split / hidden).mkdir()
        Image.new("RGB", (8, 8)).save(root / split / hidden / "copy.png")
    Image.new("RGB", (8, 8)).save(root / "train" / "circles" / "._0.png")  # macOS resource fork
    data = load(root)
    assert data.classes == ["circles", "squares"] and len(data.x_train) == 6 and len(data.x_test) == 4


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped_to_white(tmp_path):
    root = make_image_folder(tmp_path / "shapes", per_class=(2, 1))
    rng = np.random.default_rng(0)
    pixels = rng.integers(20, 61, (40, 40)).astype(np.uint16) * 257  # 8-bit values 20..60, in 16 bits
    Image.fromarray(pixels).save(root / "train" / "squares" / "deep.png")
    assert Image.open(root / "train" / "squares" / "deep.png").mode.startswith("I")
    img = load(root).x_train[-1].float()  # deep.png sorts last among the squares
    assert 35 < img.mean() < 45  # PIL's own convert("RGB") gives about 255


@pytest.mark.parametrize("bad", ["text named .jpg", "truncated png", "decompression bomb"])
def test_an_unreadable_image_is_named_with_what_to_do(tmp_path, monkeypatch, bad):
    root = make_image_folder(tmp_path / "shapes", per_class=(2, 1))
    target = root / "train" / "circles" / "bad.jpg"
    if bad == "text named .jpg":
        target.write_text("these are my notes, not a photo")
    elif bad == "truncated png":
        target = target.with_suffix(".png")
        Image.new("RGB", (64, 64), (200, 10, 10)).save(target)
        target.write_bytes(target.read_bytes()[:60])
    else:  # PIL warns above MAX_IMAGE_PIXELS (and refuses above twice that): lower the limit
        target = target.with_suffix(".png")
        Image.new("RGB", (64, 64)).save(target)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # the others are at most 40x40
    with pytest.raises(kd.DataUnavailableError) as err:
        load(root)
    message = str(err.value)
    assert message.startswith(f"cannot read image {target}:") and message.endswith("remove or replace it")
    assert "\n" not in message


def test_a_missing_test_folder_says_what_is_missing_and_what_layout_is_expected(tmp_path):
    root = make_image_folder(tmp_path / "shapes", splits=("train",))
    with pytest.raises(kd.DataUnavailableError, match=r"has no test/ folder; expected .*/train/<class>/\*.png and "
                                                      r".*/test/<class>/\*.png, one folder per class"):
        load(root)


def test_train_and_test_must_have_the_same_classes_and_both_are_named(tmp_path):
    root = make_image_folder(tmp_path / "shapes")
    (root / "test" / "triangles").mkdir()
    with pytest.raises(kd.DataUnavailableError, match=r"train/ has the classes \['circles', 'squares'\] and test/ "
                                                      r"has \['circles', 'squares', 'triangles'\]"):
        load(root)


def test_a_single_class_is_refused(tmp_path):
    root = make_image_folder(tmp_path / "shapes", classes=("circles",))
    with pytest.raises(kd.DataUnavailableError, match="both need the same two or more"):
        load(root)


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_class_folder_is_refused_by_name(tmp_path, split):
    """A class without images (or with only non-images) would silently never be predicted."""
    root = make_image_folder(tmp_path / "shapes")
    for f in (root / split / "squares").iterdir():
        f.unlink()
    (root / split / "squares" / "readme.txt").write_text("images go here")
    with pytest.raises(kd.DataUnavailableError, match=f"no images in {split}/squares"):
        load(root)


@pytest.mark.parametrize("spelling", ["{root}", "{root}/"])
def test_runs_of_an_image_folder_are_filed_under_its_base_name_never_its_path(tmp_path, spelling):
    root = make_image_folder(tmp_path / "shapes", per_class=(2, 1))
    dataset = "imagefolder:" + spelling.format(root=root)
    data = kd.load_dataset(dataset, root=os.environ["KD_DATA_DIR"])
    s = toy_settings(dataset=dataset)
    folder = runs.run_folder(s, data, "students", "alpha0", dict(seed=0))
    assert folder.parent.parent == runs.dataset_dir(s, s.dataset) == s.runs_dir / "shapes"
    assert str(tmp_path) not in str(folder.relative_to(s.runs_dir))

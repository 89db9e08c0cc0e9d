"""Bring your own data: a folder in torchvision's ImageFolder layout loads as 32x32
RGB, with clear errors when the layout or a file is wrong."""
import numpy as np
import pytest
import torch
from PIL import Image

import kd_utils as kd
from kd_testdata import make_image_folder


def test_an_image_folder_loads_as_32x32_rgb_with_classes_from_the_train_folders(tmp_path):
    root = make_image_folder(tmp_path / "shapes", per_class=(10, 4))
    Image.new("L", (30, 30), 200).save(root / "train" / "squares" / "gray.png")  # grayscale: made RGB
    (root / "train" / "squares" / "notes.txt").write_text("not an image")    # not an image suffix: ignored
    (root / "train" / "squares" / "x.png").mkdir()                           # a folder named x.png: ignored
    data = kd.load_dataset(f"imagefolder:{root}")
    assert data.classes == ["circles", "squares"]
    assert data.x_train.shape == (21, 3, 32, 32) and data.x_train.dtype == torch.uint8
    assert data.x_test.shape == (8, 3, 32, 32)
    assert data.y_train.tolist() == [0] * 10 + [1] * 11
    # the centre of every square is its fill color, brighter than the background
    assert (data.x_train[data.y_train == 1][:, :, 16, 16] > 60).any(1).all()


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped_to_white(tmp_path):
    root = make_image_folder(tmp_path / "shapes", per_class=(2, 1))
    rng = np.random.default_rng(0)
    pixels = rng.integers(20, 61, (40, 40)).astype(np.uint16) * 257  # 8-bit values 20..60, in 16 bits
    Image.fromarray(pixels).save(root / "train" / "squares" / "deep.png")
    assert Image.open(root / "train" / "squares" / "deep.png").mode.startswith("I")
    data = kd.load_dataset(f"imagefolder:{root}")
    img = data.x_train[-1].float()  # deep.png sorts last among the squares
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
        kd.load_dataset(f"imagefolder:{root}")
    message = str(err.value)
    assert message.startswith(f"cannot read image {target}:") and "remove or replace that file" in message
    assert "\n" not in message


def test_missing_test_folder_says_what_is_missing_and_what_layout_is_expected(tmp_path):
    root = make_image_folder(tmp_path / "shapes", splits=("train",))
    with pytest.raises(kd.DataUnavailableError, match=r"no test folder.*train/<class>/.*test/<class>/"):
        kd.load_dataset(f"imagefolder:{root}")


def test_test_classes_must_be_train_classes(tmp_path):
    root = make_image_folder(tmp_path / "shapes")
    (root / "test" / "triangles").mkdir()
    with pytest.raises(kd.DataUnavailableError, match=r"triangles.*circles.*squares"):
        kd.load_dataset(f"imagefolder:{root}")


def test_a_single_class_is_refused(tmp_path):
    root = make_image_folder(tmp_path / "shapes", classes=("circles",))
    with pytest.raises(kd.DataUnavailableError, match="at least two class folders"):
        kd.load_dataset(f"imagefolder:{root}")

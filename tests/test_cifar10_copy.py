"""The CIFAR-10 JPEG copy (../shared/data/cifar10-jpeg.tar.gz, extracted by `make test` into data/cifar10-jpeg)
is CIFAR-10: its class order, its 5,000 / 1,000 images per class, and its per-channel pixel statistics within
0.01 of CIFAR-10's published ones. The statistics catch a wrong decode (channels swapped, pixels not scaled),
which counting files would not. Skipped without the copy, unless KD_REQUIRE_CIFAR10_COPY is set (CI)."""
import os
from pathlib import Path

import pytest
import torch

import kd_utils as kd
from kd_utils.data import load_image_folder

COPY = Path(__file__).resolve().parents[1] / "data" / "cifar10-jpeg"
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10's training set, in [0, 1] units


def channel_stats(x):
    """Per-channel mean and std of uint8 (N, C, H, W) images, in [0, 1] units."""
    x = x.double() / 255
    return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()


def close_to_cifar10(mean, std, tol=0.01):
    return all(abs(a - b) <= tol for a, b in zip([*mean, *std], [*MEAN, *STD]))


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    if not (COPY / "train").is_dir():
        if os.environ.get("KD_REQUIRE_CIFAR10_COPY"):
            pytest.fail(f"KD_REQUIRE_CIFAR10_COPY is set but {COPY} is missing: `make test` extracts it from "
                        f"../shared/data/cifar10-jpeg.tar.gz")
        pytest.skip(f"no CIFAR-10 JPEG copy in {COPY} (make test extracts ../shared/data/cifar10-jpeg.tar.gz there)")
    return load_image_folder(COPY, tmp_path_factory.mktemp("cache"))


def test_the_copy_has_cifar10s_classes_in_cifar10s_order(copy):
    assert copy.classes == kd.CLASSES["cifar10"]


def test_the_copy_has_5000_training_and_1000_test_images_of_each_class_at_32x32_rgb(copy):
    assert copy.image_shape == (3, 32, 32) and copy.x_train.dtype == torch.uint8
    assert torch.bincount(copy.y_train).tolist() == [5000] * 10
    assert torch.bincount(copy.y_test).tolist() == [1000] * 10


def test_the_pixels_have_cifar10s_per_channel_mean_and_std(copy):
    mean, std = channel_stats(copy.x_train)
    assert close_to_cifar10(mean, std), (mean, std)


@pytest.mark.parametrize("wrong_decode", [
    lambda x: x.flip(1),                                    # channels swapped: BGR read as RGB
    lambda x: x.double() * 255,                             # pixels not scaled: 0-255 values taken as [0, 1] ones
    lambda x: x.double().mean(1, keepdim=True).expand_as(x) / 255,  # decoded as grey
    lambda x: (x.double() / 255) ** 2.2,                    # gamma-decoded
], ids=["channels-swapped", "not-scaled", "grey", "gamma"])
def test_a_wrong_decode_fails_the_statistics(copy, wrong_decode):
    x = wrong_decode(copy.x_train)
    x = x * 255 if x.dtype == torch.float64 else x  # channel_stats divides by 255
    assert not close_to_cifar10(*channel_stats(x))

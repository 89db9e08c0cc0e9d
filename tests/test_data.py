"""Data: the loaders on small files in the real formats, made here; the key that
names the data by its content; the deterministic subset and validation split;
batched crop + flip."""
import dataclasses
import gzip
import os

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar

import kd_utils as kd
import kd_utils.data as kdata
from kd_testdata import make_dataset, py2_pickle, write_cifar_batch, write_idx
from kd_utils import DataUnavailableError, load_dataset, random_crop_flip
from kd_utils.data import Dataset

# ----------------------------------------------------------------- CIFAR-10


def write_cifar_folder(root, rng):
    """A tiny `cifar-10-batches-py` folder: 5 train batches of 4 images, a test batch of 3,
    and batches.meta. Returns (x_train, y_train, x_test, y_test) as numpy (N, 3, 32, 32) / (N,)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 6):
        x, y = rng.integers(0, 256, (4, 3072), dtype=np.uint8), rng.integers(0, 10, 4)
        write_cifar_batch(folder / f"data_batch_{i}", x, y)
        xs.append(x)
        ys.append(y)
    x_test, y_test = rng.integers(0, 256, (3, 3072), dtype=np.uint8), rng.integers(0, 10, 3)
    write_cifar_batch(folder / "test_batch", x_test, y_test)
    (folder / "batches.meta").write_bytes(py2_pickle({b"label_names": [c.encode() for c in kdata.CLASSES["cifar10"]],
                                                      b"num_cases_per_batch": 4, b"num_vis": 3072}))
    return (np.concatenate(xs).reshape(-1, 3, 32, 32), np.concatenate(ys), x_test.reshape(-1, 3, 32, 32), y_test)


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    """A tiny CIFAR-10 folder that torchvision accepts: its MD5 check (which hand-made files
    fail) replaced by "the file exists". Returns (root, x_train, y_train, x_test, y_test)."""
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    return (tmp_path, *write_cifar_folder(tmp_path, np.random.default_rng(0)))


def test_cifar10_loads_the_python_batches_through_torchvision(tiny_cifar, offline):
    root, x_train, y_train, x_test, y_test = tiny_cifar
    d = load_dataset("cifar10", root=root)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_train.dtype == torch.uint8
    assert d.x_test.shape == (3, 3, 32, 32)
    assert d.y_train.dtype == torch.int64 and d.y_test.dtype == torch.int64
    # the rows of b"data" are 1024 red, then 1024 green, then 1024 blue values: (N, C, H, W) as written
    np.testing.assert_array_equal(d.x_train.numpy(), x_train)
    np.testing.assert_array_equal(d.x_test.numpy(), x_test)
    np.testing.assert_array_equal(d.y_train.numpy(), y_train)
    np.testing.assert_array_equal(d.y_test.numpy(), y_test)
    assert d.classes[0] == "airplane" and d.num_classes == 10
    assert offline == []  # the files were there: nothing downloaded


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("download", ["refused (offline)", "succeeds but changes nothing"])
def test_a_cifar_file_failing_the_md5_check_is_never_unpickled(tmp_path, monkeypatch, offline, download):
    """torchvision unpickles CIFAR-10 batches with plain pickle: only its MD5 check stands
    between a planted file and running code. A file failing it ends in DataUnavailableError."""
    write_cifar_folder(tmp_path, np.random.default_rng(0))
    marker = tmp_path / "pwned"
    evil = py2_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [_RunsACommand(marker)]})
    for f in (tmp_path / "cifar-10-batches-py").glob("*_batch*"):
        f.write_bytes(evil)
    if download != "refused (offline)":
        monkeypatch.setattr(tv_cifar, "download_and_extract_archive", lambda *a, **k: None)
    with pytest.raises(DataUnavailableError, match=f"The cifar10 data is not in {tmp_path}"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()  # refused before anything ran


def test_cifar10_without_data_or_network_says_how_to_get_it(tmp_path, offline):
    with pytest.raises(DataUnavailableError) as err:
        load_dataset("cifar10", root=tmp_path)
    msg = str(err.value)
    assert offline, "the download should have been tried first"
    assert str(tmp_path) in msg and "no network in the tests" in msg  # where it looked, and why it failed
    assert "apt-get install dataset-fashion-mnist" in msg and "KD_DATASET=fashion-mnist" in msg  # the offline route


def test_a_partial_cifar_folder_is_not_used(tiny_cifar, offline):
    root = tiny_cifar[0]
    (root / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataUnavailableError, match="could not be downloaded"):
        load_dataset("cifar10", root=root)
    assert offline  # a download was tried, and failed


# ------------------------------------------------------------ IDX / MNIST

@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_style_datasets_load_from_torchvisions_layout(tiny_idx, name, offline):
    root, x_train, y_train, x_test, y_test = tiny_idx(name)
    d = load_dataset(name, root=root)
    assert d.x_train.shape == (12, 1, 28, 28) and d.x_train.dtype == torch.uint8
    np.testing.assert_array_equal(d.x_train[:, 0].numpy(), x_train)
    np.testing.assert_array_equal(d.x_test[:, 0].numpy(), x_test)
    assert d.y_train.dtype == torch.int64
    np.testing.assert_array_equal(d.y_train.numpy(), y_train)
    np.testing.assert_array_equal(d.y_test.numpy(), y_test)
    assert d.classes == kdata.CLASSES[name]
    assert offline == []


@pytest.mark.parametrize("damage", ["truncated", "not IDX"])
def test_a_damaged_idx_file_ends_in_DataUnavailableError_naming_the_folder(tiny_idx, damage):
    root = tiny_idx("mnist")[0]
    f = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100] if damage == "truncated" else b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DataUnavailableError, match=f"The mnist data is not in {root}"):
        load_dataset("mnist", root=root)


def test_fashion_mnist_offline_copy_decompresses_debians_files(tmp_path, monkeypatch):
    """Debian's dataset-fashion-mnist ships re-compressed .gz files (their MD5
    differs from torchvision's); the loader decompresses them into its layout."""
    debian = tmp_path / "debian"
    debian.mkdir()
    rng = np.random.default_rng(2)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": np.arange(6, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": np.array([9, 8], np.uint8)}
    for base, a in arrays.items():
        write_idx(debian / f"{base}.gz", a, gz=True)
    monkeypatch.setattr(kdata, "DEBIAN_FASHION_MNIST", debian)
    d = load_dataset("fashion-mnist", root=tmp_path / "data")
    np.testing.assert_array_equal(d.x_train[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(d.y_test.numpy(), [9, 8])
    raw = tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    assert raw.read_bytes() == gzip.decompress((debian / "train-images-idx3-ubyte.gz").read_bytes())


def test_mnist_without_data_names_the_offline_alternative(tmp_path, offline):
    with pytest.raises(DataUnavailableError, match="fashion-mnist"):
        load_dataset("mnist", root=tmp_path)
    assert offline


def test_unknown_dataset_lists_the_valid_names(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; valid datasets are: cifar10, fashion-mnist, "
                                         "mnist, imagefolder:PATH"):
        load_dataset("imagenet", tmp_path)


def test_load_data_reads_s_data_dir_and_cuts_the_profiles_class_balanced_subset(tiny_idx, monkeypatch):
    root = tiny_idx("mnist", n_train=40, n_test=20)[0]
    monkeypatch.setenv("KD_DATA_DIR", str(root))
    s = kd.settings(dataset="mnist", profile="smoke", device="cpu", verbose=False)
    s = dataclasses.replace(s, profile=dataclasses.replace(s.profile, train_subset=10, test_subset=5))
    data = kd.load_data(s)
    expected = load_dataset("mnist", root).subset(10, 5)
    assert s.data_dir == root and data.key == expected.key and len(data.x_train) == 10 and len(data.x_test) == 5
    assert data.x_train.device == s.device


def test_real_fashion_mnist_has_the_published_sizes(fashion_mnist_dir):
    d = load_dataset("fashion-mnist", root=fashion_mnist_dir)
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(d.y_train).tolist() == [6000] * 10


# ------------------------------------------------------- the Dataset object

def test_stats_are_per_channel_mean_and_std_in_unit_range():
    d = make_dataset(n_train=40, shape=(3, 6, 6))
    x = d.x_train.numpy().astype(np.float64) / 255
    mean, std = d.stats()
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std, x.transpose(1, 0, 2, 3).reshape(3, -1).std(axis=1, ddof=1), rtol=1e-4)


def test_stats_are_exact_so_that_no_thread_count_changes_a_models_normalisation():
    """Float32 sums over 47 million pixels rounded differently with 1 and 2 threads: notebook 03 (threads set first)
    built its teacher with other normalisation buffers than notebook 02's and trained a second teacher. Computed
    from exact counts of each pixel value, the statistics equal float64 numpy's to 1e-12 whatever the threads."""
    d = make_dataset(n_train=3000, shape=(3, 32, 32), seed=3)
    x = d.x_train.numpy().astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1) / 255
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results.append(d.stats())
    assert results[0] == results[1]
    np.testing.assert_allclose(results[0][0], x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(results[0][1], x.std(axis=1, ddof=1), rtol=1e-12)


def labelled_images(labels):
    """Images whose pixels encode their label, to check x and y stay paired."""
    y = torch.as_tensor(labels)
    x = y.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).to(torch.uint8)
    return Dataset("mnist", [str(i) for i in range(10)], x, y, x, y)


def test_subset_is_class_balanced_deterministic_and_keeps_pairs():
    # imbalanced: class 0 is half the data
    labels = torch.cat([torch.zeros(100, dtype=torch.long), torch.arange(100) % 10])
    d = labelled_images(labels)
    torch.manual_seed(0)
    a = d.subset(30, 20)
    torch.manual_seed(1)  # the subset belongs to the profile, not to the seed
    b = d.subset(30, 20)
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.x_train, b.x_train)
    assert torch.bincount(a.y_train, minlength=10).tolist() == [3] * 10
    assert torch.bincount(a.y_test, minlength=10).tolist() == [2] * 10
    assert torch.equal(a.x_train[:, 0, 0, 0].long(), a.y_train)  # images stay with their labels
    assert len(d.subset(None, 10**6).x_train) == len(labels)  # None / too many: everything


def test_the_key_names_the_content_images_and_labels():
    d = make_dataset()
    assert d.key == make_dataset().key  # same content, same key (a fresh object)
    one_pixel = make_dataset()
    one_pixel.x_test[0, 0, 0, 0] ^= 1
    swapped = make_dataset()
    swapped.y_train[[0, 1]] = swapped.y_train[[1, 0]]  # the same images, two labels exchanged
    assert len({d.key, one_pixel.key, swapped.key, d.subset(32, 16).key}) == 4


def test_validation_split_holds_out_balanced_training_images_as_vals_test_set():
    """(train, val): val's test set is n_val class-balanced training images, train keeps the rest;
    the real test set is not touched; the split is the same for every seed."""
    labels = torch.cat([torch.zeros(50, dtype=torch.long), torch.arange(50) % 10])
    d = labelled_images(labels)
    d = dataclasses.replace(d, x_train=torch.arange(100, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2))
    torch.manual_seed(0)
    train, val = d.validation_split(20)
    torch.manual_seed(1)
    again = d.validation_split(20)[1]
    assert torch.equal(val.x_test, again.x_test)
    assert torch.bincount(val.y_test, minlength=10).tolist() == [2] * 10
    assert len(train.x_train) == 80 and torch.equal(val.x_train, train.x_train)
    held_out, kept = set(val.x_test[:, 0, 0, 0].tolist()), set(train.x_train[:, 0, 0, 0].tolist())
    assert not held_out & kept and held_out | kept == set(range(100))  # each training image on one side only
    assert torch.equal(labels[val.x_test[:, 0, 0, 0].long()], val.y_test)  # images keep their labels
    assert torch.equal(train.x_test, d.x_test) and torch.equal(train.y_test, d.y_test)


@pytest.mark.parametrize("n_val", [0, 100])
def test_validation_split_needs_images_on_both_sides(n_val):
    with pytest.raises(ValueError, match="n_val must be between 1 and 99"):
        labelled_images(torch.arange(100) % 10).validation_split(n_val)


# --------------------------------------------------------------- batches

def test_the_epoch_order_is_reproducible_from_seed_and_epoch():
    def order(seed, epoch):
        return torch.randperm(100, generator=kd.epoch_generator(seed, epoch))

    assert torch.equal(order(5, 0), order(5, 0))
    assert not torch.equal(order(5, 0), order(6, 0))
    assert not torch.equal(order(5, 0), order(5, 1))


# ------------------------------------------------------------ augmentation

def crops_and_flips(img, padding):
    """Every (crop offset, flip) variant of one image, by plain slicing of the
    zero-padded numpy array."""
    c, h, w = img.shape
    padded = np.pad(img, ((0, 0), (padding, padding), (padding, padding)))
    for oy in range(2 * padding + 1):
        for ox in range(2 * padding + 1):
            crop = padded[:, oy:oy + h, ox:ox + w]
            yield (oy, ox, False), crop
            yield (oy, ox, True), crop[:, :, ::-1]


def batch_images(n=48, shape=(3, 8, 8), seed=0):
    # random pixels in 1..255: no crop of one can be mistaken for another
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, *shape), generator=g, dtype=torch.uint8)


def test_crop_flip_keeps_shape_and_dtype():
    x = batch_images()
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device


def test_each_output_is_one_padded_crop_of_its_own_image_maybe_flipped():
    x = batch_images()
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=4).numpy()
    used = []
    for img, got in zip(x.numpy(), out):
        matches = [v for v, crop in crops_and_flips(img, 4) if np.array_equal(crop, got)]
        assert len(matches) == 1
        used.append(matches[0])
    offsets = {(oy, ox) for oy, ox, _ in used}
    flips = [f for *_, f in used]
    assert len(offsets) > 10  # offsets vary across the batch...
    assert 0 < sum(flips) < len(flips)  # ...and so does flipping


def test_without_padding_it_only_flips():
    x = batch_images()
    out = random_crop_flip(x, torch.Generator().manual_seed(1), padding=0)
    flipped = torch.flip(x, dims=[-1])
    same = (out == x).flatten(1).all(1)
    mirrored = (out == flipped).flatten(1).all(1)
    assert (same | mirrored).all()
    assert same.any() and mirrored.any()


def test_with_flip_off_it_only_crops():
    x = batch_images()
    out = random_crop_flip(x, torch.Generator().manual_seed(2), padding=2, flip=False).numpy()
    for img, got in zip(x.numpy(), out):
        matches = [v for v, crop in crops_and_flips(img, 2) if np.array_equal(crop, got)]
        assert len(matches) == 1 and matches[0][2] is False


def test_same_generator_state_gives_the_same_augmentation():
    x = batch_images()
    a = random_crop_flip(x, torch.Generator().manual_seed(7))
    b = random_crop_flip(x, torch.Generator().manual_seed(7))
    c = random_crop_flip(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_crop_flip_runs_on_the_gpu_with_the_same_result():
    x = batch_images()
    cpu = random_crop_flip(x, torch.Generator().manual_seed(3))
    gpu = random_crop_flip(x.cuda(), torch.Generator().manual_seed(3))
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)

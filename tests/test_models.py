"""Models: the seeds' student, both zoos' vgg13_bn (loaded strictly), normalisation,
and the promise that every alpha starts from the same student."""
import pytest
import torch

from kd_testdata import make_dataset, same_weights, toy_data, toy_settings
from kd_utils import LeNetStudent, count_parameters, get_teacher, new_student, vgg13_bn
from kd_utils.extras.teacher_files import detect_vgg_layout, load_vgg13_bn
from kd_utils.models import CNNTeacher, Normalized
from kd_utils.teachers import TeacherMismatchError

# ------------------------------------------------------------------ student


def lenet_parameter_count(in_channels, num_classes=10):
    """By hand: weights + biases of conv(in->6, 5x5), conv(6->16, 5x5),
    FC 16*5*5 -> 120 -> 84 -> classes."""
    conv1 = in_channels * 6 * 5 * 5 + 6
    conv2 = 6 * 16 * 5 * 5 + 16
    fc = (400 * 120 + 120) + (120 * 84 + 84) + (84 * num_classes + num_classes)
    return conv1 + conv2 + fc


def test_lenet_student_has_the_seeds_62k_parameters_on_cifar():
    model = LeNetStudent(3, 10, 32)
    assert count_parameters(model) == lenet_parameter_count(3) == 62006
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_lenet_student_adapts_to_28x28_grayscale():
    model = LeNetStudent(1, 10, 28)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    # same FC sizes: only the first conv's input channels differ
    assert count_parameters(model) == lenet_parameter_count(1)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_cnn_teacher_runs_on_both_image_shapes(shape):
    assert CNNTeacher(shape[0], 10, shape[1])(torch.zeros(2, *shape)).shape == (2, 10)


def test_normalized_scales_uint8_and_applies_its_statistics():
    model = Normalized(torch.nn.Identity(), mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    expected = x.double() / 255
    for c, (m, s) in enumerate([(0.5, 0.5), (0.25, 0.25), (0.0, 2.0)]):
        expected[:, c] = (expected[:, c] - m) / s
    torch.testing.assert_close(model(x).double(), expected, rtol=1e-6, atol=1e-6)
    # a float image in [0, 1] gives the same result as its uint8 version
    torch.testing.assert_close(model(x.float() / 255), model(x))
    # the statistics are buffers (saved with the weights), not trainable parameters
    assert count_parameters(model) == 0 and set(model.state_dict()) == {"mean", "std"}


# ---------------------------------------------------------------- vgg13_bn

# Conv layers of vgg13_bn as the zoos publish them: features.<i> is a conv,
# features.<i+1> its BatchNorm, features.<i+2> the ReLU; max-pools sit at
# 6, 13, 20, 27 and 34 and have no weights.
VGG13_CONVS = {0: (3, 64), 3: (64, 64), 7: (64, 128), 10: (128, 128), 14: (128, 256),
               17: (256, 256), 21: (256, 512), 24: (512, 512), 28: (512, 512), 31: (512, 512)}
ZOO_HIDDEN = {"pytorch_cifar10": 4096, "chenyaofo": 512}
ZOO_STD = {"pytorch_cifar10": (0.2471, 0.2435, 0.2616), "chenyaofo": (0.2023, 0.1994, 0.2010)}
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)


def zoo_state_dict(layout, num_classes=10, seed=0):
    """A state_dict with the published key names and shapes of one zoo's
    vgg13_bn (PyTorch_CIFAR10: head 512-4096-4096-10; chenyaofo: 512-512-10)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (cin, cout) in VGG13_CONVS.items():
        sd[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
        sd[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.05
        sd[f"features.{i + 1}.weight"] = 1 + 0.1 * torch.randn(cout, generator=g)
        sd[f"features.{i + 1}.bias"] = 0.1 * torch.randn(cout, generator=g)
        sd[f"features.{i + 1}.running_mean"] = 0.1 * torch.randn(cout, generator=g)
        sd[f"features.{i + 1}.running_var"] = 1 + torch.rand(cout, generator=g)
        sd[f"features.{i + 1}.num_batches_tracked"] = torch.tensor(1000)
    h = ZOO_HIDDEN[layout]
    for i, (cin, cout) in {0: (512, h), 3: (h, h), 6: (h, num_classes)}.items():
        sd[f"classifier.{i}.weight"] = torch.randn(cout, cin, generator=g) * 0.02
        sd[f"classifier.{i}.bias"] = torch.zeros(cout)
    return sd


def vgg_parameter_count(hidden, num_classes=10):
    conv_and_bn = sum(cin * cout * 9 + cout + 2 * cout for cin, cout in VGG13_CONVS.values())
    head = (512 * hidden + hidden) + (hidden * hidden + hidden) + (hidden * num_classes + num_classes)
    return conv_and_bn + head


def test_parameter_counts_match_the_zoos():
    # PyTorch_CIFAR10 reports 28.3M, chenyaofo 9.94M
    assert vgg_parameter_count(4096) == pytest.approx(28.3e6, rel=2e-3)
    assert vgg_parameter_count(512) == pytest.approx(9.94e6, rel=1e-3)
    for layout, hidden in ZOO_HIDDEN.items():
        assert count_parameters(vgg13_bn(layout)) == vgg_parameter_count(hidden)


@pytest.fixture(scope="module", params=["pytorch_cifar10", "chenyaofo"])
def zoo_file(request, tmp_path_factory):
    layout = request.param
    sd = zoo_state_dict(layout)
    path = tmp_path_factory.mktemp(layout) / "vgg13_bn.pt"
    torch.save(sd, path)
    return layout, sd, path, load_vgg13_bn(path)


def test_loads_either_zoo_file_strictly_and_detects_its_layout(zoo_file):
    layout, sd, path, model = zoo_file
    assert detect_vgg_layout(sd) == layout
    assert hasattr(model.net, "avgpool") == (layout == "pytorch_cifar10")
    loaded = model.net.state_dict()
    assert set(loaded) == set(sd)
    for k, v in sd.items():
        assert torch.equal(loaded[k], v), k
    assert count_parameters(model) == vgg_parameter_count(ZOO_HIDDEN[layout])


def test_each_zoo_teacher_carries_its_own_normalisation(zoo_file):
    layout, _, _, model = zoo_file
    torch.testing.assert_close(model.std.flatten(), torch.tensor(ZOO_STD[layout]))
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(CIFAR_MEAN))
    # and uses it: uint8 in, the zoo's statistics applied before the network
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(ZOO_STD[layout]).view(1, 3, 1, 1)
    torch.testing.assert_close(model(x), model.net((x.float() / 255 - mean) / std))


def test_loaded_teacher_is_frozen(zoo_file):
    model = zoo_file[3]
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 10)


def test_get_teacher_accepts_a_zoo_file_path(zoo_file):
    layout, sd, path, _ = zoo_file
    cifar_like = make_dataset(n_train=4, n_test=4, shape=(3, 32, 32), name="cifar10")
    teacher = get_teacher(toy_settings(dataset="cifar10", teacher=str(path)), cifar_like)
    assert layout in teacher.source and str(path) in teacher.source
    assert torch.equal(teacher.model.net.classifier[6].weight, sd["classifier.6.weight"])
    assert not teacher.model.training


def test_wrapped_checkpoints_load_too(tmp_path):
    # {"state_dict": ...} with DataParallel's "module." prefix
    sd = zoo_state_dict("chenyaofo")
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    model = load_vgg13_bn(path)
    assert torch.equal(model.net.features[0].weight, sd["features.0.weight"])


def test_strict_loading_rejects_missing_and_unexpected_keys(tmp_path):
    sd = zoo_state_dict("chenyaofo")
    missing = dict(sd)
    del missing["features.1.running_var"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(TeacherMismatchError, match="features.1.running_var"):
        load_vgg13_bn(tmp_path / "missing.pt")
    torch.save(dict(sd, **{"features.99.weight": torch.zeros(3)}), tmp_path / "extra.pt")
    with pytest.raises(TeacherMismatchError, match="features.99.weight"):
        load_vgg13_bn(tmp_path / "extra.pt")


def test_rejects_a_teacher_for_another_number_of_classes(tmp_path):
    torch.save(zoo_state_dict("chenyaofo", num_classes=100), tmp_path / "c100.pt")
    with pytest.raises(TeacherMismatchError, match="100 output classes.*10"):
        load_vgg13_bn(tmp_path / "c100.pt", num_classes=10)


def test_detect_layout_explains_what_it_expected():
    with pytest.raises(ValueError, match="not a vgg13_bn state_dict"):
        detect_vgg_layout({"fc.weight": torch.zeros(10, 84)})
    with pytest.raises(ValueError, match=r"\(256, 512\) matches neither zoo"):
        detect_vgg_layout({"classifier.0.weight": torch.zeros(256, 512)})


def test_unknown_layout_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'chenyaofo', 'pytorch_cifar10'"):
        vgg13_bn("torchvision")


# ------------------------------------------------------ same start for every alpha

def test_new_student_gives_identical_weights_for_the_same_seed():
    data = toy_data()
    a = new_student(data, seed=3)
    torch.rand(100)  # whatever else happened to the global RNG in between
    b = new_student(data, seed=3)
    c = new_student(data, seed=4)
    assert same_weights(a, b)
    assert not torch.equal(a.net.features[0].weight, c.net.features[0].weight)

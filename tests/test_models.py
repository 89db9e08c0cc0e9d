"""Models: the seeds' student, our CNN teacher, both zoos' vgg13_bn (their state_dicts
load strictly), normalisation carried by every model, teacher files, and the promise
that every alpha starts from the same student."""
import pytest
import torch

from kd_testdata import make_dataset, same_weights, toy_data, toy_settings
from kd_utils import ZOO, count_parameters, freeze, get_teacher, make_student, new_student, save_torch, vgg13_bn
from kd_utils.models import CNNTeacher, LeNetStudent, Normalized, make_cnn_teacher
from kd_utils.teachers import TeacherMismatchError, load_teacher_file

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
    """Same FC sizes: only the first conv's input channels differ (it is padded by 2, as in LeNet-5)."""
    model = LeNetStudent(1, 10, 28)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert count_parameters(model) == lenet_parameter_count(1)


@pytest.mark.parametrize("shape, classes", [((3, 32, 32), 10), ((1, 28, 28), 10), ((1, 16, 16), 4)])
def test_student_and_cnn_teacher_are_built_for_the_data_with_its_statistics(shape, classes):
    """make_student / make_cnn_teacher read the image shape, class count and input statistics from the data."""
    data = make_dataset(n_train=20, n_test=4, shape=shape, num_classes=classes)
    mean, std = data.stats()
    for model in (make_student(data), make_cnn_teacher(data)):
        assert model(data.x_test).shape == (4, classes)
        torch.testing.assert_close(model.mean.flatten(), torch.tensor(mean))
        torch.testing.assert_close(model.std.flatten(), torch.tensor(std))


def test_cnn_teacher_runs_on_both_image_shapes():
    for shape in ((3, 32, 32), (1, 28, 28)):
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


def test_freeze_puts_a_model_in_eval_mode_without_gradients():
    model = freeze(make_student(toy_data()).train())
    assert not model.training and not any(p.requires_grad for p in model.parameters())


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


def cifar_like(n=4):
    return make_dataset(n_train=n, n_test=n, shape=(3, 32, 32), name="cifar10")


def test_parameter_counts_match_the_zoos():
    """PyTorch_CIFAR10 reports 28.3M parameters, chenyaofo 9.94M."""
    assert vgg_parameter_count(4096) == pytest.approx(28.3e6, rel=2e-3)
    assert vgg_parameter_count(512) == pytest.approx(9.94e6, rel=1e-3)
    for layout, hidden in ZOO_HIDDEN.items():
        assert count_parameters(vgg13_bn(layout)) == vgg_parameter_count(hidden)
    assert set(ZOO) == set(ZOO_HIDDEN)


@pytest.mark.parametrize("layout", list(ZOO_HIDDEN))
def test_a_zoo_state_dict_loads_strictly_into_vgg13_bn_of_its_layout(layout):
    model = vgg13_bn(layout)
    model.net.load_state_dict(zoo_state_dict(layout))  # strict=True: every key and shape must match
    assert (model.net.avgpool is not None) == (layout == "pytorch_cifar10")


@pytest.fixture(scope="module", params=["pytorch_cifar10", "chenyaofo"])
def zoo_file(request, tmp_path_factory):
    """(layout, state_dict, path, load_teacher_file(path)) for a zoo file as published: a plain torch.save."""
    layout = request.param
    sd = zoo_state_dict(layout)
    path = tmp_path_factory.mktemp(layout) / "vgg13_bn.pt"
    torch.save(sd, path)
    return layout, sd, path, load_teacher_file(path, cifar_like())


def test_load_teacher_file_reads_either_zoo_file_strictly_and_detects_its_layout(zoo_file):
    layout, sd, _, model = zoo_file
    assert model.net.classifier[0].out_features == ZOO_HIDDEN[layout]
    assert (model.net.avgpool is not None) == (layout == "pytorch_cifar10")
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


def test_a_loaded_teacher_is_frozen(zoo_file):
    model = zoo_file[3]
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 10)


def test_get_teacher_accepts_a_zoo_file_path(zoo_file):
    _, sd, path, _ = zoo_file
    teacher = get_teacher(toy_settings(dataset="cifar10", teacher=str(path)), cifar_like())
    assert teacher.source == f"teacher from {path.name}"  # the file's name: printed outputs show no home folder
    assert torch.equal(teacher.model.net.classifier[6].weight, sd["classifier.6.weight"])
    assert not teacher.model.training


def test_wrapped_checkpoints_load_too(tmp_path):
    """{"state_dict": ...} (or {"model": ...}) with DataParallel's "module." prefix."""
    sd = zoo_state_dict("chenyaofo")
    for wrapper in ("state_dict", "model"):
        torch.save({wrapper: {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "wrapped.pt")
        model = load_teacher_file(tmp_path / "wrapped.pt", cifar_like())
        assert torch.equal(model.net.features[0].weight, sd["features.0.weight"])


@pytest.mark.parametrize("shape, classes, make", [
    ((1, 28, 28), 10, make_cnn_teacher),
    ((3, 32, 32), 4, make_cnn_teacher),
    ((3, 32, 32), 10, lambda data: vgg13_bn("chenyaofo", data.num_classes)),
])
def test_a_teacher_saved_by_this_project_loads_back_with_its_own_statistics(tmp_path, shape, classes, make):
    """Our files hold the whole Normalized model (net.* and its mean/std), saved with save_torch."""
    data = make_dataset(n_train=8, shape=shape, num_classes=classes)
    torch.manual_seed(0)
    model = make(data)
    model.mean.add_(0.1)  # statistics of its own: they must come from the file, not from the data
    save_torch(tmp_path / "teacher.pt", model.state_dict())
    loaded = load_teacher_file(tmp_path / "teacher.pt", data)
    assert type(loaded.net) is type(model.net) and same_weights(loaded, model)
    assert not loaded.training


def test_a_zoo_file_loads_whatever_the_order_of_its_keys(tmp_path):
    """A state_dict is a mapping: converted files (safetensors, for one) may list keys sorted by name."""
    sd = zoo_state_dict("chenyaofo")
    torch.save(dict(sorted(sd.items())), tmp_path / "sorted.pt")
    model = load_teacher_file(tmp_path / "sorted.pt", cifar_like())
    assert torch.equal(model.net.classifier[6].weight, sd["classifier.6.weight"])


@pytest.mark.parametrize("sd", [{"fc.weight": torch.zeros(10, 84), "fc.bias": torch.zeros(10)},
                                {"fc.bias": torch.zeros(10)}])
def test_a_state_dict_of_another_architecture_is_refused(tmp_path, sd):
    torch.save(sd, tmp_path / "resnet.pt")
    with pytest.raises(TeacherMismatchError, match="is not a .*teacher"):
        load_teacher_file(tmp_path / "resnet.pt", cifar_like())


def test_strict_loading_names_missing_and_unexpected_keys(tmp_path):
    sd = zoo_state_dict("chenyaofo")
    missing = dict(sd)
    del missing["features.1.running_var"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(TeacherMismatchError, match="missing features.1.running_var"):
        load_teacher_file(tmp_path / "missing.pt", cifar_like())
    torch.save(dict(sd, **{"features.99.weight": torch.zeros(3)}), tmp_path / "extra.pt")
    with pytest.raises(TeacherMismatchError, match="unexpected features.99.weight"):
        load_teacher_file(tmp_path / "extra.pt", cifar_like())


def test_a_vgg_head_of_neither_zoo_is_refused_with_both_shapes(tmp_path):
    sd = {k: v for k, v in zoo_state_dict("chenyaofo").items()}
    sd["classifier.0.weight"] = torch.zeros(256, 512)
    torch.save(sd, tmp_path / "odd.pt")
    with pytest.raises(TeacherMismatchError, match=r"\(256, 512\) matches neither zoo \(\(512, 512\) chenyaofo, "
                                                   r"\(4096, 512\) pytorch_cifar10\)"):
        load_teacher_file(tmp_path / "odd.pt", cifar_like())


@pytest.mark.parametrize("content", [torch.zeros(3), {}, [1, 2]])
def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path, content):
    torch.save(content, tmp_path / "weights.pt")
    with pytest.raises(TeacherMismatchError, match="expected a state_dict"):
        load_teacher_file(tmp_path / "weights.pt", cifar_like())


def test_get_teacher_refuses_a_teacher_for_another_number_of_classes(tmp_path):
    torch.save(zoo_state_dict("chenyaofo", num_classes=100), tmp_path / "c100.pt")
    with pytest.raises(TeacherMismatchError, match="the teacher outputs 100 classes, but cifar10 has 10"):
        get_teacher(toy_settings(dataset="cifar10", teacher=str(tmp_path / "c100.pt")), cifar_like())


def test_a_cnn_teacher_for_other_images_is_refused(tmp_path):
    """Weights of a 28x28 grayscale teacher do not fit 32x32 colour data: named, not a crash inside torch."""
    save_torch(tmp_path / "mnist.pt", make_cnn_teacher(make_dataset(n_train=8)).state_dict())
    with pytest.raises(TeacherMismatchError, match=r"is not a CNNTeacher teacher for cifar10 \(images \(3, 32, 32\)\)"):
        load_teacher_file(tmp_path / "mnist.pt", cifar_like())


def test_unknown_layout_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown vgg13_bn layout 'torchvision'; valid layouts are: chenyaofo, "
                                         "pytorch_cifar10"):
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

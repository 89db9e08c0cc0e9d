"""Models: the seeds' LeNet-style student, vgg13_bn teachers in the layouts of
two public CIFAR-10 model zoos, and a small CNN teacher we train ourselves.

Every model is wrapped in `Normalized`, which carries the input statistics the
weights were trained with. Feed it uint8 or [0, 1] images; it normalises.
Feeding one zoo's teacher the other zoo's statistics silently costs accuracy,
so the statistics travel with the weights.
"""
from __future__ import annotations

import torch
from torch import nn

from .settings import check_choice


class Normalized(nn.Module):
    def __init__(self, net, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return self.net((x - self.mean) / self.std)


class LeNetStudent(nn.Module):
    """conv 5x5 -> pool -> conv 5x5 -> pool -> FC 400-120-84-classes (seeds 000/001).

    On 32x32 RGB: about 62k parameters. On 28x28 grayscale the first conv is
    padded by 2 (as in LeNet-5) so the FC layers keep the same sizes.
    """

    def __init__(self, in_channels=3, num_classes=10, image_size=32):
        super().__init__()
        pad = (32 - image_size) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class CNNTeacher(nn.Module):
    """A small CNN we can train on any dataset in minutes on a CPU:
    two conv-BN-ReLU-pool blocks, then a 256-unit hidden layer with dropout."""

    def __init__(self, in_channels=3, num_classes=10, image_size=32, width=32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * w * side * side, 256), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(256, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


# ------------------------------------------------------------------ VGG-13-BN

VGG13_CFG = [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]

# The two zoos publish vgg13_bn for CIFAR-10 with the same `features` but
# different heads and input statistics.
ZOO = {
    # github.com/chenyaofo/pytorch-cifar-models: 94.00%, 9.94M parameters.
    "chenyaofo": dict(
        hidden=512, avgpool=False,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010),
        url="https://github.com/chenyaofo/pytorch-cifar-models/releases/download/vgg/cifar10_vgg13_bn-c01e4a43.pt",
        # torch.hub convention: the 8 hex digits in the file name are the
        # start of the file's SHA-256.
        sha256="c01e4a43",
    ),
    # github.com/huyvnphan/PyTorch_CIFAR10: 94.22%, 28.3M parameters. Its zip
    # download is reported broken: load its vgg13_bn.pt from a local path.
    "pytorch_cifar10": dict(
        hidden=4096, avgpool=True,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2471, 0.2435, 0.2616),
        url=None, sha256=None,
    ),
}


class VGG(nn.Module):
    def __init__(self, cfg=VGG13_CFG, num_classes=10, hidden=512, avgpool=False):
        super().__init__()
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        if avgpool:  # only the PyTorch_CIFAR10 layout has it (1x1: a no-op at 32x32)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(
            nn.Linear(512, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        if hasattr(self, "avgpool"):
            x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


def vgg13_bn(layout="chenyaofo", num_classes=10) -> Normalized:
    """vgg13_bn in one zoo's layout, wrapped with that zoo's normalisation.
    `model.net.load_state_dict(zoo_state_dict)` loads strictly."""
    check_choice("vgg13_bn layout", layout, tuple(ZOO))
    z = ZOO[layout]
    net = VGG(VGG13_CFG, num_classes, hidden=z["hidden"], avgpool=z["avgpool"])
    return Normalized(net, z["mean"], z["std"])


def detect_vgg_layout(state_dict):
    """Which zoo a vgg13_bn state_dict comes from, from its first head layer."""
    w = state_dict.get("classifier.0.weight")
    if w is None:
        raise ValueError(
            "not a vgg13_bn state_dict: no 'classifier.0.weight' key (found keys like "
            f"{list(state_dict)[:3]})")
    for name, z in ZOO.items():
        if tuple(w.shape) == (z["hidden"], 512):
            return name
    raise ValueError(f"vgg13_bn head of shape {tuple(w.shape)} matches neither zoo "
                     f"(expected (512, 512) for chenyaofo or (4096, 512) for pytorch_cifar10)")


def make_student(dataset_shape, num_classes, mean, std):
    c, h, _ = dataset_shape
    return Normalized(LeNetStudent(c, num_classes, h), mean, std)


def make_cnn_teacher(dataset_shape, num_classes, mean, std):
    c, h, _ = dataset_shape
    return Normalized(CNNTeacher(c, num_classes, h), mean, std)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def freeze(model):
    """Teachers are never trained by distillation: eval mode, no gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model

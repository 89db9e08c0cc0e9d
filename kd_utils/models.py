"""Models: this course's LeNet-style student (the seeds say only 'a very simple student'),
a small CNN teacher we can train anywhere, and the seeds' vgg13_bn in the layouts of two
public CIFAR-10 model zoos (written here so that their state_dicts load strictly). Every
model is wrapped in Normalized, which carries the input statistics its weights were
trained with (another model's statistics silently cost accuracy); feed it uint8 images."""
from __future__ import annotations

import torch
from torch import nn

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
    """conv 5x5 -> pool -> conv 5x5 -> pool -> FC 400-120-84-classes: about 62k parameters
    on 32x32 RGB. On 28x28 grayscale the first conv is padded by 2, as in LeNet-5."""

    def __init__(self, in_channels=3, num_classes=10, image_size=32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=(32 - image_size) // 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
                                        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))

class CNNTeacher(nn.Module):
    """A small CNN we can train on any dataset in minutes on a CPU: two conv-BN-ReLU-pool
    blocks, then a 256-unit hidden layer with dropout."""

    def __init__(self, in_channels=3, num_classes=10, image_size=32, width=32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * (image_size // 4) ** 2, 256), nn.ReLU(),
                                        nn.Dropout(0.3), nn.Linear(256, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))

# The two zoos publish vgg13_bn for CIFAR-10 with the same `features` but different heads
# and input statistics.
ZOO = {
    # github.com/chenyaofo/pytorch-cifar-models: 94.00%, 9.94M parameters. torch.hub's
    # convention: the 8 hex digits in the file name start the file's SHA-256.
    "chenyaofo": dict(hidden=512, avgpool=False, mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010),
                      url="https://github.com/chenyaofo/pytorch-cifar-models/releases/download/vgg/"
                          "cifar10_vgg13_bn-c01e4a43.pt"),
    # github.com/huyvnphan/PyTorch_CIFAR10: 94.22%, 28.3M parameters. Its zip download is
    # reported broken: load its vgg13_bn.pt from a local path.
    "pytorch_cifar10": dict(hidden=4096, avgpool=True, mean=(0.4914, 0.4822, 0.4465), std=(0.2471, 0.2435, 0.2616),
                            url=None),
}

class VGG(nn.Module):
    def __init__(self, num_classes=10, hidden=512, avgpool=False):
        super().__init__()
        layers, c = [], 3
        for v in [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:  # VGG-13
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1)) if avgpool else None  # 1x1 after 32x32: a no-op
        self.classifier = nn.Sequential(nn.Linear(512, hidden), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(hidden, num_classes))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(torch.flatten(x if self.avgpool is None else self.avgpool(x), 1))

def vgg13_bn(layout="chenyaofo", num_classes=10) -> Normalized:
    """vgg13_bn in one zoo's layout, with that zoo's normalisation:
    `model.net.load_state_dict(zoo_state_dict)` loads strictly."""
    if layout not in ZOO:
        raise ValueError(f"unknown vgg13_bn layout {layout!r}; valid layouts are: {', '.join(ZOO)}")
    z = ZOO[layout]
    return Normalized(VGG(num_classes, z["hidden"], z["avgpool"]), z["mean"], z["std"])

def make_student(data):
    return Normalized(LeNetStudent(data.image_shape[0], data.num_classes, data.image_shape[1]), *data.stats())

def make_cnn_teacher(data):
    return Normalized(CNNTeacher(data.image_shape[0], data.num_classes, data.image_shape[1]), *data.stats())

def count_parameters(model):
    return sum(p.numel() for p in model.parameters())

def freeze(model):
    """Teachers are never trained by distillation: eval mode, no gradients."""
    return model.eval().requires_grad_(False)

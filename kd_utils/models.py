"""Models: this course's LeNet-style student (the seeds say only 'a very simple student') and a small CNN teacher
(the pre-trained CIFAR-10 vgg13_bn is in extras/teacher_files.py). Every model is
wrapped in Normalized, which carries the input statistics its weights were trained
with (another model's statistics silently cost accuracy); feed it uint8 images."""
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

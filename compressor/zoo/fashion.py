"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``),
as data callables: ``--finetune compressor.zoo.fashion:train`` yields the 60,000 training images in batches,
normalised like the bundled model expects (mean 0.2860, std 0.3530 on the 0..1 scale)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

DATA = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530


def read_idx(kind: str) -> tuple[np.ndarray, np.ndarray]:
    if not (DATA / f"{kind}-labels-idx1-ubyte.gz").is_file():
        raise SystemExit(f"{DATA} has no Fashion-MNIST files: apt-get install -y dataset-fashion-mnist (or `make fashion-mnist-data`)")
    with gzip.open(DATA / f"{kind}-labels-idx1-ubyte.gz", "rb") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    with gzip.open(DATA / f"{kind}-images-idx3-ubyte.gz", "rb") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(len(labels), 1, 28, 28)
    return images, labels.astype(np.int64)


def available() -> bool:
    return (DATA / "train-labels-idx1-ubyte.gz").is_file()


def train(batch: int = 1000):
    """The full training split (60,000 images), normalised, with labels."""
    x, y = read_idx("train")
    for i in range(0, len(x), batch):
        yield ((x[i:i + batch].astype(np.float32) / 255.0 - MEAN) / STD), y[i:i + batch]

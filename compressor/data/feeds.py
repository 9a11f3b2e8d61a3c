"""Feeding a model: data in batches of exactly the size its input spec takes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from compressor.core.specs import InputSpec
from compressor.data.sources import DataSource


def iter_feeds(data: DataSource, specs: Sequence[InputSpec], batch: int) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """Feeds of exactly ``batch`` samples (the last one padded by repetition) and how many are real."""
    for arrays, _ in data.batches(batch):
        real = arrays[0].shape[0]
        if real < batch:
            arrays = [np.concatenate([a, np.repeat(a[-1:], batch - real, axis=0)]) for a in arrays]
        yield {s.name: np.ascontiguousarray(a) for s, a in zip(specs, arrays)}, real

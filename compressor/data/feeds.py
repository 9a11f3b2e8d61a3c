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


def calibration_feeds(data: DataSource, inputs, samples: int) -> list[dict[str, np.ndarray]]:
    """Batches of at most 16 samples (the spec's fixed batch where it has one)."""
    first = inputs[0].dims[0]
    batch = 16 if first.dynamic and first.max >= 16 else (first.value if not first.dynamic else first.max)
    return [feeds for feeds, _ in iter_feeds(data.take(samples), inputs, batch)]


def samples_in(feed: dict[str, np.ndarray]) -> int:
    return int(next(iter(feed.values())).shape[0])


def first_samples(feeds: list[dict], n: int) -> list[dict]:
    """The first feeds holding at least ``n`` samples (all of them when there are fewer)."""
    out, seen = [], 0
    for f in feeds:
        if seen >= n:
            break
        out.append(f)
        seen += samples_in(f)
    return out

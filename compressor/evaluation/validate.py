"""Running an artifact over the eval data, written once against :class:`Runner` (the comparison with the
FP32 reference is :mod:`compressor.core.fidelity`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from compressor.core.backend import Runner
from compressor.core.specs import InputSpec
from compressor.data.feeds import iter_feeds
from compressor.data.sources import DataSource


def eval_batch_size(specs: Sequence[InputSpec], preferred: int = 32) -> int:
    """The batch to feed: the static batch if the spec fixes one, else ``preferred`` within range."""
    first = specs[0].dims[0] if specs and specs[0].dims else None
    if first is None:
        return 1
    if not first.dynamic:
        return first.value
    return max(first.min, min(preferred, first.max))


def run_all(runner: Runner, data: DataSource, specs: Sequence[InputSpec], batch: int, progress=None) -> list[np.ndarray]:
    """Every output of ``runner`` over ``data``, concatenated along the sample axis."""
    chunks: list[list[np.ndarray]] = []
    for feeds, real in iter_feeds(data, specs, batch):
        outs = runner.run(feeds)
        chunks.append([np.asarray(o)[:real] for o in outs])
        if progress is not None:
            progress(real)
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]

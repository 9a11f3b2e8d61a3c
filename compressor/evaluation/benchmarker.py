"""Benchmarks: each artifact timed in a fresh process per batch size on real samples, and the torch eager FP32 baseline
every speed-up is measured against (built and timed once per batch size)."""

from __future__ import annotations

import numpy as np

from compressor.core.backend import Artifact, CompileContext
from compressor.core.errors import CompressorError, InputError
from compressor.core.model import ModelHandle
from compressor.core.registry import get_backend, reference_target
from compressor.data.context import RunContext
from compressor.data.sources import DataSource
from compressor.evaluation.benchmark import BenchFailure, BenchmarkSettings, BenchResult, run_isolated
from compressor.evaluation.candidates import CandidateResult


def benchmark_feeds(data: DataSource, inputs, batch_size: int) -> dict[str, np.ndarray]:
    """``batch_size`` real samples (repeated if the data has fewer), shaped for the input specs."""
    for spec in inputs:
        d0 = spec.dims[0]
        if not d0.dynamic and d0.value != batch_size:
            raise InputError(f"--batch-size {batch_size} does not fit input '{spec.name}' with fixed batch {d0.value}: "
                             f"use --batch-size {d0.value} or a dynamic batch (batch,…) in --input-shape")
        if d0.dynamic and not d0.accepts(batch_size):
            raise InputError(f"--batch-size {batch_size} is outside the batch range {d0.min}..{d0.max} of input '{spec.name}'")
    reps = -(-batch_size // len(data))
    return {s.name: np.ascontiguousarray(np.concatenate([a] * reps)[:batch_size]) for s, a in zip(inputs, data.inputs)}


class Benchmarker:
    def __init__(self, model: ModelHandle, ctx: RunContext, settings: BenchmarkSettings, variants, workdir):
        self.model, self.ctx, self.settings, self.variants, self._workdir = model, ctx, settings, variants, workdir
        self._eager: dict[int, BenchResult] = {}
        self._eager_artifact: Artifact | None = None

    def feeds(self, batch_size: int) -> dict[str, np.ndarray]:
        return benchmark_feeds(self.ctx.eval_data, self.model.inputs, batch_size)

    def bench(self, result: CandidateResult, batch_sizes: list[int] | None = None) -> None:
        for b in batch_sizes or [self.settings.batch_size]:
            settings = self.settings.with_batch(b)
            with self.ctx.progress.stage(f"benchmarked {result.target.name} ({settings.threads} threads, batch {b})"):
                try:
                    result.benchmarks[b] = run_isolated(result.target.name, result.artifact.path, self.feeds(b), settings)
                except CompressorError as e:
                    result.benchmarks[b] = BenchFailure(str(e))

    def eager(self, batch_size: int) -> tuple[BenchResult | None, int | None]:
        """The FP32 eager baseline at ``batch_size`` (the unpruned model; measured once per batch size) and its size."""
        if batch_size not in self._eager:
            ref = reference_target().with_run(self.model.inputs, self.ctx.threads)
            if self._eager_artifact is None:
                with self.ctx.progress.stage("built the torch eager FP32 baseline"):
                    ir = self.variants.float_ir(self.variants.get(None, ref), ref.ir, f"the {ref.name} artifact")
                    self._eager_artifact = get_backend(ref.backend).compile(self.model, ir, ref, self._workdir("eager"), CompileContext())
            with self.ctx.progress.stage(f"benchmarked torch eager FP32 (the baseline, batch {batch_size})"):
                self._eager[batch_size] = run_isolated(ref.name, self._eager_artifact.path, self.feeds(batch_size),
                                                       self.settings.with_batch(batch_size))
        return self._eager[batch_size], self._eager_artifact.size_bytes

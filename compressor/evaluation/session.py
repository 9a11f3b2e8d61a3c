"""One evaluation session: a model, its eval data and its FP32 reference outputs, computed once, and
``evaluate(candidate)`` for as many candidates as a command needs.

A candidate is a target, optionally with pruning. Evaluating one builds it (:mod:`.builder`: the pruning stage, the IR
the target consumes — exported once per model and quantized by the quantization stage, which plans once per model, both
kept by :mod:`.variants` — then the backend's compile), validates it against the reference outputs (:mod:`.validator`),
and benchmarks it in a fresh process per batch size (:mod:`.benchmarker`). ``compress`` evaluates one candidate and
writes its bundle; ``bench --targets`` evaluates many; a search is a strategy that proposes candidates. There is no
second loop.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from compressor.core.build import BuildSettings
from compressor.core.errors import CompressorError, TargetError, first_line, strict
from compressor.core.model import ModelHandle
from compressor.core.registry import get_backend, get_target
from compressor.core.targets import TargetSpec
from compressor.data.context import RunContext
from compressor.evaluation.benchmark import BenchmarkSettings
from compressor.evaluation.benchmarker import Benchmarker, benchmark_feeds
from compressor.evaluation.builder import PLAN_FILE, Builder, quantization_status
from compressor.evaluation.candidates import Candidate, CandidateResult
from compressor.evaluation.gate import GateSettings
from compressor.evaluation.validator import Validator
from compressor.evaluation.variants import FLOAT_REASON, Variants
from compressor.quantization.qat import QatSettings
from compressor.quantization.settings import QuantizationSettings
from compressor.training.settings import FinetuneSettings

__all__ = ["PLAN_FILE", "FLOAT_REASON", "Candidate", "CandidateResult", "EvaluationSession", "SessionSettings", "benchmark_feeds",
           "quantization_status"]


@dataclass
class SessionSettings:
    """The run's settings sections a session reads (each the settings model of the part that uses it)."""

    quantization: QuantizationSettings = field(default_factory=QuantizationSettings)
    benchmark: BenchmarkSettings = field(default_factory=BenchmarkSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    build: BuildSettings = field(default_factory=BuildSettings)
    qat: QatSettings = field(default_factory=QatSettings)


class EvaluationSession:
    def __init__(self, model: ModelHandle, ctx: RunContext, settings: SessionSettings | None = None):
        """``ctx`` carries the eval data (required), calibration and fine-tuning data, progress and warnings; its threads default
        to the benchmark's."""
        s = settings or SessionSettings()
        self.model, self.ctx = model, ctx
        self.benchmark = s.benchmark.resolved()
        ctx.threads = ctx.threads or self.benchmark.threads
        self.quantization, self.gate, self.qat, self.finetune = s.quantization, s.gate, s.qat, s.finetune
        self._tmp = tempfile.TemporaryDirectory(prefix="compressor-session-")
        self._n = 0
        self.variants = Variants(model, ctx, s.quantization, s.qat, s.finetune, self._workdir)
        self.validator = Validator(model, ctx, s.gate)
        self.builder = Builder(model, ctx, s.build, self.variants, self._tuning, self._workdir)
        self.benchmarker = Benchmarker(model, ctx, self.benchmark, self.variants, self._workdir)

    # --- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        self.variants.close()
        self._tmp.cleanup()

    def __enter__(self) -> EvaluationSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _workdir(self, label: str) -> Path:
        self._n += 1
        d = Path(self._tmp.name) / f"{self._n:03d}-{label.replace(' ', '_').replace('(', '').replace(')', '')}"
        d.mkdir(parents=True)
        return d

    def _tuning(self, model: ModelHandle):
        return self.validator.tuning(model) if self.gate.active else None

    # --- what the run shares -----------------------------------------------------------------------

    @property
    def eval_data(self):
        return self.ctx.eval_data

    @property
    def calib(self):
        return self.ctx.calib

    @property
    def threads(self) -> int:
        return self.ctx.threads

    @property
    def progress(self):
        return self.ctx.progress

    @property
    def warnings(self) -> list[str]:
        return self.ctx.warnings

    # --- the parts' public methods, where a command asks the session ------------------------------

    @property
    def eval_batch(self) -> int:
        return self.validator.eval_batch

    def reference_outputs(self):
        return self.validator.reference_outputs()

    def check_budgets(self) -> None:
        self.validator.check_budgets()

    @property
    def objective(self):
        return self.validator.objective

    def prepare(self, candidates: list[Candidate]) -> None:
        self.variants.prepare(candidates)

    def build(self, candidate: Candidate) -> CandidateResult:
        return self.builder.build(candidate)

    def analyze(self, target: str) -> dict:
        return self.builder.analyze(target)

    def validate(self, result: CandidateResult) -> None:
        self.validator.validate(result)

    def bench(self, result: CandidateResult, batch_sizes: list[int] | None = None) -> None:
        self.benchmarker.bench(result, batch_sizes)

    def eager(self, batch_size: int):
        return self.benchmarker.eager(batch_size)

    def benchmark_feeds(self, batch_size: int):
        return self.benchmarker.feeds(batch_size)

    # --- one candidate, start to end ---------------------------------------------------------------

    def evaluate(self, candidate: Candidate, batch_sizes: list[int] | None = None, benchmark: bool = True,
                 raise_errors: bool = False) -> CandidateResult:
        """Build, validate and benchmark one candidate. Unless ``raise_errors``, a failure is the result's status (an exception from
        outside the SDK's error family is raised where it happens under --debug and in tests)."""
        try:
            result = self.builder.build(candidate)
            if not result.ok:
                return result
            runs, why = get_backend(result.target.backend).runnable(result.target)
            if not runs:
                result.status, result.reason = "built", f"not run: {why}"
                return result
            self.validator.validate(result)
            if benchmark:
                self.benchmarker.bench(result, batch_sizes)
            return result
        except Exception as e:  # noqa: BLE001 - one candidate's failure is its result; the caller decides
            if raise_errors or (strict() and not isinstance(e, CompressorError)):
                raise
            return CandidateResult(candidate, self._safe_target(candidate.target), "failed", first_line(e))

    @staticmethod
    def _safe_target(name: str) -> TargetSpec | None:
        try:
            return get_target(name)
        except TargetError:
            return None

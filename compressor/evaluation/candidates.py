"""What an evaluation session builds (a candidate) and what it found (a candidate's result)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compressor.core.backend import Artifact
from compressor.core.fidelity import Fidelity
from compressor.core.targets import TargetSpec
from compressor.evaluation.benchmark import BenchFailure, BenchResult
from compressor.pruning.settings import PruningSettings
from compressor.quantization.plan import QuantPlan
from compressor.quantization.qat import QatSettings
from compressor.quantization.settings import QuantizationSettings


@dataclass(frozen=True)
class Candidate:
    """What to build: a target, the pruning to apply first (None: the model as loaded), and the quantization and
    QAT settings (None: the session's)."""

    target: str
    pruning: PruningSettings | None = None
    quantization: QuantizationSettings | None = None
    qat: QatSettings | None = None
    float_layers: tuple[str, ...] = ()  # layers returned to float on top of the plan (the steps of --auto-precision)

    @property
    def label(self) -> str:
        return self.target if self.pruning is None else f"{self.target} (pruned)"


@dataclass
class CandidateResult:
    candidate: Candidate
    target: TargetSpec | None
    status: str  # ok | built (built here, cannot run here: not validated, not benchmarked) | unusable | failed
    reason: str = ""
    artifact: Artifact | None = None
    fidelity: Fidelity | None = None
    outputs: list[np.ndarray] | None = None  # the artifact's outputs on the eval data
    benchmarks: dict[int, BenchResult | BenchFailure] = field(default_factory=dict)  # batch size -> its measurement
    quantization: dict[str, Any] | None = None  # plan summary, kernel report, sensitivity
    plan: QuantPlan | None = None
    pruning: dict[str, Any] | None = None
    build: dict[str, Any] = field(default_factory=dict)  # how the artifact was made (export, IR, backend details)
    qat: Any = None  # the QatResult the artifact was made from (its fake-quantized model is compared with the artifact)
    warnings: list[str] = field(default_factory=list)
    build_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def size_bytes(self) -> int | None:
        return self.artifact.size_bytes if self.artifact is not None else None

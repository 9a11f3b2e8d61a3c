"""The gate: accuracy, size and memory budgets an artifact must meet before a bundle is written (recipe
section ``gate``; a run that fails it writes no bundle unless ``force``)."""

from __future__ import annotations

from typing import Optional

from compressor.core.fidelity import Fidelity
from compressor.core.objective import KINDS, Objective, objective_for
from compressor.core.options import GATE, Settings, option
from compressor.evaluation.benchmark import BenchResult


class GateSettings(Settings):
    max_accuracy_drop: Optional[float] = option(None, "Fail if accuracy drops more than X percentage points (needs labels).",
                                                flag="--max-accuracy-drop", panel=GATE, ge=0)
    min_agreement: Optional[float] = option(None, "Fail if top-1 agreement with FP32 is below X (0..1).", flag="--min-agreement",
                                            panel=GATE, ge=0, le=1)
    min_cosine: Optional[float] = option(None, "Fail if the mean cosine similarity with FP32 outputs is below X (embeddings).",
                                         flag="--min-cosine", panel=GATE, ge=-1, le=1)
    max_size_mb: Optional[float] = option(None, "Fail if the model file(s) exceed X MiB (2^20 bytes; says by how much).", flag="--max-size-mb",
                                          panel=GATE, gt=0)
    max_memory_mb: Optional[float] = option(None, "Fail if loading and running the model takes more than X MiB (measured).",
                                            flag="--max-memory-mb", panel=GATE, gt=0)
    max_latency_ms: Optional[float] = option(None, "Fail if the p50 latency (at the benchmark's batch size and threads) is over X ms "
                                                   "(measured).", flag="--max-latency-ms", panel=GATE, gt=0)
    max_perplexity_increase: Optional[float] = option(None, "Fail if a language model's perplexity on the held-out text rises more "
                                                            "than X % over FP32 (--task text-generation).",
                                                      flag="--max-perplexity-increase", panel=GATE, ge=0)
    force: bool = option(False, "Write the bundle even if it fails its gate (marked as failing).", flag="--force", panel=GATE)

    @property
    def objectives(self) -> list[Objective]:
        """One objective per accuracy budget given, the primary one first."""
        return [Objective(k, v) for k in KINDS if (v := getattr(self, k.flag.lstrip("-").replace("-", "_"))) is not None]

    def objective(self, fidelity=None) -> Objective:
        """The objective the search, auto precision and the plots minimise: the first budget given (accuracy drop, then agreement,
        then cosine); with no accuracy budget, the first of them ``fidelity`` (a result on the run's eval data) measures."""
        return objective_for(self.objectives, fidelity)

    @property
    def active(self) -> bool:
        return bool(self.objectives)

    def size_failure(self, size_bytes: int) -> str | None:
        mb = size_bytes / 2**20
        if self.max_size_mb is not None and mb > self.max_size_mb:
            return f"the model is {mb:.2f} MiB, over --max-size-mb {self.max_size_mb:g} by {mb - self.max_size_mb:.2f} MiB"
        return None

    def memory_failure(self, model_rss_mb: float | None) -> str | None:
        if self.max_memory_mb is not None and model_rss_mb is not None and model_rss_mb > self.max_memory_mb:
            return (f"running the model takes {model_rss_mb:.1f} MiB, over --max-memory-mb {self.max_memory_mb:g} "
                    f"by {model_rss_mb - self.max_memory_mb:.1f} MiB")
        return None

    def latency_failure(self, p50_ms: float | None) -> str | None:
        if self.max_latency_ms is not None and p50_ms is not None and p50_ms > self.max_latency_ms:
            return f"p50 latency {p50_ms:.3g} ms is over --max-latency-ms {self.max_latency_ms:g} by {p50_ms - self.max_latency_ms:.3g} ms"
        return None

    def artifact_failures(self, f: Fidelity | None, size_bytes: int) -> list[str]:
        """What an artifact fails before it is run for time: its fidelity (None: not validated here) and its size."""
        return (self.failures(f) if f is not None else []) + [x for x in [self.size_failure(size_bytes)] if x]

    def measured_failures(self, bench: BenchResult) -> list[str]:
        """What a benchmark result fails: the memory and latency budgets."""
        return [x for x in (self.memory_failure(bench.model_rss_mb), self.latency_failure(bench.p50_ms)) if x]

    def check_measurable(self, reference: Fidelity, output_shape: tuple[int, ...]) -> None:
        """Refuse a budget this model's output cannot measure (``reference``: the FP32 outputs compared with themselves)."""
        for o in self.objectives:
            o.check_measurable(reference, output_shape)

    def failures(self, f: Fidelity) -> list[str]:
        return [x for o in self.objectives if (x := o.failure(f))]

    @classmethod
    def of_manifest(cls, gate: dict | None) -> GateSettings:
        """The budgets a bundle's manifest recorded (beside its verdict)."""
        return cls.model_validate({k: v for k, v in (gate or {}).items() if k in cls.model_fields})

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", exclude={"force"})

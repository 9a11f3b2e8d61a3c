"""The accuracy objective: which fidelity figure an accuracy budget measures, in what unit, which way is better, and what
"loss" means for it. Answered once here (``GateSettings.objective``) and read by the gate, the search, auto precision, INC's
autotune, every plot, the HTML report and the progress lines.

Each budget flag names one objective: ``--max-accuracy-drop`` (top-1 accuracy points lost, needs class scores and labels),
``--min-agreement`` (top-1 agreement with FP32, needs class scores), ``--min-cosine`` (mean output cosine with FP32, any
output), ``--max-perplexity-increase`` (a causal LM's perplexity on held-out
text, relative to FP32, in %; with it ``--min-agreement`` is next-token agreement). A loss is always "lower is better, 0 is
the FP32 model": the drop in points, 1 − agreement, 1 − cosine, or the perplexity increase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compressor.core.errors import GateError
from compressor.core.fidelity import Fidelity


@dataclass(frozen=True)
class Kind:
    flag: str
    metric: str  # the Fidelity field (and manifest key) it reads
    label: str  # what a person reads beside the value
    loss_label: str  # what a plot's loss axis says
    unit: str  # "points" or "" (a fraction)
    higher_is_better: bool
    fmt: str  # how the value is printed
    needs: str  # what the model's output must be for it to be measured
    fails: str  # why a value fails its limit: {v} and {limit}
    shown: str  # the Fidelity field plots and tables show for it (the accuracy itself rather than its drop)
    shown_label: str


ACCURACY = Kind("--max-accuracy-drop", "accuracy_drop_pp", "accuracy drop", "accuracy points lost", "points", False, ".2f",
                "class scores (N, classes) and labelled eval data", "accuracy dropped {v:.2f} points (limit {limit:g})", "accuracy",
                "top-1 accuracy")
AGREEMENT = Kind("--min-agreement", "top1_agreement", "top-1 agreement", "1 − top-1 agreement", "", True, ".4f", "class scores (N, classes)",
                 "top-1 agreement {v:.4f} is below {limit:g}", "top1_agreement", "top-1 agreement with FP32")
COSINE = Kind("--min-cosine", "cosine_mean", "mean cosine", "1 − mean cosine", "", True, ".5f", "any output",
              "mean cosine similarity {v:.5f} is below {limit:g}", "cosine_mean", "output cosine with FP32")
PERPLEXITY = Kind("--max-perplexity-increase", "perplexity_increase_pct", "perplexity increase", "perplexity increase (%)", "%", False,
                  ".2f", "a causal LM (--task text-generation) scored on held-out text",
                  "perplexity rose {v:.2f} % over FP32 (limit {limit:g} %)", "perplexity", "perplexity")
KINDS = (ACCURACY, AGREEMENT, COSINE, PERPLEXITY)  # the order in which one is the primary objective when several budgets are given


def read(fidelity: Fidelity | dict[str, Any] | None, metric: str) -> float | None:
    """A fidelity figure from a Fidelity or its manifest form (the search keeps records as JSON)."""
    if fidelity is None:
        return None
    value = fidelity.get(metric) if isinstance(fidelity, dict) else getattr(fidelity, metric, None)
    return None if value is None else float(value)


@dataclass(frozen=True)
class Objective:
    kind: Kind
    limit: float | None  # the budget in the metric's own terms (None: measured and minimised, no budget)

    @property
    def metric(self) -> str:
        return self.kind.metric

    @property
    def label(self) -> str:
        return self.kind.label

    @property
    def unit(self) -> str:
        return self.kind.unit

    @property
    def higher_is_better(self) -> bool:
        return self.kind.higher_is_better

    def value(self, fidelity) -> float | None:
        return read(fidelity, self.metric)

    def _to_loss(self, v: float | None) -> float | None:
        if v is None:
            return None
        return 1.0 - v if self.higher_is_better else v

    def loss(self, fidelity) -> float | None:
        """Lower is better, 0 is the FP32 model (None: not measured on this output)."""
        return self._to_loss(self.value(fidelity))

    @property
    def loss_limit(self) -> float | None:
        return self._to_loss(self.limit)

    @property
    def loss_label(self) -> str:
        return self.kind.loss_label

    def format(self, v: float | None) -> str:
        if v is None:
            return "–"
        return f"{v:{self.kind.fmt}}" + (f" {self.unit}" if self.unit else "")

    def failure(self, fidelity) -> str | None:
        """Why ``fidelity`` fails this budget (None: it meets it, or there is no budget)."""
        if self.limit is None:
            return None
        v = self.value(fidelity)
        if v is None:
            return f"{self.kind.flag} needs {self.kind.needs}: it was not measured here"
        over = v < self.limit if self.higher_is_better else v > self.limit
        return self.kind.fails.format(v=v, limit=self.limit) if over else None

    def check_measurable(self, reference: Fidelity, output_shape: tuple[int, ...]) -> None:
        """Refuse, in one line, a budget this model's output cannot measure (``reference``: the FP32 outputs against themselves)."""
        if self.limit is None or self.value(reference) is not None:
            return
        if self.kind is PERPLEXITY:
            raise GateError(f"{self.kind.flag} gates a causal language model's perplexity on held-out text, and this model's first "
                            f"output has shape {output_shape}: compress a language model with --task text-generation, or gate this one "
                            "with --min-agreement / --min-cosine / --max-accuracy-drop")
        classifier = reference.top1_agreement is not None
        if not classifier:
            raise GateError(f"{self.kind.flag} needs {self.kind.needs}, and this model's first output has shape {output_shape} (not class "
                            "scores): gate it with --min-cosine X (mean output cosine with FP32), or pass --task classification if it is "
                            "a classifier")
        raise GateError(f"{self.kind.flag} needs labelled eval data, and this eval data has no labels: add labels (--eval-labels), or "
                        "gate with --min-agreement X (top-1 agreement with FP32)")

    def inc_tolerance(self, reference: Fidelity) -> tuple[str, float]:
        """Intel Neural Compressor's autotune objective: the Fidelity field it maximises and the relative loss it may tolerate."""
        if self.kind is ACCURACY:
            base = reference.reference_accuracy or 0.0
            return "accuracy", (self.limit / 100 / base) if base else 0.0
        return self.metric, max(self.loss_limit or 0.0, 0.0)

    def progress(self, fidelity) -> str:
        """The objective's figure for a progress line ("accuracy drop 0.12 points")."""
        return f"{self.label} {self.format(self.value(fidelity))}"

    def describe(self) -> dict[str, Any]:
        return {"flag": self.kind.flag, "metric": self.metric, "label": self.label, "unit": self.unit, "limit": self.limit,
                "higher_is_better": self.higher_is_better, "loss": self.loss_label, "loss_limit": self.loss_limit, "shown": self.kind.shown,
                "shown_label": self.kind.shown_label}


def objective_for(budgets: list[Objective], fidelity) -> Objective:
    """The objective to minimise: the first budget given; with none, the first of accuracy drop, top-1 agreement and output
    cosine that ``fidelity`` (any result on the run's eval data) measures, measured but not limited."""
    if budgets:
        return budgets[0]
    return Objective(next(k for k in KINDS if k is COSINE or read(fidelity, k.metric) is not None), None)

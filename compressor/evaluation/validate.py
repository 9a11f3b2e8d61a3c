"""Fidelity of an artifact against the FP32 reference, written once against :class:`Runner`.

Task-level metrics (top-1 agreement, accuracy) beside tensor-level ones (cosine similarity, maximum
absolute error), because backends disagree in ways absolute tolerances alone hide or exaggerate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator, Sequence

import numpy as np

from compressor.data.sources import DataSource
from compressor.core.errors import GateError
from compressor.core.backend import Runner
from compressor.core.specs import InputSpec


@dataclass
class Fidelity:
    samples: int
    synthetic: bool
    top1_agreement: float | None
    cosine_mean: float
    cosine_min: float
    max_abs_error: float
    accuracy: float | None = None
    reference_accuracy: float | None = None
    per_output: list[dict] = field(default_factory=list)

    @property
    def accuracy_drop_pp(self) -> float | None:
        if self.accuracy is None or self.reference_accuracy is None:
            return None
        return (self.reference_accuracy - self.accuracy) * 100.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["accuracy_drop_pp"] = self.accuracy_drop_pp
        return d


def eval_batch_size(specs: Sequence[InputSpec], preferred: int = 32) -> int:
    """The batch to feed: the static batch if the spec fixes one, else ``preferred`` within range."""
    first = specs[0].dims[0] if specs and specs[0].dims else None
    if first is None:
        return 1
    if not first.dynamic:
        return first.value
    return max(first.min, min(preferred, first.max))


def iter_feeds(data: DataSource, specs: Sequence[InputSpec], batch: int) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """Feeds of exactly ``batch`` samples (the last one padded by repetition) and how many are real."""
    for arrays, _ in data.batches(batch):
        real = arrays[0].shape[0]
        if real < batch:
            arrays = [np.concatenate([a, np.repeat(a[-1:], batch - real, axis=0)]) for a in arrays]
        yield {s.name: np.ascontiguousarray(a) for s, a in zip(specs, arrays)}, real


def run_all(runner: Runner, data: DataSource, specs: Sequence[InputSpec], batch: int, progress=None) -> list[np.ndarray]:
    """Every output of ``runner`` over ``data``, concatenated along the sample axis."""
    chunks: list[list[np.ndarray]] = []
    for feeds, real in iter_feeds(data, specs, batch):
        outs = runner.run(feeds)
        chunks.append([np.asarray(o)[:real] for o in outs])
        if progress is not None:
            progress(real)
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]


def _is_classifier(out: np.ndarray) -> bool:
    return out.ndim == 2 and out.shape[1] > 1


def cosine_per_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sample's flattened values (1 where both are all zero)."""
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    b = b.reshape(b.shape[0], -1).astype(np.float64)
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = den == 0
    cos = np.where(both_zero, 1.0, num / np.where(both_zero, 1.0, den))
    return np.clip(cos, -1.0, 1.0)


TASKS = ("auto", "classification", "embedding", "other")


def compare(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], labels: np.ndarray | None, synthetic: bool,
            task: str = "auto") -> Fidelity:
    """Fidelity of ``candidate`` outputs against ``reference`` outputs (same samples, same order).

    ``task`` says what the first output is: class scores (top-1 agreement and accuracy make sense),
    an embedding (only cosine and error do), or ``auto`` (a 2-D output with several columns is taken
    as class scores)."""
    if len(reference) != len(candidate):
        raise GateError(f"the artifact returns {len(candidate)} outputs but the reference returns {len(reference)}")
    per_output = []
    cos_all = []
    for i, (r, c) in enumerate(zip(reference, candidate)):
        if r.shape != c.shape:
            raise GateError(f"output {i} has shape {c.shape} in the artifact but {r.shape} in the reference")
        cos = cosine_per_sample(r, c)
        cos_all.append(cos)
        per_output.append(
            {
                "index": i,
                "cosine_mean": float(cos.mean()),
                "cosine_min": float(cos.min()),
                "max_abs_error": float(np.abs(r.astype(np.float64) - c.astype(np.float64)).max()) if r.size else 0.0,
                "reference_max_abs": float(np.abs(r).max()) if r.size else 0.0,
            }
        )
    cos = np.concatenate(cos_all)
    main_r, main_c = reference[0], candidate[0]
    agreement = accuracy = ref_accuracy = None
    classifier = _is_classifier(main_r) if task == "auto" else task == "classification"
    if classifier and not _is_classifier(main_r):
        raise GateError(f"--task classification needs a (samples, classes) first output, got shape {main_r.shape}")
    if classifier:
        pr, pc = main_r.argmax(1), main_c.argmax(1)
        agreement = float((pr == pc).mean())
        if labels is not None:
            accuracy = float((pc == labels).mean())
            ref_accuracy = float((pr == labels).mean())
    return Fidelity(
        samples=int(main_r.shape[0]),
        synthetic=synthetic,
        top1_agreement=agreement,
        cosine_mean=float(cos.mean()),
        cosine_min=float(cos.min()),
        max_abs_error=max(p["max_abs_error"] for p in per_output),
        accuracy=accuracy,
        reference_accuracy=ref_accuracy,
        per_output=per_output,
    )


@dataclass
class Gate:
    """The accuracy gate: a run that fails it writes no bundle unless forced."""

    max_accuracy_drop: float | None = None  # percentage points
    min_agreement: float | None = None  # 0..1
    min_cosine: float | None = None  # mean cosine similarity, -1..1
    max_size_mb: float | None = None  # the model file(s)
    max_memory_mb: float | None = None  # memory the model adds to its process at load and while running

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.max_accuracy_drop, self.min_agreement, self.min_cosine))

    def size_failure(self, size_bytes: int) -> str | None:
        mb = size_bytes / 2**20
        if self.max_size_mb is not None and mb > self.max_size_mb:
            return f"the model is {mb:.2f} MB, over --max-size-mb {self.max_size_mb:g} by {mb - self.max_size_mb:.2f} MB"
        return None

    def memory_failure(self, model_rss_mb: float | None) -> str | None:
        if self.max_memory_mb is not None and model_rss_mb is not None and model_rss_mb > self.max_memory_mb:
            return (f"running the model takes {model_rss_mb:.1f} MB, over --max-memory-mb {self.max_memory_mb:g} "
                    f"by {model_rss_mb - self.max_memory_mb:.1f} MB")
        return None

    def check_possible(self, has_labels: bool) -> None:
        if self.max_accuracy_drop is not None and not has_labels:
            raise GateError(
                "--max-accuracy-drop needs labelled eval data, and this eval data has no labels: add labels, or gate with --min-agreement"
            )

    def failures(self, f: Fidelity) -> list[str]:
        out = []
        drop = f.accuracy_drop_pp
        if self.max_accuracy_drop is not None and drop is not None and drop > self.max_accuracy_drop:
            out.append(f"accuracy dropped {drop:.2f} points (limit {self.max_accuracy_drop:g})")
        if self.min_agreement is not None:
            if f.top1_agreement is None:
                out.append("--min-agreement needs a classifier output (N, classes); gate embeddings with --min-cosine")
            elif f.top1_agreement < self.min_agreement:
                out.append(f"top-1 agreement {f.top1_agreement:.4f} is below {self.min_agreement:g}")
        if self.min_cosine is not None and f.cosine_mean < self.min_cosine:
            out.append(f"mean cosine similarity {f.cosine_mean:.5f} is below {self.min_cosine:g}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)

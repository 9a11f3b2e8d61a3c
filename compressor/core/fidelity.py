"""Fidelity: how far a candidate's outputs are from the FP32 reference's, on the same samples.

Task-level metrics (top-1 agreement, accuracy) beside tensor-level ones (cosine similarity, maximum
absolute error), because backends disagree in ways absolute tolerances alone hide or exaggerate.
Pure numpy, used by validation, sensitivity analysis and verification alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from compressor.core.errors import GateError


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

"""Who chooses an INT8 plan's ranges (``--quantizer``), and what each one can do. A guard asks a capability, never a name:
the one table here answers "can this quantizer be trained, simulated, mixed, tuned, bias-corrected"."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class QuantizerName(enum.StrEnum):
    SDK = "sdk"
    NNCF = "nncf"
    INC = "inc"


@dataclass(frozen=True)
class Quantizer:
    name: str
    help: str
    supports_qat: bool = False  # learned ranges reach its artifact
    supports_simulation: bool = False  # its plan runs as QDQ on ONNX Runtime (per-layer sensitivity in simulation)
    supports_auto_precision: bool = False  # single layers can be returned to float in its plan
    supports_bias_correction: bool = False  # its realisers add the plan's bias corrections
    tunes: bool = False  # it searches its own configuration against the accuracy gate (autotune)


QUANTIZERS: dict[str, Quantizer] = {q.name: q for q in (
    Quantizer(QuantizerName.SDK, "default: this SDK's plan", supports_qat=True, supports_simulation=True, supports_auto_precision=True,
              supports_bias_correction=True),
    Quantizer(QuantizerName.NNCF, "OpenVINO INT8, NNCF's own ranges"),
    Quantizer(QuantizerName.INC, "torch-inductor-cpu-int8: Intel Neural Compressor's observers; with a gate, its autotune", tunes=True),
)}
NAMES = tuple(QUANTIZERS)
DEFAULT = QuantizerName.SDK


def quantizer(name: str) -> Quantizer:
    return QUANTIZERS[name]


def of_plan(plan_quantizer: str) -> Quantizer:
    """The quantizer a plan records (``"nncf 3.4.0 (default preset, …)"``: its first word)."""
    return QUANTIZERS[plan_quantizer.split()[0]]


def which_can(capability: str) -> str:
    """``--quantizer a``/``b``: the quantizers that have ``capability`` (for error messages)."""
    return " / ".join(f"--quantizer {q.name}" for q in QUANTIZERS.values() if getattr(q, capability))

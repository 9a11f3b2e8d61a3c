"""The quantization plan: every per-layer and per-tensor decision in one backend-neutral structure.

PTQ fills it (structure from the exported graph, ranges from calibration); QAT and mixed precision
will refine it; exporters realise it (``qdq_onnx`` for ONNX Runtime, OpenVINO and TensorRT). Layers
are named after the PyTorch modules they come from (``layer1.0.conv1``), tensors after the exported
graph's tensor names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from compressor.quantization.quantizers import QuantizerName

CALIBRATION_METHODS = ("minmax", "percentile", "mse", "entropy")
DEFAULT_CALIBRATION = "mse"  # measured best or equal on the bundled models: benchmarks/results/int8.md
DEFAULT_PERCENTILE = 99.999


@dataclass
class TensorQuant:
    """Per-tensor activation quantization: ``q = clamp(round(x / scale) + zero_point)``."""

    name: str
    dtype: str  # uint8 | int8
    scale: float
    zero_point: int
    range: tuple[float, float]
    method: str


@dataclass
class WeightQuant:
    granularity: str  # per_channel | per_tensor
    axis: int
    dtype: str  # int8
    symmetric: bool
    scales: list[float]


@dataclass
class LayerQuant:
    """One layer with weights (Conv, Gemm, MatMul with a constant weight)."""

    name: str  # the PyTorch module path where known, else the graph node name
    node: str  # the exported graph's node name
    op_type: str  # Conv | Gemm | MatMul
    module_type: str | None  # e.g. Conv2d, Linear
    precision: str  # int8 | int8-weight-only (int8 weights, float compute) | float
    reason: str = ""  # why it stays float
    weight: WeightQuant | None = None
    inputs: list[str] = field(default_factory=list)  # activation tensors feeding it
    output: str | None = None  # the (quantized) tensor it produces
    macs: int | None = None
    bias_correction: list[float] | None = None  # added to the layer's bias by every realiser (see bias_correction.py)


@dataclass
class QuantPlan:
    mode: str  # static | dynamic
    activation_dtype: str  # uint8 (ONNX Runtime on x86: unsigned activations, signed weights)
    weight_dtype: str  # int8
    calibration: dict[str, Any]  # method, samples, percentile
    layers: list[LayerQuant]
    activations: dict[str, TensorQuant] = field(default_factory=dict)
    # element-wise / pooling ops kept on the INT8 path (QLinearAdd, …) and float ops left as they are
    other_quantized_ops: list[str] = field(default_factory=list)
    # Relu/Clip nodes folded into the quantization of their producer's output: node name -> tensor
    folded: dict[str, str] = field(default_factory=dict)
    exclusions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # ranges of tensors other realisers quantize besides the plan's Q/DQ tensors (PT2E quantizers observe more),
    # calibrated in the same pass so every target of a run shares one calibration
    extra_activations: dict[str, TensorQuant] = field(default_factory=dict)
    quantizer: str = QuantizerName.SDK  # sdk (this SDK's calibration) | nncf (NNCF chose the ranges; activations stay empty)
    # float transforms applied to the model before it was planned (equalization, scale migration) and bias correction
    transforms: dict[str, Any] = field(default_factory=dict)

    def symmetric(self) -> QuantPlan:
        """The same plan with every activation quantized symmetric int8 (zero point 0, scale from the larger side of its
        range), as TensorRT's explicit quantization requires; the ranges are the plan's. A plan that already is comes back as is."""
        import copy

        if all(q.dtype == "int8" and q.zero_point == 0 for q in self.activations.values()):
            return self
        plan = copy.deepcopy(self)
        for t, q in plan.activations.items():
            amax = max(abs(q.range[0]), abs(q.range[1]), 1e-8)
            plan.activations[t] = TensorQuant(t, "int8", amax / 127.0, 0, q.range, q.method)
        plan.activation_dtype = "int8 (symmetric)"
        return plan

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Every calibrated tensor's range: the Q/DQ tensors and the extra ones."""
        return {t: tuple(q.range) for t, q in {**self.extra_activations, **self.activations}.items()}

    @property
    def int8_layers(self) -> list[LayerQuant]:
        """Layers computed in INT8."""
        return [l for l in self.layers if l.precision == "int8"]

    @property
    def quantized_layers(self) -> list[LayerQuant]:
        """Layers whose weights are stored int8 (computed in INT8, or weight-only)."""
        return [l for l in self.layers if l.precision in ("int8", "int8-weight-only")]

    def layer(self, name: str) -> LayerQuant:
        return next(l for l in self.layers if l.name == name)

    def summary(self) -> dict[str, Any]:
        """What the manifest records (the full plan travels as a separate file)."""
        return {
            "mode": self.mode,
            "quantizer": self.quantizer,
            "activation_dtype": self.activation_dtype,
            "weight_dtype": self.weight_dtype,
            "weight_granularity": "per_channel",
            "calibration": self.calibration,
            "layers_total": len(self.layers),
            "layers_int8": len(self.int8_layers),
            "layers_int8_weight_only": {l.name: l.reason for l in self.layers if l.precision == "int8-weight-only"},
            "float_layers": {l.name: l.reason for l in self.layers if l.precision == "float"},
            "quantized_activation_tensors": len(self.activations),
            "other_quantized_ops": len(self.other_quantized_ops),
            "exclusions": self.exclusions,
            "warnings": self.warnings,
            "transforms": self.transforms,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

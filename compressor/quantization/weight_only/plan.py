"""The weight-only plan: per layer, the grid and the method that chose its codes, plus the codes themselves.

The JSON part (``to_dict``) goes to the manifest and REPORT; the tensors (codes, scales, zero points) stay in memory for
the realisers of the same run, which pack them (they never re-round a weight).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from compressor.quantization.weight_only.grid import Grid


@dataclass
class WeightLayer:
    name: str  # the torch module path (model.layers.3.mlp.down_proj)
    bits: int
    group: int
    symmetric: bool
    in_features: int
    out_features: int
    method: str  # rtn | scale_estimation | gptq (+ awq when its input channels were scaled)
    error: float  # Σ H_jj ΔW² / Σ H_jj W²: the share of the layer's output energy the rounding lost (data-free: H = I)
    awq_alpha: float | None = None
    tied_to: list[str] = field(default_factory=list)  # other modules sharing this weight (tied embeddings)

    @property
    def grid(self) -> Grid:
        return Grid(self.bits, self.group, self.symmetric)


@dataclass
class QuantizedWeight:
    codes: torch.Tensor  # out × in, uint8
    scale: torch.Tensor  # out × groups, float32
    zero: torch.Tensor  # out × groups (integers, float32)


@dataclass
class WeightOnlyPlan:
    settings: dict[str, Any]
    layers: list[WeightLayer]
    calibration: dict[str, Any]
    transforms: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, QuantizedWeight] = field(default_factory=dict, repr=False)

    def layer(self, name: str) -> WeightLayer | None:
        return next((layer for layer in self.layers if layer.name == name or name in layer.tied_to), None)

    def bits_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for layer in self.layers:
            hist[f"int{layer.bits}"] = hist.get(f"int{layer.bits}", 0) + 1
        return hist

    def params_by_bits(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for layer in self.layers:
            out[f"int{layer.bits}"] = out.get(f"int{layer.bits}", 0) + layer.in_features * layer.out_features
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "weight_only", "settings": self.settings, "calibration": self.calibration,
                "transforms": self.transforms, "layers": [asdict(layer) for layer in self.layers],
                "bits": self.bits_histogram(), "params_by_bits": self.params_by_bits()}

"""Targets: one name for a backend, a device, a precision, the IR it consumes and what it can do.

Everything the rest of the SDK needs to know about a target is a field here, typed; nothing reads
target names. Backends declare their targets (``Backend.TARGETS``) and are found through entry points
(:mod:`compressor.core.registry`); the catalogue is their union.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from compressor.core.specs import InputSpec


class Precision(enum.StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"  # static: weights and activations, activations calibrated ahead of time
    INT8_DYNAMIC = "int8-dynamic"  # weights int8 ahead of time, activations quantized at run time

    @property
    def quantized(self) -> bool:
        return self in (Precision.INT8, Precision.INT8_DYNAMIC)

    @property
    def quant_mode(self) -> PlanMode | None:
        """The plan mode of quantized precisions, else None."""
        return {Precision.INT8: PlanMode.STATIC, Precision.INT8_DYNAMIC: PlanMode.DYNAMIC}.get(self)


class PlanMode(enum.StrEnum):
    """How an INT8 plan quantizes activations."""

    STATIC = "static"  # calibrated ahead of time
    DYNAMIC = "dynamic"  # measured at run time


class Device(enum.StrEnum):
    CPU = "cpu"
    GPU = "gpu"
    EDGE = "edge"


class IRFormat(enum.StrEnum):
    """What a backend compiles: the SDK exports (and, for quantized targets, realises a plan in) this form."""

    ONNX = "onnx"  # an ONNX file: float, QDQ or dynamic-INT8, in ONNX Runtime's canonical layout
    TORCH = "torch-export"  # a torch.export program: float, or PT2E-quantized


@dataclass(frozen=True)
class TargetSpec:
    name: str
    backend: str  # the entry-point name of the backend that builds and runs it
    device: Device
    precision: Precision
    ir: IRFormat
    artifact_format: str  # what the artifact is, for people: onnx | pt2 | openvino-ir | pte | ort | engine
    description: str
    #: suffixes of bare artifact files this target runs when no target is named (``compressor bench model.onnx``)
    opens: tuple[str, ...] = ()
    #: pruning rounds channel counts to this multiple (None: 16 for INT8 kernels, 8 for float SIMD)
    channel_multiple: int | None = None
    #: quantizers this target accepts: the SDK's own plan ("sdk") and alternatives ("nncf")
    quantizers: tuple[str, ...] = ("sdk",)
    #: PT2E quantizer flavour that matches the runtime's INT8 kernels (TORCH IR with INT8 only)
    pt2e_quantizer: str | None = None
    #: how static INT8 is laid out in ONNX for this runtime (see compressor/quantization/qdq.py: LAYOUTS)
    qdq_layout: str = "ort"
    #: hardware it needs, shown by ``compressor targets``
    needs: str = ""
    #: the FP32 reference every other target is validated and timed against
    reference: bool = False
    # Filled per run: the shape profile (from the input spec) and runtime options.
    inputs: tuple[InputSpec, ...] = ()
    runtime: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_calibration(self) -> bool:
        return self.precision == Precision.INT8

    @property
    def prune_multiple(self) -> int:
        """Channel multiple that keeps the target's SIMD kernels full (x86 f32: 8; int8 kernels: 16)."""
        if self.channel_multiple is not None:
            return self.channel_multiple
        return 16 if self.precision.quantized else 8

    def with_run(self, inputs: tuple[InputSpec, ...] | list[InputSpec], threads: int | None = None) -> TargetSpec:
        return replace(self, inputs=tuple(inputs), runtime={**self.runtime, "threads": threads})

    def shape_profile(self) -> dict[str, dict[str, list[int]]]:
        """min/opt/max shape per input, for runtimes that build for a profile."""
        return {
            s.name: {
                "min": [d.value if not d.dynamic else d.min for d in s.dims],
                "opt": [d.value if not d.dynamic else d.min for d in s.dims],
                "max": [d.value if not d.dynamic else d.max for d in s.dims],
            }
            for s in self.inputs
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "device": self.device.value,
            "precision": self.precision.value,
            "ir": self.ir.value,
            "artifact_format": self.artifact_format,
            "shape_profile": self.shape_profile(),
            "runtime": self.runtime,
        }


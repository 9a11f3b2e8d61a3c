"""The target catalogue: one string names a backend, a device, a precision and an artifact format.

A target is parsed and validated once here. The catalogue lists targets that later releases will
implement too, so ``compressor targets`` can say plainly what exists, what works on this machine and
what does not (and why).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from compressor.core.errors import TargetError
from compressor.core.specs import InputSpec


@dataclass(frozen=True)
class TargetSpec:
    name: str
    backend: str  # key in the backend registry (backends/__init__.py)
    device: str  # cpu | gpu | edge
    precision: str  # fp32 | fp16 | bf16 | int8 | int8-dynamic
    artifact_format: str  # onnx | pt2 | openvino-ir | engine | pte
    description: str
    implemented: bool = True
    # Filled per run: the shape profile (from the input spec) and runtime options.
    inputs: tuple[InputSpec, ...] = ()
    runtime: dict[str, Any] = field(default_factory=dict)

    def with_run(self, inputs: tuple[InputSpec, ...] | list[InputSpec], threads: int | None = None) -> "TargetSpec":
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
            "device": self.device,
            "precision": self.precision,
            "artifact_format": self.artifact_format,
            "shape_profile": self.shape_profile(),
            "runtime": self.runtime,
        }


_PLANNED = "not implemented in this release"

CATALOGUE: dict[str, TargetSpec] = {
    t.name: t
    for t in [
        TargetSpec("torch-cpu-fp32", "torch", "cpu", "fp32", "pt2", "PyTorch eager, the FP32 reference (torch.export program)"),
        TargetSpec("ort-cpu-fp32", "onnxruntime", "cpu", "fp32", "onnx", "ONNX Runtime CPU execution provider, FP32"),
        TargetSpec("ort-cpu-int8", "onnxruntime", "cpu", "int8", "onnx", "ONNX Runtime CPU, static INT8 (QDQ, calibrated)"),
        TargetSpec("ort-cpu-int8-dynamic", "onnxruntime", "cpu", "int8-dynamic", "onnx", "ONNX Runtime CPU, dynamic INT8 (MatMul/Gemm weights)"),
        TargetSpec("ort-mobile-int8", "onnxruntime", "edge", "int8", "ort", "ONNX Runtime Mobile .ort format, static INT8 (the SDK's plan)"),
        TargetSpec("openvino-cpu-fp32", "openvino", "cpu", "fp32", "openvino-ir", "OpenVINO CPU, f32 inference precision (set explicitly)"),
        TargetSpec("openvino-cpu-bf16", "openvino", "cpu", "bf16", "openvino-ir", "OpenVINO CPU, bf16 inference precision (needs AVX512-BF16/AMX)"),
        TargetSpec("openvino-cpu-int8", "openvino", "cpu", "int8", "openvino-ir", "OpenVINO CPU, INT8 (the SDK's plan, or --quantizer nncf)"),
        TargetSpec("tensorrt-gpu-fp16", "tensorrt", "gpu", "fp16", "engine", "TensorRT engine, FP16", implemented=False),
        TargetSpec("tensorrt-gpu-int8", "tensorrt", "gpu", "int8", "engine", "TensorRT engine, INT8", implemented=False),
        TargetSpec("executorch-xnnpack-fp32", "executorch", "edge", "fp32", "pte", "ExecuTorch .pte for edge devices, XNNPACK delegate, FP32"),
        TargetSpec("executorch-xnnpack-int8", "executorch", "edge", "int8", "pte", "ExecuTorch .pte for edge devices, XNNPACK delegate, INT8 (PT2E, the SDK's calibration)"),
    ]
}

REFERENCE_TARGET = "torch-cpu-fp32"


def get_target(name: str) -> TargetSpec:
    """The catalogue entry for ``name``; an unknown or unimplemented name raises a TargetError."""
    spec = CATALOGUE.get(name)
    if spec is None:
        raise TargetError(f"unknown target '{name}': known targets are {', '.join(CATALOGUE)}")
    if not spec.implemented:
        usable = ", ".join(n for n, t in CATALOGUE.items() if t.implemented)
        raise TargetError(f"target '{name}' is {_PLANNED}: use one of {usable}")
    return spec


def planned_reason() -> str:
    return _PLANNED

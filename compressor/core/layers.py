"""Which ops of each IR are layers with weights: one table per IR, read by planning, sensitivity and every backend's kernel
report (so "what is a weight layer" is answered once per IR)."""

from __future__ import annotations

#: ONNX ops whose second input is a layer's weight (what a QDQ plan quantizes and a runtime may run in INT8)
ONNX_WEIGHT_OPS = ("Conv", "Gemm", "MatMul")

#: torch (aten) ops that are layers with weights, by kind: ``conv`` and ``linear`` take the weight as their second argument
#: as the module holds it; ``matmul`` (addmm/mm, what a decomposed Linear becomes) takes it transposed
TORCH_WEIGHT_OPS = {"conv1d": "conv", "conv2d": "conv", "conv3d": "conv", "convolution": "conv", "linear": "linear",
                    "addmm": "matmul", "mm": "matmul"}


def torch_layer_kind(node) -> str | None:
    """The kind of an FX node that is a weight layer (``aten.conv2d.default`` -> ``conv``), else None."""
    if getattr(node, "op", None) != "call_function":
        return None
    parts = str(node.target).split(".")
    return TORCH_WEIGHT_OPS.get(parts[1] if len(parts) > 2 and parts[0] == "aten" else parts[-1])

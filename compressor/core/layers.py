"""Which ops of each IR are layers with weights: one table per IR, read by planning, sensitivity and every backend's kernel
report (so "what is a weight layer" is answered once per IR)."""

from __future__ import annotations

#: ONNX ops whose second input is a layer's weight (what a QDQ plan quantizes and a runtime may run in INT8)
ONNX_WEIGHT_OPS = ("Conv", "Gemm", "MatMul")

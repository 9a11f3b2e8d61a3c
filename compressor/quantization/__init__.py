"""Backend-neutral quantization: plans (what is INT8), calibration (with which ranges), exporters
that realise a plan (QDQ / dynamic ONNX), and per-layer sensitivity analysis."""

"""The quantization stage, backend-neutral: plans (what is INT8), one calibration per model shared by every
target, realisers that turn a plan into a target's IR (QDQ / dynamic ONNX, PT2E torch programs, NNCF's OpenVINO
model), and per-layer sensitivity analysis."""

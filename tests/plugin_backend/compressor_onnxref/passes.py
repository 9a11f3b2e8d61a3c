"""The plugin's plan pass: every activation scale rounded up to a power of two, so that integer hardware requantizes by
shifts; each zero point is recomputed so the tensor's calibrated range stays representable. Runs with ``--pass pow2-scales``."""

from __future__ import annotations

import math

from compressor.quantization.pipeline import PLAN, CompressionPass


class Pow2Scales(CompressionPass):
    name, phase, order = "pow2-scales", PLAN, 50
    description = "activation scales rounded up to powers of two (requantization by shifts); the compressor-onnxref example plugin"

    def applies_to(self, stage, plan=None):
        if plan is None or not plan.activations:
            return False, "the plan quantizes no activation"
        return True, ""

    def run(self, stage, plan=None):
        grown = []
        for q in plan.activations.values():
            scale = 2.0 ** math.ceil(math.log2(q.scale))
            grown.append(scale / q.scale)
            lo = q.range[0]
            if q.dtype == "uint8":
                q.zero_point = int(min(255, max(0, round(-lo / scale))))
            q.scale = scale
        return {"applied": True, "tensors": len(grown), "largest_scale_growth": max(grown)}

    def report_lines(self, record):
        return [f"- Power-of-two activation scales on {record['tensors']} tensors (a scale grew ×{record['largest_scale_growth']:.2f} "
                "at most)"]

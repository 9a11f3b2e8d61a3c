"""The weight-only plan realised for OpenVINO: each planned weight becomes OpenVINO's decompression subgraph
(``Constant u4/u8 codes → Convert f16 → Subtract zero point → Multiply f16 scale → Reshape → Convert f32``), the pattern
the CPU plugin runs as a FullyConnected (or Gather) over compressed weights with dynamically quantized activations, and
the one NNCF writes. The codes and zero points are the plan's own; the scales are stored in float16, as NNCF stores
them: with float32 scales a group-64 INT4 layer moves 4.56 bits per weight instead of 4.31, and decode (memory-bound)
measured 6 % slower than NNCF's IR for it (benchmarks/results/llm.md). The float16 rounding of a scale changes a weight by
at most 2⁻¹¹ of itself; the artifact's agreement with the plan is measured and recorded as for every target.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor.quantization.weight_only.grid import grouped
from compressor.quantization.weight_only.plan import WeightOnlyPlan


def compressed_weights(plan: WeightOnlyPlan, counts: dict[str, int]):
    """A ``weights(name, tensor)`` function for :func:`compressor.io.export_openvino_lm.decoder_graph`: the planned
    layers compressed, the others float32 (``counts`` is filled as it goes)."""
    import openvino as ov
    import openvino.opset13 as ops

    built: dict[str, Any] = {}

    def weights(name: str, tensor):
        layer = plan.layer(name)
        if layer is None:
            counts["float"] = counts.get("float", 0) + 1
            return ops.constant(tensor.detach().float().numpy(), name=name + ".weight").output(0)
        if layer.name in built:  # a tied weight: one set of codes for the embedding lookup and lm_head
            return built[layer.name]
        t = plan.tensors[layer.name]
        n, k = t.codes.shape
        grid = layer.grid
        q = grouped(t.codes, grid).numpy().astype(np.uint8)  # out × groups × group (the last group padded with code 0)
        kind = ov.Type.u4 if layer.bits == 4 else ov.Type.u8
        codes = ops.constant(q, dtype=kind, name=layer.name + ".weight")
        zero = ops.constant(t.zero.numpy().astype(np.uint8)[..., None], dtype=kind, name=layer.name + ".weight/zero_point")
        scale = ops.constant(t.scale.numpy().astype(np.float16)[..., None], name=layer.name + ".weight/scale")
        w = ops.multiply(ops.subtract(ops.convert(codes, ov.Type.f16), ops.convert(zero, ov.Type.f16)), scale)
        w = ops.reshape(w, ops.constant(np.int64([n, q.shape[1] * q.shape[2]])), special_zero=False)
        if q.shape[1] * q.shape[2] != k:
            w = ops.slice(w, ops.constant(np.int64([0])), ops.constant(np.int64([k])), ops.constant(np.int64([1])),
                          ops.constant(np.int64([1])))
        w = ops.convert(w, ov.Type.f32)  # after the reshape, as NNCF's IR has it: the CPU plugin's pattern
        counts[f"int{layer.bits}"] = counts.get(f"int{layer.bits}", 0) + 1
        built[layer.name] = w.output(0)
        return built[layer.name]

    return weights

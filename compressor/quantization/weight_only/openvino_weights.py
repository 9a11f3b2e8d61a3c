"""The weight-only plan realised for OpenVINO: each planned weight becomes OpenVINO's decompression subgraph
(``Constant u4/u8 codes → Convert → Subtract zero point → Multiply scale → Reshape``), the pattern the CPU plugin runs as
a FullyConnected (or Gather) over compressed weights with dynamically quantized activations. The codes, scales and zero
points are the plan's own (scales stay float32): nothing is re-rounded, so the IR computes the plan's dequantized weights.
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
        scale = ops.constant(t.scale.numpy().astype(np.float32)[..., None], name=layer.name + ".weight/scale")
        w = ops.multiply(ops.subtract(ops.convert(codes, ov.Type.f32), ops.convert(zero, ov.Type.f32)), scale)
        w = ops.reshape(w, ops.constant(np.int64([n, q.shape[1] * q.shape[2]])), special_zero=False)
        if q.shape[1] * q.shape[2] != k:
            w = ops.slice(w, ops.constant(np.int64([0])), ops.constant(np.int64([k])), ops.constant(np.int64([1])),
                          ops.constant(np.int64([1])))
        counts[f"int{layer.bits}"] = counts.get(f"int{layer.bits}", 0) + 1
        built[layer.name] = w.output(0)
        return built[layer.name]

    return weights

"""Bias correction: remove the shift quantization puts in each INT8 layer's expected output.

The fast per-layer form (NNCF's fast bias correction, AIMET's empirical one): for every INT8 Conv/Gemm/MatMul
of the plan, its float input on the calibration data is run through the layer twice, once as it is and once
the way the INT8 kernel sees it (input quantized with the plan's activation parameters, weights with its
per-channel int8 scales); the mean difference per output channel is subtracted from the layer's bias. The
corrections travel in the plan (``LayerQuant.bias_correction``) and every realiser applies them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from compressor.quantization.plan import QuantPlan

MAX_SAMPLES = 32


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _fake_quant(x, tq) -> np.ndarray:
    q = np.clip(np.round(x / tq.scale) + tq.zero_point, 0 if tq.dtype == "uint8" else -128, 255 if tq.dtype == "uint8" else 127)
    return ((q - tq.zero_point) * tq.scale).astype(np.float32)


def _layer_out(node, x: np.ndarray, w: np.ndarray):
    """The layer's output without bias (torch's functional ops on numpy input)."""
    import torch
    import torch.nn.functional as F

    a = _attrs(node)
    xt, wt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(w))
    if node.op_type == "Conv":
        nd = wt.dim() - 2
        pads = a.get("pads", [0] * (2 * nd))
        if any(pads[i] != pads[i + nd] for i in range(nd)):  # asymmetric padding: pad explicitly
            pad = [v for i in reversed(range(nd)) for v in (pads[i], pads[i + nd])]
            xt, pads = F.pad(xt, pad), [0] * (2 * nd)
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
        y = conv(xt, wt, None, a.get("strides", [1] * nd), pads[:nd], a.get("dilations", [1] * nd), a.get("group", 1))
        return y.numpy(), 1
    if node.op_type == "Gemm":
        wm = wt.T if a.get("transB", 0) else wt
        return (xt @ wm).numpy() * a.get("alpha", 1.0), -1
    return (xt @ wt).numpy(), -1  # MatMul with a [K, N] weight


def corrections(model, plan: QuantPlan, feeds: list[dict], run: Callable[[dict, list[str]], dict],
                max_samples: int = MAX_SAMPLES) -> dict[str, np.ndarray]:
    """Per INT8 Conv/Gemm layer name: the correction to add to its bias (one value per output channel), from the
    mean output shift over at most ``max_samples`` calibration samples (streamed, one feed at a time)."""
    from onnx import numpy_helper

    from compressor.quantization.qdq import quantize_weight

    inits = {i.name: i for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    layers = [l for l in plan.int8_layers if l.op_type in ("Conv", "Gemm") and l.inputs and l.inputs[0] in plan.activations
              and l.weight is not None]
    if not layers:
        return {}
    weights = {}
    for l in layers:
        w = numpy_helper.to_array(inits[nodes[l.node].input[1]]).astype(np.float32)
        q, scales = quantize_weight(w, l.weight.axis)
        shape = [1] * w.ndim
        shape[l.weight.axis] = -1
        weights[l.name] = (w, (q.astype(np.float32) * scales.reshape(shape)).astype(np.float32))
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    seen = 0
    for feed in feeds:
        if seen >= max_samples:
            break
        values = run(feed, [l.inputs[0] for l in layers])
        seen += int(next(iter(feed.values())).shape[0])
        for l in layers:
            x = values[l.inputs[0]].astype(np.float32)
            w, wq = weights[l.name]
            node = nodes[l.node]
            y, axis = _layer_out(node, x, w)
            yq, _ = _layer_out(node, _fake_quant(x, plan.activations[l.inputs[0]]), wq)
            moved = np.moveaxis(yq - y, axis, 0).reshape(y.shape[axis], -1)
            sums[l.name] = sums.get(l.name, 0.0) + moved.sum(axis=1)
            counts[l.name] = counts.get(l.name, 0) + moved.shape[1]
    return {name: (-sums[name] / counts[name]).astype(np.float32) for name in sums}

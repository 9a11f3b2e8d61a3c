"""Realise a quantization plan as ONNX in ONNX Runtime's canonical layouts.

Static (QDQ): int8 weight initializers feed DequantizeLinear (per output channel); int32 biases
(scale = input scale × weight scale) feed DequantizeLinear; every quantized activation tensor gets one
QuantizeLinear → DequantizeLinear pair right after its producer; folded Relu/Clip nodes are removed.
ONNX Runtime's optimiser then fuses DQ → op → Q into QLinearConv, QGemm, QLinearMatMul, QLinearAdd, …

Dynamic: each INT8 MatMul/Gemm becomes DynamicQuantizeLinear(x) → MatMulInteger(x_u8, W_int8) →
Cast → × (x_scale · w_scale) → + bias, which ONNX Runtime fuses into DynamicQuantizeMatMul.
"""

from __future__ import annotations

import copy

import numpy as np

from compressor.quantization.plan import QuantPlan

QMAX_W = 127  # symmetric int8 weights in [-127, 127]: inside ONNX's accepted (-128, 127)


def quantize_weight(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric int8: returns (int8 weights, float32 scales along ``axis``)."""
    moved = np.moveaxis(w.astype(np.float32), axis, 0).reshape(w.shape[axis], -1)
    absmax = np.abs(moved).max(axis=1)
    scales = np.where(absmax > 0, absmax / QMAX_W, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scales.reshape(shape)), -QMAX_W, QMAX_W).astype(np.int8)
    return q, scales


def weight_axis(op_type: str, node=None) -> int:
    if op_type == "Conv":
        return 0
    if op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0) if node is not None else 0
        return 0 if trans_b else 1
    return 1  # MatMul weight [K, N]: one scale per output column


def _toposort(nodes, graph_inputs, inits):
    available = set(graph_inputs) | set(inits) | {""}
    pending = list(nodes)
    ordered = []
    while pending:
        progressed = False
        rest = []
        for n in pending:
            if all(i in available for i in n.input):
                ordered.append(n)
                available.update(n.output)
                progressed = True
            else:
                rest.append(n)
        if not progressed:
            raise RuntimeError(f"cannot order the quantized graph: {len(rest)} nodes have unresolved inputs, e.g. {rest[0].name}")
        pending = rest
    return ordered


#: QDQ layouts: ONNX Runtime's canonical one (uint8 asymmetric activations, int32 biases: what its fusions look for),
#: and TensorRT's explicit quantization (symmetric int8 activations, float biases: TensorRT refuses non-zero zero points
#: and int32 DequantizeLinear inputs)
LAYOUTS = {"ort": "ONNX Runtime's canonical layout", "tensorrt": "TensorRT's explicit quantization: symmetric int8, float biases"}


def realize_static(model, plan: QuantPlan, layout: str = "ort"):
    """A new ModelProto with ``plan`` applied in QDQ ``layout``."""
    from onnx import helper, numpy_helper

    if layout not in LAYOUTS:
        raise ValueError(f"unknown QDQ layout {layout!r}: known are {', '.join(LAYOUTS)}")
    if layout == "tensorrt":
        plan = plan.symmetric()

    m, inits, nodes = _open(model)
    by_name = {n.name: n for n in nodes}
    producer = {o: n for n in nodes for o in n.output}
    graph_inputs = {i.name for i in m.graph.input}
    new_inits, new_nodes = [], []

    # 1. fold Relu/Clip into the quantization of their producer's output
    for act_name, out in plan.folded.items():
        act = by_name.get(act_name)
        if act is None:
            continue
        src = producer[act.input[0]]
        src.output[0] = out
        producer[out] = src
        nodes.remove(act)

    # 2. a Q/DQ pair after every quantized activation tensor
    for t, tq in plan.activations.items():
        scale = numpy_helper.from_array(np.array(tq.scale, dtype=np.float32), f"{t}_scale")
        zp_dtype = np.uint8 if tq.dtype == "uint8" else np.int8
        zp = numpy_helper.from_array(np.array(tq.zero_point, dtype=zp_dtype), f"{t}_zero_point")
        new_inits += [scale, zp]
        if t in graph_inputs:
            dq_out = f"{t}_dq"
            for n in nodes:
                for i, name in enumerate(n.input):
                    if name == t:
                        n.input[i] = dq_out
            q_in = t
        else:
            src = producer.get(t)
            if src is None:
                continue
            q_in = f"{t}_float"
            src.output[list(src.output).index(t)] = q_in
            dq_out = t
        new_nodes.append(helper.make_node("QuantizeLinear", [q_in, scale.name, zp.name], [f"{t}_q"], name=f"{t}_QuantizeLinear"))
        new_nodes.append(helper.make_node("DequantizeLinear", [f"{t}_q", scale.name, zp.name], [dq_out], name=f"{t}_DequantizeLinear"))

    # 3. int8 weights and int32 biases behind DequantizeLinear
    node_of = {n.name: n for n in nodes}
    for layer in plan.int8_layers:
        node = node_of[layer.node]
        wname = node.input[1]
        w = numpy_helper.to_array(inits[wname])
        axis = layer.weight.axis
        q, scales = quantize_weight(w, axis)
        dq_out = f"{wname}_dq_{layer.node}"
        # Symmetric, so Conv gets no zero-point tensors (DequantizeLinear defaults to 0; ORT still fuses QLinearConv),
        # which saves 5 bytes per channel: a lot on depthwise layers. ORT fuses QGemm/QLinearMatMul only with them.
        with_zp = layer.op_type != "Conv"
        new_inits += [numpy_helper.from_array(q, f"{dq_out}_quantized"), numpy_helper.from_array(scales, f"{dq_out}_scale")]
        if with_zp:
            new_inits.append(numpy_helper.from_array(np.zeros_like(scales, dtype=np.int8), f"{dq_out}_zero_point"))
        new_nodes.append(helper.make_node("DequantizeLinear", [f"{dq_out}_quantized", f"{dq_out}_scale"]
                                          + ([f"{dq_out}_zero_point"] if with_zp else []),
                                          [dq_out], name=f"{dq_out}_DequantizeLinear", axis=axis))
        node.input[1] = dq_out
        bias_name = node.input[2] if len(node.input) > 2 and node.input[2] in inits else None
        corr = np.asarray(layer.bias_correction, dtype=np.float64) if layer.bias_correction is not None else None
        if layout == "tensorrt" and corr is not None:  # float biases: the correction goes straight into them
            b = (numpy_helper.to_array(inits[bias_name]).astype(np.float64) if bias_name else np.zeros(scales.shape[0])) + corr
            bout = f"{bias_name or layer.node + '_bias'}_corrected"
            new_inits.append(numpy_helper.from_array(b.astype(np.float32), bout))
            if bias_name:
                node.input[2] = bout
            else:
                node.input.append(bout)
        elif layout == "ort" and (bias_name or corr is not None) and layer.inputs and layer.inputs[0] in plan.activations:
            b = numpy_helper.to_array(inits[bias_name]).astype(np.float64) if bias_name else np.zeros(scales.shape[0])
            if corr is not None and corr.shape == b.shape:
                b = b + corr
            if b.ndim == 1 and b.shape[0] == scales.shape[0]:
                bscale = (plan.activations[layer.inputs[0]].scale * scales.astype(np.float64)).astype(np.float32)
                bq = np.clip(np.round(b / np.where(bscale > 0, bscale, 1.0)), -(2**31), 2**31 - 1).astype(np.int32)
                bout = f"{bias_name or layer.node + '_bias'}_dq_{layer.node}"
                new_inits += [numpy_helper.from_array(bq, f"{bout}_quantized"), numpy_helper.from_array(bscale, f"{bout}_scale")]
                if with_zp:
                    new_inits.append(numpy_helper.from_array(np.zeros_like(bq), f"{bout}_zero_point"))
                new_nodes.append(helper.make_node("DequantizeLinear", [f"{bout}_quantized", f"{bout}_scale"]
                                                  + ([f"{bout}_zero_point"] if with_zp else []),
                                                  [bout], name=f"{bout}_DequantizeLinear", axis=0))
                if bias_name:
                    node.input[2] = bout
                else:
                    node.input.append(bout)

    _finish(m, nodes + new_nodes, new_inits)
    return m


def realize_dynamic(model, plan: QuantPlan):
    """A new ModelProto with each INT8 MatMul/Gemm quantized dynamically (activations at run time)."""
    from onnx import TensorProto, helper, numpy_helper

    m, inits, nodes = _open(model)
    node_of = {n.name: n for n in nodes}
    new_inits, out_nodes = [], []
    replaced: dict[str, list] = {}
    for layer in plan.quantized_layers:
        node = node_of[layer.node]
        if layer.op_type in ("Gather", "LSTM"):
            seq, inits_ = (_gather_int8(node, numpy_helper.to_array(inits[node.input[0]]), f"{layer.node}_dyn") if layer.op_type == "Gather"
                           else _lstm_int8(node, inits, f"{layer.node}_dyn"))
            new_inits += inits_
            replaced[node.name] = seq
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        trans_b = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
        if trans_b:
            w = w.T
        q, scales = quantize_weight(w, 1)  # [K, N], one scale per output column
        p = f"{layer.node}_dyn"
        x = node.input[0]
        new_inits += [
            numpy_helper.from_array(q, f"{p}_W_quantized"),
            numpy_helper.from_array(np.zeros(q.shape[1], dtype=np.int8), f"{p}_W_zero_point"),
            numpy_helper.from_array(scales, f"{p}_W_scale"),
        ]
        out = node.output[0]
        bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2] else None
        if layer.precision == "int8-weight-only":
            seq = [helper.make_node("DequantizeLinear", [f"{p}_W_quantized", f"{p}_W_scale"], [f"{p}_W"], name=f"{p}_DequantizeLinear", axis=1),
                   helper.make_node("MatMul", [x, f"{p}_W"], [f"{p}_mm" if bias else out], name=f"{p}_MatMul")]
            if bias:
                seq.append(helper.make_node("Add", [f"{p}_mm", bias], [out], name=f"{p}_BiasAdd"))
            replaced[node.name] = seq
            continue
        seq = [
            helper.make_node("DynamicQuantizeLinear", [x], [f"{p}_x_q", f"{p}_x_scale", f"{p}_x_zp"], name=f"{p}_DynamicQuantizeLinear"),
            helper.make_node("MatMulInteger", [f"{p}_x_q", f"{p}_W_quantized", f"{p}_x_zp", f"{p}_W_zero_point"], [f"{p}_int32"],
                             name=f"{p}_MatMulInteger"),
            helper.make_node("Cast", [f"{p}_int32"], [f"{p}_acc"], to=TensorProto.FLOAT, name=f"{p}_Cast"),
            helper.make_node("Mul", [f"{p}_x_scale", f"{p}_W_scale"], [f"{p}_scale"], name=f"{p}_ScaleMul"),
        ]
        if bias:
            seq += [helper.make_node("Mul", [f"{p}_acc", f"{p}_scale"], [f"{p}_mm"], name=f"{p}_Mul"),
                    helper.make_node("Add", [f"{p}_mm", bias], [out], name=f"{p}_BiasAdd")]
        else:
            seq.append(helper.make_node("Mul", [f"{p}_acc", f"{p}_scale"], [out], name=f"{p}_Mul"))
        replaced[node.name] = seq
    for n in nodes:
        out_nodes.extend(replaced.get(n.name, [n]))
    _finish(m, out_nodes, new_inits)
    return m


def _lstm_int8(node, inits, p: str):
    """ONNX Runtime's DynamicQuantizeLSTM (com.microsoft): W and R int8 per gate row (symmetric), stored transposed
    ([directions, input, 4·hidden]), activations quantized at run time; what ORT's own quantizer writes."""
    from onnx import helper, numpy_helper

    seq_inits = []
    for which, idx in (("W", 1), ("R", 2)):
        w = numpy_helper.to_array(inits[node.input[idx]])  # [directions, 4·hidden, input]
        qs, scales = zip(*(quantize_weight(w[d], 0) for d in range(w.shape[0])))
        seq_inits += [numpy_helper.from_array(np.ascontiguousarray(np.stack(qs).transpose(0, 2, 1)), f"{p}_{which}_quantized"),
                      numpy_helper.from_array(np.stack(scales).astype(np.float32), f"{p}_{which}_scale"),
                      numpy_helper.from_array(np.zeros((w.shape[0], w.shape[1]), dtype=np.int8), f"{p}_{which}_zero_point")]
    rest = [node.input[i] if len(node.input) > i else "" for i in range(3, 8)]  # B, sequence_lens, initial_h, initial_c, P
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name != "layout"}
    quant = helper.make_node("DynamicQuantizeLSTM", [node.input[0], f"{p}_W_quantized", f"{p}_R_quantized", *rest, f"{p}_W_scale",
                                                     f"{p}_W_zero_point", f"{p}_R_scale", f"{p}_R_zero_point"],
                             list(node.output), name=f"{p}_DynamicQuantizeLSTM", domain="com.microsoft", **attrs)
    return [quant], seq_inits


EMBEDDING_BLOCK = 32  # embedding rows are quantized in blocks of this many values, each with its own scale


def _gather_int8(node, table: np.ndarray, p: str):
    """Gather from an int8 table stored in blocks of EMBEDDING_BLOCK values per row, each block with its own
    scale: gather the rows and their scales, multiply, and reshape back. Finer than one scale per row, which
    measurably shifted sentence-similarity rankings (benchmarks/results/int8.md)."""
    from onnx import TensorProto, helper, numpy_helper

    rows, dim = table.shape
    block = EMBEDDING_BLOCK if dim % EMBEDDING_BLOCK == 0 else dim
    blocks = table.reshape(rows * (dim // block), block)
    q, scales = quantize_weight(blocks, 0)
    inits = [numpy_helper.from_array(q.reshape(rows, dim // block, block), f"{p}_W_quantized"),
             numpy_helper.from_array(scales.reshape(rows, dim // block).astype(np.float16), f"{p}_W_scale"),  # fp16: half the bytes
             numpy_helper.from_array(np.array([-1], dtype=np.int64), f"{p}_last_axis"),
             numpy_helper.from_array(np.array([dim], dtype=np.int64), f"{p}_dim")]
    ids, out = node.input[1], node.output[0]
    seq = [
        helper.make_node("Gather", [f"{p}_W_quantized", ids], [f"{p}_rows_q"], name=f"{p}_Gather", axis=0),
        helper.make_node("Gather", [f"{p}_W_scale", ids], [f"{p}_row_scale"], name=f"{p}_GatherScale", axis=0),
        helper.make_node("Cast", [f"{p}_rows_q"], [f"{p}_rows"], to=TensorProto.FLOAT, name=f"{p}_Cast"),
        helper.make_node("Cast", [f"{p}_row_scale"], [f"{p}_row_scale_f"], to=TensorProto.FLOAT, name=f"{p}_CastScale"),
        helper.make_node("Unsqueeze", [f"{p}_row_scale_f", f"{p}_last_axis"], [f"{p}_row_scale_u"], name=f"{p}_Unsqueeze"),
        helper.make_node("Mul", [f"{p}_rows", f"{p}_row_scale_u"], [f"{p}_blocks"], name=f"{p}_Mul"),
        helper.make_node("Shape", [ids], [f"{p}_ids_shape"], name=f"{p}_Shape"),
        helper.make_node("Concat", [f"{p}_ids_shape", f"{p}_dim"], [f"{p}_out_shape"], name=f"{p}_Concat", axis=0),
        helper.make_node("Reshape", [f"{p}_blocks", f"{p}_out_shape"], [out], name=f"{p}_Reshape"),
    ]
    return seq, inits


def _open(model):
    """A private copy of ``model``, its initializers by name, and its nodes."""
    m = copy.deepcopy(model)
    return m, {i.name: i for i in m.graph.initializer}, list(m.graph.node)


def _finish(m, nodes, new_inits) -> None:
    """Install ``nodes`` (topologically sorted) and the initializers they use."""
    g = m.graph
    used = {i for n in nodes for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + [i for i in new_inits if i.name in used])
    ordered = _toposort(nodes, [i.name for i in g.input], [i.name for i in g.initializer])
    del g.node[:]
    g.node.extend(ordered)
    del g.value_info[:]  # stale shapes of renamed tensors; ORT re-infers
    domains = {n.domain for n in ordered if n.domain} - {o.domain for o in m.opset_import}
    for d in sorted(domains):
        from onnx import helper

        m.opset_import.append(helper.make_opsetid(d, 1))

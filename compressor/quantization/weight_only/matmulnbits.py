"""The weight-only plan realised for ONNX Runtime GenAI: the model builder writes the float decoder (GroupQueryAttention,
KV cache, ``genai_config.json``, tokenizer), then every planned MatMul becomes a ``MatMulNBits`` carrying the plan's own
codes, scales and zero points, and the (tied) embedding a ``GatherBlockQuantized`` over the same bytes. Nothing is
re-rounded: the artifact computes exactly the plan's dequantized weights.

Node names are the builder's (``/model/layers.3/attn/qkv_proj/MatMul`` packs q, k and v; ``/lm_head/MatMul``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from compressor.quantization.weight_only.plan import WeightOnlyPlan

ACCURACY_LEVEL = 4  # int8 compute of the activations inside MatMulNBits (the builder's CPU default)

_NODE = re.compile(r"^/model/layers\.(\d+)/(attn|mlp)/(\w+)/MatMul$")
_ATTN = {"qkv_proj": ("q_proj", "k_proj", "v_proj")}


def modules_of(node_name: str, prefix: str = "model.layers") -> list[str] | None:
    """The torch modules a builder MatMul computes (several when the builder packed them), or None."""
    if node_name == "/lm_head/MatMul":
        return ["lm_head"]
    m = _NODE.match(node_name)
    if not m:
        return None
    i, part, proj = m.groups()
    sub = "self_attn" if part == "attn" else "mlp"
    return [f"{prefix}.{i}.{sub}.{p}" for p in _ATTN.get(proj, (proj,))]


def block_size(group: int, k: int) -> int:
    """MatMulNBits blocks are powers of two ≥ 16; a per-channel grid is one block padded to the next power of two."""
    return group if group > 0 else max(16, 1 << math.ceil(math.log2(k)))


def pack_zero_points(zero: np.ndarray, bits: int) -> np.ndarray:
    """Zero points (N × blocks) as MatMulNBits/GatherBlockQuantized store them: uint8, two per byte for 4 bits (low first)."""
    zp = zero.astype(np.uint8)
    if bits == 8:
        return zp
    n, kb = zp.shape
    zpad = np.zeros((n, 2 * math.ceil(kb / 2)), np.uint8)
    zpad[:, :kb] = zp
    return (zpad[:, 0::2] | (zpad[:, 1::2] << 4)).astype(np.uint8)


def pack(codes: np.ndarray, zero: np.ndarray, bits: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(B as N × blocks × bytes, zero points as N × bytes) in MatMulNBits' layout (low nibble first for 4 bits)."""
    n, k = codes.shape
    kb = math.ceil(k / block)
    padded = np.zeros((n, kb * block), np.uint8)
    padded[:, :k] = codes
    if bits == 8:
        return padded.reshape(n, kb, block), pack_zero_points(zero, bits)
    pairs = padded.reshape(n, kb, block // 2, 2)
    return (pairs[..., 0] | (pairs[..., 1] << 4)).astype(np.uint8), pack_zero_points(zero, bits)


def rewrite(onnx_path: Path, plan: WeightOnlyPlan, accuracy_level: int = ACCURACY_LEVEL) -> dict:
    """Replace the planned MatMuls (and the embedding Gather) of the builder's float model in place; returns counts."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    new_nodes, drop_inits, added = [], set(), []
    counts = {"matmulnbits": 0, "gather_block_quantized": 0, "float_matmuls": 0}
    head_b = None
    for node in g.node:
        mods = modules_of(node.name) if node.op_type == "MatMul" else None
        if not mods or any(plan.layer(m) is None for m in mods) or node.input[1] not in inits:
            if node.op_type == "MatMul" and node.input[1] in inits:
                counts["float_matmuls"] += 1
            new_nodes.append(node)
            continue
        layers = [plan.layer(m) for m in mods]
        if len({(lay.bits, lay.group, lay.symmetric) for lay in layers}) != 1:
            raise ValueError(f"{node.name} packs {', '.join(mods)} but their grids differ; the plan must give them one grid")
        lay = layers[0]
        keys = [lay_.name for lay_ in layers]
        q = np.concatenate([plan.tensors[k].codes.numpy() for k in keys])
        s = np.concatenate([plan.tensors[k].scale.numpy() for k in keys]).astype(np.float32)
        z = np.concatenate([plan.tensors[k].zero.numpy() for k in keys])
        n, k = q.shape
        bs = block_size(lay.group, k)
        b, zp = pack(q, z, lay.bits, bs)
        base = node.name[1:].replace("/", ".") + "NBits"
        names = (f"{base}.qweight", f"{base}.scales", f"{base}.qzeros")
        added += [numpy_helper.from_array(b, names[0]), numpy_helper.from_array(s.reshape(-1), names[1]),
                  numpy_helper.from_array(zp.reshape(-1), names[2])]
        drop_inits.add(node.input[1])
        new_nodes.append(helper.make_node("MatMulNBits", [node.input[0], *names], list(node.output), name=node.name + "NBits",
                                          domain="com.microsoft", K=k, N=n, bits=lay.bits, block_size=bs,
                                          accuracy_level=accuracy_level))
        counts["matmulnbits"] += 1
        if keys == ["lm_head"]:
            head_b = (names[0], lay, s, z, n, k, bs)
    g.ClearField("node")
    g.node.extend(new_nodes)
    _embedding(g, plan, inits, head_b, drop_inits, added, counts)
    kept = [i for i in g.initializer if i.name not in drop_inits]
    g.ClearField("initializer")
    g.initializer.extend(kept + added)
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    data = onnx_path.with_name(onnx_path.name + ".data")
    if data.exists():
        data.unlink()
    onnx.save(model, str(onnx_path), save_as_external_data=True, all_tensors_to_one_file=True, location=data.name,
              size_threshold=1024)
    return counts


def _embedding(g, plan, inits, head_b, drop_inits, added, counts) -> None:
    """The embedding lookup as GatherBlockQuantized: over lm_head's packed bytes when tied, else over its own codes."""
    from onnx import helper, numpy_helper

    gather = next((n for n in g.node if n.op_type == "Gather" and n.name == "/model/embed_tokens/Gather"), None)
    emb = plan.layer("model.embed_tokens")
    if gather is None or emb is None:
        return
    producers = {o: n for n in g.node for o in n.output}
    src = producers.get(gather.input[0])
    tied = src is not None and src.op_type == "Transpose" and head_b is not None and emb.name == "lm_head"
    if tied:
        b_name, lay, s, z, n, k, bs = head_b
        g.node.remove(src)
        data_name = "model.embed_tokens.GatherBlockQuantized.data"
        flat = math.ceil(k / bs) * bs * lay.bits // 8
        shape = numpy_helper.from_array(np.array([n, flat], np.int64), data_name + ".shape")
        added.append(shape)
        reshape = helper.make_node("Reshape", [b_name, shape.name], [data_name], name="/model/embed_tokens/Reshape")
        pre = [reshape]
    elif gather.input[0] in inits:
        t = plan.tensors[emb.name]
        lay = emb
        n, k = t.codes.shape
        bs = block_size(lay.group, k)
        b, _ = pack(t.codes.numpy(), t.zero.numpy(), lay.bits, bs)
        s, z = t.scale.numpy().astype(np.float32), t.zero.numpy()
        data_name = "model.embed_tokens.GatherBlockQuantized.data"
        added.append(numpy_helper.from_array(b.reshape(n, -1), data_name))
        drop_inits.add(gather.input[0])
        pre = []
    else:
        return
    kb = s.shape[1]
    zp = pack_zero_points(z, lay.bits)
    sn, zn = "model.embed_tokens.GatherBlockQuantized.scales", "model.embed_tokens.GatherBlockQuantized.zero_points"
    added += [numpy_helper.from_array(s.reshape(n, kb), sn), numpy_helper.from_array(zp, zn)]
    padded = kb * bs != k
    out = gather.output[0] if not padded else "/model/embed_tokens/GatherBlockQuantized/output_0"
    gbq = helper.make_node("GatherBlockQuantized", [data_name, gather.input[1], sn, zn], [out],
                           name="/model/embed_tokens/GatherBlockQuantized", domain="com.microsoft", bits=lay.bits,
                           block_size=bs, gather_axis=0, quantize_axis=1)
    nodes = pre + [gbq]
    if padded:
        consts = [numpy_helper.from_array(np.array(v, np.int64), f"/model/embed_tokens/Slice/{i}")
                  for i, v in enumerate(([0], [k], [-1]))]
        added += consts
        nodes.append(helper.make_node("Slice", [out, *(c.name for c in consts)], [gather.output[0]], name="/model/embed_tokens/Slice"))
    idx = list(g.node).index(gather)
    g.node.remove(gather)
    for j, nd in enumerate(nodes):
        g.node.insert(idx + j, nd)
    counts["gather_block_quantized"] += 1

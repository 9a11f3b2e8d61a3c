"""Which parts of an exported float graph go INT8: the structural half of a quantization plan.

Rules (the layout ONNX Runtime fuses into integer kernels, the same coverage as its own quantizer):

- **Weighted layers** (Conv, Gemm, MatMul with a constant weight) are INT8 unless excluded: int8
  weights per output channel, their activation input and output quantized per tensor.
- **Relu, and Clip with min 0** (ReLU6) right after a quantized op are folded into its output
  quantization: an unsigned range starting at 0 clamps exactly as they do.
- **Add, Mul, Concat, average pooling** stay on the INT8 path when all their inputs already are
  (QLinearAdd, QLinearConcat, …); otherwise they run in float.
- **MaxPool, Reshape, Flatten, Transpose, Squeeze, Unsqueeze** pass a quantized tensor through with
  the same scale.
- **Dynamic mode, layers fed by GELU** (a transformer's second FFN linear): weight-only int8 (int8
  weights dequantized into a float product), because per-tensor run-time quantization of GELU's
  heavy-tailed output costs the most accuracy of any layer (measured in benchmarks/results/int8.md).
- **Embedding tables** (Gather from a constant table of 256+ rows) are stored int8 per row in dynamic
  mode: the rows a batch needs are gathered and dequantized, which keeps the file small.
- Everything else (Softmax, LayerNorm, GELU, Sigmoid, ReduceMean, Resize, …) stays float: their
  outputs have wide or non-linear ranges where 8 bits cost accuracy and save little time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compressor.core.layers import ONNX_WEIGHT_OPS
from compressor.core.selection import Exclusions
from compressor.core.targets import PlanMode
from compressor.io.export_onnx import read_node_modules

WEIGHTED = set(ONNX_WEIGHT_OPS)
JOINING = {"Add", "Mul", "Concat", "GlobalAveragePool", "AveragePool"}
SAME_SCALE = {"MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"}
FOLDABLE = {"Relu", "Clip"}
UNSUPPORTED_WEIGHTED = {"ConvTranspose", "LSTM", "GRU", "RNN", "Einsum"}  # have weights, stay float (reported)
MIN_EMBEDDING_ROWS = 256  # dynamic mode: embedding tables this large are stored int8 (per row)


@dataclass
class Structure:
    layers: list[dict[str, Any]]  # name, node, op_type, module_type, weight, bias, precision, reason, inputs, output
    quantized: list[str]  # activation tensors that get Q/DQ, in graph order
    tied: dict[str, str]  # tensor -> tensor whose scale it shares (pass-through ops)
    folded: dict[str, str]  # folded activation node name -> the tensor its producer now writes
    joining_ops: list[str]  # node names of Add/Concat/… kept on the INT8 path
    exclusions_unmatched: list[str] = field(default_factory=list)


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            import onnx

            return onnx.helper.get_attribute_value(a)
    return default


def layer_name(node, weight: str) -> str:
    return weight[: -len(".weight")] if weight.endswith(".weight") else (node.name or weight)


def module_types(module) -> dict[str, str]:
    try:
        return {n: type(m).__name__ for n, m in module.named_modules()} if hasattr(module, "named_modules") else {}
    except Exception:  # noqa: BLE001 - TorchScript modules may refuse; types are only informative
        return {}


HEAVY_TAILED = {"Erf", "Gelu", "FastGelu", "BiasGelu", "Tanh"}


def _follows(tensor: str, producers: dict, ops: set[str], depth: int = 4) -> bool:
    """Whether ``tensor`` is computed, within ``depth`` ops, from an op in ``ops`` (e.g. GELU's Erf:
    x/√2 → Erf → +1 → ×x → ×0.5 puts Erf four ops before the output)."""
    node = producers.get(tensor)
    if node is None:
        return False
    if node.op_type in ops:
        return True
    return depth > 1 and any(_follows(t, producers, ops, depth - 1) for t in node.input)


def _clip_min_is_zero(node, inits) -> bool:
    if node.op_type == "Relu":
        return True
    import numpy as np
    from onnx import numpy_helper

    if len(node.input) > 1 and node.input[1]:
        lo = inits.get(node.input[1])
        return lo is not None and float(np.asarray(numpy_helper.to_array(lo))) == 0.0
    return _attr(node, "min", None) == 0.0


class WeightOwners:
    """Which module holds a weight, by value: exporters may fold a Linear's transposed weight into a new constant
    (``val_20``) and drop the node's module metadata; the values still name the module."""

    def __init__(self, module):
        self.module, self._by_shape = module, None

    def _index(self) -> dict[tuple, list[tuple[str, Any]]]:
        if self._by_shape is None:
            self._by_shape = {}
            if hasattr(self.module, "named_modules"):
                for name, m in self.module.named_modules():
                    w = getattr(m, "weight", None)
                    if name and w is not None and hasattr(w, "detach") and w.dim() >= 2:
                        a = w.detach().float().numpy()
                        self._by_shape.setdefault(a.shape, []).append((name, a))
                        if a.ndim == 2:
                            self._by_shape.setdefault(a.T.shape, []).append((name, a.T))
        return self._by_shape

    def find(self, init) -> str | None:
        import numpy as np
        from onnx import numpy_helper

        found = self._index().get(tuple(init.dims), [])
        if not found:
            return None
        arr = numpy_helper.to_array(init).astype(np.float32)
        return next((name for name, a in found if np.array_equal(a, arr)), None)


def _dynamic_lstm(node, inits) -> bool:
    """An LSTM ONNX Runtime's DynamicQuantizeLSTM runs: constant 3-D W and R, sequence-first layout."""
    layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
    return len(node.input) > 2 and node.input[1] in inits and node.input[2] in inits and len(inits[node.input[1]].dims) == 3 \
        and len(inits[node.input[2]].dims) == 3 and layout == 0


def analyse(model, module=None, exclude: list[str] | None = None, mode: PlanMode = PlanMode.STATIC) -> Structure:
    """Decide, node by node in graph order, what is INT8 and which tensors get Q/DQ."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list] = {}
    producers = {o: n for n in graph.node for o in n.output}
    for n in graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    graph_outputs = {o.name for o in graph.output}
    types = module_types(module) if module is not None else {}
    origin = read_node_modules(model)
    excl = Exclusions(exclude)
    owners = WeightOwners(module)

    def name_and_type(node, weight: str) -> tuple[str, str | None]:
        # a weight named after its module (conv1.weight) is the surest link; exporter metadata names the
        # module an op came from (after Conv+BN folding that can be the BatchNorm, hence second); else the module
        # holding the same values
        if weight.endswith(".weight") or node.name not in origin:
            name = layer_name(node, weight)
            if name not in types and types:
                name = owners.find(inits[weight]) or name
            return name, types.get(name) or (origin.get(node.name) or [None, None])[1]
        return origin[node.name][0], origin[node.name][1]

    layers: list[dict[str, Any]] = []
    quantized: list[str] = []
    qset: set[str] = set()
    tied: dict[str, str] = {}
    folded: dict[str, str] = {}
    joining: list[str] = []

    def add(t: str) -> None:
        if t and t not in qset and t not in inits:
            qset.add(t)
            quantized.append(t)

    def out_after_fold(node) -> str:
        out = node.output[0]
        users = consumers.get(out, [])
        if mode == PlanMode.STATIC and len(users) == 1 and out not in graph_outputs and users[0].op_type in FOLDABLE \
                and _clip_min_is_zero(users[0], inits):
            folded[users[0].name] = users[0].output[0]
            return users[0].output[0]
        return out

    for node in graph.node:
        op = node.op_type
        if op in WEIGHTED and len(node.input) > 1 and node.input[1] in inits:
            weight = node.input[1]
            name, mtype = name_and_type(node, weight)
            rank = len(inits[weight].dims)
            precision, reason = "int8", ""
            hit = excl.match(name, op, mtype)
            if hit:
                precision, reason = "float", f"excluded by '{hit}'"
            elif op == "MatMul" and rank != 2:
                precision, reason = "float", f"MatMul weight of rank {rank}: only 2-D weights are quantized"
            elif op == "Gemm" and (_attr(node, "transA", 0) or node.input[0] in inits):
                precision, reason = "float", "Gemm with a transposed or constant first input"
            layer = {
                "name": name, "node": node.name, "op_type": op, "module_type": mtype, "weight": weight,
                "bias": node.input[2] if len(node.input) > 2 and node.input[2] in inits else None,
                "precision": precision, "reason": reason, "inputs": [node.input[0]], "output": node.output[0],
            }
            if precision == "int8" and mode == PlanMode.DYNAMIC and _follows(node.input[0], producers, HEAVY_TAILED):
                precision = "int8-weight-only"
                reason = ("input follows GELU: its heavy-tailed activations lose too much under per-tensor 8-bit "
                          "quantization, so weights are int8 and the product runs in float (benchmarks/results/int8.md)")
            layer["precision"], layer["reason"] = precision, reason
            if precision == "int8" and mode == PlanMode.STATIC:
                add(node.input[0])
                layer["output"] = out_after_fold(node)
                if not (op in ("Gemm", "MatMul") and layer["output"] in graph_outputs):
                    # a model output (a classifier's logits) stays float: the runtimes' INT8 Gemm/MatMul kernels can write float,
                    # and an 8-bit grid on logits only adds ties (two classes one step apart)
                    add(layer["output"])
            layers.append(layer)
        elif op == "LSTM" and mode == PlanMode.DYNAMIC and _dynamic_lstm(node, inits):
            name, mtype = name_and_type(node, node.input[1])
            if any(l["name"] == name for l in layers):  # one nn.LSTM exports one LSTM node per stacked layer
                name = f"{name}[{sum(1 for l in layers if l['name'].startswith(name + '['))+ 1}]"
            hit = excl.match(name, op, mtype)
            layers.append({
                "name": name, "node": node.name, "op_type": op, "module_type": mtype, "weight": node.input[1], "bias": None,
                "precision": "float" if hit else "int8", "reason": f"excluded by '{hit}'" if hit else "",
                "inputs": [node.input[0]], "output": node.output[0],
            })
        elif op in UNSUPPORTED_WEIGHTED and any(i in inits for i in node.input[1:]):
            weight = next(i for i in node.input[1:] if i in inits)
            name, mtype = name_and_type(node, weight)
            why = (f"static INT8 has no {op} kernel here: the dynamic INT8 target (ort-cpu-int8-dynamic) runs LSTMs in INT8"
                   if op == "LSTM" else f"the INT8 exporter does not quantize {op}: ONNX Runtime has no dynamic INT8 {op} kernel"
                   if op in ("GRU", "RNN") else f"the INT8 exporter does not quantize {op} yet: it runs in float")
            layers.append({
                "name": name, "node": node.name, "op_type": op, "module_type": mtype, "weight": weight, "bias": None,
                "precision": "float", "reason": why,
                "inputs": [node.input[0]], "output": node.output[0],
            })
        elif mode == PlanMode.DYNAMIC and op == "Gather" and node.input[0] in inits and len(inits[node.input[0]].dims) == 2 \
                and inits[node.input[0]].dims[0] >= MIN_EMBEDDING_ROWS and _attr(node, "axis", 0) == 0:
            table = node.input[0]
            name, mtype = name_and_type(node, table)
            hit = excl.match(name, op, mtype)
            layers.append({
                "name": name, "node": node.name, "op_type": op, "module_type": mtype, "weight": table, "bias": None,
                "precision": "float" if hit else "int8", "reason": f"excluded by '{hit}'" if hit else "",
                "inputs": [node.input[1]], "output": node.output[0],
            })
        elif mode == PlanMode.STATIC and op in JOINING:
            acts = [t for t in node.input if t and t not in inits]
            consts = [t for t in node.input if t in inits]
            if acts and all(t in qset for t in acts) and not (op == "Mul" and consts):
                joining.append(node.name)
                add(out_after_fold(node))
        elif mode == PlanMode.STATIC and op in SAME_SCALE and node.input and node.input[0] in qset:
            tied[node.output[0]] = tied.get(node.input[0], node.input[0])
            add(node.output[0])
    return Structure(layers, quantized, tied, folded, joining, excl.unmatched())

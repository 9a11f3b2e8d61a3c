"""Run only what a plan changes: the part of a realised graph whose values can differ from the float graph's, fed
with the float graph's own tensors where it reads them.

Per-layer sensitivity realises one INT8 layer at a time. Everything upstream of that layer computes exactly what the
float graph computes, so it is run once (the float graph, on the same feeds) and each plan's run starts where the plan
changes the graph: on a chain of layers that halves the work on average.

A node of the realised graph is *unchanged* when the float graph has a node of that name, op and attributes whose inputs
are the same tensors (graph inputs, initializers of the same name, or outputs of unchanged nodes, matched by position).
Everything else — the Q/DQ pairs, nodes reading them, and every node downstream — is the *changed part*. Its boundary
is the tensors it reads from unchanged nodes or graph inputs; their values come from the float graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Part:
    nodes: list  # the changed nodes of the realised graph, in its order
    boundary: dict[str, str]  # what they read from unchanged nodes or graph inputs: name here → name of that value in the float graph
    outputs: list[str]  # the realised graph's outputs the changed nodes make
    output_from_float: str | None  # the first graph output when the plan leaves it unchanged (its float value is the answer)

    @property
    def float_reads(self) -> set[str]:
        """The float graph's tensors this part needs."""
        return set(self.boundary.values()) | ({self.output_from_float} if self.output_from_float else set())


def changed_part(qmodel, float_model) -> Part | None:
    """The changed part of ``qmodel`` (a realisation of a plan on ``float_model``), or None where nodes cannot be
    matched by name (unnamed or repeated names) or a changed node holds a subgraph: then run the whole graph."""
    from onnx import AttributeProto

    fnodes = {n.name: n for n in float_model.graph.node}
    if "" in fnodes or len(fnodes) != len(float_model.graph.node):
        return None
    q_inits = {i.name for i in qmodel.graph.initializer}
    same = {i.name: i.name for i in float_model.graph.input}  # realised tensor → the float tensor of the same value
    same.update((n, n) for n in (i.name for i in float_model.graph.initializer) if n in q_inits)
    changed_nodes, changed_tensors = [], set()
    for node in qmodel.graph.node:
        f = fnodes.get(node.name)
        unchanged = (f is not None and f.op_type == node.op_type and f.domain == node.domain and len(f.input) == len(node.input)
                     and len(f.output) == len(node.output) and list(f.attribute) == list(node.attribute)
                     and all(i == fi if i == "" else (i not in changed_tensors and same.get(i) == fi) for i, fi in zip(node.input, f.input)))
        if unchanged:
            same.update((o, fo) for o, fo in zip(node.output, f.output) if o)
        else:
            changed_nodes.append(node)
            changed_tensors.update(o for o in node.output if o)
    if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for n in changed_nodes for a in n.attribute):
        return None  # a subgraph may read outer tensors its node does not list
    first = qmodel.graph.output[0].name
    if first not in changed_tensors:
        return Part([], {}, [], same.get(first, first))
    boundary = {}
    for node in changed_nodes:
        for i in node.input:
            if i and i not in changed_tensors and i not in q_inits:
                if i not in same:
                    return None  # read from somewhere unmatched: run the whole graph
                boundary[i] = same[i]
    return Part(changed_nodes, boundary, [o.name for o in qmodel.graph.output if o.name in changed_tensors], None)


def sub_model(model, nodes, inputs: dict[str, Any], outputs: list[str], types: dict[str, int]):
    """A graph of ``nodes`` (in order) of ``model``: ``inputs`` (name → an array of the same dtype and rank) become its
    graph inputs, ``outputs`` its outputs (typed by ``types``, float where unknown), the initializers they read come along."""
    from onnx import TensorProto, helper

    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(
        list(nodes), model.graph.name,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), [None] * v.ndim) for n, v in inputs.items()],
        [helper.make_tensor_value_info(n, types.get(n, TensorProto.FLOAT), None) for n in outputs],
        [t for t in model.graph.initializer if t.name in used])
    return helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)


class FloatStream:
    """The float graph run in graph order, a segment at a time, on fixed feeds: each tensor is computed once and kept
    only while a later segment or a later consumer (``wanted``: the float tensors each coming request reads, in order)
    still needs it. ``run(model, feeds_list, names)`` runs a graph of the float model's nodes."""

    def __init__(self, model, feeds: list[dict], run, wanted: list[set[str]], types: dict[str, int]) -> None:
        self.model, self.run, self.types = model, run, types
        self.nodes = list(model.graph.node)
        self.producer = {o: k for k, n in enumerate(self.nodes) for o in n.output if o}
        self.last_read = {}  # tensor → index of the last node that reads it
        for k, n in enumerate(self.nodes):
            for i in n.input:
                self.last_read[i] = k
        self.wanted = wanted
        self.done = 0  # nodes run so far
        self.request = 0  # requests served so far
        inputs = {i.name for i in model.graph.input}
        self.values: list[dict] = [{k: v for k, v in f.items() if k in inputs} for f in feeds]

    def get(self, names: set[str]) -> list[dict]:
        """The float values of ``names`` on every feed (the next request of ``wanted``)."""
        upto = max((self.producer[n] + 1 for n in names if n in self.producer), default=0)
        if upto > self.done:
            self._advance(upto)
        out = [{n: v[n] for n in names} for v in self.values]
        self.request += 1
        self._forget()
        return out

    def _advance(self, upto: int) -> None:
        segment = self.nodes[self.done:upto]
        made = {o for n in segment for o in n.output if o}
        reads = [i for n in segment for i in n.input if i and i not in made]
        inputs = {i: self.values[0][i] for i in dict.fromkeys(reads) if i in self.values[0]}
        later = self._later()
        keep = [o for n in segment for o in n.output if o and (self.last_read.get(o, -1) >= upto or o in later)]
        seg = sub_model(self.model, segment, inputs, keep, self.types)
        for v, r in zip(self.values, self.run(seg, [{i: v[i] for i in inputs} for v in self.values], keep)):
            v.update({k: r[k] for k in keep})
        self.done = upto

    def _later(self) -> set[str]:
        """What the requests still to come read."""
        return set().union(*self.wanted[self.request:])

    def _forget(self) -> None:
        later = self._later()
        for v in self.values:
            for k in [k for k in v if k not in later and self.last_read.get(k, -1) < self.done]:
                del v[k]

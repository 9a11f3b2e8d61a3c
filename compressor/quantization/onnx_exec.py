"""Execute an ONNX graph and fetch intermediate tensors: how calibration, value matching and the QDQ
simulation (per-layer SQNR) see inside the float and quantized graphs.

This is the SDK's instrument, not a deployment runtime: it runs ONNX Runtime at the basic optimisation
level (so every tensor of the graph still exists) on the CPU. Targets are measured by their own backends.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

SESSIONS_KEPT = 2


def ort_session_options(threads: int | None, level: str = "all"):
    """ONNX Runtime session options as the SDK uses them everywhere: one stream, sequential, quiet."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                   "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}[level]
    if threads:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return so


class HeldWeights:
    """A float graph whose large initializers are held beside it as arrays, not inside the proto.

    The proto keeps each of them as a placeholder marked external (location ``compressor-memory``), so a copy of the
    graph costs kilobytes, not the model's size, and every ONNX Runtime session made from a copy shares the arrays
    (``SessionOptions.add_external_initializers``) instead of parsing them again. :meth:`with_data` fills in the
    initializers a realiser reads (the weights of the layers it quantizes): per-layer sensitivity realises one layer
    at a time this way, without a deep copy of the model per layer."""

    LOCATION = "compressor-memory"

    def __init__(self, model, min_bytes: int = 1024) -> None:
        import onnx
        from onnx import numpy_helper

        self.arrays: dict = {}
        self.skeleton = onnx.ModelProto()
        self.skeleton.CopyFrom(model)  # one copy, then the large tensors leave it
        for t in self.skeleton.graph.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL or len(t.raw_data) < min_bytes:
                continue
            self.arrays[t.name] = numpy_helper.to_array(t)
            t.ClearField("raw_data")
            t.data_location = onnx.TensorProto.EXTERNAL
            entry = t.external_data.add()
            entry.key, entry.value = "location", self.LOCATION
        self._values: dict = {}
        self._placeholders = {t.name: i for i, t in enumerate(self.skeleton.graph.initializer) if t.name in self.arrays}

    def with_data(self, names) -> Any:
        """A copy of the graph with the initializers ``names`` (those held) back inside it."""
        import onnx
        from onnx import numpy_helper

        m = onnx.ModelProto()
        m.CopyFrom(self.skeleton)
        for n in dict.fromkeys(names):
            if n in self._placeholders:
                m.graph.initializer[self._placeholders[n]].CopyFrom(numpy_helper.from_array(self.arrays[n], n))
        return m

    def external(self, model) -> tuple[list[str], list]:
        """The held initializers ``model`` still refers to, with the ONNX Runtime values that supply them."""
        import onnx
        import onnxruntime as ort

        names = [t.name for t in model.graph.initializer
                 if t.data_location == onnx.TensorProto.EXTERNAL and any(e.key == "location" and e.value == self.LOCATION for e in t.external_data)]
        for n in names:
            if n not in self._values:
                self._values[n] = ort.OrtValue.ortvalue_from_numpy(self.arrays[n])
        return names, [self._values[n] for n in names]


_SESSIONS: list[tuple[Any, tuple, Any, int]] = []  # (model, names, session, graph outputs): the last few, reused


def _session_with_outputs(model, names: tuple, threads: int | None, held: HeldWeights | None = None):
    import onnx
    import onnxruntime as ort

    for m, n, sess, n_out in _SESSIONS:
        if m is model and n == names:
            return sess, n_out
    n_out = len(model.graph.output)
    m = model
    extra = [n for n in names if n not in {o.name for o in model.graph.output} | {i.name for i in model.graph.input}]
    if extra:
        m = copy.deepcopy(model)
        types = element_types(model)
        for n in dict.fromkeys(extra):
            m.graph.output.append(onnx.helper.make_tensor_value_info(n, types.get(n, onnx.TensorProto.FLOAT), None))
    options = ort_session_options(threads, "basic")
    if held is not None:
        external, values = held.external(m)
        if external:
            options.add_external_initializers(external, values)
    sess = ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
    _SESSIONS.append((model, names, sess, n_out))  # holding the model keeps its id from being reused
    del _SESSIONS[:-SESSIONS_KEPT]
    return sess, n_out


def element_types(model, inferred: bool = True) -> dict[str, int]:
    """Element type of every tensor the graph declares, or (``inferred``) shape inference finds (requested outputs must
    declare theirs)."""
    import onnx

    g = model.graph
    if inferred:
        try:
            g = onnx.shape_inference.infer_shapes(model).graph
        except Exception:  # noqa: BLE001 - an uninferable graph: the caller falls back to float
            pass
    return {vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.output) + list(g.input)
            if vi.type.tensor_type.elem_type}


def run_model(model, feeds_list: Sequence[dict], names: Sequence[str], threads: int | None = None,
              held: HeldWeights | None = None) -> list[dict]:
    """Run a ModelProto on each feed, also returning the named intermediate tensors. The graph's own
    outputs come back under ``"__outputs__"``. A model made by ``held.with_data`` runs with ``held``'s arrays."""
    sess, n_out = _session_with_outputs(model, tuple(names), threads, held)
    inputs = {i.name for i in sess.get_inputs()}
    out_names = [o.name for o in sess.get_outputs()]
    results = []
    for feeds in feeds_list:
        values = dict(zip(out_names, sess.run(None, feeds)))
        d = {n: (feeds[n] if n in inputs else values[n]) for n in names}
        d["__outputs__"] = [values[o] for o in out_names[:n_out]]
        results.append(d)
    return results


def float_tensors(model) -> list[str]:
    """Every float tensor the graph computes (node outputs), in graph order: candidates for value matching."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    typed = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.output) + list(g.input)}
    names = [i.name for i in g.input] + [o for n in g.node for o in n.output if o]
    return list(dict.fromkeys(n for n in names if typed.get(n) == onnx.TensorProto.FLOAT))

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


_SESSIONS: list[tuple[Any, tuple, Any, int]] = []  # (model, names, session, graph outputs): the last few, reused


def _session_with_outputs(model, names: tuple, threads: int | None):
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
        types = _elem_types(model)
        for n in dict.fromkeys(extra):
            m.graph.output.append(onnx.helper.make_tensor_value_info(n, types.get(n, onnx.TensorProto.FLOAT), None))
    sess = ort.InferenceSession(m.SerializeToString(), ort_session_options(threads, "basic"), providers=["CPUExecutionProvider"])
    _SESSIONS.append((model, names, sess, n_out))  # holding the model keeps its id from being reused
    del _SESSIONS[:-SESSIONS_KEPT]
    return sess, n_out


def _elem_types(model) -> dict[str, int]:
    """Element type of every tensor the graph knows or shape inference finds (requested outputs must declare theirs)."""
    import onnx

    try:
        g = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # noqa: BLE001 - an uninferable graph: the caller falls back to float
        g = model.graph
    return {vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.output) + list(g.input)
            if vi.type.tensor_type.elem_type}


def run_model(model, feeds_list: Sequence[dict], names: Sequence[str], threads: int | None = None) -> list[dict]:
    """Run a ModelProto on each feed, also returning the named intermediate tensors. The graph's own
    outputs come back under ``"__outputs__"``."""
    sess, n_out = _session_with_outputs(model, tuple(names), threads)
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

"""ONNX Runtime on the CPU (``CPUExecutionProvider``): FP32, static INT8 (QDQ) and dynamic INT8."""

from __future__ import annotations

import collections
import copy
import json
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from compressor.io.export_onnx import export_onnx
from compressor.core.backend import Artifact, Backend, BuildContext, Runner
from compressor.core.specs import InputSpec

PLAN_FILE = "quantization_plan.json"
INT8_KERNELS = {"QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                "MatMulIntegerToFloat", "QAttention", "DynamicQuantizeLSTM"}
FLOAT_HEAVY = {"Conv", "FusedConv", "NchwcConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"}


def session_options(threads: int | None, level: str = "all"):
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


class OrtRunner(Runner):
    def __init__(self, path: Path, threads: int | None):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.threads = threads
        self._version = ort.__version__

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": "onnxruntime",
            "version": self._version,
            "providers": self.session.get_providers(),
            "intra_op_threads": self.threads,
            "graph_optimization": "ORT_ENABLE_ALL",
        }


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
        for n in dict.fromkeys(extra):
            m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), session_options(threads, "basic"), providers=["CPUExecutionProvider"])
    _SESSIONS.append((model, names, sess, n_out))  # holding the model keeps its id from being reused
    del _SESSIONS[:-2]
    return sess, n_out


def run_model(model, feeds_list: Sequence[dict], names: Sequence[str], threads: int | None = None) -> list[dict]:
    """Run a ModelProto on each feed, also returning the named intermediate tensors (for calibration and
    sensitivity). The graph's own outputs come back under ``"__outputs__"``."""
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


def inspect_kernels(path: Path, plan) -> dict[str, Any]:
    """Which heavy ops ONNX Runtime actually runs as INT8 after its optimisations (what the manifest claims)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = session_options(1)
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        opt = onnx.load(so.optimized_model_filepath)
    counts = collections.Counter(n.op_type for n in opt.graph.node)
    int8_inputs = {i for n in opt.graph.node if n.op_type in INT8_KERNELS | {"Gather"} for i in n.input}
    running_int8, running_float = [], []
    for layer in plan.quantized_layers:
        if layer.precision == "int8-weight-only":
            continue  # int8 storage, float compute by design: nothing to fuse
        key = f"{layer.node}_dyn_W_quantized" if plan.mode == "dynamic" else None
        hit = any((key and i == key) or (not key and i.endswith(f"_dq_{layer.node}_quantized")) for i in int8_inputs)
        (running_int8 if hit else running_float).append(layer.name)
    heavy_float = sum(v for k, v in counts.items() if k in FLOAT_HEAVY)
    heavy_int8 = sum(v for k, v in counts.items() if k in INT8_KERNELS)
    weight_layers = [l for l in plan.layers if l.op_type != "Gather"]
    float_weight_layers = [l.name for l in weight_layers if l.precision != "int8" or l.name in running_float]
    weight_only = [l.name for l in weight_layers if l.precision == "int8-weight-only"]
    return {
        "heavy_ops_total": heavy_int8 + heavy_float,
        "heavy_ops_int8": heavy_int8,
        "heavy_ops_float": heavy_float,
        # float heavy ops that are not weight layers: activation x activation MatMuls (attention scores), …
        "heavy_ops_float_without_weights": max(0, heavy_float - len(float_weight_layers)),
        "weight_layers_int8_weight_only": len(weight_only),
        "weight_layers_total": len(weight_layers),
        "weight_layers_int8": len(weight_layers) - len(float_weight_layers),
        "int8_kernels": {k: v for k, v in sorted(counts.items()) if k in INT8_KERNELS},
        "float_heavy_kernels": {k: v for k, v in sorted(counts.items()) if k in FLOAT_HEAVY},
        "planned_int8_layers_running_float": running_float,
        "method": "ORT_ENABLE_ALL optimised graph of the artifact, read back and counted",
    }


def to_ort_format(onnx_path: Path) -> Path:
    """ONNX Runtime Mobile's .ort flatbuffer, optimised at conversion time (Fixed style), next to ``onnx_path``."""
    import contextlib
    import io
    import logging

    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        logging.disable(logging.INFO)  # the converter logs each step at INFO
        try:
            convert_onnx_models_to_ort(onnx_path, output_dir=Path(tmp), optimization_styles=[OptimizationStyle.Fixed])
        finally:
            logging.disable(logging.NOTSET)
        made = sorted(Path(tmp).glob("*.ort"))
        if not made:
            from compressor.core.errors import ExportError

            raise ExportError("ONNX Runtime could not convert the INT8 model to the .ort format")
        out = onnx_path.with_suffix(".ort")
        made[0].replace(out)
    return out


class OrtBackend(Backend):
    name = "onnxruntime"
    package = "onnxruntime"

    def preload(self) -> None:
        import onnxruntime  # noqa: F401

    def available(self, target):
        from backends import package_missing

        missing = package_missing("onnxruntime")
        if missing:
            return False, missing
        if target.precision not in ("fp32", "int8", "int8-dynamic"):
            return False, f"precision {target.precision} is not supported by ONNX Runtime's CPU provider here"
        return True, ""

    def build(self, model, target, workdir, ctx: BuildContext | None = None) -> Artifact:
        ctx = ctx or BuildContext()
        workdir = Path(workdir)
        path = workdir / "model.onnx"
        if target.precision == "fp32":
            return Artifact(target.name, path, [path], export_onnx(model, path))
        import onnx

        from compressor.quantization.onnx_flow import quantize
        from compressor.quantization.ptq import QuantSettings

        with tempfile.TemporaryDirectory() as tmp:
            details = export_onnx(model, Path(tmp) / "fp32.onnx")
            fp32 = onnx.load(str(Path(tmp) / "fp32.onnx"))
        mode = "static" if target.precision == "int8" else "dynamic"
        threads = target.runtime.get("threads")
        qmodel, plan, sensitivity = quantize(
            model, fp32, mode, ctx.quant or QuantSettings(), ctx.calib, lambda m, f, n: run_model(m, f, n, threads),
            progress=ctx.progress, warn=ctx.warn, analysis=ctx.eval, task=ctx.task,
        )
        onnx.save_model(qmodel, str(path))
        kernels = inspect_kernels(path, plan)
        if kernels["planned_int8_layers_running_float"]:
            float_now = set(kernels["planned_int8_layers_running_float"])
            for layer in plan.layers:  # never claim INT8 for a layer the runtime runs in float
                if layer.name in float_now:
                    layer.precision, layer.reason = "float", "ONNX Runtime did not fuse it into an INT8 kernel"
            ctx.warn(f"{len(float_now)} planned INT8 layer(s) run in float on ONNX Runtime: {', '.join(sorted(float_now)[:5])}")
        plan_path = workdir / PLAN_FILE
        plan_path.write_text(json.dumps(plan.to_dict(), separators=(",", ":")) + "\n")
        details["quantization"] = {**plan.summary(), "kernels": kernels, "plan_file": PLAN_FILE,
                                   **({"sensitivity": sensitivity} if sensitivity else {})}
        if target.artifact_format == "ort":
            ort_path = to_ort_format(path)
            path.unlink()
            details["ort_format"] = {"converter": "onnxruntime.tools.convert_onnx_models_to_ort", "optimization_style": "Fixed",
                                     "note": "kernel counts above are of the INT8 ONNX model the .ort file was converted from"}
            return Artifact(target.name, ort_path, [ort_path, plan_path], details)
        return Artifact(target.name, path, [path, plan_path], details)

    def load(self, path, target, threads=None) -> Runner:
        return OrtRunner(Path(path), threads)

    def artifact_inputs(self, path) -> list[InputSpec]:
        import onnx

        if Path(path).suffix == ".ort":
            sess = OrtRunner(Path(path), 1).session
            return [InputSpec.parse(",".join(str(d) if isinstance(d, int) else f"dim{j}" for j, d in enumerate(i.shape)),
                                    name=i.name, dtype="float32" if "float" in i.type else "int64") for i in sess.get_inputs()]
        model = onnx.load(str(path), load_external_data=False)
        init = {i.name for i in model.graph.initializer}
        specs = []
        for vi in model.graph.input:
            if vi.name in init:
                continue
            dims = [str(d.dim_value) if d.dim_value > 0 else (d.dim_param or f"dim{i}")
                    for i, d in enumerate(vi.type.tensor_type.shape.dim)]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name
            specs.append(InputSpec.parse(",".join(dims), name=vi.name, dtype=dtype))
        return specs

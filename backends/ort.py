"""ONNX Runtime on the CPU (``CPUExecutionProvider``): FP32, static INT8 (QDQ) and dynamic INT8, and ONNX
Runtime Mobile's ``.ort`` format. The IR it receives is already the artifact (float, QDQ or dynamic ONNX);
after loading, ORT's optimised graph is read back to count which layers really run INT8 kernels."""

from __future__ import annotations

import collections
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.backend import Artifact, Backend, KernelReport, Runner
from compressor.core.errors import ExportError
from compressor.core.registry import package_missing
from compressor.core.specs import InputSpec
from compressor.core.targets import Device, IRFormat, PlanMode, Precision, TargetSpec
from compressor.quantization.onnx_exec import ort_session_options

INT8_KERNELS = {"QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                "MatMulIntegerToFloat", "QAttention", "DynamicQuantizeLSTM"}
FLOAT_HEAVY = {"Conv", "FusedConv", "NchwcConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"}


class OrtRunner(Runner):
    def __init__(self, path: Path, threads: int | None):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), ort_session_options(threads), providers=["CPUExecutionProvider"])
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


def inspect_kernels(path: Path, plan) -> dict[str, Any]:
    """Which heavy ops ONNX Runtime actually runs as INT8 after its optimisations (what the manifest claims)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort_session_options(1)
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        opt = onnx.load(so.optimized_model_filepath)
    counts = collections.Counter(n.op_type for n in opt.graph.node)
    int8_inputs = {i for n in opt.graph.node if n.op_type in INT8_KERNELS | {"Gather"} for i in n.input}
    running_int8, running_float = [], []
    for layer in plan.quantized_layers:
        if layer.precision == "int8-weight-only":
            continue  # int8 storage, float compute by design: nothing to fuse
        key = f"{layer.node}_dyn_W_quantized" if plan.mode == PlanMode.DYNAMIC else None
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
    arm64_runtime = "ort"
    TARGETS = (
        TargetSpec("ort-cpu-fp32", name, Device.CPU, Precision.FP32, IRFormat.ONNX, "onnx", "ONNX Runtime CPU execution provider, FP32",
                   opens=(".onnx",)),
        TargetSpec("ort-cpu-int8", name, Device.CPU, Precision.INT8, IRFormat.ONNX, "onnx", "ONNX Runtime CPU, static INT8 (QDQ, calibrated)"),
        TargetSpec("ort-cpu-int8-dynamic", name, Device.CPU, Precision.INT8_DYNAMIC, IRFormat.ONNX, "onnx",
                   "ONNX Runtime CPU, dynamic INT8 (MatMul/Gemm weights)"),
        TargetSpec("ort-mobile-int8", name, Device.EDGE, Precision.INT8, IRFormat.ONNX, "ort",
                   "ONNX Runtime Mobile .ort format, static INT8 (the SDK's plan)", opens=(".ort",)),
    )

    def preload(self) -> None:
        import onnxruntime  # noqa: F401

    def available(self, target):
        missing = package_missing("onnxruntime")
        if missing:
            return False, missing
        return True, ""

    def compile(self, model, ir, target, workdir, ctx) -> Artifact:
        if ir.path is None:
            raise ExportError(f"{target.name} compiles an ONNX file, and this IR has none (made by {ir.export.get('quantization_realiser')})")
        path = Path(workdir) / "model.onnx"
        shutil.copyfile(ir.path, path)
        if target.artifact_format == "ort":
            ort_path = to_ort_format(path)
            path.unlink()
            details = {"ort_format": {"converter": "onnxruntime.tools.convert_onnx_models_to_ort", "optimization_style": "Fixed",
                                      "note": "kernel counts are of the INT8 ONNX model the .ort file was converted from"}}
            return Artifact(target.name, ort_path, [ort_path], [ort_path], details)
        return Artifact(target.name, path, [path], [path], {})

    def kernel_report(self, artifact, ir, target, ctx):
        if ir.plan is None or ir.path is None:
            return None
        report = inspect_kernels(ir.path, ir.plan)
        report["summary"] = (f"heavy ops INT8: {report['heavy_ops_int8']} of {report['heavy_ops_total']} {report['int8_kernels']}"
                             + (f" ({report['heavy_ops_float_without_weights']} float heavy ops multiply two activations, e.g. attention scores)"
                                if report["heavy_ops_float_without_weights"] else ""))
        return KernelReport.of(report, self.name)

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

"""OpenVINO on the CPU: FP32, BF16 and INT8 IRs (``model.xml`` + ``model.bin``).

OpenVINO runs "FP32" models in bf16 on CPUs with AVX512-BF16/AMX unless told otherwise, so the
inference precision hint is always set explicitly (f32 for the fp32 and int8 targets, bf16 for the bf16
target), read back from the compiled model and recorded. The IR stores its target precision in its
rt_info; loading it as another precision is refused. Weights are saved as built (no silent fp16
compression). INT8 realises the SDK's quantization plan through QDQ ONNX (calibrated by executing the
float graph with ONNX Runtime), or NNCF's own post-training quantization with ``quantizer: nncf``.
"""

from __future__ import annotations

import collections
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compressor.io.export_onnx import export_onnx
from compressor.core.backend import Artifact, Backend, BuildContext, Runner
from compressor.core.specs import InputSpec

RT_KEY = ["compressor", "target_precision"]
HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}
WEIGHT_OPS = {"Convolution", "GroupConvolution", "FullyConnected", "MatMul", "Deconvolution"}


def cpu_capabilities() -> list[str]:
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class OpenVinoRunner(Runner):
    def __init__(self, path: Path, precision: str, threads: int | None):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        built_for = _rt(model)
        if built_for and built_for != precision:
            from compressor.core.errors import TargetError

            raise TargetError(f"IR '{path.name}' was built for precision {built_for} but is being run as {precision}: "
                              f"run it with the openvino-cpu-{built_for} target")
        config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self._outputs = list(self.compiled.outputs)
        self.threads = threads
        self._version = ov.__version__

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        res = self.request.infer(feeds)
        return [np.array(res[o]) for o in self._outputs]

    def describe(self) -> dict[str, Any]:
        c = self.compiled
        return {
            "runtime": "openvino",
            "version": self._version,
            "device": "CPU",
            "inference_precision": str(c.get_property("INFERENCE_PRECISION_HINT")).replace("<Type: '", "").rstrip("'>"),
            "performance_hint": str(c.get_property("PERFORMANCE_HINT")),
            "num_streams": int(c.get_property("NUM_STREAMS")),
            "inference_num_threads": int(c.get_property("INFERENCE_NUM_THREADS")),
            "layer_precisions": runtime_precisions(c),
        }


def runtime_precisions(compiled) -> dict[str, int]:
    """How many layers with weights the compiled model runs at each precision (u8/i8 = INT8 kernels)."""
    counts = collections.Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else ""
        if kind in WEIGHT_OPS:
            counts[f"{kind}:{info['runtimePrecision'].astype(str)}"] += 1
    return dict(sorted(counts.items()))


def _rt(model) -> str | None:
    try:
        return model.get_rt_info(RT_KEY).astype(str)
    except Exception:  # noqa: BLE001 - absent in IRs not written by us
        return None


def _constant_types(model) -> dict[str, int]:
    types = collections.Counter(str(op.get_output_element_type(0)).replace("<Type: '", "").rstrip("'>")
                                for op in model.get_ordered_ops() if op.get_type_name() == "Constant")
    return dict(sorted(types.items()))


class OpenVinoBackend(Backend):
    name = "openvino"
    package = "openvino"

    def preload(self) -> None:
        import openvino  # noqa: F401

    def available(self, target):
        from backends import package_missing

        missing = package_missing("openvino")
        if missing:
            return False, missing
        if target.precision not in HINTS:
            return False, f"precision {target.precision} is not offered by this backend"
        if target.precision == "bf16" and "BF16" not in cpu_capabilities():
            return False, ("this CPU has no bf16 support (OpenVINO reports no BF16 capability: needs AVX512-BF16 or AMX); "
                           "bf16 is not emulated or silently replaced by f32")
        if target.precision == "int8":
            onnxrt = package_missing("onnxruntime")
            if onnxrt:
                return False, f"INT8 calibration executes the float graph with ONNX Runtime: {onnxrt}"
        return True, ""

    def build(self, model, target, workdir, ctx: BuildContext | None = None) -> Artifact:
        import onnx
        import openvino as ov

        ctx = ctx or BuildContext()
        workdir = Path(workdir)
        xml = workdir / "model.xml"
        extra_files: list[Path] = []
        with tempfile.TemporaryDirectory() as tmp:
            fp32_path = Path(tmp) / "fp32.onnx"
            details = export_onnx(model, fp32_path)
            quantization = None
            if target.precision == "int8":
                quantizer = getattr(ctx.quant, "quantizer", "sdk") if ctx.quant is not None else "sdk"
                if quantizer == "nncf":
                    ov_model, quantization = self._nncf(model, fp32_path, ctx)
                else:
                    ov_model, quantization, plan_path = self._sdk_int8(model, onnx.load(str(fp32_path)), target, workdir, ctx)
                    extra_files.append(plan_path)
            else:
                ov_model = ov.convert_model(str(fp32_path))
        ov_model.set_rt_info(target.precision, RT_KEY)
        ov.save_model(ov_model, str(xml), compress_to_fp16=False)
        details["ir"] = {"weights_and_constants": _constant_types(ov_model), "compress_to_fp16": False,
                         "inference_precision_hint": HINTS[target.precision], "target_precision": target.precision}
        runner = OpenVinoRunner(xml, target.precision, target.runtime.get("threads"))
        layers = runner.describe()["layer_precisions"]
        details["ir"]["compiled_layer_precisions"] = layers
        if quantization is not None:
            quantization["kernels"] = _int8_kernel_check(layers, quantization, ctx)
            details["quantization"] = quantization
        want = {"fp32": ":f32", "bf16": ":bf16"}.get(target.precision)
        if want and any(not k.endswith(want) for k in layers):
            ctx.warn(f"OpenVINO compiled some layers of the {target.precision} IR at another precision: {layers}")
        return Artifact(target.name, xml, [xml, xml.with_suffix(".bin"), *extra_files], details)

    def _sdk_int8(self, model, fp32, target, workdir, ctx):
        import json

        import openvino as ov

        from compressor.quantization.onnx_flow import quantize
        from compressor.quantization.ptq import QuantSettings

        from backends.ort import run_model

        threads = target.runtime.get("threads")
        qmodel, plan, sensitivity = quantize(model, fp32, "static", ctx.quant or QuantSettings(), ctx.calib,
                                             lambda m, f, n: run_model(m, f, n, threads), progress=ctx.progress, warn=ctx.warn,
                                             analysis=ctx.eval, task=ctx.task)
        with tempfile.TemporaryDirectory() as tmp:
            q_path = Path(tmp) / "qdq.onnx"
            import onnx

            onnx.save_model(qmodel, str(q_path))
            ov_model = ov.convert_model(str(q_path))
        plan_path = workdir / "quantization_plan.json"
        plan_path.write_text(json.dumps(plan.to_dict(), separators=(",", ":")) + "\n")
        summary = {**plan.summary(), "quantizer": "sdk (QDQ ONNX from the SDK's plan)", "plan_file": plan_path.name,
                   **({"sensitivity": sensitivity} if sensitivity else {})}
        return ov_model, summary, plan_path

    def _nncf(self, model, fp32_path, ctx):
        """NNCF's default post-training quantization on the float IR, same calibration data and exclusions."""
        import onnx
        import openvino as ov

        from compressor.core.errors import InputError
        from compressor.quantization.onnx_flow import calibration_feeds
        from compressor.quantization.ptq import QuantSettings, check_calibration
        from compressor.quantization.structure import analyse

        from backends import package_missing

        missing = package_missing("nncf")
        if missing:
            raise InputError(f"--quantizer nncf needs NNCF: {missing}")
        import nncf

        settings = ctx.quant or QuantSettings()
        if ctx.calib is None:
            raise InputError("INT8 needs calibration data: pass --calib DATA (100 or more representative inputs recommended)")
        n = min(len(ctx.calib), settings.calib_samples)
        check_calibration(n)
        structure = analyse(onnx.load(str(fp32_path)), model.module, settings.exclude, mode="static")
        for p in structure.exclusions_unmatched:
            ctx.warn(f"exclusion '{p}' matches no quantizable layer")
        ignored = [l["node"] for l in structure.layers if l["precision"] != "int8"]
        ov_model = ov.convert_model(str(fp32_path))
        feeds = calibration_feeds(ctx.calib, model.inputs, n)
        # OpenVINO names an ONNX node's weight op "<node>/WithoutBiases" and its bias add "<node>"
        patterns = [f"^{re.escape(node)}(/.*)?$" for node in ignored]
        with ctx.progress.stage(f"NNCF quantized with {n} samples"):
            q = nncf.quantize(ov_model, nncf.Dataset(feeds), subset_size=len(feeds),
                              ignored_scope=nncf.IgnoredScope(patterns=patterns, validate=False) if patterns else None)
        layers = [{"name": l["name"], "precision": l["precision"], "reason": l["reason"]} for l in structure.layers]
        return q, {"mode": "static", "quantizer": f"nncf {nncf.__version__} (default preset, OpenVINO backend)",
                   "calibration": {"method": "nncf default", "samples": n}, "layers_total": len(layers),
                   "layers_int8": sum(l["precision"] == "int8" for l in layers),
                   "float_layers": {l["name"]: l["reason"] for l in layers if l["precision"] != "int8"},
                   "exclusions": list(settings.exclude), "activation_dtype": "nncf default", "weight_dtype": "int8",
                   "warnings": []}

    def load(self, path, target, threads=None) -> Runner:
        return OpenVinoRunner(Path(path), target.precision, threads)

    def artifact_inputs(self, path) -> list[InputSpec]:
        import openvino as ov

        model = ov.Core().read_model(str(path))
        specs = []
        for i, inp in enumerate(model.inputs):
            dims = [str(d.get_length()) if d.is_static else f"dim{j}" for j, d in enumerate(inp.get_partial_shape())]
            dtype = str(inp.get_element_type().to_dtype()) if hasattr(inp.get_element_type(), "to_dtype") else "float32"
            specs.append(InputSpec.parse(",".join(dims), name=inp.get_any_name(), dtype=dtype))
        return specs


def _int8_kernel_check(layers: dict[str, int], quantization: dict, ctx: BuildContext) -> dict:
    total = sum(layers.values())
    int8 = sum(v for k, v in layers.items() if k.endswith((":u8", ":i8")))
    planned = quantization.get("layers_int8", 0)
    if int8 < planned:
        ctx.warn(f"OpenVINO runs {int8} layers with weights in INT8 but {planned} were planned: the rest run in float")
        quantization["layers_int8"] = int8
    return {"weight_layers_total": total, "weight_layers_int8": int8, "compiled_layer_precisions": layers,
            "method": "OpenVINO compiled runtime model: runtimePrecision of each layer with weights"}

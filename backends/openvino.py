"""OpenVINO on the CPU: FP32, BF16 and INT8 IRs (``model.xml`` + ``model.bin``).

OpenVINO runs "FP32" models in bf16 on CPUs with AVX512-BF16/AMX unless told otherwise, so the
inference precision hint is always set explicitly (f32 for the fp32 and int8 targets, bf16 for the bf16
target), read back from the compiled model and recorded. The IR stores its target precision in its
rt_info; loading it as another precision is refused. Weights are saved as built (no silent fp16
compression). The IR received is ONNX (float, or the SDK's plan realised as QDQ), or the OpenVINO model
NNCF made when ``--quantizer nncf`` was asked for; the kernel report reads back the compiled precisions.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.backend import Artifact, Backend, KernelReport, Runner
from compressor.core.registry import package_missing
from compressor.core.specs import InputSpec
from compressor.core.targets import Device, IRFormat, Precision, TargetSpec

RT_KEY = ["compressor", "target_precision"]
HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16", "fp16": "f16"}
WEIGHT_OPS = {"Convolution", "GroupConvolution", "FullyConnected", "MatMul", "Deconvolution"}


def cpu_capabilities() -> list[str]:
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def property_value(v) -> Any:
    """A compiled model's property as plain data: ``<Type: 'float32'>`` → ``float32``, digits → int."""
    s = str(v)
    return int(s) if s.isdigit() else s.replace("<Type: '", "").rstrip("'>")


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
        self._core, self._model, self._config = core, model, config
        self.request = self.compiled.create_infer_request()
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self._outputs = list(self.compiled.outputs)
        self.threads = threads
        self._version = ov.__version__

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        res = self.request.infer(feeds)
        return [np.array(res[o]) for o in self._outputs]

    def throughput(self, feeds: dict[str, np.ndarray], streams: int, seconds: float) -> dict[str, Any]:
        """OpenVINO's own throughput mode: the model compiled with PERFORMANCE_HINT=THROUGHPUT and NUM_STREAMS=streams on
        the same threads and precision, fed by an AsyncInferQueue of ``streams`` jobs for ``seconds``."""
        import time

        import openvino as ov

        config = {**self._config, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams}
        compiled = self._core.compile_model(self._model, "CPU", config)
        queue = ov.AsyncInferQueue(compiled, streams)
        done = [0]
        queue.set_callback(lambda request, userdata: done.__setitem__(0, done[0] + 1))
        for _ in range(streams):  # warm every stream once
            queue.start_async(feeds)
        queue.wait_all()
        done[0] = 0
        start = time.perf_counter()
        stop = start + seconds
        while time.perf_counter() < stop:
            queue.start_async(feeds)  # blocks while every job is busy
        queue.wait_all()
        elapsed = time.perf_counter() - start
        return {"calls": done[0], "seconds": elapsed, "streams_compiled": int(compiled.get_property("NUM_STREAMS")),
                "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
                "method": f"OpenVINO PERFORMANCE_HINT=THROUGHPUT, NUM_STREAMS={streams}, the same INFERENCE_NUM_THREADS and "
                          f"precision hint; an AsyncInferQueue of {streams} jobs kept full"}

    def describe(self) -> dict[str, Any]:
        c = self.compiled
        return {
            "runtime": "openvino",
            "version": self._version,
            "device": "CPU",
            "inference_precision": property_value(c.get_property("INFERENCE_PRECISION_HINT")),
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
    TARGETS = (
        TargetSpec("openvino-cpu-fp32", name, Device.CPU, Precision.FP32, IRFormat.ONNX, "openvino-ir",
                   "OpenVINO CPU, f32 inference precision (set explicitly)", opens=(".xml",)),
        TargetSpec("openvino-cpu-bf16", name, Device.CPU, Precision.BF16, IRFormat.ONNX, "openvino-ir",
                   "OpenVINO CPU, bf16 inference precision", needs="a CPU with AVX512-BF16 or AMX"),
        TargetSpec("openvino-cpu-fp16", name, Device.CPU, Precision.FP16, IRFormat.ONNX, "openvino-ir",
                   "OpenVINO CPU, f16 inference precision", needs="a CPU OpenVINO runs f16 on natively (AVX512-FP16 / AMX-FP16, or Arm)"),
        TargetSpec("openvino-cpu-int8", name, Device.CPU, Precision.INT8, IRFormat.ONNX, "openvino-ir",
                   "OpenVINO CPU, INT8 (the SDK's plan, or --quantizer nncf)", quantizers=("sdk", "nncf")),
    )

    def preload(self) -> None:
        import openvino  # noqa: F401

    def available(self, target):
        missing = package_missing("openvino")
        if missing:
            return False, missing
        if target.precision == Precision.BF16 and "BF16" not in cpu_capabilities():
            return False, ("this CPU has no bf16 support (OpenVINO reports no BF16 capability: needs AVX512-BF16 or AMX); "
                           "bf16 is not emulated or silently replaced by f32")
        if target.precision == Precision.FP16 and "FP16" not in cpu_capabilities():
            return False, ("this CPU has no native f16 arithmetic (OpenVINO reports no FP16 capability: needs AVX512-FP16 / AMX-FP16, "
                           "or Arm); OpenVINO would run it in f32")
        return True, ""

    def compile(self, model, ir, target, workdir, ctx) -> Artifact:
        import openvino as ov

        xml = Path(workdir) / "model.xml"
        ov_model = ir.native if ir.native is not None else ov.convert_model(str(ir.path))
        ov_model.set_rt_info(target.precision.value, RT_KEY)
        ov.save_model(ov_model, str(xml), compress_to_fp16=False)
        details = {"ir": {"weights_and_constants": _constant_types(ov_model), "compress_to_fp16": False,
                          "inference_precision_hint": HINTS[target.precision], "target_precision": target.precision.value}}
        layers = OpenVinoRunner(xml, target.precision, ctx.threads).describe()["layer_precisions"]
        details["ir"]["compiled_layer_precisions"] = layers
        want = {Precision.FP32: ":f32", Precision.BF16: ":bf16", Precision.FP16: ":f16"}.get(target.precision)
        if want and any(not k.endswith(want) for k in layers):
            ctx.warn(f"OpenVINO compiled some layers of the {target.precision} IR at another precision: {layers}")
        files = [xml, xml.with_suffix(".bin")]
        return Artifact(target.name, xml, files, files, details)

    def kernel_report(self, artifact, ir, target, ctx):
        if ir.plan is None:
            return None
        layers = artifact.details["ir"]["compiled_layer_precisions"]
        total = sum(layers.values())
        int8 = sum(v for k, v in layers.items() if k.endswith((":u8", ":i8")))
        planned = len(ir.plan.int8_layers)
        if int8 < planned:
            ctx.warn(f"OpenVINO runs {int8} layers with weights in INT8 but {planned} were planned: the rest run in float")
        return KernelReport(weight_layers_total=total, weight_layers_int8=int8, summary=f"compiled layer precisions {layers}",
                            method="OpenVINO compiled runtime model: runtimePrecision of each layer with weights",
                            details={"compiled_layer_precisions": layers})

    def load(self, path, target, threads=None) -> Runner:
        return OpenVinoRunner(Path(path), target.precision, threads)

    def artifact_inputs(self, path) -> list[InputSpec]:
        import openvino as ov

        model = ov.Core().read_model(str(path))
        specs = []
        for inp in model.inputs:
            dims = [str(d.get_length()) if d.is_static else f"dim{j}" for j, d in enumerate(inp.get_partial_shape())]
            dtype = str(inp.get_element_type().to_dtype()) if hasattr(inp.get_element_type(), "to_dtype") else "float32"
            specs.append(InputSpec.parse(",".join(dims), name=inp.get_any_name(), dtype=dtype))
        return specs

"""NVIDIA GPUs through TensorRT: serialized engines built from ONNX, ahead of time, on any machine.

Two flavours: full TensorRT (``tensorrt``) when it is installed, else TensorRT-RTX (``tensorrt_rtx``), which
builds engines without a GPU for chosen compute capabilities. Networks are strongly typed, so the
precision is the ONNX graph's: FP16 converts the float graph to float16 (inputs and outputs stay float32);
INT8 is the SDK's plan in TensorRT's explicit-quantization QDQ layout (symmetric int8 activations, float
biases; see compressor/quantization/qdq.py) with every non-INT8 layer in FP16. Running an engine needs an
NVIDIA GPU (torch must see CUDA): without one the engine is bundled unvalidated, with the FP32 reference
outputs, for ``compressor verify`` on the device.
"""

from __future__ import annotations

import collections
import importlib
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.backend import Artifact, Backend, KernelReport, Runner
from compressor.core.environment import NO_CUDA, cuda_device, package_version
from compressor.core.errors import ExportError, InputError, TargetError, first_line
from compressor.core.files import fmt_size
from compressor.core.layers import ONNX_WEIGHT_OPS
from compressor.core.registry import package_missing
from compressor.core.specs import InputSpec
from compressor.core.targets import Device, IRFormat, Precision, TargetSpec

#: (module, distribution, name) in order of preference
FLAVOURS = (("tensorrt", "tensorrt", "TensorRT"), ("tensorrt_rtx", "tensorrt-rtx", "TensorRT-RTX"))
ENGINE_INFO = "engine.json"  # beside the engine: flavour, version, compute capabilities, io names, profile
NO_GPU = NO_CUDA
#: what TensorRT-RTX 1.7 builds for when no compute capability is named (set explicitly, so the manifest says it)
RTX_DEFAULT_ARCHS = ("sm80", "sm86", "sm89", "sm120")
TIMING_CACHE = Path.home() / ".cache" / "compressor" / "tensorrt-timing.cache"

README = """# {name}: TensorRT engine

`model.engine` ({size}) was built by {flavour} {version} for compute capabilities {archs}
({precision}; strongly typed network: the precision of each layer is the ONNX graph's). Load it with the same
{flavour} version on one of those GPUs.

Inputs: {inputs} (optimization profile min/opt/max: {profile})
Outputs: {outputs}

## Check on the device
`compressor verify <bundle>` runs `reference/inputs.npz` through the engine on the GPU and compares with
`reference/outputs.npz` within the manifest's `reference.tolerance`{unvalidated}.

## C++
```cpp
auto runtime = nvinfer1::createInferRuntime(logger);
auto engine = runtime->deserializeCudaEngine(data, size);
auto context = engine->createExecutionContext();
context->setInputShape("{first}", dims);  // within the profile
context->setTensorAddress(...);             // device buffers for every input and output
context->enqueueV3(stream);
```
"""


@lru_cache(maxsize=1)
def flavour() -> tuple[str, str, str] | None:
    """The TensorRT flavour installed here (full TensorRT preferred), or None."""
    for module, dist, name in FLAVOURS:
        if package_missing(dist, module) is None:
            return module, dist, name
    return None


def _trt():
    f = flavour()
    if f is None:
        raise TargetError(_missing())
    return importlib.import_module(f[0])


def _missing() -> str:
    return ("no TensorRT here: pip install tensorrt-rtx (TensorRT-RTX builds engines on this machine without a GPU; "
            "`make setup` installs it) or NVIDIA's full tensorrt package")


def version() -> str:
    f = flavour()
    if f is None:
        return "not installed"
    return package_version(f[1]) or getattr(importlib.import_module(f[0]), "__version__", "unknown")


def _logger(trt):
    class Collect(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(msg)

    return Collect()


def to_fp16(model):
    """The ONNX graph with float tensors in float16; graph inputs and outputs stay float32 (cast at the edges). QDQ
    scales become float16 too, so every DequantizeLinear feeds its layer in FP16."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)


def is_2to4(w: np.ndarray) -> bool:
    """Every group of 4 consecutive input-channel weights has at least 2 zeros (NVIDIA's 2:4 structured sparsity)."""
    if w.ndim < 2 or w.shape[1] % 4:
        return False
    g = np.moveaxis(w, 1, -1).reshape(-1, 4)
    return bool(((g == 0).sum(axis=1) >= 2).all())


def sparse_layers(model) -> list[str]:
    """Conv/Gemm/MatMul weights of an ONNX graph that are 2:4 sparse."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type in ONNX_WEIGHT_OPS and len(node.input) > 1 and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            if is_2to4(w) or (node.op_type != "Conv" and is_2to4(np.atleast_2d(w).T)):  # Gemm (out, in) or MatMul (in, out)
                found.append(node.name)
    return found


class TensorRtRunner(Runner):
    """An engine on the GPU: inputs copied to the device, enqueueV3 on torch's current stream, outputs copied back."""

    def __init__(self, path: Path, info: dict):
        import torch

        trt = _trt()
        self.torch, self.trt = torch, trt
        self.logger = _logger(trt)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise InputError(f"{flavour()[2]} could not load {Path(path).name}: {'; '.join(self.logger.errors) or 'unknown error'}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.info = info

    def _dtype(self, name):
        return {self.trt.DataType.FLOAT: self.torch.float32, self.trt.DataType.HALF: self.torch.float16,
                self.trt.DataType.INT32: self.torch.int32, self.trt.DataType.INT64: self.torch.int64,
                self.trt.DataType.BOOL: self.torch.bool}[self.engine.get_tensor_dtype(name)]

    def _stage(self, feeds: dict[str, np.ndarray]):
        """The inputs copied to the GPU."""
        return {n: self.torch.from_numpy(np.ascontiguousarray(feeds[n])).cuda() for n in self.input_names}

    def _bind(self, device_in):
        torch = self.torch
        for n, t in device_in.items():
            self.context.set_input_shape(n, tuple(t.shape))
            self.context.set_tensor_address(n, t.data_ptr())
        outs = {}
        for n in self.output_names:
            outs[n] = torch.empty(tuple(self.context.get_tensor_shape(n)), dtype=self._dtype(n), device="cuda")
            self.context.set_tensor_address(n, outs[n].data_ptr())
        return outs

    def _enqueue(self) -> None:
        stream = self.torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise InputError(f"TensorRT could not run the engine: {'; '.join(self.logger.errors) or 'enqueue failed'}")

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        outs = self._bind(self._stage(feeds))
        self._enqueue()
        self.torch.cuda.current_stream().synchronize()
        return [outs[n].float().cpu().numpy() for n in self.output_names]

    def device_metrics(self, feeds: dict[str, np.ndarray], iterations: int) -> dict[str, Any]:
        """Host→device copy, compute and device→host copy timed apart with CUDA events (as trtexec reports them),
        p50 over ``iterations``, and the GPU memory in use."""
        torch = self.torch
        h2d, compute, d2h = [], [], []
        for _ in range(max(iterations, 10)):
            e = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
            e[0].record()
            device_in = self._stage(feeds)
            e[1].record()
            outs = self._bind(device_in)
            self._enqueue()
            e[2].record()
            for t in outs.values():
                t.cpu()
            e[3].record()
            torch.cuda.synchronize()
            h2d.append(e[0].elapsed_time(e[1]))
            compute.append(e[1].elapsed_time(e[2]))
            d2h.append(e[2].elapsed_time(e[3]))
        free, total = torch.cuda.mem_get_info()

        def pct(v):
            return {"p50": float(np.percentile(v, 50)), "p90": float(np.percentile(v, 90)), "p99": float(np.percentile(v, 99))}

        return {"method": "CUDA events around the copies and the enqueue, per call", "h2d_ms": pct(h2d), "compute_ms": pct(compute),
                "d2h_ms": pct(d2h), "gpu_memory_used_mb": (total - free) / 2**20, "gpu": torch.cuda.get_device_name(0)}

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.info.get("flavour"), "version": self.info.get("version"), "gpu": self.torch.cuda.get_device_name(0)}


class TensorRtBackend(Backend):
    name = "tensorrt"
    package = None  # either flavour: see available()
    TARGETS = (
        TargetSpec("tensorrt-gpu-fp16", name, Device.GPU, Precision.FP16, IRFormat.ONNX, "engine",
                   "TensorRT engine, FP16 (strongly typed)", opens=(".engine", ".plan"), needs="an NVIDIA GPU to run (builds without one)"),
        TargetSpec("tensorrt-gpu-int8", name, Device.GPU, Precision.INT8, IRFormat.ONNX, "engine",
                   "TensorRT engine, INT8 explicit quantization (the SDK's plan), other layers FP16", qdq_layout="tensorrt",
                   needs="an NVIDIA GPU to run (builds without one)"),
    )

    def available(self, target):
        if flavour() is None:
            return False, _missing()
        missing = package_missing("onnx")
        return (False, missing) if missing else (True, "")

    def runnable(self, target):
        return (True, "") if cuda_device() is not None else (False, NO_GPU)

    def preload(self) -> None:
        import torch

        _trt()
        if torch.cuda.is_available():
            torch.cuda.init()

    def _archs(self, trt, ctx) -> list[str]:
        wanted = ctx.build.archs
        known = sorted(m.lower() for m in dir(trt.ComputeCapability) if m.startswith("SM"))
        bad = [a for a in wanted if a not in known]
        if bad:
            raise InputError(f"--gpu-arch {','.join(bad)} is not a compute capability {flavour()[2]} {version()} builds for: "
                             f"it knows {','.join(known)}")
        return wanted

    def compile(self, model, ir, target, workdir, ctx) -> Artifact:
        import onnx

        trt = _trt()
        if ir.path is None:
            raise ExportError(f"{target.name} builds from ONNX, and this IR has none")
        _, _, flavour_name = flavour()
        rtx = flavour()[0] == "tensorrt_rtx"
        local = cuda_device()
        archs = self._archs(trt, ctx)
        if not rtx and not local:
            raise InputError(f"full TensorRT builds for the local GPU and there is {NO_GPU}: install tensorrt-rtx to build "
                             "ahead of time on this machine")
        onnx_model = to_fp16(onnx.load(str(ir.path)))
        sparse = sparse_layers(onnx_model)
        logger = _logger(trt)
        builder = trt.Builder(logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_model.SerializeToString()):
            e = parser.get_error(0)
            code = str(e.code()).split(".")[-1]
            desc = first_line(e.desc())
            desc = f"{code.lower().replace('_', ' ')}" + (f" ({desc})" if desc not in ("false", "") else "")
            raise ExportError(f"{flavour_name} cannot parse node '{e.node_name()}' (op {e.node_operator()}): {desc}; keep that layer "
                              "out of the model or use a CPU target")
        config = builder.create_builder_config()
        chosen = archs or ([local[1]] if local else list(RTX_DEFAULT_ARCHS) if rtx else [])
        if rtx and chosen:
            config.num_compute_capabilities = len(chosen)
            for i, a in enumerate(chosen):
                config.set_compute_capability(getattr(trt.ComputeCapability, a.upper()), i)
        profile = builder.create_optimization_profile()
        shapes = target.shape_profile()
        for i in range(network.num_inputs):
            name = network.get_input(i).name
            p = shapes.get(name) or next(iter(shapes.values()))
            profile.set_shape(name, p["min"], p["opt"], p["max"])
        config.add_optimization_profile(profile)
        if sparse:
            config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
        cache_note = "not used: a no-op in TensorRT-RTX"
        if not rtx:
            TIMING_CACHE.parent.mkdir(parents=True, exist_ok=True)
            cache = config.create_timing_cache(TIMING_CACHE.read_bytes() if TIMING_CACHE.is_file() else b"")
            config.set_timing_cache(cache, ignore_mismatch=False)
            cache_note = str(TIMING_CACHE)
        layers = self._layer_precisions(trt, network)
        t0 = time.perf_counter()
        with ctx.progress.stage(f"built the {flavour_name} engine for {','.join(chosen) or 'the default compute capabilities'}"):
            blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise ExportError(f"{flavour_name} could not build the engine: {'; '.join(logger.errors[-2:]) or 'no reason given'}")
        if not rtx:
            TIMING_CACHE.write_bytes(bytes(config.get_timing_cache().serialize()))
        workdir = Path(workdir)
        path = workdir / "model.engine"
        path.write_bytes(bytes(blob))
        built_for = chosen
        info = {"target": target.name, "flavour": flavour_name, "module": flavour()[0], "version": version(), "compute_capabilities": built_for,
                "inputs": [[s.name, s.shape_str, s.dtype] for s in model.inputs], "outputs": list(model.output_names),
                "profile": shapes}
        (workdir / ENGINE_INFO).write_text(json.dumps(info, indent=1) + "\n")
        readme = workdir / "README.md"
        readme.write_text(README.format(name=target.name, size=fmt_size(path.stat().st_size), flavour=flavour_name, version=version(),
                                        archs=", ".join(built_for) or "the flavour's default", precision=target.precision,
                                        inputs=", ".join(f"`{s.name}` ({s.shape_str}, {s.dtype})" for s in model.inputs),
                                        profile=json.dumps(shapes), outputs=", ".join(f"`{n}`" for n in model.output_names),
                                        first=model.input_names[0],
                                        unvalidated="" if local else " (built without a GPU: this is the first run of the engine)"))
        details = {"exporter": f"{flavour_name} OnnxParser, strongly typed network", "flavour": flavour_name, "flavour_version": version(),
                   "compute_capabilities": built_for, "profile": shapes, "engine_size_bytes": path.stat().st_size,
                   "build_engine_seconds": round(time.perf_counter() - t0, 3), "timing_cache": cache_note,
                   "sparse_weights": {"flag": bool(sparse), "layers_2to4": len(sparse)},
                   "layer_precisions": layers, "layer_precisions_from": "the strongly typed network (the engine inspector needs a GPU)"}
        return Artifact(target.name, path, [path], [path, workdir / ENGINE_INFO, readme], details)

    @staticmethod
    def _layer_precisions(trt, network) -> dict[str, dict[str, int]]:
        """Output data type of each layer kind, counted: in a strongly typed network that is the precision it runs in."""
        out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            kind = str(layer.type).split(".")[-1]
            if layer.num_outputs:
                out[kind][str(layer.get_output(0).dtype).split(".")[-1]] += 1
        return {k: dict(v) for k, v in sorted(out.items())}

    def kernel_report(self, artifact, ir, target, ctx):
        """INT8 layers as the network defines them: each conv/matmul fed by an int8 DequantizeLinear is an INT8 layer
        (strongly typed; TensorRT fuses Q/DQ into INT8 kernels)."""
        if ir.plan is None:
            return None
        import onnx

        m = onnx.load(str(ir.path))
        producers = {o: n for n in m.graph.node for o in n.output}
        heavy = [n for n in m.graph.node if n.op_type in ONNX_WEIGHT_OPS]
        int8 = [n for n in heavy if len(n.input) > 1 and getattr(producers.get(n.input[1]), "op_type", None) == "DequantizeLinear"]
        return KernelReport(weight_layers_total=len(heavy), weight_layers_int8=len(int8),
                            summary=f"{len(int8)} of {len(heavy)} conv/matmul layers with int8 weights behind Q/DQ; the rest FP16",
                            method="the QDQ ONNX the engine was built from (strongly typed: the engine follows it)",
                            details={"layer_precisions": artifact.details["layer_precisions"]})

    def report_sections(self, manifest) -> list[str]:
        b = manifest["artifact"]["build"]
        if "flavour" not in b:
            return []
        return ["## TensorRT engine", "",
                f"- Built by {b['flavour']} {b['flavour_version']} for {', '.join(b['compute_capabilities']) or 'the default set'}; "
                f"engine {fmt_size(b['engine_size_bytes'])}; profile {b['profile']}; timing cache: {b['timing_cache']}",
                f"- Layer precisions (network): {b['layer_precisions']}",
                f"- 2:4 sparse weights: {b['sparse_weights']['layers_2to4']} layer(s)"
                + (" (built with SPARSE_WEIGHTS)" if b["sparse_weights"]["flag"] else ""),
                "- How to run it: README.md in this bundle.", ""]

    def target_for(self, path: Path) -> str | None:
        return self._info(Path(path)).get("target")

    def _info(self, path: Path) -> dict:
        f = Path(path).with_name(ENGINE_INFO)
        return json.loads(f.read_text()) if f.is_file() else {}

    def check_engine(self, info: dict) -> str | None:
        """Why this engine cannot run on this machine (flavour or version, GPU architecture), or None."""
        here = version()
        if info.get("version") and (info.get("flavour") != (flavour() or ("", "", ""))[2] or info["version"] != here):
            return (f"the engine was built by {info['flavour']} {info['version']} but this machine has "
                    f"{flavour()[2] if flavour() else 'no TensorRT'} {here}: engines load only in the version that built them; "
                    "rebuild it here or install that version")
        local = cuda_device()
        if local is None:
            return f"this engine runs on an NVIDIA GPU and there is {NO_GPU}: verify it on the device"
        archs = info.get("compute_capabilities") or []
        if archs and local[1] not in archs:
            return (f"the engine was built for {','.join(archs)} but this GPU ({local[0]}) is {local[1]}: rebuild with "
                    f"--gpu-arch {local[1]}")
        return None

    def load(self, path, target, threads=None) -> Runner:
        info = self._info(Path(path))
        problem = self.check_engine(info)
        if problem:
            raise TargetError(problem)
        return TensorRtRunner(Path(path), info)

    def artifact_inputs(self, path) -> list[InputSpec]:
        info = self._info(Path(path))
        if not info.get("inputs"):
            raise InputError(f"{Path(path).name} has no {ENGINE_INFO} beside it: pass --input-shape")
        return [InputSpec.parse(shape, name=name, dtype=dtype) for name, shape, dtype in info["inputs"]]

    def check_compatible(self, manifest: dict) -> str | None:
        b = manifest.get("artifact", {}).get("build", {})
        return self.check_engine({"flavour": b.get("flavour"), "version": b.get("flavour_version"),
                                  "compute_capabilities": b.get("compute_capabilities")})

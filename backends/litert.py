"""LiteRT (formerly TensorFlow Lite) with the XNNPACK delegate: ``.tflite`` flatbuffers, the format Android, Coral,
MediaTek and Qualcomm delegates read; run here through ai-edge-litert's interpreter with thread control.

The IR is a ``torch.export`` program: float, or the SDK's plan realised by PT2E with the XNNPACK quantizer (the same
realiser as ExecuTorch's INT8: int8 weights per channel, symmetric; int8 activations per tensor with the plan's ranges).
litert-torch converts it into full-integer int8 kernels (int8 input and output tensors; the runner quantizes inputs and
dequantizes outputs with those tensors' own scale and zero point).

The converter cannot live in the project's environment: litert-torch brings xdsl (through ai-edge-litert's model
utilities), which pins typing-extensions below 4.13, and that downgrade breaks pydantic and cattrs here. ``make setup``
creates ``.venv-litert`` (torch 2.14.1 and litert-torch 0.10.0, pinned in constraints-litert.txt) and the build runs
``backends/litert_convert.py`` there as a subprocess, handing it the program as a ``.pt2`` file. The runtime
(ai-edge-litert) installs safely here.

The kernel report reads the interpreter back after the XNNPACK delegate is applied: each ``DELEGATE`` node replaced the
partition of ops between its input and output tensors; the rest run on LiteRT's built-in kernels.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from backends.edge_worker import INT_TYPES, litert_invoke
from compressor.core.backend import (
    Artifact,
    Backend,
    KernelReport,
    Runner,
    read_io_names,
    refuse_recurrent_pt2e,
    require_fixed_shapes,
    write_io_names,
)
from compressor.core.environment import fp16_problem, package_version
from compressor.core.errors import ExportError
from compressor.core.files import fmt_size
from compressor.core.layers import ONNX_WEIGHT_OPS
from compressor.core.registry import package_missing
from compressor.core.specs import InputSpec
from compressor.core.targets import Device, IRFormat, Precision, TargetSpec

CONVERTER = Path(__file__).with_name("litert_convert.py")
WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"}

README = """# {name}: LiteRT flatbuffer

`model.tflite` ({size}) was converted by litert-torch {version} ({precision}); run it with LiteRT (ai-edge-litert,
TensorFlow Lite) and the XNNPACK delegate, on Android, Linux or a microcontroller build of LiteRT.

Inputs: {inputs} ({layout}){io_note}
Outputs: {outputs}

## Python (host check)
```python
import numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path="model.tflite", num_threads=2); it.allocate_tensors()
x = np.load("reference/inputs.npz")[{first!r}][:1]
d = it.get_input_details()[0]
if d["dtype"] == np.int8:  # full-integer model: quantize with the input tensor's own parameters
    s, z = d["quantization"]; x = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
it.set_tensor(d["index"], x); it.invoke()
o = it.get_output_details()[0]; y = it.get_tensor(o["index"])
if o["dtype"] == np.int8:
    s, z = o["quantization"]; y = (y.astype(np.float32) - z) * s
```
`compressor verify <bundle>` does this for every reference input and compares with `reference/outputs.npz`.
"""


def converter_python() -> Path:
    """The interpreter of the converter's own environment (``COMPRESSOR_LITERT_PYTHON`` overrides it)."""
    env = os.environ.get("COMPRESSOR_LITERT_PYTHON")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".venv-litert" / "bin" / "python"


def litert_version() -> str:
    return package_version("ai-edge-litert") or "not installed"


def _interpreter(path: Path, threads: int | None):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads or None)
    it.allocate_tensors()
    return it


class LiteRtRunner(Runner):
    """A ``.tflite`` on ai-edge-litert's interpreter (XNNPACK applied by default). Its shapes are fixed at conversion:
    a batch larger than the model's runs sample by sample."""

    def __init__(self, path: Path, threads: int | None):
        self.it = _interpreter(path, threads)
        self.threads = threads
        self.inputs = self.it.get_input_details()
        self.outputs = self.it.get_output_details()
        self.input_names = [f"input_{i}" for i in range(len(self.inputs))]
        self.output_names = [f"output_{i}" for i in range(len(self.outputs))]

    def _one(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return litert_invoke(self.it, self.inputs, self.outputs, arrays)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = self.input_names if all(n in feeds for n in self.input_names) else list(feeds)
        arrays = [np.asarray(feeds[n]) for n in names]
        batch = int(self.inputs[0]["shape"][0]) if len(self.inputs[0]["shape"]) else 1
        n = arrays[0].shape[0] if arrays[0].ndim else 1
        if n == batch:
            return self._one(arrays)
        parts = [self._one([a[i:i + batch] for a in arrays]) for i in range(0, n, batch)]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(self.outputs))]

    def describe(self) -> dict[str, Any]:
        return {"runtime": "litert", "version": litert_version(), "delegate": "XNNPACK (applied by default)", "threads": self.threads}


def kernel_summary(path: Path) -> dict[str, Any]:
    """Which ops the XNNPACK delegate took and which run on LiteRT's built-in kernels, and which run in integer: read back
    from the interpreter after the delegate is applied. A ``DELEGATE`` node replaces the ops that lie between its input
    and output tensors."""
    it = _interpreter(path, 1)
    ops = it._get_ops_details()
    dtypes = {t["index"]: t["dtype"] for t in it.get_tensor_details()}
    plain = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {t: op["index"] for op in plain for t in op["outputs"]}
    by_index = {op["index"]: op for op in plain}
    delegated: set[int] = set()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    for d in delegates:
        stop, stack = set(d["inputs"]), list(d["outputs"])
        while stack:
            t = stack.pop()
            i = producer.get(t)
            if t in stop or i is None or i in delegated:
                continue
            delegated.add(i)
            stack.extend(by_index[i]["inputs"])
    counts = {True: collections.Counter(), False: collections.Counter()}
    weights_int8 = []
    for op in plain:
        counts[op["index"] in delegated][op["op_name"]] += 1
        if op["op_name"] in WEIGHT_OPS and len(op["inputs"]) > 1 and dtypes.get(op["inputs"][1]) == np.int8:
            weights_int8.append(op["index"])
    integer = sum(1 for op in plain if op["outputs"] and dtypes.get(op["outputs"][0]) in INT_TYPES)
    return {"delegate": "XNNPACK", "delegate_nodes": len(delegates), "delegated_ops": dict(sorted(counts[True].items())),
            "builtin_ops": dict(sorted(counts[False].items())), "delegated_op_count": sum(counts[True].values()),
            "builtin_op_count": sum(counts[False].values()), "ops_with_integer_outputs": integer,
            "weight_ops": sum(1 for op in plain if op["op_name"] in WEIGHT_OPS), "weight_ops_int8": len(weights_int8),
            "weight_ops_int8_delegated": sum(1 for i in weights_int8 if i in delegated)}


def _named(error: str) -> str:
    """The converter's failure with the op it names, and what to do instead."""
    op = None
    for marker in ("node to NHWC: ", "Could not convert ", "not supported: ", "Unsupported op: ", "lowering for "):
        if marker in error:
            op = error.split(marker, 1)[1].split()[0].strip("'\".,:")
            break
    what = f"op '{op}'" if op else "an op of this model"
    return (f"LiteRT's converter (litert-torch) cannot convert {what}: {error}; exclude the layer around it from INT8 "
            "(--exclude NAME), or use litert-xnnpack-fp32 or executorch-xnnpack-int8 for this model")


class LiteRtBackend(Backend):
    name = "litert"
    package = "ai-edge-litert"
    arm64_runtime = "litert"
    TARGETS = (
        TargetSpec("litert-xnnpack-fp32", name, Device.EDGE, Precision.FP32, IRFormat.TORCH, "tflite",
                   "LiteRT (TensorFlow Lite) .tflite for edge devices, XNNPACK delegate, FP32", opens=(".tflite",)),
        TargetSpec("litert-xnnpack-fp16", name, Device.EDGE, Precision.FP16, IRFormat.TORCH, "tflite",
                   "LiteRT .tflite with float16 weights (half the file), XNNPACK delegate; IO float32",
                   needs="a CPU with fp16 arithmetic (Arm FP16 'asimdhp', or x86 AVX512-FP16) to compute in fp16: elsewhere the "
                         "weights are widened to float32 and only the file is smaller"),
        TargetSpec("litert-xnnpack-int8", name, Device.EDGE, Precision.INT8, IRFormat.TORCH, "tflite",
                   "LiteRT .tflite, full-integer INT8 (PT2E with the XNNPACK quantizer, the SDK's plan), XNNPACK delegate",
                   pt2e_quantizer="xnnpack"),
    )

    def preload(self) -> None:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    def available(self, target):
        missing = package_missing("ai-edge-litert", "ai_edge_litert")
        if missing:
            return False, missing
        if not converter_python().is_file():
            return False, (f"the LiteRT converter runs in its own environment ({converter_python()}, litert-torch cannot share "
                           "the project's): run `make setup`, which creates .venv-litert")
        if target.precision.quantized:
            missing = package_missing("torchao") or package_missing("executorch")
            if missing:
                return False, f"INT8 uses PT2E with the XNNPACK quantizer: {missing}"
        problem = fp16_problem("litert-xnnpack-fp32 or -int8") if target.precision == Precision.FP16 else None
        if problem:
            return False, problem
        return True, ""

    def check_model(self, model, target) -> None:
        refuse_recurrent_pt2e(model, target, "ort-cpu-int8-dynamic (DynamicQuantizeLSTM) or litert-xnnpack-fp32")
        require_fixed_shapes(model, "LiteRT")

    def compile(self, model, ir, target, workdir, ctx) -> Artifact:
        import torch

        self.check_model(model, target)
        if ir.program is None:
            raise ExportError(f"{target.name} converts a torch.export program, and this IR has none")
        workdir = Path(workdir)
        path = workdir / "model.tflite"
        with tempfile.TemporaryDirectory(prefix="compressor-litert-") as tmp:
            program, sample = Path(tmp) / "program.pt2", Path(tmp) / "sample.npz"
            torch.export.save(ir.program, str(program))
            np.savez(sample, **{f"input_{i}": np.zeros(s.shape(batch=1), dtype=s.dtype) for i, s in enumerate(model.inputs)})
            nhwc = ctx.build.input_layout == "nhwc"
            cmd = [str(converter_python()), str(CONVERTER), str(program), str(sample), str(path),
                   *{Precision.INT8: ["--int8"], Precision.FP16: ["--fp16"]}.get(target.precision, []), *(["--nhwc"] if nhwc else [])]
            with ctx.progress.stage(f"{target.name}: converted by litert-torch (its own environment)"):
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                                      env={**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"})
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        if done.returncode != 0 or "error" in result or not path.is_file():
            raise ExportError(_named(result.get("error", "no output")))
        report = kernel_summary(path)
        if report["builtin_op_count"]:
            ctx.warn(f"{report['builtin_op_count']} op(s) stay on LiteRT's built-in kernels (not XNNPACK): "
                     f"{', '.join(report['builtin_ops'])}")
        readme = workdir / "README.md"
        io_note = "; int8 input/output tensors: quantize inputs and dequantize outputs with their scale and zero point" \
            if target.precision.quantized else ""
        layout = ("layout NHWC (channels-last, --input-layout nhwc): feed N,H,W,C" if result.get("input_layout") == "NHWC" else
                  "layout NCHW, as the PyTorch model takes them")
        readme.write_text(README.format(name=target.name, size=fmt_size(path.stat().st_size), version=result.get("litert_torch"),
                                        precision=target.precision, io_note=io_note, layout=layout, first=model.input_names[0],
                                        inputs=", ".join(f"`{s.name}` ({s.shape_str}, {s.dtype})" for s in model.inputs),
                                        outputs=", ".join(f"`{n}`" for n in model.output_names)))
        names_file = write_io_names(workdir, model.input_names, model.output_names)
        details = {"exporter": "torch.export → litert-torch (its own environment) → .tflite", "converter": result,
                   "litert_version": litert_version(), "layout": result.get("input_layout", "NCHW"), "kernels": report,
                   "tflite_size_bytes": path.stat().st_size}
        return Artifact(target.name, path, [path], [path, readme, names_file], details)

    def kernel_report(self, artifact, ir, target, ctx):
        if ir.plan is None:
            return None
        k = artifact.details["kernels"]
        weight_layers = [l for l in ir.plan.layers if l.op_type in ONNX_WEIGHT_OPS]
        int8 = min(len(weight_layers), k["weight_ops_int8"])
        planned = sum(l.precision == "int8" for l in weight_layers)
        if int8 < planned:
            ctx.warn(f"LiteRT runs {int8} layers with weights in INT8 but {planned} were planned: the rest run in float")
        return KernelReport(weight_layers_total=len(weight_layers), weight_layers_int8=int8,
                            summary=f"{k['delegated_op_count']} ops delegated to XNNPACK, {k['builtin_op_count']} on built-in kernels; "
                                    f"{k['weight_ops_int8']} of {k['weight_ops']} weight ops int8",
                            method="LiteRT interpreter after delegation: ops between each DELEGATE node's inputs and outputs, "
                                   "int8 weight tensors of CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED",
                            details={"delegated_ops": k["delegated_op_count"], "builtin_ops": k["builtin_op_count"]})

    def report_sections(self, manifest) -> list[str]:
        build = manifest["artifact"]["build"]
        k = build.get("kernels")
        if not k:
            return []
        return ["## LiteRT flatbuffer", "",
                f"- Converted by litert-torch {build['converter'].get('litert_torch')}; run by ai-edge-litert {build.get('litert_version')}; "
                f".tflite {fmt_size(build.get('tflite_size_bytes'))}; input layout {build.get('layout')}",
                f"- Delegated to XNNPACK ({k['delegated_op_count']} ops in {k['delegate_nodes']} partition(s)): {k['delegated_ops']}",
                f"- On LiteRT's built-in kernels ({k['builtin_op_count']} ops): {k['builtin_ops'] or 'none'}",
                f"- Weight ops with int8 weights: {k['weight_ops_int8']} of {k['weight_ops']}", ""]

    def load(self, path, target, threads=None) -> Runner:
        runner = LiteRtRunner(Path(path), threads)
        names = read_io_names(Path(path))
        if names:
            runner.input_names, runner.output_names = names
        return runner

    def artifact_inputs(self, path) -> list[InputSpec]:
        it = _interpreter(Path(path), 1)
        return [InputSpec.parse(",".join(str(int(d)) for d in det["shape"]), name=f"input_{i}",
                                dtype="float32" if det["dtype"] in INT_TYPES else np.dtype(det["dtype"]).name)
                for i, det in enumerate(it.get_input_details())]

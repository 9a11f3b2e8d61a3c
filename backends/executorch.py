"""ExecuTorch with the XNNPACK delegate: ``.pte`` programs for edge devices, run here through
ExecuTorch's Python runtime for validation and benchmarking.

The IR is a ``torch.export`` program: float, or the SDK's plan realised by PT2E with ExecuTorch's
``XNNPACKQuantizer`` (int8 weights per channel, symmetric; int8 activations per tensor, with the plan's
ranges: see compressor/quantization/pt2e.py). ``to_edge_transform_and_lower(XnnpackPartitioner)`` lowers
it to a ``.pte``; the build reports which operators went to XNNPACK and which stayed on ExecuTorch's
portable CPU operators.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

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
from compressor.core.errors import ExportError, first_line
from compressor.core.files import fmt_size
from compressor.core.layers import ONNX_WEIGHT_OPS
from compressor.core.registry import package_missing
from compressor.core.specs import InputSpec
from compressor.core.targets import Device, IRFormat, Precision, TargetSpec
from compressor.io.export_torch import cast_module, export_program

README = """# {name}: ExecuTorch program

`model.pte` ({size}) was written by ExecuTorch {version} for the XNNPACK delegate ({precision}).
Load it with the same ExecuTorch version: the `.pte` format is versioned with the runtime.

Inputs: {inputs}
Outputs: {outputs}

## Python (host check)
```python
from executorch.runtime import Runtime
import numpy as np, torch
method = Runtime.get().load_program("model.pte").load_method("forward")
ref = np.load("reference/inputs.npz")
outputs = method.execute([torch.from_numpy(ref[name]) for name in {input_names}])
```
`compressor verify <bundle>` does this for every reference input and compares with `reference/outputs.npz`.

## C++ (in an app, with the ExecuTorch Module API; link the XNNPACK backend)
```cpp
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
using namespace ::executorch::extension;

Module module("model.pte");
auto input = from_blob(data, {{{shape}}});      // float data, preprocessed as the manifest says
auto result = module.forward(input);
if (result.ok()) {{ auto out = result->at(0).toTensor(); /* ... */ }}
```
Self-check on the device: feed `reference/inputs.npz` and compare with `reference/outputs.npz` within the
manifest's `reference.tolerance`.
"""


# ExecuTorch ScalarType codes (the same numbering as c10::ScalarType)
SCALAR_TYPES = {0: "uint8", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 11: "bool", 15: "bfloat16"}


def executorch_version() -> str:
    return package_version("executorch") or "not installed"


def _mb(v: float | None, spec: str = ".1f") -> str:
    return "–" if v is None else f"{v:{spec}} MiB"


logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # executorch/torchao import-time deprecation chatter


@contextlib.contextmanager
def _native_stderr_silenced():
    """ExecuTorch's C++ runtime logs to file descriptor 2 (threadpool, cpuinfo); keep that out of the user's terminal."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


class ExecuTorchRunner(Runner):
    def __init__(self, path: Path, threads: int | None):
        import torch
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        with _native_stderr_silenced():
            if threads:
                portable_lib._unsafe_reset_threadpool(threads)
            self.threads = portable_lib._threadpool_get_thread_count()
            program = Runtime.get().load_program(Path(path))
            self.method = program.load_method("forward")
        meta = self.method.metadata
        self.input_names = [f"input_{i}" for i in range(meta.num_inputs())]
        self.output_names = [f"output_{i}" for i in range(meta.num_outputs())]
        self._torch = torch

    def set_input_names(self, names: list[str]) -> None:
        self.input_names = list(names)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = self.input_names if all(n in feeds for n in self.input_names) else list(feeds)
        outs = self.method.execute([self._torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names])
        return [o.detach().numpy() if hasattr(o, "detach") else np.asarray(o) for o in outs]

    def describe(self) -> dict[str, Any]:
        return {"runtime": "executorch", "version": executorch_version(), "delegate": "XNNPACK", "threads": self.threads}


def _op_name(target) -> str:
    name = getattr(target, "__name__", None) or str(target)
    return name.replace("aten.", "").replace(".default", "")


def delegation_report(edge) -> dict[str, Any]:
    """Which operators XNNPACK took, and which stayed on ExecuTorch's portable CPU operators."""
    gm = edge.exported_program().graph_module
    delegated, portable = collections.Counter(), collections.Counter()
    delegates = 0
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node.target)
        if "executorch_call_delegate" in name:
            delegates += 1
        elif name != "getitem":
            portable[name] += 1
    for _, mod in gm.named_children():
        original = getattr(mod, "original_module", None)
        if original is None:
            continue
        for node in original.graph.nodes:
            if node.op == "call_function" and _op_name(node.target) != "getitem":
                delegated[_op_name(node.target)] += 1
    return {"delegate": "XnnpackBackend", "delegate_calls": delegates, "delegated_ops": dict(sorted(delegated.items())),
            "portable_ops": dict(sorted(portable.items())), "delegated_op_count": sum(delegated.values()),
            "portable_op_count": sum(portable.values())}




class ExecuTorchBackend(Backend):
    name = "executorch"
    package = "executorch"
    arm64_runtime = "executorch"
    TARGETS = (
        TargetSpec("executorch-xnnpack-fp32", name, Device.EDGE, Precision.FP32, IRFormat.TORCH, "pte",
                   "ExecuTorch .pte for edge devices, XNNPACK delegate, FP32", opens=(".pte",)),
        TargetSpec("executorch-xnnpack-fp16", name, Device.EDGE, Precision.FP16, IRFormat.TORCH, "pte",
                   "ExecuTorch .pte, XNNPACK delegate, FP16 weights and activations (IO float32)",
                   needs="a CPU with fp16 arithmetic (Arm FP16 'asimdhp', or x86 AVX512-FP16): elsewhere XNNPACK emulates it, "
                         "slower than FP32 (benchmarks/results/precision.md)"),
        TargetSpec("executorch-xnnpack-int8", name, Device.EDGE, Precision.INT8, IRFormat.TORCH, "pte",
                   "ExecuTorch .pte for edge devices, XNNPACK delegate, INT8 (PT2E, the SDK's plan)", pt2e_quantizer="xnnpack"),
    )

    def preload(self) -> None:
        import torch  # noqa: F401 - ExecuTorch's Python runtime exchanges torch tensors
        from executorch.runtime import Runtime  # noqa: F401

    def available(self, target):
        missing = package_missing("executorch")
        if missing:
            return False, missing
        if target.precision.quantized:
            missing = package_missing("torchao")
            if missing:
                return False, f"INT8 uses PT2E from torchao: {missing}"
        problem = fp16_problem("executorch-xnnpack-fp32 or -int8") if target.precision == Precision.FP16 else None
        if problem:
            return False, problem
        return True, ""

    def check_model(self, model, target) -> None:
        refuse_recurrent_pt2e(model, target, "ort-cpu-int8-dynamic (DynamicQuantizeLSTM) or executorch-xnnpack-fp32")
        # measured with ExecuTorch 1.5.1: a batch=1:64 profile came out bounded at 15 (larger inputs fail to load)
        require_fixed_shapes(model, "ExecuTorch/XNNPACK")

    def compile(self, model, ir, target, workdir, ctx) -> Artifact:
        import torch
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        self.check_model(model, target)
        if ir.program is None:
            raise ExportError(f"{target.name} compiles a torch.export program, and this IR has none")
        workdir = Path(workdir)
        program = ir.program
        if target.precision == Precision.FP16:
            program = export_program(model, cast_module(program.module(), torch.float16), what=f"the {target.name} program")
        try:
            with _quiet():
                edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
                report = delegation_report(edge)
                program = edge.to_executorch()
        except Exception as e:  # noqa: BLE001
            raise ExportError(f"lowering to ExecuTorch/XNNPACK failed: {first_line(e)}") from e
        path = workdir / "model.pte"
        path.write_bytes(program.buffer)
        if report["portable_ops"]:
            ctx.warn(f"{report['portable_op_count']} operator(s) stay on ExecuTorch's portable CPU kernels (not XNNPACK): "
                     f"{', '.join(report['portable_ops'])}; they run unaccelerated")
        readme = workdir / "README.md"
        shape = ", ".join(str(v) for v in model.inputs[0].shape(batch=1))
        readme.write_text(README.format(name=target.name, size=fmt_size(path.stat().st_size), version=executorch_version(),
                                        precision=target.precision, inputs=", ".join(f"`{s.name}` ({s.shape_str}, {s.dtype})" for s in model.inputs),
                                        outputs=", ".join(f"`{n}`" for n in model.output_names), input_names=model.input_names, shape=shape))
        names_file = write_io_names(workdir, model.input_names, model.output_names)
        details = {"exporter": "torch.export + executorch.exir.to_edge_transform_and_lower(XnnpackPartitioner)",
                   "executorch_version": executorch_version(), "torch": torch.__version__, "delegation": report,
                   "pte_size_bytes": path.stat().st_size}
        return Artifact(target.name, path, [path], [path, readme, names_file], details)

    def kernel_report(self, artifact, ir, target, ctx):
        """INT8 layers read back from the lowered program: each int8 weight XNNPACK took arrives through a per-channel
        dequantize inside the delegate (a quantized op left on the portable kernels runs as reference code, not INT8)."""
        if ir.plan is None:
            return None
        d = artifact.details["delegation"]
        weight_layers = [l for l in ir.plan.layers if l.op_type in ONNX_WEIGHT_OPS]
        int8 = min(len(weight_layers), d["delegated_ops"].get("quantized_decomposed.dequantize_per_channel", 0))
        planned = sum(l.precision == "int8" for l in weight_layers)
        if int8 < planned:
            ctx.warn(f"XNNPACK runs {int8} layers with weights in INT8 but {planned} were planned: the rest run in float")
        return KernelReport(weight_layers_total=len(weight_layers), weight_layers_int8=int8,
                            summary=f"{d['delegated_op_count']} ops delegated to XNNPACK, {d['portable_op_count']} on portable kernels",
                            method="ExecuTorch lowered program: int8 weights (per-channel dequantize) inside the XNNPACK delegate",
                            details={"delegated_ops": d["delegated_op_count"], "portable_ops": d["portable_op_count"]})

    def report_sections(self, manifest) -> list[str]:
        build = manifest["artifact"]["build"]
        d = build.get("delegation")
        if not d:
            return []
        m = manifest["metrics"]
        return ["## Edge program", "",
                f"- Written by ExecuTorch {build.get('executorch_version')}; .pte {fmt_size(build.get('pte_size_bytes'))}; model memory "
                f"at load and while running {_mb(m.get('model_rss_mb'))} (process peak {_mb(m.get('peak_rss_mb'), '.0f')})",
                f"- Delegated to {d['delegate']} ({d['delegated_op_count']} ops): {d['delegated_ops']}",
                f"- On ExecuTorch's portable CPU operators ({d['portable_op_count']} ops): {d['portable_ops'] or 'none'}",
                "- How to run it on the device: README.md in this bundle.", ""]

    def load(self, path, target, threads=None) -> Runner:
        runner = ExecuTorchRunner(Path(path), threads)
        names = read_io_names(Path(path))
        if names:
            runner.set_input_names(names[0])
            runner.output_names = names[1]
        return runner

    def artifact_inputs(self, path) -> list[InputSpec]:
        from executorch.runtime import Runtime

        meta = Runtime.get().load_program(Path(path)).metadata("forward")
        specs = []
        for i in range(meta.num_inputs()):
            info = meta.input_tensor_meta(i)
            dtype = SCALAR_TYPES.get(int(info.dtype()), "float32")
            specs.append(InputSpec.parse(",".join(str(d) for d in info.sizes()), name=f"input_{i}", dtype=dtype))
        return specs

    def check_compatible(self, manifest: dict) -> str | None:
        wrote = manifest.get("artifact", {}).get("build", {}).get("executorch_version")
        here = executorch_version()
        if wrote and wrote != here:
            return (f"this bundle's .pte was written by ExecuTorch {wrote} but this machine has ExecuTorch {here}: "
                    f"the program may not load or may run differently; install executorch=={wrote} or rebuild the bundle")
        return None

"""ExecuTorch with the XNNPACK delegate: ``.pte`` programs for edge devices, run here through
ExecuTorch's Python runtime for validation and benchmarking.

FP32: ``torch.export`` → ``to_edge_transform_and_lower(XnnpackPartitioner)`` → ``.pte``. INT8: the PT2E
flow with ExecuTorch's ``XNNPACKQuantizer`` (int8 weights per channel, symmetric; int8 activations per
tensor), its activation observers replaced by the SDK's calibration (same data, method and
exclusions as every target), then lowered the same way. The build reports which operators went to
XNNPACK and which stayed on ExecuTorch's portable CPU operators.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.metadata
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.errors import ExportError, InputError, first_line
from compressor.core.backend import Artifact, Backend, BuildContext, Runner
from compressor.core.specs import InputSpec

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
    try:
        return importlib.metadata.version("executorch")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


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

    def preload(self) -> None:
        import torch  # noqa: F401 - ExecuTorch's Python runtime exchanges torch tensors
        from executorch.runtime import Runtime  # noqa: F401

    def available(self, target):
        from backends import package_missing

        missing = package_missing("executorch")
        if missing:
            return False, missing
        if target.precision == "int8":
            missing = package_missing("torchao")
            if missing:
                return False, f"INT8 uses PT2E from torchao: {missing}"
        return True, ""

    def _export(self, model, module=None):
        import torch

        dims = None
        if any(s.dynamic for s in model.inputs):
            dims = tuple({i: torch.export.Dim(d.name, min=d.min, max=d.max) for i, d in enumerate(s.dims) if d.dynamic} or None
                         for s in model.inputs)
        try:
            with _quiet():
                return torch.export.export(module if module is not None else model.module, model.example_inputs(for_export=True),
                                           dynamic_shapes=dims)
        except Exception as e:  # noqa: BLE001 - torch.export raises many types
            first = first_line(e)
            hint = (" — ExecuTorch needs static shapes or a bounded shape profile: give fixed sizes or a narrow range "
                    "(e.g. batch=1:8) in --input-shape") if dims else ""
            raise ExportError(f"torch.export failed for ExecuTorch: {first}{hint}")

    def build(self, model, target, workdir, ctx: BuildContext | None = None) -> Artifact:
        import torch
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        ctx = ctx or BuildContext()
        workdir = Path(workdir)
        dynamic = [f"{s.name}: {s.shape_str}" for s in model.inputs if s.dynamic]
        if dynamic:
            # measured with ExecuTorch 1.5.1: a batch=1:64 profile came out bounded at 15 (larger inputs fail to load)
            raise ExportError(f"ExecuTorch/XNNPACK programs here are built for fixed shapes, and these inputs are dynamic "
                              f"({'; '.join(dynamic)}): give the shape the device will use, e.g. --input-shape "
                              f"{','.join(str(v) for v in model.inputs[0].shape(batch=1))}")
        quantization = None
        if target.precision == "int8":
            module, quantization = self._quantize(model, ctx)
            ep = self._export(model, module)
        else:
            ep = model.exported_program if model.exported_program is not None else self._export(model)
        try:
            with _quiet():
                edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
                report = delegation_report(edge)
                program = edge.to_executorch()
        except Exception as e:  # noqa: BLE001
            first = first_line(e)
            raise ExportError(f"lowering to ExecuTorch/XNNPACK failed: {first}")
        path = workdir / "model.pte"
        path.write_bytes(program.buffer)
        if report["portable_ops"]:
            ctx.warn(f"{report['portable_op_count']} operator(s) stay on ExecuTorch's portable CPU kernels (not XNNPACK): "
                     f"{', '.join(report['portable_ops'])}; they run unaccelerated")
        readme = workdir / "README.md"
        shape = ", ".join(str(v) for v in model.inputs[0].shape(batch=1))
        readme.write_text(README.format(name=target.name, size=f"{path.stat().st_size / 2**20:.1f} MB", version=executorch_version(),
                                        precision=target.precision, inputs=", ".join(f"`{s.name}` ({s.shape_str}, {s.dtype})" for s in model.inputs),
                                        outputs=", ".join(f"`{n}`" for n in model.output_names), input_names=model.input_names, shape=shape))
        names_file = workdir / "io_names.txt"
        names_file.write_text("\n".join(["inputs: " + ",".join(model.input_names), "outputs: " + ",".join(model.output_names)]) + "\n")
        details = {"exporter": "torch.export + executorch.exir.to_edge_transform_and_lower(XnnpackPartitioner)",
                   "executorch_version": executorch_version(), "torch": torch.__version__, "delegation": report,
                   "pte_size_bytes": path.stat().st_size}
        if quantization is not None:
            details["quantization"] = quantization
        return Artifact(target.name, path, [path, readme, names_file], details)

    def _quantize(self, model, ctx: BuildContext):
        """PT2E with the XNNPACK quantizer and the SDK's calibration; returns the converted module and a plan summary."""
        import torch
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils import QuantizationConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import QuantizationSpec

        from compressor.quantization.onnx_flow import calibration_feeds
        from compressor.quantization.pt2e import calibrate, excluded_modules, fold_clamps, observer_class
        from compressor.quantization.ptq import QuantSettings, check_calibration

        settings = ctx.quant or QuantSettings()
        if ctx.calib is None:
            raise InputError("executorch-xnnpack-int8 needs calibration data: pass --calib DATA (100 or more samples recommended)")
        n = min(len(ctx.calib), settings.calib_samples)
        check_calibration(n)
        layers, excluded, unmatched = excluded_modules(model.module, settings.exclude)
        for p in unmatched:
            ctx.warn(f"exclusion '{p}' matches no quantizable layer")
        if not layers:
            raise InputError("the model has no quantizable layers (Conv or Linear modules): use executorch-xnnpack-fp32")
        if all(l["precision"] != "int8" for l in layers):
            raise InputError("every quantizable layer is excluded, so nothing would be INT8: loosen --exclude or use the fp32 target")
        base = get_symmetric_quantization_config(is_per_channel=True)
        act = QuantizationSpec(dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_affine, is_dynamic=False,
                               observer_or_fake_quant_ctr=observer_class().with_args(method=settings.calibration,
                                                                                     percentile=settings.percentile))
        config = QuantizationConfig(input_activation=act, output_activation=act, weight=base.weight, bias=None, is_qat=False)
        quantizer = XNNPACKQuantizer().set_global(config)
        for name in excluded:
            quantizer.set_module_name(name, None)
        with _quiet():
            captured = self._export(model).module()
            prepared = prepare_pt2e(captured, quantizer)
        folded = fold_clamps(prepared)
        feeds = calibration_feeds(ctx.calib, model.inputs, n)
        batches = [tuple(torch.from_numpy(f[name]) for name in model.input_names) for f in feeds]
        steps = len(batches) * (1 if settings.calibration == "minmax" else 2)
        with ctx.progress.bar(f"calibrated {n} samples ({settings.calibration})", total=steps) as advance:
            calibrate(prepared, batches, settings.calibration, advance)
        with _quiet():
            converted = convert_pt2e(prepared)
        summary = {
            "mode": "static", "quantizer": "PT2E XNNPACKQuantizer with the SDK's calibration observers",
            "activation_dtype": "int8 (asymmetric, per tensor: what XNNPACK runs)", "weight_dtype": "int8",
            "weight_granularity": "per_channel", "calibration": {"method": settings.calibration, "samples": n,
                                                                 **({"percentile": settings.percentile} if settings.calibration == "percentile" else {})},
            "layers_total": len(layers), "layers_int8": sum(l["precision"] == "int8" for l in layers),
            "float_layers": {l["name"]: l["reason"] for l in layers if l["precision"] != "int8"},
            "exclusions": list(settings.exclude), "warnings": [f"exclusion '{p}' matches no quantizable layer" for p in unmatched],
            "clamps_folded_into_quantization": folded,
        }
        return converted, summary

    def load(self, path, target, threads=None) -> Runner:
        runner = ExecuTorchRunner(Path(path), threads)
        names = Path(path).with_name("io_names.txt")
        if names.is_file():
            lines = dict(l.split(": ", 1) for l in names.read_text().splitlines() if ": " in l)
            runner.set_input_names(lines.get("inputs", "").split(","))
            runner.output_names = lines.get("outputs", "").split(",")
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

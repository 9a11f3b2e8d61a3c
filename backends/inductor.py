"""PyTorch-native CPU targets: AOTInductor packages (``.pt2``) compiled by Inductor into C++/oneDNN kernels.

The IR is a ``torch.export`` program: float, bf16 (weights and activations cast, inputs and outputs kept
float32), or the SDK's plan realised by PT2E with the ``X86InductorQuantizer`` as Intel Neural Compressor
configures it (see compressor/quantization/pt2e.py). ``torch._inductor.aoti_compile_and_package`` with
weight freezing turns it into a shared library inside the package; INT8 patterns become oneDNN
``qconv``/``qlinear`` kernels (VNNI/AMX). The package loads without the model's Python code, with the same
torch version only (checked: the version is stored in the package's metadata and in the manifest).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shutil
import subprocess
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from compressor.core.backend import Artifact, Backend, KernelReport, Runner, TorchModuleRunner
from compressor.core.environment import cpu_info, package_version
from compressor.core.errors import ExportError, InputError, first_line
from compressor.core.files import fmt_size
from compressor.core.layers import ONNX_WEIGHT_OPS
from compressor.core.registry import package_missing
from compressor.core.specs import InputSpec
from compressor.core.targets import Device, IRFormat, Precision, TargetSpec

#: Inductor settings of every build (recorded in the manifest). Freezing turns weights into constants, which is what
#: lets Inductor fold the quantized weights and fuse dequantize-conv-quantize into one oneDNN INT8 kernel.
INDUCTOR_CONFIGS = {"freezing": True}
BF16_ISA = ("avx512_bf16", "amx_bf16")
META_PREFIX = "compressor."

README = """# {name}: AOTInductor package

`model.pt2` ({size}) is an AOTInductor package compiled by torch {torch} ({precision}) with {compiler}:
a shared library with the model's weights and kernels. It needs no model code, only the same torch version.

Inputs: {inputs}
Outputs: {outputs}

## Python
```python
import torch, numpy as np
model = torch._inductor.aoti_load_package("model.pt2")
ref = np.load("reference/inputs.npz")
with torch.inference_mode():
    outputs = model(*[torch.from_numpy(ref[name]) for name in {input_names}])
```
`compressor verify <bundle>` does this for every reference input and compares with `reference/outputs.npz`.

## C++ (libtorch {torch})
```cpp
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
torch::inductor::AOTIModelPackageLoader loader("model.pt2");
std::vector<at::Tensor> outputs = loader.run({{input}});
```
"""


def cxx_compiler() -> str | None:
    """The C++ compiler Inductor will call (``$CXX``, else g++), resolved on PATH; None when there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


@lru_cache(maxsize=4)
def compiler_version(path: str) -> str:
    try:
        res = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return Path(path).name
    return (res.stdout.splitlines() or [Path(path).name])[0].strip()


def package_metadata(path: Path) -> dict[str, str]:
    """The metadata an AOTInductor package carries (read from the zip: no library is loaded)."""
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith("_metadata.json") and "/aotinductor/" in n]
        out: dict[str, str] = {}
        for n in names:
            out.update(json.loads(z.read(n)))
    return out


def is_package(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any("/data/aotinductor/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def kernel_calls(path: Path) -> dict[str, int]:
    """The ATen/oneDNN calls the package's generated C++ wrapper makes, counted (what runs, not what was asked for)."""
    calls: collections.Counter = collections.Counter()
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            if n.endswith(".wrapper.cpp"):
                calls.update(re.findall(r"aoti_torch_cpu_(\w+?)(?:_out)?\(", z.read(n).decode("utf-8", "replace")))
    return dict(sorted(calls.items()))


def int8_kernels(calls: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in calls.items() if k.startswith(("_qconv", "_qlinear", "qconv", "qlinear"))}


def _check_torch(meta: dict[str, str], path: Path) -> None:
    import torch

    wrote = meta.get(META_PREFIX + "torch")
    if wrote and wrote != torch.__version__:
        raise InputError(f"{Path(path).name} was compiled by torch {wrote} but this machine has torch {torch.__version__}: "
                         f"an AOTInductor package runs only with the torch that built it; install torch=={wrote} or rebuild it")


class InductorRunner(TorchModuleRunner):
    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "runtime": "torch AOTInductor"}


class InductorBackend(Backend):
    name = "inductor"
    package = "torch"
    TARGETS = (
        TargetSpec("torch-inductor-cpu-fp32", name, Device.CPU, Precision.FP32, IRFormat.TORCH, "pt2",
                   "PyTorch AOTInductor package (.pt2, compiled C++), FP32", opens=(".pt2",), needs="a C++ compiler to build"),
        TargetSpec("torch-inductor-cpu-bf16", name, Device.CPU, Precision.BF16, IRFormat.TORCH, "pt2",
                   "PyTorch AOTInductor package, bf16 weights and activations", opens=(".pt2",),
                   needs="a CPU with native bf16 (AVX512-BF16 or AMX-BF16); a C++ compiler to build"),
        TargetSpec("torch-inductor-cpu-int8", name, Device.CPU, Precision.INT8, IRFormat.TORCH, "pt2",
                   "PyTorch AOTInductor package, INT8 oneDNN kernels (PT2E x86 quantizer via Intel Neural Compressor)",
                   opens=(".pt2",), quantizers=("sdk", "inc"), pt2e_quantizer="x86_inductor",
                   needs="x86 with AVX512-VNNI or AMX for fast INT8; a C++ compiler to build"),
    )

    def preload(self) -> None:
        import torch._inductor  # noqa: F401

    def available(self, target):
        if target.precision == Precision.BF16 and cpu_info()["architecture"] in ("x86_64", "AMD64"):
            if not any(f in cpu_info()["isa"] for f in BF16_ISA):
                return False, "this CPU has no native bf16 (AVX512-BF16 or AMX-BF16): bf16 would be emulated, slower than FP32"
        if target.precision.quantized:
            for dist, module, why in (("torchao", "torchao", "PT2E quantization"),
                                      ("neural-compressor-pt", "neural_compressor", "the x86 quantizer's INT8 configuration")):
                missing = package_missing(dist, module)
                if missing:
                    return False, f"{why} needs it: {missing}"
        if cxx_compiler() is None:
            return False, (f"no C++ compiler: AOTInductor compiles the model with '{os.environ.get('CXX', 'g++')}', which is not on "
                           "PATH; install one (apt-get install g++) or point CXX at it")
        return True, ""

    def check_model(self, model, target) -> None:
        dynamic = [f"{s.name}: {s.shape_str}" for s in model.inputs if s.dynamic]
        if dynamic and target.precision.quantized:
            import torch

            # measured with torch 2.14.1: a conv-only model quantized by PT2E and compiled with a dynamic batch differs from
            # the same quantized program run eagerly by more than 1.0 (static shapes agree to 1e-6); FP32 is unaffected
            raise ExportError(f"AOTInductor INT8 packages with dynamic dimensions compute wrong results with torch {torch.__version__} "
                              f"(oneDNN qconv), and these inputs are dynamic ({'; '.join(dynamic)}): INT8 is built for fixed shapes; "
                              f"give the shape the server will use, e.g. --input-shape "
                              f"{','.join(str(v) for v in model.inputs[0].shape(batch=1))}")

    def target_for(self, path: Path) -> str | None:
        if not is_package(path):
            return None
        return package_metadata(path).get(META_PREFIX + "target", "torch-inductor-cpu-fp32")

    def compile(self, model, ir, target, workdir, ctx) -> Artifact:
        import time

        import torch
        import torch._inductor

        from compressor.io.export_torch import cast_module, dynamic_shapes, quiet

        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime is found": not used here
        if ir.program is None:
            raise ExportError(f"{target.name} compiles a torch.export program, and this IR has none")
        cxx = cxx_compiler()
        if cxx is None:
            raise InputError(self.available(target)[1])
        program = ir.program
        if target.precision == Precision.BF16:
            with quiet():
                dims = dynamic_shapes(model)
                program = torch.export.export(cast_module(program.module(), torch.bfloat16), model.example_inputs(for_export=True),
                                              dynamic_shapes=None if dims is None else (dims,))  # forward(*xs): one tuple
        workdir = Path(workdir)
        path = workdir / "model.pt2"
        meta = {META_PREFIX + "torch": torch.__version__, META_PREFIX + "target": target.name,
                META_PREFIX + "inputs": json.dumps([[s.name, s.shape_str, s.dtype] for s in model.inputs]),
                META_PREFIX + "outputs": json.dumps(list(model.output_names))}
        t0 = time.perf_counter()
        try:
            with ctx.progress.stage(f"compiled by AOTInductor with {Path(cxx).name}"), quiet(), torch.no_grad():
                torch._inductor.aoti_compile_and_package(program, package_path=str(path),
                                                         inductor_configs={**INDUCTOR_CONFIGS, "aot_inductor.metadata": meta})
        except Exception as e:  # noqa: BLE001 - Inductor raises many types; the first line names the failure
            raise ExportError(f"AOTInductor could not compile {target.name}: {first_line(e)}") from e
        seconds = time.perf_counter() - t0
        calls = kernel_calls(path)
        readme = workdir / "README.md"
        readme.write_text(README.format(name=target.name, size=fmt_size(path.stat().st_size), torch=torch.__version__,
                                        precision=target.precision, compiler=compiler_version(cxx),
                                        inputs=", ".join(f"`{s.name}` ({s.shape_str}, {s.dtype})" for s in model.inputs),
                                        outputs=", ".join(f"`{n}`" for n in model.output_names), input_names=model.input_names,
                                        input="torch::randn({" + ", ".join(str(v) for v in model.inputs[0].shape(batch=1)) + "})"))
        details = {"exporter": "torch.export + torch._inductor.aoti_compile_and_package", "torch": torch.__version__,
                   "inductor_configs": dict(INDUCTOR_CONFIGS), "compiler": compiler_version(cxx), "compiler_path": cxx,
                   "compile_seconds": round(seconds, 2), "package_size_bytes": path.stat().st_size,
                   "cpu_isa": package_metadata(path).get("AOTI_CPU_ISA"), "kernel_calls": calls, "int8_kernels": int8_kernels(calls)}
        if target.precision.quantized:
            details["neural_compressor"] = package_version("neural-compressor-pt")
        return Artifact(target.name, path, [path], [path, readme], details)

    def kernel_report(self, artifact, ir, target, ctx):
        """INT8 layers read back from the compiled package: each quantized conv/linear Inductor fused is one oneDNN
        ``qconv``/``qlinear`` call in the generated wrapper; a pattern it did not fuse runs as float convolution."""
        if ir.plan is None:
            return None
        kernels = artifact.details["int8_kernels"]
        weight_layers = [l for l in ir.plan.layers if l.op_type in ONNX_WEIGHT_OPS]
        planned = sum(l.precision == "int8" for l in weight_layers)
        int8 = min(len(weight_layers), sum(kernels.values()))
        if int8 < planned:
            ctx.warn(f"Inductor runs {int8} layers in oneDNN INT8 kernels but {planned} were planned: the rest run in float")
        return KernelReport(weight_layers_total=len(weight_layers), weight_layers_int8=int8,
                            summary=f"{int8} oneDNN INT8 kernel call(s): {', '.join(f'{k} ×{v}' for k, v in kernels.items()) or 'none'}",
                            method="AOTInductor package: oneDNN qconv/qlinear calls in the generated C++ wrapper",
                            details={"int8_kernels": kernels})

    def report_sections(self, manifest) -> list[str]:
        build = manifest["artifact"]["build"]
        if "inductor_configs" not in build:
            return []
        lines = ["## AOTInductor package", "",
                 f"- Compiled by torch {build.get('torch')} with {build.get('compiler')} in {build.get('compile_seconds')} s "
                 f"(Inductor settings {build.get('inductor_configs')}); package {fmt_size(build.get('package_size_bytes'))}; "
                 f"kernels built for {build.get('cpu_isa')}"]
        if build.get("neural_compressor"):
            lines.append(f"- INT8 configuration: Intel Neural Compressor {build['neural_compressor']} (X86InductorQuantizer); "
                         f"oneDNN INT8 calls: {build.get('int8_kernels') or 'none'}")
        return lines + ["- How to run it without the model's code: README.md in this bundle.", ""]

    def load(self, path, target, threads=None) -> Runner:
        import torch._inductor

        meta = package_metadata(Path(path))
        _check_torch(meta, Path(path))
        try:
            model = torch._inductor.aoti_load_package(str(path))
        except Exception as e:  # noqa: BLE001
            raise InputError(f"cannot load the AOTInductor package {Path(path).name}: {first_line(e)}") from e
        inputs = json.loads(meta.get(META_PREFIX + "inputs", "[]"))
        outputs = json.loads(meta.get(META_PREFIX + "outputs", "[]"))
        return InductorRunner(model, [n for n, _, _ in inputs] or ["input"], outputs, threads=threads)

    def artifact_inputs(self, path) -> list[InputSpec]:
        meta = package_metadata(Path(path))
        inputs = json.loads(meta.get(META_PREFIX + "inputs", "[]"))
        if not inputs:
            raise InputError(f"{Path(path).name} does not say its inputs (not written by this SDK): pass --input-shape")
        return [InputSpec.parse(shape, name=name, dtype=dtype) for name, shape, dtype in inputs]

    def check_compatible(self, manifest: dict) -> str | None:
        import torch

        wrote = manifest.get("artifact", {}).get("build", {}).get("torch")
        if wrote and wrote != torch.__version__:
            return (f"this bundle's AOTInductor package was compiled by torch {wrote} but this machine has torch {torch.__version__}: "
                    f"it runs only with the torch that built it; install torch=={wrote} or rebuild the bundle")
        return None

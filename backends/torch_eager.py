"""PyTorch eager on the CPU: the FP32 reference every other target is validated against.

The artifact is a ``torch.export`` program (``model.pt2``): it reloads without the user's Python code
and runs the same ATen kernels as eager mode (no compilation), so its latency is eager latency.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from compressor.core.backend import Artifact, Backend, Runner, TorchModuleRunner
from compressor.core.errors import ExportError
from compressor.core.targets import Device, IRFormat, Precision, TargetSpec

IO_NAMES = "compressor_io.json"  # input/output names of the model, stored inside the .pt2


class TorchBackend(Backend):
    name = "torch"
    package = "torch"
    TARGETS = (
        TargetSpec("torch-cpu-fp32", name, Device.CPU, Precision.FP32, IRFormat.TORCH, "pt2",
                   "PyTorch eager, the FP32 reference (torch.export program)", opens=(".pt2",), reference=True),
    )

    def preload(self) -> None:
        import torch  # noqa: F401

    def available(self, target):
        return True, ""

    def compile(self, model, ir, target, workdir, ctx) -> Artifact:
        import torch

        if ir.program is None:
            raise ExportError(f"{target.name} saves a torch.export program, and this IR has none")
        path = Path(workdir) / "model.pt2"
        io_names = json.dumps({"inputs": model.input_names, "outputs": model.output_names})
        torch.export.save(ir.program, str(path), extra_files={IO_NAMES: io_names})
        return Artifact(target.name, path, [path], [path], {"torch": torch.__version__})

    @staticmethod
    def _read(path):
        """The exported program and the (input, output) names stored beside it."""
        import torch

        extra = {IO_NAMES: ""}
        ep = torch.export.load(str(path), extra_files=extra)
        io_names = json.loads(extra[IO_NAMES]) if extra[IO_NAMES] else {}
        names = io_names.get("inputs") or list(ep.graph_signature.user_inputs)
        outs = io_names.get("outputs") or [str(o) for o in ep.graph_signature.user_outputs]
        return ep, names, outs

    def load(self, path, target, threads=None) -> Runner:
        ep, names, outs = self._read(path)
        return TorchModuleRunner(ep.module(), names, outs, threads=threads)

    def artifact_inputs(self, path):
        from compressor.io.loading import inputs_from_exported

        ep, names, _ = self._read(path)
        return [replace(s, name=n) for s, n in zip(inputs_from_exported(ep), names)]

"""PyTorch eager on the CPU: the FP32 reference every other target is validated against.

The artifact is a ``torch.export`` program (``model.pt2``): it reloads without the user's Python code
and runs the same ATen kernels as eager mode (no compilation), so its latency is eager latency.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import replace
from pathlib import Path

from compressor.core.errors import ExportError, first_line
from compressor.core.backend import Artifact, Backend, Runner, TorchModuleRunner


IO_NAMES = "compressor_io.json"  # input/output names of the model, stored inside the .pt2


class TorchBackend(Backend):
    name = "torch"
    package = "torch"

    def preload(self) -> None:
        import torch  # noqa: F401

    def available(self, target):
        return True, ""

    def build(self, model, target, workdir, ctx=None) -> Artifact:
        import torch

        path = Path(workdir) / "model.pt2"
        ep = model.exported_program
        if ep is None:
            dims = None
            if any(s.dynamic for s in model.inputs):
                dims = tuple(
                    {i: torch.export.Dim(d.name, min=d.min, max=d.max) for i, d in enumerate(s.dims) if d.dynamic} or None
                    for s in model.inputs
                )
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    ep = torch.export.export(model.module, model.example_inputs(for_export=True), dynamic_shapes=dims, strict=False)
            except Exception as e:  # noqa: BLE001 - torch.export raises many types
                first = first_line(e)
                raise ExportError(f"torch.export failed for the torch-cpu-fp32 artifact: {first}")
        io_names = json.dumps({"inputs": model.input_names, "outputs": model.output_names})
        torch.export.save(ep, str(path), extra_files={IO_NAMES: io_names})
        return Artifact(target.name, path, [path], {"exporter": "torch.export", "torch": torch.__version__})

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

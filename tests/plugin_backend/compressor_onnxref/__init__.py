"""An example backend plugin: runs the SDK's ONNX IR with ``onnx.reference.ReferenceEvaluator``.

Everything a backend supplies is here: its targets, a compile step (the IR is already ONNX), a loader
returning a Runner, and the input specs of a bare artifact. Validation, benchmarking, bundles and
verification come from the SDK.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from compressor.core.backend import Artifact, Backend, Runner
from compressor.core.registry import package_missing
from compressor.core.specs import InputSpec
from compressor.core.targets import Device, IRFormat, Precision, TargetSpec


class ReferenceRunner(Runner):
    def __init__(self, path: Path):
        import onnx
        from onnx.reference import ReferenceEvaluator

        model = onnx.load(str(path))
        self.session = ReferenceEvaluator(model)
        self.input_names = [i.name for i in model.graph.input]
        self.output_names = [o.name for o in model.graph.output]

    def run(self, feeds):
        return [np.asarray(o) for o in self.session.run(None, feeds)]

    def describe(self):
        import onnx

        return {"runtime": "onnx.reference", "version": onnx.__version__}


class OnnxReferenceBackend(Backend):
    name = "onnxref"
    package = "onnx"
    TARGETS = (TargetSpec("onnxref-cpu-fp32", name, Device.CPU, Precision.FP32, IRFormat.ONNX, "onnx",
                          "ONNX's reference evaluator (pure numpy; a plugin example)"),
               # static INT8 in a QDQ layout of its own: written by the plugin's realiser (compressor_onnxref.realiser)
               TargetSpec("onnxref-cpu-int8", name, Device.CPU, Precision.INT8, IRFormat.ONNX, "onnx",
                          "ONNX's reference evaluator, static INT8 QDQ (a plugin example: its own realiser)", qdq_layout="reference"))

    def available(self, target):
        missing = package_missing("onnx")
        return (False, missing) if missing else (True, "")

    def compile(self, model, ir, target, workdir, ctx):
        path = Path(workdir) / "model.onnx"
        shutil.copyfile(ir.path, path)
        return Artifact(target.name, path, [path], [path], {"plugin": "compressor-onnxref"})

    def load(self, path, target, threads=None):
        return ReferenceRunner(Path(path))

    def artifact_inputs(self, path):
        import onnx

        model = onnx.load(str(path))
        return [InputSpec.parse(",".join(str(d.dim_value) if d.dim_value > 0 else (d.dim_param or f"dim{j}")
                                         for j, d in enumerate(i.type.tensor_type.shape.dim)), name=i.name)
                for i in model.graph.input]

    def report_sections(self, manifest):
        return ["## Plugin", "", "- Built by the compressor-onnxref example plugin (onnx.reference.ReferenceEvaluator).", ""]

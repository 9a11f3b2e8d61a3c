"""ONNX Runtime on the CPU (``CPUExecutionProvider``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compressor.export_onnx import export_onnx
from compressor.runner import Artifact, Backend, Runner
from compressor.specs import InputSpec


class OrtRunner(Runner):
    def __init__(self, path: Path, threads: int | None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.threads = threads
        self._version = ort.__version__

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": "onnxruntime",
            "version": self._version,
            "providers": self.session.get_providers(),
            "intra_op_threads": self.threads,
            "graph_optimization": "ORT_ENABLE_ALL",
        }


class OrtBackend(Backend):
    name = "onnxruntime"
    package = "onnxruntime"

    def available(self, target):
        from . import package_missing

        missing = package_missing("onnxruntime")
        if missing:
            return False, missing
        if target.precision not in ("fp32",):
            return False, f"precision {target.precision} is not supported by this backend yet"
        return True, ""

    def build(self, model, target, workdir, calib=None) -> Artifact:
        path = Path(workdir) / "model.onnx"
        details = export_onnx(model, path)
        return Artifact(target.name, path, [path], details)

    def load(self, path, target, threads=None) -> Runner:
        return OrtRunner(Path(path), threads)

    def artifact_inputs(self, path) -> list[InputSpec]:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        init = {i.name for i in model.graph.initializer}
        specs = []
        for vi in model.graph.input:
            if vi.name in init:
                continue
            dims = [str(d.dim_value) if d.dim_value > 0 else (d.dim_param or f"dim{i}")
                    for i, d in enumerate(vi.type.tensor_type.shape.dim)]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name
            specs.append(InputSpec.parse(",".join(dims), name=vi.name, dtype=dtype))
        return specs

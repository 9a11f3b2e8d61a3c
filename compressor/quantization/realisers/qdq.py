"""QDQ ONNX: static INT8 in ONNX Runtime's canonical layout or TensorRT's symmetric one, and dynamic INT8."""

from __future__ import annotations

from compressor.core.backend import IR
from compressor.core.targets import IRFormat
from compressor.quantization.qdq import LAYOUTS
from compressor.quantization.realiser import Realiser


def _save(source, qmodel, stem: str):
    import onnx

    path = source.new_path(stem)
    onnx.save_model(qmodel, str(path))
    return path


class _StaticQdq(Realiser):
    ir = IRFormat.ONNX
    layout: str

    def prepare(self, plan):
        return plan

    def realise(self, source, target, plan, progress, tuning=None) -> IR:
        from compressor.quantization.qdq import realize_static

        plan = self.prepare(plan)
        path = _save(source, realize_static(source.float_for(plan), plan, layout=self.layout), "qdq")
        return IR(IRFormat.ONNX, target.precision, path=path, plan=plan, export={"quantization_realiser": f"QDQ ONNX ({LAYOUTS[self.layout]})"})


class OrtQdq(_StaticQdq):
    flavour, layout = "qdq-ort", "ort"
    description = "static INT8 as QDQ ONNX in ONNX Runtime's canonical layout (uint8 activations, int8 per-channel weights)"


class TensorRtQdq(_StaticQdq):
    flavour, layout = "qdq-tensorrt", "tensorrt"
    description = "static INT8 as symmetric int8 QDQ ONNX, the layout TensorRT fuses"

    def prepare(self, plan):
        return plan.symmetric()


class DynamicQdq(Realiser):
    ir, flavour = IRFormat.ONNX, "dynamic"
    description = "dynamic INT8 ONNX (DynamicQuantizeLinear + MatMulInteger)"

    def realise(self, source, target, plan, progress, tuning=None) -> IR:
        from compressor.quantization.qdq import realize_dynamic

        path = _save(source, realize_dynamic(source.float_for(plan), plan), "dynamic")
        return IR(IRFormat.ONNX, target.precision, path=path, plan=plan, export={"quantization_realiser": self.description})

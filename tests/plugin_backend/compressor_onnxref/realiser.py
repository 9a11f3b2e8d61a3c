"""The plugin's INT8 realiser: its target declares the QDQ layout ``reference``, and this realiser, registered under
``compressor.realisers``, writes the SDK's plan for it. onnx.reference runs QuantizeLinear/DequantizeLinear around float
kernels, so the plan's ranges and scales (a plan pass's edits included) are written as they are: uint8 activations,
per-channel int8 weights, in opset 21 (the first whose QDQ onnx.reference implements)."""

from __future__ import annotations

from compressor.core.backend import IR
from compressor.core.targets import IRFormat
from compressor.quantization.realiser import Realiser

OPSET = 21


class ReferenceQdq(Realiser):
    ir, flavour = IRFormat.ONNX, "qdq-reference"
    description = "static INT8 QDQ ONNX for onnx.reference (the plan's scales as they are; the compressor-onnxref example plugin)"

    def realise(self, source, target, plan, progress, tuning=None) -> IR:
        import onnx
        from onnx import version_converter

        from compressor.quantization.qdq import realize_static

        path = source.new_path("reference-qdq")
        model = version_converter.convert_version(realize_static(source.float_for(plan), plan, layout="ort"), OPSET)
        onnx.save_model(model, str(path))
        return IR(IRFormat.ONNX, target.precision, path=path, plan=plan, export={"quantization_realiser": f"compressor-onnxref {self.flavour}"})

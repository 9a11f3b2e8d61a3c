"""Quantizers that choose their own ranges and write their runtime's model: NNCF (OpenVINO) and Intel Neural Compressor
(PT2E for Inductor). The SDK's plan gives them its structure and exclusions."""

from __future__ import annotations

from compressor.core.backend import IR
from compressor.core.targets import IRFormat
from compressor.quantization.realiser import Realiser


class NncfOpenVino(Realiser):
    ir, flavour = IRFormat.ONNX, "nncf"
    description = "NNCF's own ranges, an OpenVINO INT8 model"

    def realise(self, source, target, plan, progress, tuning=None) -> IR:
        from compressor.quantization.nncf_quantizer import quantize

        native = quantize(source.original_onnx, plan, source.calib_feeds(), progress)
        return IR(target.ir, target.precision, native=native, plan=plan, export={"quantization_realiser": plan.quantizer})


class IncInductor(Realiser):
    ir, flavour = IRFormat.TORCH, "inc"
    description = "Intel Neural Compressor's observers (and, with a gate, its autotune), a PT2E program for Inductor"

    def realise(self, source, target, plan, progress, tuning=None) -> IR:
        from compressor.io.export_torch import dynamic_shapes, export_program
        from compressor.quantization.inc_quantizer import quantize

        model = source.original
        batches = [source.torch_batch(f) for f in source.calib_feeds()]
        converted, done = quantize(model.module, model.example_inputs(for_export=True), dynamic_shapes(model), plan, source.modules(),
                                   batches, progress, tuning)
        program = export_program(model, converted, what=f"the INC-quantized model ({target.name})")
        return IR(IRFormat.TORCH, target.precision, program=program, plan=plan,
                  export={"quantization_realiser": f"{plan.quantizer}, INC's observers", **done})

"""PT2E programs: the model captured by torch.export, annotated by a PT2E quantizer whose observers are set to the plan's
ranges (matched by value to the ONNX tensors the plan was calibrated on, see :mod:`compressor.quantization.pt2e`)."""

from __future__ import annotations

from compressor.core.backend import IR
from compressor.core.errors import ExportError, first_line
from compressor.core.targets import IRFormat
from compressor.quantization.realiser import Realiser


class Pt2e(Realiser):
    ir = IRFormat.TORCH
    quantizer: str  # the PT2E quantizer flavour (compressor.quantization.pt2e)

    def realise(self, source, target, plan, progress, tuning=None) -> IR:
        from compressor.io.export_torch import export_program
        from compressor.quantization import pt2e

        modules = source.modules()
        unmapped = [l.name for l in plan.layers if l.name not in modules]
        quiet = progress is not source.progress
        if unmapped and not quiet:
            source.warn(f"{len(unmapped)} layer(s) of the plan are not PyTorch modules and follow the PT2E quantizer's default: "
                        f"{', '.join(unmapped[:5])}")
        captured = source.capture(self.quantizer, quiet=quiet)
        batches = [source.torch_batch(f) for f in source.calib_feeds()]
        try:
            converted, done = pt2e.realise(captured, self.quantizer, plan, modules, source.torch_batch(source.probe_feed()),
                                           source.tensor_index(), plan.ranges(), batches, progress)
        except Exception as e:  # noqa: BLE001 - the quantizer's own failures, named with what to try
            if "more than one output node" in str(e):
                raise ExportError(f"the {self.quantizer} PT2E quantizer could not annotate this graph ({first_line(e)}): "
                                  "it needs a strict torch.export of the model (see the warning above); make forward traceable by "
                                  "TorchDynamo, or use ort-cpu-int8 / openvino-cpu-int8") from e
            raise
        program = export_program(source.model, converted, what=f"the PT2E-quantized model ({target.name})")
        return IR(IRFormat.TORCH, target.precision, program=program, plan=plan,
                  export={"quantization_realiser": f"PT2E {self.quantizer} quantizer, ranges from the SDK's plan", "pt2e": done})


class XnnpackPt2e(Pt2e):
    flavour, quantizer = "pt2e-xnnpack", "xnnpack"
    description = "PT2E program with XNNPACK's quantizer (ExecuTorch), ranges from the SDK's plan"


class X86InductorPt2e(Pt2e):
    flavour, quantizer = "pt2e-x86_inductor", "x86_inductor"
    description = "PT2E program with the x86 Inductor quantizer (AOTInductor, oneDNN), ranges from the SDK's plan"

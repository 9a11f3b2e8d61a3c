"""The models of a session and what is made from each once: the model as loaded or pruned for a target's channel
multiple, its float IRs (one export per format, shared by every target that consumes it), and its quantization stages
(one per quantization settings: it plans and calibrates once for every target)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor.core.backend import IR
from compressor.core.errors import InputError, TargetError
from compressor.core.model import ModelHandle
from compressor.core.registry import get_target
from compressor.core.targets import IRFormat, PlanMode, Precision, TargetSpec
from compressor.data.context import RunContext
from compressor.pruning.settings import PruningSettings
from compressor.quantization.qat import QatSettings
from compressor.quantization.settings import QuantizationSettings
from compressor.quantization.stage import QuantizationStage
from compressor.training.settings import FinetuneSettings

#: why a layer --auto-precision returned to float is float (the manifest's auto-precision section has its measured cost)
FLOAT_REASON = "returned to float by --auto-precision: among the most sensitive on the target's runtime"


@dataclass
class Variant:
    """One model of the session (as loaded, or pruned) and what is made from it once: IRs, the quantization stages."""

    model: ModelHandle
    pruning: dict[str, Any] | None
    onnx: IR | None = None
    torch: IR | None = None
    stages: dict[str, QuantizationStage] = field(default_factory=dict)  # one per quantization settings


class Variants:
    def __init__(self, model: ModelHandle, ctx: RunContext, quantization: QuantizationSettings, qat: QatSettings,
                 finetune: FinetuneSettings, workdir):
        self.model, self.ctx, self.quantization, self.qat, self.finetune = model, ctx, quantization, qat, finetune
        self._workdir = workdir
        self._variants: dict[str, Variant] = {}
        self._pt2e_wanted: dict[str, set[str]] = {}

    def close(self) -> None:
        for v in self._variants.values():
            for stage in v.stages.values():
                stage.close()

    def prepare(self, candidates) -> None:
        """Announce every candidate before evaluating any, so each model is calibrated once for all its targets."""
        for c in candidates:
            try:
                spec = get_target(c.target)
            except TargetError:
                continue
            if spec.precision.quantized and spec.ir == IRFormat.TORCH and spec.pt2e_quantizer:
                self._pt2e_wanted.setdefault(self.key(c.pruning, spec), set()).add(spec.pt2e_quantizer)

    def key(self, pruning: PruningSettings | None, spec: TargetSpec) -> str:
        if pruning is None:
            return "as loaded"
        return json.dumps([pruning.model_dump(mode="json"), pruning.round_to or spec.prune_multiple])

    def get(self, pruning: PruningSettings | None, spec: TargetSpec) -> Variant:
        """The model a candidate is built from: as loaded, or pruned for the target's channel multiple (once per multiple)."""
        key = self.key(pruning, spec)
        if key not in self._variants:
            if pruning is None:
                self._variants[key] = Variant(self.model, None)
            else:
                from compressor.pruning.stage import prune_model

                c = self.ctx
                model, report = prune_model(self.model, pruning, self.finetune, c.finetune_data, pruning.round_to or spec.prune_multiple,
                                            c.task, c.progress, c.eval_data, warn=c.warn)
                self._variants[key] = Variant(model, report)
        return self._variants[key]

    def float_ir(self, variant: Variant, fmt: IRFormat, what: str) -> IR:
        """The float IR of a model, exported once per format and shared by every target that consumes it."""
        if fmt == IRFormat.ONNX:
            if variant.onnx is None:
                from compressor.io.export_onnx import export_onnx

                path = Path(self._workdir("float-onnx")) / "model.onnx"
                with self.ctx.progress.stage("exported to ONNX"):
                    details = export_onnx(variant.model, path)
                variant.onnx = IR(IRFormat.ONNX, Precision.FP32, path=path, export=details)
            return variant.onnx
        if fmt == IRFormat.TORCH:
            if variant.torch is None:
                from compressor.io.export_torch import export_program

                program = export_program(variant.model, what=what)
                variant.torch = IR(IRFormat.TORCH, Precision.FP32, program=program, export={"exporter": "torch.export"})
            return variant.torch
        raise InputError(f"no exporter for IR format {fmt}")

    def stage(self, variant: Variant, key: str, settings: QuantizationSettings | None = None,
              qat: QatSettings | None = None) -> QuantizationStage:
        """The quantization stage of a model for some quantization settings: it plans (and calibrates) once. With QAT, the stage
        of the model trained from the PTQ plan (one training serves every target of the session)."""
        settings = settings or self.quantization
        if (qat or self.qat).enabled:
            return self._qat_stage(variant, key, settings, qat or self.qat)
        skey = settings.plan_key()
        if skey not in variant.stages:
            float_onnx = self.float_ir(variant, IRFormat.ONNX, "quantization")
            variant.stages[skey] = self._new_stage(variant.model, float_onnx.path, settings, key)
        return variant.stages[skey]

    def _new_stage(self, model: ModelHandle, float_onnx: Path, settings: QuantizationSettings, key: str, qat=None) -> QuantizationStage:
        stage = QuantizationStage(model, float_onnx, settings, self.ctx, qat=qat)
        for flavour in self._pt2e_wanted.get(key, ()):
            stage.want_pt2e(flavour)
        return stage

    def _qat_stage(self, variant: Variant, key: str, settings: QuantizationSettings, qat: QatSettings) -> QuantizationStage:
        skey = f"qat {settings.plan_key()} {qat.model_dump_json()}"
        if skey not in variant.stages:
            from compressor.quantization.qat import check_quantizer, train

            check_quantizer(settings.quantizer)
            ptq = self.stage(variant, key, settings, QatSettings())
            plan = ptq.plan(PlanMode.STATIC)
            m = ptq.model
            result = train(m.module, plan, m.example_inputs(for_export=True), self.ctx.finetune_data, qat, self.finetune, self.ctx.task,
                           self.ctx.progress)
            model = ModelHandle(result.module, m.inputs, m.output_names, m.preprocessing, dict(m.source))
            trained = Variant(model, variant.pruning)
            float_onnx = self.float_ir(trained, IRFormat.ONNX, "quantization")
            stage = self._new_stage(model, float_onnx.path, settings.model_copy(update={"equalize": False, "scale_migration": False}), key,
                                    qat=result)
            stage.transforms = dict(ptq.transforms)  # what was done to the model QAT started from
            variant.stages[skey] = stage
        return variant.stages[skey]

    def ir(self, variant: Variant, key: str, spec: TargetSpec, settings: QuantizationSettings | None = None,
           qat: QatSettings | None = None, float_layers: tuple[str, ...] = (), tuning=None) -> IR:
        """The IR ``spec`` compiles: the float IR, or the stage's plan (less ``float_layers``) realised for it."""
        if not spec.precision.quantized:
            return self.float_ir(variant, spec.ir, f"the {spec.name} artifact")
        if (qat or self.qat).enabled and spec.precision.quant_mode != PlanMode.STATIC:
            raise InputError(f"--qat trains the ranges of static INT8 plans, and {spec.name} quantizes activations at run time (dynamic "
                             "INT8): use a static INT8 target (ort-cpu-int8, openvino-cpu-int8, executorch-xnnpack-int8), or drop --qat")
        stage = self.stage(variant, key, settings, qat)
        plan = stage.excluding(stage.plan_for(spec), float_layers, FLOAT_REASON) if float_layers else None
        return stage.realise(spec, plan, tuning=tuning)

"""Validation: the FP32 reference outputs on the eval data (computed once), which budgets they can measure, and each
artifact's fidelity against them; with QAT, how far the artifact agrees with the fake-quantized model it was trained as."""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor.core.backend import TorchModuleRunner
from compressor.core.errors import InputError
from compressor.core.fidelity import Fidelity, compare
from compressor.core.model import ModelHandle
from compressor.core.objective import Objective
from compressor.core.registry import get_backend
from compressor.data.context import RunContext
from compressor.evaluation.candidates import CandidateResult
from compressor.evaluation.gate import GateSettings
from compressor.evaluation.validate import eval_batch_size, run_all

#: eval samples INC's autotune measures each trial on (the final artifact is validated on all of them)
TUNING_SAMPLES = 1000


class Validator:
    def __init__(self, model: ModelHandle, ctx: RunContext, gate: GateSettings):
        self.model, self.ctx, self.gate = model, ctx, gate
        self.data = ctx.eval_data
        self._reference: list[np.ndarray] | None = None
        self._reference_fidelity: Fidelity | None = None
        self._fake_quant_outputs: dict[int, list[np.ndarray]] = {}

    @property
    def eval_batch(self) -> int:
        return eval_batch_size(self.model.inputs)

    def _run(self, runner, label: str) -> list[np.ndarray]:
        with self.ctx.progress.bar(f"{label} on {len(self.data)} samples", total=len(self.data)) as advance:
            return run_all(runner, self.data, self.model.inputs, self.eval_batch, advance)

    def reference_outputs(self) -> list[np.ndarray]:
        """The FP32 PyTorch model's outputs on the eval data: what every artifact is compared with (computed once)."""
        if self._reference is None:
            m = self.model
            reference = self._run(TorchModuleRunner(m.module, m.input_names, m.output_names, threads=self.ctx.threads),
                                  "FP32 reference outputs")
            self._check_reference(reference)
            self._reference = reference
        return self._reference

    def reference_fidelity(self) -> Fidelity:
        """The FP32 outputs compared with themselves: which fidelity figures this model's output and eval data can measure."""
        if self._reference_fidelity is None:
            ref = self.reference_outputs()
            self._reference_fidelity = compare(ref, ref, self.data.labels, self.data.synthetic, self.ctx.task)
        return self._reference_fidelity

    def check_budgets(self) -> None:
        """Refuse, in one line, an accuracy budget this model's output or eval data cannot measure."""
        self.gate.check_measurable(self.reference_fidelity(), tuple(self.reference_outputs()[0].shape))

    @property
    def objective(self) -> Objective:
        return self.gate.objective(self.reference_fidelity())

    def _check_reference(self, outputs: list[np.ndarray]) -> None:
        """The FP32 outputs every artifact is judged against must be numbers, and labels must name their classes."""
        for i, out in enumerate(outputs):
            if np.issubdtype(out.dtype, np.floating) and not np.isfinite(out).all():
                bad = int((~np.isfinite(out.reshape(len(out), -1)).all(axis=1)).sum())
                raise InputError(f"the FP32 model's output {i} is NaN/inf on {bad} of {len(out)} eval samples: check the checkpoint "
                                 "and the input preprocessing (--scale/--mean/--std) before compressing")
        labels, main = self.data.labels, outputs[0]
        if labels is not None and self.ctx.task != "embedding" and main.ndim == 2 and len(labels) and labels.max() >= main.shape[1]:
            raise InputError(f"the eval labels go up to {int(labels.max())} but the model scores {main.shape[1]} classes: labels must be "
                             f"class indices 0..{main.shape[1] - 1} (check the labels file, or --arch-kwargs for the number of classes)")

    def validate(self, result: CandidateResult) -> None:
        """The artifact run on the eval data by its own runtime, compared with the reference outputs."""
        ref = self.reference_outputs()
        runner = get_backend(result.target.backend).load(result.artifact.path, result.target, threads=self.ctx.threads)
        outputs = self._run(runner, f"validated {result.target.name}")
        del runner
        result.fidelity = compare(ref, outputs, self.data.labels, self.data.synthetic, self.ctx.task)
        result.outputs = outputs
        if result.qat is not None and result.quantization is not None:
            result.quantization["qat"] = self._qat_section(result) if not result.candidate.float_layers else {
                **result.qat.report, "artifact_vs_fake_quant": None,
                "note": "layers returned to float after QAT: the artifact is not the all-INT8 model QAT simulated"}

    def _qat_section(self, result: CandidateResult) -> dict[str, Any]:
        """What QAT did, and how far the exported artifact agrees with the fake-quantized model it was trained as."""
        m, task, synthetic = self.model, self.ctx.task, self.data.synthetic
        fake = self._fake_quant_outputs.get(id(result.qat))
        if fake is None:  # once per training run: every target (and auto-precision step) made from it compares with the same
            runner = TorchModuleRunner(result.qat.fake_quant, m.input_names, m.output_names, threads=self.ctx.threads)
            fake = self._fake_quant_outputs[id(result.qat)] = self._run(runner, "ran the fake-quantized QAT model")
        vs_artifact = compare(fake, result.outputs, None, synthetic, task)
        vs_reference = compare(self.reference_outputs(), fake, self.data.labels, synthetic, task)
        return {**result.qat.report,
                "fake_quant_vs_fp32": {k: v for k, v in vs_reference.to_dict().items() if v is not None},
                "artifact_vs_fake_quant": {"cosine_mean": vs_artifact.cosine_mean, "cosine_min": vs_artifact.cosine_min,
                                           "top1_agreement": vs_artifact.top1_agreement,
                                           "max_abs_difference": float(max(np.abs(a - b).max() for a, b in zip(fake, result.outputs)))}}

    def tuning(self, model: ModelHandle):
        """The gate as Intel Neural Compressor's autotune objective: one metric on (up to TUNING_SAMPLES of) the eval data,
        with the relative loss the gate tolerates; the quantized module is run eagerly (it computes what its package does)."""
        from compressor.quantization.inc_quantizer import Tuning

        data = self.data.take(TUNING_SAMPLES)
        ref = [r[:len(data)] for r in self.reference_outputs()]
        base = compare(ref, ref, data.labels, data.synthetic, self.ctx.task)
        metric, loss = self.gate.objective(base).inc_tolerance(base)

        def evaluate(module) -> float:
            runner = TorchModuleRunner(module, model.input_names, model.output_names, threads=self.ctx.threads)
            f = compare(ref, run_all(runner, data, model.inputs, self.eval_batch, lambda n: None), data.labels, data.synthetic,
                        self.ctx.task)
            return float(getattr(f, metric))

        return Tuning(metric=metric, evaluate=evaluate, tolerable_loss=loss)

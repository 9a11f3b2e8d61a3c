"""Fast bias correction as a plan pass: the algorithm is :mod:`compressor.quantization.bias_correction`; this measures the
corrections on calibration data and keeps them only when the plan's output error drops and no top-1 prediction flips."""

from __future__ import annotations

from typing import Any

import numpy as np

from compressor.core.targets import PlanMode
from compressor.data.feeds import samples_in
from compressor.quantization.pipeline import PLAN, CompressionPass


class BiasCorrection(CompressionPass):
    name, phase, order, switch = "bias_correction", PLAN, 10, "bias_correction"
    description = "fast bias correction: the mean shift INT8 puts in each layer's output, added back to its bias where it helps"

    def applies_to(self, stage, plan=None) -> tuple[bool, str]:
        if plan is None or plan.mode != PlanMode.STATIC:
            return False, "bias correction edits static INT8 plans"
        return True, ""

    def run(self, stage, plan=None) -> dict[str, Any]:
        from compressor.quantization.bias_correction import MAX_SAMPLES, corrections
        from compressor.quantization.qdq import realize_static

        feeds = stage.calib_feeds()
        graph = stage.float_model

        def run_graph(model, probe, names=()):
            return stage.run(model, probe, list(names))

        with stage.progress.stage("bias correction measured"):
            found = corrections(graph, plan, feeds, lambda f, names: run_graph(graph, [f], names)[0])
            if not found:
                return {"applied": False, "layers": 0, "reason": "no INT8 layer's mean output shifts"}
            probe = stage.first_calib_feeds(MAX_SAMPLES)
            n = sum(samples_in(f) for f in probe)
            ref = np.concatenate([r["__outputs__"][0] for r in run_graph(graph, probe)])
            classifier = ref.ndim == 2 and ref.shape[1] > 1 and stage.task in ("auto", "classification")

            def error() -> tuple[float, float]:
                got = np.concatenate([r["__outputs__"][0] for r in run_graph(realize_static(graph, plan), probe)])
                agree = float((got.argmax(1) == ref.argmax(1)).mean()) if classifier else 1.0
                return float(np.mean((got.astype(np.float64) - ref) ** 2)), agree

            before, agree_before = error()
            for layer in plan.layers:
                if layer.name in found:
                    layer.bias_correction = [float(v) for v in found[layer.name]]
            after, agree_after = error()
        kept = after < before and agree_after >= agree_before
        if not kept:
            for layer in plan.layers:
                layer.bias_correction = None
        return {"applied": kept, "layers": len(found), "output_mse_before": before, "output_mse_after": after,
                **({"top1_agreement_before": agree_before, "top1_agreement_after": agree_after} if classifier else {}),
                "max_abs_correction": float(max(np.abs(v).max() for v in found.values())),
                "samples": n, "method": "fast per-layer: mean output shift of each INT8 layer (quantized input and weights vs float) on "
                "calibration data, kept if the output error drops and no top-1 prediction of the calibration data flips"}

    def report_lines(self, bc: dict[str, Any]) -> list[str]:
        if not bc.get("layers"):
            return [f"- Bias correction: {bc.get('reason', 'nothing to correct')}"]
        return [f"- Bias correction of {bc['layers']} layer(s): output MSE on calibration data {bc['output_mse_before']:.3g} → "
                f"{bc['output_mse_after']:.3g}, {'applied' if bc['applied'] else 'not applied (it did not help)'}"]

"""Cross-layer equalization and scale migration (SmoothQuant) as one float pass: the algorithm is
:mod:`compressor.quantization.equalize`; this runs it on calibration batches, keeps the result only when the transformed
model computes the same function, and hands the stage the transformed model to plan on."""

from __future__ import annotations

from typing import Any

from compressor.core.errors import first_line
from compressor.quantization.pipeline import FLOAT, CompressionPass

#: batches of calibration samples the channel ranges are measured on
SAMPLES = 32


class Equalization(CompressionPass):
    name, phase, order = "equalization", FLOAT, 10
    on_by = "on by default (off: --no-equalize --no-scale-migration)"
    description = "cross-layer equalization (Nagel et al. 2019) and scale migration into LayerNorm-fed Linears (SmoothQuant)"

    def enabled(self, settings) -> bool:
        return self.name in settings.passes or settings.equalize or settings.scale_migration

    def applies_to(self, stage, plan=None) -> tuple[bool, str]:
        if stage.calib is None:
            return False, "no calibration data"
        if stage.model.exported_program is not None or not hasattr(stage.model.module, "named_modules"):
            return False, "the model is an exported program or TorchScript, not a module"
        return True, ""

    def run(self, stage, plan=None) -> dict[str, Any]:
        from compressor.quantization.equalize import transform

        s = stage.settings
        batches = [stage.torch_batch(f) for f in stage.first_calib_feeds(SAMPLES)]  # enough to measure channel ranges
        try:
            with stage.progress.stage("equalization and scale migration checked"):
                module, report = transform(stage.model.module, stage.model.example_inputs(for_export=True), batches,
                                           s.equalize or self.name in s.passes, s.scale_migration or self.name in s.passes)
        except Exception as e:  # noqa: BLE001 - a model the analysis cannot trace is quantized as it is
            record = {"applied": False, "reason": f"the model could not be analysed ({first_line(e)}): quantized as it is"}
            stage.warn(f"equalization skipped: {record['reason']}")
            return record
        record = {"applied": report.changed, **report.to_dict()}
        if not report.changed:
            return record
        limit = 1e-4 * max(report.reference_max_abs, 1e-6) + 1e-5
        if report.max_abs_output_change > limit:  # never quantize a model that computes something else
            record = {**record, "applied": False,
                      "reason": f"the transformed model's outputs moved by {report.max_abs_output_change:.3g} (limit {limit:.3g})"}
            stage.warn(f"equalization not applied: {record['reason']}")
            return record
        stage.adopt_float_model(module, f"the transformed model ({len(report.equalized)} pair(s) equalized, {len(report.migrated)} "
                                        "LayerNorm(s) migrated)")
        return record

    def report_lines(self, tr: dict[str, Any]) -> list[str]:
        lines = []
        for e in tr.get("equalized", []):
            lines.append(f"- Equalized `{e['first']}` → `{e['second']}` (through {', '.join(e['joined_by'])}): scales {e['scale_min']:.3g}–"
                         f"{e['scale_max']:.3g}; activation channel spread {e['spread_before']:.1f} → {e['spread_after']:.1f}")
        for m in tr.get("migrated", []):
            lines.append(f"- Scale migration into {', '.join(f'`{n}`' for n in m['layers'])} (α {m['alpha']}, by {m['into']}): input "
                         f"spread {m['input_spread']:.1f}, INT8 output error ×{m['error_after'] / m['error_before']:.2f}")
        if tr.get("equalized") or tr.get("migrated"):
            lines.append(f"- The transformed model's outputs differ from the original's by at most {tr['max_abs_output_change']:.2g} "
                         f"(outputs up to {tr['reference_max_abs']:.3g}): the FP32 function is unchanged")
        elif tr.get("reason"):
            lines.append(f"- Equalization and scale migration: {tr['reason']}")
        return lines

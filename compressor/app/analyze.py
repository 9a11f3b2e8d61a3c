"""``compressor analyze``: per-layer INT8 sensitivity of a model for an INT8 target, measured on that target's
own runtime, without writing a bundle (which layers to keep float)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.app.recipe import RunConfig
from compressor.app.session import open_session
from compressor.core.errors import InputError
from compressor.core.progress import Progress
from compressor.core.registry import get_target


def analyze(config: RunConfig, quiet: bool = False) -> dict[str, Any]:
    ui = Progress(quiet)
    spec = get_target(config.target)
    if not spec.precision.quantized:
        raise InputError(f"analyze needs an INT8 target (e.g. --target ort-cpu-int8), not {spec.name}")
    if not config.data.eval and not config.data.calib and not config.data.synthetic:
        raise InputError("analyze needs data to measure on: pass --eval DATA (and --calib DATA for static INT8)")
    if spec.needs_calibration and not config.data.calib and not config.data.synthetic:
        raise InputError(f"target {spec.name} needs calibration data: pass --calib DATA (representative inputs, 100 or more recommended)")
    if not config.data.eval and not config.data.synthetic:  # sensitivity on the calibration data when there is no eval data
        config = config.model_copy(update={"data": config.data.model_copy(update={"eval": config.data.calib,
                                                                                      "eval_labels": config.data.calib_labels})})
    if "sensitivity_on" not in config.quantization.model_fields_set:  # analyze measures on the target's runtime unless told
        config = config.model_copy(update={"quantization": config.quantization.model_copy(update={"sensitivity_on": "runtime"})})
    with open_session(config, ui, calibrate=spec.needs_calibration) as session:
        result = session.analyze(spec.name)
    return {"target": spec.name, "model": Path(config.model.checkpoint).name, **result}

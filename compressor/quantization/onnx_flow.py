"""PTQ on an exported ONNX graph, shared by every backend that consumes ONNX (ONNX Runtime today;
OpenVINO and TensorRT read the same QDQ layout). The backend only supplies ``run`` — a way to execute
a ModelProto and fetch intermediate tensors."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from compressor.data.sources import DataSource
from compressor.core.errors import InputError
from compressor.core.progress import Progress
from compressor.evaluation.validate import iter_feeds
from compressor.quantization.plan import QuantPlan
from compressor.quantization.ptq import QuantSettings, check_calibration, dynamic_plan, static_plan
from compressor.quantization.qdq import realize_dynamic, realize_static
from compressor.quantization.sensitivity import RunModel, analyse_sensitivity


def realizer(mode: str) -> Callable:
    return realize_static if mode == "static" else realize_dynamic


def calibration_feeds(calib: DataSource, inputs, samples: int) -> list[dict[str, np.ndarray]]:
    first = inputs[0].dims[0]
    batch = 16 if first.dynamic and first.max >= 16 else (first.value if not first.dynamic else first.max)
    data = calib.take(samples)
    return [feeds for feeds, _ in iter_feeds(data, inputs, batch)]


def quantize(handle, fp32_model, mode: str, settings: QuantSettings, calib: DataSource | None, run: RunModel,
             progress=None, warn: Callable[[str], None] = lambda m: None,
             analysis: DataSource | None = None, task: str = "auto") -> tuple[Any, QuantPlan, dict | None]:
    """Plan, realise and (optionally) analyse: returns (quantized ModelProto, plan, sensitivity or None).

    Sensitivity runs on ``analysis`` data (the eval data in a compress run) or else the calibration data.
    """
    progress = progress or Progress(quiet=True)
    if mode == "static":
        if calib is None:
            raise InputError("static INT8 needs calibration data: pass --calib DATA (representative inputs, 100+ samples), "
                             "or --synthetic (then marked synthetic)")
        n = min(len(calib), settings.calib_samples)
        check_calibration(n)
        feeds = calibration_feeds(calib, handle.inputs, n)

        def tensors(feed, names):
            return run(fp32_model, [feed], names)[0]

        label = f"calibrated {n} samples ({settings.calibration})"
        steps = len(feeds) * (1 if settings.calibration == "minmax" else 2)
        with progress.bar(label, total=steps) as advance:
            plan = static_plan(fp32_model, handle.module, settings, feeds, tensors, progress=advance, warn=warn, samples=n)
        if calib.synthetic:
            plan.warnings.append("calibrated on synthetic (random) data: scales may not fit real inputs")
    else:
        plan = dynamic_plan(fp32_model, handle.module, settings, warn=warn)
    source = analysis if analysis is not None else calib
    sens_feeds = None
    if source is not None and settings.sensitivity:
        sens_feeds = calibration_feeds(source, handle.inputs, min(len(source), settings.sensitivity_samples))
    qmodel = realizer(mode)(fp32_model, plan)
    sensitivity = None
    if settings.sensitivity and sens_feeds:
        total = len(plan.int8_layers) + 1
        with progress.bar(f"per-layer sensitivity ({len(plan.int8_layers)} layers)", total=total) as advance:
            sensitivity = analyse_sensitivity(fp32_model, plan, sens_feeds, realizer(mode), run, progress=advance, task=task)
    return qmodel, plan, sensitivity

"""Post-training quantization: fill a :class:`QuantPlan` for an exported float graph.

Static: structure (:mod:`.structure`) → calibrate the quantized activation tensors on calibration
data (:mod:`.calibrate`) → scales and zero points. Dynamic: structure only (activations are
quantized at run time). The model is executed through a ``run`` function the backend provides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from compressor.core.errors import DataError, InputError
from compressor.quantization.calibrate import RunFn, choose_range, observe, quant_params
from compressor.quantization.plan import CALIBRATION_METHODS, DEFAULT_CALIBRATION, DEFAULT_PERCENTILE, LayerQuant, QuantPlan, WeightQuant
from compressor.quantization.qdq import quantize_weight, weight_axis
from compressor.quantization.structure import UNSUPPORTED_WEIGHTED, analyse

MIN_CALIB_SAMPLES = 10
DEFAULT_CALIB_SAMPLES = 128


@dataclass
class QuantSettings:
    calibration: str = DEFAULT_CALIBRATION
    percentile: float = DEFAULT_PERCENTILE
    calib_samples: int = DEFAULT_CALIB_SAMPLES
    exclude: list[str] = field(default_factory=list)
    sensitivity: bool = True
    sensitivity_samples: int = 16
    quantizer: str = "sdk"  # sdk (this package's plan) | nncf (OpenVINO targets only)

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATION_METHODS:
            raise InputError(f"unknown calibration method '{self.calibration}': use one of {', '.join(CALIBRATION_METHODS)}")
        if not 50.0 < self.percentile <= 100.0:
            raise InputError(f"--percentile must be in (50, 100], got {self.percentile}")


def _layers(model, structure, with_weights: bool) -> list[LayerQuant]:
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    out = []
    for l in structure.layers:
        wq = None
        if with_weights and l["precision"] in ("int8", "int8-weight-only"):
            node = nodes[l["node"]]
            axis = 0 if l["op_type"] == "Gather" else weight_axis(l["op_type"], node)
            _, scales = quantize_weight(numpy_helper.to_array(inits[l["weight"]]), axis)
            wq = WeightQuant("per_channel", axis, "int8", True, [float(s) for s in scales])
        out.append(LayerQuant(l["name"], l["node"], l["op_type"], l["module_type"], l["precision"], l["reason"], wq,
                              l["inputs"], l["output"]))
    return out


def _check_structure(structure, warn: Callable[[str], None]) -> list[str]:
    warnings = []
    for p in structure.exclusions_unmatched:
        msg = f"exclusion '{p}' matches no quantizable layer (see `compressor analyze` for layer names)"
        warnings.append(msg)
        warn(msg)
    unsupported = [l for l in structure.layers if l["op_type"] in UNSUPPORTED_WEIGHTED]
    for l in unsupported:
        msg = f"layer {l['name']} ({l['op_type']}) stays float: {l['reason']}"
        warnings.append(msg)
        warn(msg)
    if not any(l["op_type"] in ("Conv", "Gemm", "MatMul") for l in structure.layers):
        raise InputError("the model has no quantizable layers (Conv, Gemm or MatMul with constant weights): use an FP32 target")
    if not any(l["precision"] == "int8" and l["op_type"] != "Gather" for l in structure.layers):
        raise InputError("every quantizable layer is excluded or unsupported, so nothing would be INT8: loosen --exclude or use an FP32 target")
    return warnings


def static_plan(model, module, settings: QuantSettings, calib_feeds: list[dict[str, np.ndarray]], run: RunFn,
                progress=None, warn: Callable[[str], None] = lambda m: None, samples: int | None = None) -> QuantPlan:
    n = samples if samples is not None else sum(int(next(iter(f.values())).shape[0]) for f in calib_feeds)
    structure = analyse(model, module, settings.exclude, mode="static")
    warnings = _check_structure(structure, warn)
    unfolded = sum(1 for n in model.graph.node if n.op_type == "BatchNormalization")
    if unfolded:
        msg = (f"{unfolded} BatchNormalization node(s) were not folded into a convolution by the export: "
               "they run in float between INT8 layers, which costs speed")
        warnings.append(msg)
        warn(msg)
    obs = observe(run, calib_feeds, structure.quantized, progress=progress,
                  need_histograms=settings.calibration != "minmax")
    missing = [t for t in structure.quantized if t not in obs]
    if missing:
        raise DataError(f"calibration did not observe {len(missing)} tensor(s), e.g. {missing[0]}")
    activations = {}
    for t in structure.quantized:
        if t in structure.tied:
            continue
        lo, hi = choose_range(obs[t], settings.calibration, settings.percentile)
        activations[t] = quant_params(t, lo, hi, "uint8", settings.calibration)
    for t, src in structure.tied.items():
        tq = activations[src]
        activations[t] = type(tq)(t, tq.dtype, tq.scale, tq.zero_point, tq.range, f"same as {src}")
    return QuantPlan(
        mode="static",
        activation_dtype="uint8",
        weight_dtype="int8",
        calibration={"method": settings.calibration, "samples": n,
                     **({"percentile": settings.percentile} if settings.calibration == "percentile" else {})},
        layers=_layers(model, structure, True),
        activations={t: activations[t] for t in structure.quantized},
        other_quantized_ops=structure.joining_ops,
        exclusions=list(settings.exclude),
        warnings=warnings,
        folded=structure.folded,
    )


def dynamic_plan(model, module, settings: QuantSettings, warn: Callable[[str], None] = lambda m: None) -> QuantPlan:
    structure = analyse(model, module, settings.exclude, mode="dynamic")
    for l in structure.layers:  # dynamic quantization needs a weight we can lay out as [K, N]
        if l["op_type"] == "Conv" and l["precision"] == "int8":
            l["precision"], l["reason"] = "float", "Conv: dynamic quantization covers MatMul/Gemm only (use the static target)"
    warnings = _check_structure(structure, warn)
    return QuantPlan(
        mode="dynamic", activation_dtype="uint8 (per tensor, computed at run time)", weight_dtype="int8",
        calibration={"method": "none (dynamic)", "samples": 0}, layers=_layers(model, structure, True),
        exclusions=list(settings.exclude), warnings=warnings,
    )


def check_calibration(n: int) -> None:
    if n < MIN_CALIB_SAMPLES:
        raise DataError(f"{n} calibration sample(s) given; static INT8 needs at least {MIN_CALIB_SAMPLES} "
                        f"(100 or more representative inputs recommended): pass more with --calib")

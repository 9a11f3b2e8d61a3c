"""Post-training quantization: fill a :class:`QuantPlan` for an exported float graph.

Static: structure (:mod:`.structure`) → calibrate the quantized activation tensors on calibration
data (:mod:`.calibrate`) → scales and zero points. Dynamic: structure only (activations are
quantized at run time). The model is executed through a ``run`` function the backend provides.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from compressor.core.errors import DataError, InputError
from compressor.core.layers import ONNX_WEIGHT_OPS
from compressor.core.targets import PlanMode
from compressor.quantization.calibrate import RunFn, choose_range, observe, quant_params
from compressor.quantization.plan import LayerQuant, QuantPlan, WeightQuant
from compressor.quantization.qdq import quantize_weight, weight_axis
from compressor.quantization.settings import MIN_CALIB_SAMPLES, QuantizationSettings
from compressor.quantization.structure import UNSUPPORTED_WEIGHTED, analyse


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
    unsupported = [l for l in structure.layers if l["op_type"] in UNSUPPORTED_WEIGHTED and l["precision"] == "float"
                   and not l["reason"].startswith("excluded")]
    for l in unsupported:
        msg = f"layer {l['name']} ({l['op_type']}) stays float: {l['reason']}"
        warnings.append(msg)
        warn(msg)
    if not any(l["op_type"] in ONNX_WEIGHT_OPS or l["precision"] != "float" for l in structure.layers):
        raise InputError("the model has no quantizable layers (Conv, Gemm, MatMul with constant weights, or LSTM for dynamic INT8): "
                         "use an FP32 target")
    if not any(l["precision"] == "int8" and l["op_type"] != "Gather" for l in structure.layers):
        raise InputError("every quantizable layer is excluded or unsupported, so nothing would be INT8: loosen --exclude or use an FP32 target")
    return warnings


def static_structure(model, module, settings: QuantizationSettings, warn: Callable[[str], None] = lambda m: None):
    """What goes INT8 and which activation tensors get Q/DQ (before any calibration)."""
    structure = analyse(model, module, settings.exclude, mode=PlanMode.STATIC)
    return structure, _check_structure(structure, warn)


def static_plan(model, module, settings: QuantizationSettings, calib_feeds: list[dict[str, np.ndarray]], run: RunFn,
                progress=None, warn: Callable[[str], None] = lambda m: None, samples: int | None = None,
                extra_tensors: list[str] = (), structure=None) -> QuantPlan:
    """Structure + one calibration pass over the plan's tensors and ``extra_tensors`` (other realisers' needs)."""
    n = samples if samples is not None else sum(int(next(iter(f.values())).shape[0]) for f in calib_feeds)
    if structure is None:
        structure, warnings = static_structure(model, module, settings, warn)
    else:
        structure, warnings = structure
    unfolded = sum(1 for n in model.graph.node if n.op_type == "BatchNormalization")
    if unfolded:
        msg = (f"{unfolded} BatchNormalization node(s) were not folded into a convolution by the export: "
               "they run in float between INT8 layers, which costs speed")
        warnings.append(msg)
        warn(msg)
    extra = [t for t in dict.fromkeys(extra_tensors) if t not in set(structure.quantized)]
    obs = observe(run, calib_feeds, list(structure.quantized) + extra, progress=progress,
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
        mode=PlanMode.STATIC,
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
        extra_activations={t: quant_params(t, *choose_range(obs[t], settings.calibration, settings.percentile), "uint8",
                                           settings.calibration) for t in extra if t in obs},
    )


def dynamic_plan(model, module, settings: QuantizationSettings, warn: Callable[[str], None] = lambda m: None) -> QuantPlan:
    structure = analyse(model, module, settings.exclude, mode=PlanMode.DYNAMIC)
    for l in structure.layers:  # dynamic quantization needs a weight we can lay out as [K, N]
        if l["op_type"] == "Conv" and l["precision"] == "int8":
            l["precision"], l["reason"] = "float", "Conv: dynamic quantization covers MatMul/Gemm only (use the static target)"
    warnings = _check_structure(structure, warn)
    return QuantPlan(
        mode=PlanMode.DYNAMIC, activation_dtype="uint8 (per tensor, computed at run time)", weight_dtype="int8",
        calibration={"method": "none (dynamic)", "samples": 0}, layers=_layers(model, structure, True),
        exclusions=list(settings.exclude), warnings=warnings,
    )


#: a raw model input that per-tensor dynamic INT8 would round mostly to zero keeps its first layer float
UNDERFLOW_LIMIT = 0.5
PASS_THROUGH = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


def underflow(x: np.ndarray) -> float:
    """The fraction of the non-zero values of each sample that dynamic per-tensor uint8 quantization (range of that sample,
    as DynamicQuantizeLinear computes it at batch 1) rounds to zero, averaged over samples."""
    fracs = []
    for s in np.asarray(x, dtype=np.float32).reshape(len(x), -1):
        scale = (max(float(s.max()), 0.0) - min(float(s.min()), 0.0)) / 255.0
        nz = s[s != 0]
        fracs.append(float((np.abs(nz) < scale / 2).mean()) if nz.size and scale > 0 else 0.0)
    return float(np.mean(fracs)) if fracs else 0.0


def keep_heavy_tailed_inputs_float(model, plan: QuantPlan, feeds: list[dict[str, np.ndarray]]) -> None:
    """Layers of a dynamic plan fed directly by a model input that dynamic INT8 would mostly round to zero (e.g. a mel power
    spectrogram, whose few loud bins set the scale) stay float, with the measured fraction as the reason."""
    graph_inputs = {i.name for i in model.graph.input}
    producers = {o: n for n in model.graph.node for o in n.output}

    def source(t: str) -> str:  # the model input a tensor is a rearrangement of (same values), else the tensor
        while t not in graph_inputs and t in producers and producers[t].op_type in PASS_THROUGH:
            t = producers[t].input[0]
        return t

    for l in plan.layers:
        src = source(l.inputs[0]) if l.inputs else None
        if l.precision != "int8" or l.op_type == "Gather" or src not in graph_inputs:
            continue
        frac = underflow(np.concatenate([f[src] for f in feeds if src in f]))
        if frac > UNDERFLOW_LIMIT:
            l.precision, l.weight = "float", None
            l.reason = (f"its input is the model input '{src}', and per-tensor dynamic INT8 rounds {frac:.0%} of its non-zero "
                        f"values to zero (heavy-tailed, measured on {sum(len(next(iter(f.values()))) for f in feeds)} samples)")


def check_calibration(n: int) -> None:
    if n < MIN_CALIB_SAMPLES:
        raise DataError(f"{n} calibration sample(s) given; static INT8 needs at least {MIN_CALIB_SAMPLES} "
                        f"(100 or more representative inputs recommended): pass more with --calib")

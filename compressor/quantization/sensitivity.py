"""Per-layer sensitivity: which layers cost accuracy when quantized, so users know what to keep float.

Two views, both against the float graph's outputs on the same samples:

- **alone**: each INT8 layer quantized by itself (everything else float), realised and run by whatever
  ``measure`` runs: the target's own runtime, so the ranking is of what the device will do; the loss
  in output cosine similarity and top-1 agreement is that layer's own cost;
- **all quantized**: the full plan on the same runtime, and, where the plan carries ranges, each
  layer's output signal-to-quantization-noise ratio (SQNR, dB) in the QDQ simulation of the full plan:
  where the accumulated error is worst.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from compressor.core.fidelity import compare
from compressor.core.layers import ONNX_WEIGHT_OPS
from compressor.quantization.equalize import spread
from compressor.quantization.plan import QuantPlan


def single_layer_plan(plan: QuantPlan, name: str) -> QuantPlan:
    """``plan`` with only layer ``name`` INT8 (and only its own activations quantized)."""
    p = copy.copy(plan)
    p.layers = [copy.copy(l) for l in plan.layers]
    keep: set[str] = set()
    for l in p.layers:
        if l.name == name:
            keep.update(l.inputs)
            if l.output:
                keep.add(l.output)
        elif l.precision == "int8":
            l.precision, l.reason = "float", "sensitivity: measured alone"
    p.activations = {t: q for t, q in plan.activations.items() if t in keep}
    p.folded = {n: t for n, t in plan.folded.items() if t in keep}
    p.other_quantized_ops = []
    return p


def range_spread(x: np.ndarray, axis: int) -> float:
    """The spread (see equalize.spread) of the per-channel |x| maxima of ``x`` along ``axis``."""
    return spread(np.abs(np.moveaxis(np.asarray(x, dtype=np.float32), axis, 0)).reshape(x.shape[axis], -1).max(axis=1))


def _fidelity(ref: np.ndarray, got: np.ndarray, task: str) -> dict:
    f = compare([ref], [got], None, synthetic=False, task=task)
    return {"cosine_mean": f.cosine_mean, "cosine_min": f.cosine_min, "top1_agreement": f.top1_agreement}


def _sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    noise = float(np.mean((ref.astype(np.float64) - got.astype(np.float64)) ** 2))
    signal = float(np.mean(ref.astype(np.float64) ** 2))
    if noise == 0:
        return float("inf")
    return 10.0 * np.log10(max(signal, 1e-30) / noise)


def analyse(plan: QuantPlan, feeds: Sequence[dict], run_float: Callable[[list[str]], list[dict]],
            measure: Callable[[Sequence[QuantPlan]], Iterator[np.ndarray]], simulate: Callable[[QuantPlan, list[str]], list[dict]] | None = None,
            progress: Callable[[int], None] | None = None, task: str = "auto", runtime: str = "") -> dict:
    """Sensitivity of every INT8 layer of ``plan`` on ``feeds`` (a few batches of real data).

    ``run_float(names)`` runs the float graph on the feeds (with those intermediate tensors); ``measure(plans)``
    realises each plan and yields its first output on the feeds, concatenated, in order; ``simulate(plan, names)`` runs
    the plan's QDQ simulation with intermediate tensors (for SQNR), or is None."""
    layers = plan.int8_layers
    outputs_of = {l.name: l.output for l in layers if l.output}
    inputs_of = {l.name: l.inputs[0] for l in layers if l.inputs and l.op_type in ONNX_WEIGHT_OPS}
    ref_runs = run_float(list(dict.fromkeys((list(outputs_of.values()) if simulate else []) + list(inputs_of.values()))))
    ref_out = np.concatenate([r["__outputs__"][0] for r in ref_runs])
    alone = []
    for l, out in zip(layers, measure([single_layer_plan(plan, l.name) for l in layers])):
        f = _fidelity(ref_out, out, task)
        input_spread = range_spread(np.concatenate([r[inputs_of[l.name]] for r in ref_runs]), 1 if l.op_type == "Conv" else -1) \
            if l.name in inputs_of else None
        alone.append({"layer": l.name, "op_type": l.op_type, "loss": 1.0 - f["cosine_mean"], **f, "input_range_spread": input_spread})
        if progress:
            progress(1)
    alone.sort(key=lambda d: d["loss"], reverse=True)
    full = _fidelity(ref_out, next(iter(measure([plan]))), task)
    sqnr = []
    if simulate is not None:
        full_runs = simulate(plan, list(outputs_of.values()))
        for name, t in outputs_of.items():
            ref = np.concatenate([r[t] for r in ref_runs])
            got = np.concatenate([r[t] for r in full_runs])
            sqnr.append({"layer": name, "sqnr_db": _sqnr_db(ref, got)})
        sqnr.sort(key=lambda d: d["sqnr_db"])
    if progress:
        progress(1)
    return {
        "samples": int(ref_out.shape[0]),
        "runtime": runtime,
        "all_quantized": full,
        "layers_alone": alone,
        "all_quantized_worst_sqnr": sqnr,
        "method": f"alone: that layer INT8, the rest float, run on {runtime}, output cosine vs the float graph; "
                  "SQNR: per-layer output in the QDQ simulation of the full plan" + ("" if simulate else " (not available for this quantizer)")
                  + "; input range spread: max / median of the per-channel |x| maxima of the layer's float input (outlier channels)",
    }

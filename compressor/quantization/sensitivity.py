"""Per-layer sensitivity: which layers cost accuracy when quantized, so users know what to keep float.

Two views, both against the float graph's outputs on the same samples:

- **alone**: each INT8 layer quantized by itself (everything else float); the loss in output cosine
  similarity and top-1 agreement is that layer's own cost;
- **all quantized**: in the full INT8 model, the signal-to-quantization-noise ratio (SQNR, dB) of each
  layer's output against its float value: where the accumulated error is worst.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import numpy as np

from compressor.evaluation.validate import compare
from compressor.quantization.plan import QuantPlan

# run(model_proto, feeds_list, extra_tensor_names) -> list (per feed) of {name: array}; the graph's outputs under "__outputs__"
RunModel = Callable[[object, Sequence[dict], Sequence[str]], list[dict]]


def single_layer_plan(plan: QuantPlan, name: str) -> QuantPlan:
    p = copy.copy(plan)
    p.layers = [copy.copy(l) for l in plan.layers]
    keep: set[str] = set()
    for l in p.layers:
        if l.name == name:
            keep.update(l.inputs)
            if l.output:
                keep.add(l.output)
        elif l.precision == "int8":
            l.precision = "float"
    p.activations = {t: q for t, q in plan.activations.items() if t in keep}
    p.folded = {n: t for n, t in plan.folded.items() if t in keep}
    p.other_quantized_ops = []
    return p


def _fidelity(ref: list[np.ndarray], got: list[np.ndarray], task: str) -> dict:
    f = compare([np.concatenate(ref)], [np.concatenate(got)], None, synthetic=False, task=task)
    return {"cosine_mean": f.cosine_mean, "cosine_min": f.cosine_min, "top1_agreement": f.top1_agreement}


def _sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    noise = float(np.mean((ref.astype(np.float64) - got.astype(np.float64)) ** 2))
    signal = float(np.mean(ref.astype(np.float64) ** 2))
    if noise == 0:
        return float("inf")
    return 10.0 * np.log10(max(signal, 1e-30) / noise)


def analyse_sensitivity(model, plan: QuantPlan, feeds: Sequence[dict], realize: Callable, run: RunModel,
                        progress: Callable[[int], None] | None = None, task: str = "auto") -> dict:
    """Sensitivity of every INT8 layer of ``plan`` on ``feeds`` (a few batches of real data)."""
    layers = plan.int8_layers
    outputs_of = {l.name: l.output for l in layers if l.output}
    ref_runs = run(model, feeds, list(outputs_of.values()))
    ref_out = [r["__outputs__"][0] for r in ref_runs]
    alone = []
    for l in layers:
        got = [r["__outputs__"][0] for r in run(realize(model, single_layer_plan(plan, l.name)), feeds, [])]
        f = _fidelity(ref_out, got, task)
        alone.append({"layer": l.name, "op_type": l.op_type, "loss": 1.0 - f["cosine_mean"], **f})
        if progress:
            progress(1)
    alone.sort(key=lambda d: d["loss"], reverse=True)
    full_runs = run(realize(model, plan), feeds, list(outputs_of.values()))
    full = _fidelity(ref_out, [r["__outputs__"][0] for r in full_runs], task)
    sqnr = []
    for name, t in outputs_of.items():
        ref = np.concatenate([r[t] for r in ref_runs])
        got = np.concatenate([r[t] for r in full_runs])
        sqnr.append({"layer": name, "sqnr_db": _sqnr_db(ref, got)})
    sqnr.sort(key=lambda d: d["sqnr_db"])
    if progress:
        progress(1)
    return {
        "samples": int(sum(next(iter(f.values())).shape[0] for f in feeds)),
        "all_quantized": full,
        "layers_alone": alone,
        "all_quantized_worst_sqnr": sqnr,
        "method": "alone: that layer INT8, the rest float, output cosine vs float; all: per-layer output SQNR in the full INT8 model",
    }

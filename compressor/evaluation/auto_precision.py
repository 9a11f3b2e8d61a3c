"""Automatic mixed precision under the accuracy gate (``--auto-precision``).

1. The FP32 artifact of the same runtime is built and measured: the speed a mixed plan has to beat.
2. The all-INT8 PTQ plan is built, validated and benchmarked. While the gate fails, the layers most sensitive
   **on the target's own runtime** (each layer alone realised and run there, see quantization/sensitivity.py) go
   back to float, a few more each step (1, 2, 3, 4, 6, 9, …), each plan realised, validated and benchmarked.
3. With ``--qat``, the trained plan is tried with as few float layers as the PTQ walk needed and fewer: QAT wins layers
   back to INT8 where it can.
4. The fastest measured plan that passes the gate is kept; every step (layers in float, fidelity, latency) goes into
   the manifest and REPORT.md, with a plot of fidelity against latency. No passing plan: the caller refuses (or, with
   ``--force``, writes the best reached marked as failing).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from compressor.core.errors import InputError
from compressor.core.registry import catalogue
from compressor.core.targets import Precision, TargetSpec
from compressor.evaluation.session import Candidate, CandidateResult, EvaluationSession
from compressor.quantization.qat import QatSettings


def float_sibling(spec: TargetSpec) -> TargetSpec | None:
    """The FP32 target of the same backend and device (what a mixed plan must be faster than)."""
    return next((t for t in catalogue().values() if t.backend == spec.backend and t.device == spec.device
                 and t.precision == Precision.FP32), None)


def _sizes(n: int) -> list[int]:
    """How many of the most sensitive layers are float at each step: 1, 2, 3, 4, 6, 9, 13, … up to ``n``."""
    out, k = [], 1
    while k < n:
        out.append(k)
        k = k + 1 if k < 4 else int(k * 1.5)
    return out + [n]


class AutoPrecision:
    def __init__(self, session: EvaluationSession, candidate: Candidate):
        self.session, self.candidate = session, candidate
        self.steps: list[dict[str, Any]] = []
        self.results: list[tuple[CandidateResult, list[str]]] = []

    def _check(self, spec: TargetSpec) -> None:
        if not self.session.gate.active:
            raise InputError("--auto-precision needs an accuracy gate to choose against: add --max-accuracy-drop X, --min-agreement X "
                             "or --min-cosine X")
        if spec.precision != Precision.INT8:
            raise InputError(f"--auto-precision chooses the layers of a static INT8 plan, and {spec.name} is {spec.precision}: pick a "
                             "static INT8 target (ort-cpu-int8, openvino-cpu-int8, executorch-xnnpack-int8)")
        if not self.session.quantization.capabilities.supports_auto_precision:
            raise InputError(f"--auto-precision edits the SDK's plan: drop --quantizer {self.session.quantization.quantizer}")
        if not self.session.benchmark.enabled:
            raise InputError("--auto-precision keeps the fastest plan that passes, so it measures each one: drop --no-benchmark")

    def _p50(self, r: CandidateResult) -> float | None:
        res = r.benchmarks.get(self.session.benchmark.batch_size)
        return res.p50_ms if res is not None and not res.error else None

    def _step(self, label: str, candidate: Candidate, phase: str) -> tuple[CandidateResult, list[str]]:
        s = self.session
        with s.progress.stage(f"auto precision, step {len(self.steps) + 1} measured: {label}"):
            r = s.evaluate(candidate, raise_errors=True)
        failures = s.gate.failures(r.fidelity) if r.fidelity is not None else [r.reason]
        f = r.fidelity
        self.steps.append({"step": len(self.steps) + 1, "phase": phase, "label": label, "float_layers": list(candidate.float_layers),
                           "int8_layers": len(r.plan.int8_layers) if r.plan is not None else 0,
                           "accuracy": f.accuracy if f else None, "top1_agreement": f.top1_agreement if f else None,
                           "cosine_mean": f.cosine_mean if f else None, "loss": s.objective.loss(f), "p50_ms": self._p50(r),
                           "passed": not failures,
                           "failures": failures})
        self.results.append((r, failures))
        return r, failures

    def run(self) -> tuple[CandidateResult, list[str], dict[str, Any]]:
        """(the chosen result, its gate failures (empty when one passed), the manifest section)."""
        s, c = self.session, self.candidate
        spec = s.builder.resolve(c)[0]
        self._check(spec)
        settings = (c.quantization or s.quantization).model_copy(update={"sensitivity": False})
        ptq = replace(c, quantization=settings, qat=QatSettings())
        fp32 = float_sibling(spec)
        fp32_p50, hopeless = None, []
        if fp32 is not None:
            with s.progress.stage(f"auto precision: the speed to beat, {fp32.name}, measured"):
                base = s.evaluate(Candidate(fp32.name, c.pruning), raise_errors=True)
            fp32_p50 = self._p50(base)
            # float layers cannot be more faithful than the float model: when it fails (a pruned model), no plan can pass
            hopeless = s.gate.failures(base.fidelity) if base.fidelity is not None else []
        first, failures = self._step("all layers INT8 (PTQ)", ptq, "ptq")
        ranking: list[dict] = []
        needed: int | None = 0 if not failures else None
        if failures and not hopeless:
            ranking = self._ranking(first)
            order = [d["layer"] for d in ranking]
            for k in [k for k in _sizes(len(order)) if k < len(order)]:  # every layer float is the FP32 model, not a plan
                if len(self.steps) >= settings.auto_precision_steps:
                    break
                _, failures = self._step(f"{k} most sensitive layer(s) float", replace(ptq, float_layers=tuple(order[:k])), "ptq")
                if not failures:
                    needed = k
                    break
        qat = c.qat or s.qat
        if qat.enabled and (needed is None or needed > 0):  # QAT trains: it can pass where the float model of the walk did not
            order = [d["layer"] for d in ranking]
            top = needed if needed is not None else len(order)
            for k in [k for k in [0, *_sizes(top)] if k <= top and (k == 0 or k < len(order))]:
                if len(self.steps) >= settings.auto_precision_steps:
                    break
                label = "QAT, all layers INT8" if k == 0 else f"QAT, {k} most sensitive layer(s) float"
                _, failures = self._step(label, replace(c, quantization=settings, qat=qat, float_layers=tuple(order[:k])), "qat")
                if not failures:
                    break
        chosen = self._choose()
        result, failures = self.results[chosen]
        self.steps[chosen]["chosen"] = True
        objective = s.objective
        section = {"gate": s.gate.to_dict(), "metric": objective.kind.shown, "objective": objective.describe(),
                   "steps": self.steps, "chosen_step": chosen + 1,
                   "fp32_target": fp32.name if fp32 else None, "fp32_p50_ms": fp32_p50,
                   "speedup_vs_fp32": (fp32_p50 / self.steps[chosen]["p50_ms"]) if fp32_p50 and self.steps[chosen]["p50_ms"] else None,
                   "sensitivity_ranking": ranking,
                   "stopped": f"{fp32.name} itself fails the gate ({'; '.join(hopeless)}): no mixed plan can pass" if hopeless and failures
                   else None,
                   "float_layers": {n: next((f"loss {d['loss']:.4g} alone on {spec.name} (rank {i + 1})"
                                             for i, d in enumerate(ranking) if d["layer"] == n), "") for n in self.steps[chosen]["float_layers"]},
                   "method": "all-INT8 PTQ first; while the gate fails, the layers most sensitive alone on the target's runtime return to "
                             "float (1, 2, 3, 4, 6, 9, … of them), each plan realised, validated on the eval data and benchmarked"
                             + ("; then QAT with as few float layers" if qat.enabled else "")
                             + "; the fastest measured plan that passes is kept"}
        if result.quantization is not None:
            result.quantization["auto_precision"] = section
        return result, failures, section

    def _ranking(self, first: CandidateResult) -> list[dict]:
        s, c = self.session, self.candidate
        spec = s.builder.resolve(c)[0]
        key = s.variants.key(c.pruning, spec)
        variant = s.variants.get(c.pruning, spec)
        settings = (c.quantization or s.quantization).model_copy(update={"sensitivity_on": "runtime"})
        sens = s.builder.sensitivity(variant, key, spec, first.plan, settings, QatSettings())
        return [{k: d[k] for k in ("layer", "op_type", "loss", "cosine_mean", "top1_agreement")} for d in sens["layers_alone"]]

    def _choose(self) -> int:
        passing = [i for i, (_, f) in enumerate(self.results) if not f]
        if passing:
            return min(passing, key=lambda i: self.steps[i]["p50_ms"] if self.steps[i]["p50_ms"] is not None else float("inf"))
        return min(range(len(self.steps)), key=lambda i: self.steps[i]["loss"] if self.steps[i]["loss"] is not None else float("inf"))

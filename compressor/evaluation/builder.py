"""Building a candidate: whether its target can be built here, its IR (float, or the plan realised), the backend's
compile, and for INT8 the quantization section: the plan reconciled with the kernels the runtime really runs, and the
per-layer sensitivity (in the QDQ simulation, or on the target's own runtime)."""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.backend import IR, Artifact, CompileContext, KernelReport
from compressor.core.build import BuildSettings, time_limit
from compressor.core.errors import InputError, TargetError
from compressor.core.model import ModelHandle
from compressor.core.registry import get_backend, get_target, package_missing, target_status
from compressor.core.targets import TargetSpec
from compressor.data.context import RunContext
from compressor.evaluation.candidates import Candidate, CandidateResult
from compressor.evaluation.variants import Variant, Variants
from compressor.quantization.plan import QuantPlan
from compressor.quantization.qat import QatSettings
from compressor.quantization.quantizers import QuantizerName, of_plan
from compressor.quantization.settings import QuantizationSettings

PLAN_FILE = "quantization_plan.json"


def quantization_status(spec: TargetSpec, q: QuantizationSettings) -> tuple[bool, str]:
    """Whether ``spec`` can be built here with quantization settings ``q`` (its backend; for INT8, the quantizer and the
    calibration runtime); the data a target needs is the session's to check."""
    ok, why = target_status(spec)
    if not ok:
        return ok, why
    if spec.precision.quantized:
        if q.quantizer != QuantizerName.SDK and q.quantizer not in spec.quantizers:
            return False, f"--quantizer {q.quantizer} is not offered for {spec.name} (it takes: {', '.join(spec.quantizers)})"
        missing = package_missing("onnxruntime")
        if missing:
            return False, f"quantization plans are calibrated by running the float ONNX graph with ONNX Runtime: {missing}"
    return True, ""


class Builder:
    def __init__(self, model: ModelHandle, ctx: RunContext, build: BuildSettings, variants: Variants, tuning, workdir):
        """``tuning(model)``: INC's autotune objective from the gate (None when no quantizer tunes or there is no gate)."""
        self.model, self.ctx, self.build_settings, self.variants = model, ctx, build, variants
        self._tuning, self._workdir = tuning, workdir
        self._simulated: dict[tuple, dict] = {}

    def status(self, spec: TargetSpec, quantization: QuantizationSettings | None = None) -> tuple[bool, str]:
        """Whether ``spec`` can be built and run here in this session (its backend, and the data it needs)."""
        if spec.needs_calibration and self.ctx.calib is None:
            return False, "static INT8 needs calibration data: pass --calib DATA"
        return quantization_status(spec, quantization or self.variants.quantization)

    def resolve(self, candidate: Candidate) -> tuple[TargetSpec | None, CandidateResult | None]:
        """The candidate's target for this run (its shape profile and threads), or the result saying why it cannot be built."""
        try:
            spec = get_target(candidate.target).with_run(self.model.inputs, self.ctx.threads)
        except TargetError as e:
            return None, CandidateResult(candidate, None, "unusable", str(e))
        ok, why = self.status(spec, candidate.quantization)
        if not ok:
            return spec, CandidateResult(candidate, spec, "unusable", why)
        return spec, None

    def build(self, candidate: Candidate) -> CandidateResult:
        """Build one candidate: prune, make its IR, compile it; with its quantization section (kernels read back)."""
        spec, refused = self.resolve(candidate)
        if refused is not None:
            return refused
        backend = get_backend(spec.backend)
        backend.check_model(self.model, spec)
        t0, seen = time.perf_counter(), len(self.ctx.warnings)
        v = self.variants
        key = v.key(candidate.pruning, spec)
        variant = v.get(candidate.pruning, spec)
        ctx = CompileContext(threads=self.ctx.threads, progress=self.ctx.progress, warnings=[], build=self.build_settings)
        qat = candidate.qat or v.qat
        settings = candidate.quantization or v.quantization
        with time_limit(self.build_settings.timeout, f"the {spec.name} build"), self.ctx.progress.stage(f"built {spec.name} artifact"):
            tuning = self._tuning(variant.model) if spec.precision.quantized and settings.capabilities.tunes else None
            ir = v.ir(variant, key, spec, candidate.quantization, qat, candidate.float_layers, tuning=tuning)
            stage = v.stage(variant, key, candidate.quantization, qat) if ir.plan is not None else None
            model = stage.model if stage is not None and stage.qat is not None else variant.model
            artifact = backend.compile(model, ir, spec, self._workdir(candidate.label), ctx)
        result = CandidateResult(candidate, spec, "ok", artifact=artifact, pruning=variant.pruning, plan=ir.plan,
                                 build={**ir.export, **artifact.details}, build_seconds=time.perf_counter() - t0,
                                 qat=stage.qat if stage is not None else None)
        if ir.plan is not None:
            result.quantization = self._quantization_section(backend, artifact, ir, spec, ctx, variant, key, settings, qat)
        result.warnings = list(dict.fromkeys(self.ctx.warnings[seen:] + ctx.warnings))
        return result

    def _quantization_section(self, backend, artifact: Artifact, ir: IR, spec: TargetSpec, ctx: CompileContext, variant, key,
                              settings: QuantizationSettings, qat: QatSettings) -> dict:
        plan = ir.plan
        kernels = KernelReport.of(backend.kernel_report(artifact, ir, spec, ctx), spec.backend)
        running_float = set(kernels.planned_int8_layers_running_float if kernels else [])
        if running_float:  # never claim INT8 for a layer the runtime runs in float
            plan = copy.deepcopy(plan)
            for layer in plan.layers:
                if layer.name in running_float:
                    layer.precision, layer.reason = "float", f"{spec.backend} did not fuse it into an INT8 kernel"
            ctx.warn(f"{len(running_float)} planned INT8 layer(s) run in float on {spec.backend}: {', '.join(sorted(running_float)[:5])}")
        summary = plan.summary()
        if kernels is not None and kernels.weight_layers_int8 < summary["layers_int8"]:
            summary["layers_int8"] = kernels.weight_layers_int8
        plan_path = artifact.path.parent / PLAN_FILE
        plan_path.write_text(json.dumps(plan.to_dict(), separators=(",", ":")) + "\n")
        artifact.files.append(plan_path)
        section = {**summary, "kernels": kernels.to_dict() if kernels else {}, "plan_file": PLAN_FILE,
                   "realiser": ir.export.get("quantization_realiser")}
        for name in ("pt2e", "autotune"):
            if ir.export.get(name):
                section[name] = ir.export[name]
        if settings.sensitivity and plan.int8_layers:
            section["sensitivity"] = self.sensitivity(variant, key, spec, ir.plan, settings, qat)
            if section["sensitivity"] is None:
                section.pop("sensitivity")
        return section

    def sensitivity(self, variant: Variant, key: str, spec: TargetSpec, plan: QuantPlan,
                    settings: QuantizationSettings | None = None, qat: QatSettings | None = None) -> dict[str, Any] | None:
        """Per-layer sensitivity of ``plan``: each layer alone realised and run on ``spec``'s own runtime (``--sensitivity-on
        runtime``), or in the plan's QDQ simulation (the fast default of compress and bench)."""
        settings = settings or self.variants.quantization
        stage = self.variants.stage(variant, key, settings, qat)
        if settings.sensitivity_on == "simulation":
            if not of_plan(plan.quantizer).supports_simulation:
                self.ctx.warn(f"no per-layer sensitivity in simulation for the {plan.quantizer} quantizer (its ranges are its own): "
                              "use --sensitivity-on runtime, or compressor analyze")
                return None
            cache = (key, id(plan))  # the same plan simulates the same for every target built from it
            if cache not in self._simulated:
                sim = stage.simulation
                self._simulated[cache] = sim.sensitivity(plan, sim.simulate, runtime="QDQ simulation (ONNX Runtime, basic optimisation)")
            return self._simulated[cache]
        backend = get_backend(spec.backend)
        feeds = stage.simulation.feeds()
        quiet = CompileContext(threads=self.ctx.threads)
        scratch = self._workdir("sensitivity")  # one folder for the whole analysis; each plan's artifact in its own temporary one

        def measure(plans: Sequence[QuantPlan]) -> Iterator[np.ndarray]:
            for p in plans:
                ir = stage.realise(spec, p, quiet=True)
                with tempfile.TemporaryDirectory(prefix="compressor-sens-", dir=scratch) as tmp:
                    artifact = backend.compile(stage.model, ir, spec, Path(tmp), quiet)
                    runner = backend.load(artifact.path, spec, threads=self.ctx.threads)
                    out = np.concatenate([np.asarray(runner.run(f)[0]) for f in feeds])
                    del runner
                yield out

        return stage.simulation.sensitivity(plan, measure, runtime=f"{spec.name} ({spec.backend})")

    def analyze(self, target: str) -> dict[str, Any]:
        """The quantization section (plan, kernels, per-layer sensitivity on the target's runtime) of ``target``, no validation."""
        spec, refused = self.resolve(Candidate(target))
        if refused is not None:
            raise TargetError(f"target '{target}' cannot run here: {refused.reason}")
        if not spec.precision.quantized:
            raise InputError(f"analyze needs an INT8 target (e.g. --target ort-cpu-int8), not {spec.name}")
        candidate = Candidate(target, quantization=self.variants.quantization.model_copy(update={"sensitivity": True}))
        self.variants.prepare([candidate])
        result = self.build(candidate)
        return {"target": spec.name, "quantization": result.quantization, "warnings": result.warnings}

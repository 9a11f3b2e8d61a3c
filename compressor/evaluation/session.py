"""One evaluation session: a model, its eval data and its FP32 reference outputs, computed once, and
``evaluate(candidate)`` for as many candidates as a command needs.

A candidate is a target, optionally with pruning. Evaluating one builds it (the pruning stage, the
IR the target consumes — exported once per model, quantized by the quantization stage, which plans
once per model — then the backend's compile), validates it against the reference outputs, and
benchmarks it in a fresh process per batch size. ``compress`` evaluates one candidate and writes its
bundle; ``bench --targets`` evaluates many; a search is a strategy that proposes candidates. There is no
second loop.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.backend import IR, Artifact, CompileContext, TorchModuleRunner
from compressor.core.build import BuildSettings, time_limit
from compressor.core.errors import CompressorError, InputError, TargetError, first_line, strict
from compressor.core.fidelity import Fidelity, compare
from compressor.core.model import ModelHandle
from compressor.core.objective import Objective
from compressor.core.progress import Progress
from compressor.core.registry import get_backend, get_target, package_missing, reference_target, target_status
from compressor.core.targets import IRFormat, Precision, TargetSpec
from compressor.data.sources import DataSource
from compressor.evaluation.benchmark import BenchmarkSettings, run_isolated
from compressor.evaluation.gate import GateSettings
from compressor.evaluation.validate import eval_batch_size, run_all
from compressor.pruning.settings import PruningSettings
from compressor.quantization.plan import QuantPlan
from compressor.quantization.qat import QatSettings
from compressor.quantization.quantizers import of_plan
from compressor.quantization.settings import QuantizationSettings
from compressor.quantization.stage import QuantizationStage
from compressor.training.settings import FinetuneSettings

PLAN_FILE = "quantization_plan.json"
#: why a layer --auto-precision returned to float is float (the manifest's auto-precision section has its measured cost)
FLOAT_REASON = "returned to float by --auto-precision: among the most sensitive on the target's runtime"
#: eval samples INC's autotune measures each trial on (the final artifact is validated on all of them)
TUNING_SAMPLES = 1000


@dataclass(frozen=True)
class Candidate:
    """What to build: a target, the pruning to apply first (None: the model as loaded), and the quantization and
    QAT settings (None: the session's)."""

    target: str
    pruning: PruningSettings | None = None
    quantization: QuantizationSettings | None = None
    qat: QatSettings | None = None
    float_layers: tuple[str, ...] = ()  # layers returned to float on top of the plan (the steps of --auto-precision)

    @property
    def label(self) -> str:
        return self.target if self.pruning is None else f"{self.target} (pruned)"


@dataclass
class CandidateResult:
    candidate: Candidate
    target: TargetSpec | None
    status: str  # ok | built (built here, cannot run here: not validated, not benchmarked) | unusable | failed
    reason: str = ""
    artifact: Artifact | None = None
    fidelity: Fidelity | None = None
    outputs: list[np.ndarray] | None = None  # the artifact's outputs on the eval data
    benchmarks: dict[int, dict[str, Any]] = field(default_factory=dict)  # batch size -> result (or {"error": …})
    quantization: dict[str, Any] | None = None  # plan summary, kernel report, sensitivity
    plan: QuantPlan | None = None
    pruning: dict[str, Any] | None = None
    build: dict[str, Any] = field(default_factory=dict)  # how the artifact was made (export, IR, backend details)
    qat: Any = None  # the QatResult the artifact was made from (its fake-quantized model is compared with the artifact)
    warnings: list[str] = field(default_factory=list)
    build_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def size_bytes(self) -> int | None:
        return self.artifact.size_bytes if self.artifact is not None else None


@dataclass
class _Variant:
    """One model of the session (as loaded, or pruned) and what is made from it once: IRs, the quantization stage."""

    model: ModelHandle
    pruning: dict[str, Any] | None
    onnx: IR | None = None
    torch: IR | None = None
    stages: dict[str, QuantizationStage] = field(default_factory=dict)  # one per quantization settings


class EvaluationSession:
    def __init__(self, model: ModelHandle, eval_data: DataSource, *, calib: DataSource | None = None, calib_samples: int | None = None,
                 quantization: QuantizationSettings | None = None, benchmark: BenchmarkSettings | None = None, task: str = "auto",
                 finetune: FinetuneSettings | None = None, finetune_data: DataSource | None = None, progress: Progress | None = None,
                 gate: GateSettings | None = None, build: BuildSettings | None = None, qat: QatSettings | None = None):
        self.model = model
        self.eval_data = eval_data
        self.calib = calib
        self.calib_samples = calib_samples
        self.quantization = quantization or QuantizationSettings()
        self.benchmark = (benchmark or BenchmarkSettings()).resolved()
        self.task = task
        self.finetune = finetune or FinetuneSettings()
        self.finetune_data = finetune_data
        self.progress = progress or Progress(quiet=True)
        self.gate = gate or GateSettings()
        self.build_settings = build or BuildSettings()
        self.qat = qat or QatSettings()
        self._tmp = tempfile.TemporaryDirectory(prefix="compressor-session-")
        self._n = 0
        self._variants: dict[str, _Variant] = {}
        self._pt2e_wanted: dict[str, set[str]] = {}
        self._reference: list[np.ndarray] | None = None
        self._reference_fidelity: Fidelity | None = None
        self._eager: dict[int, dict] = {}
        self._eager_artifact: Artifact | None = None
        self._simulated: dict[tuple, dict] = {}
        self._fake_quant_outputs: dict[int, list[np.ndarray]] = {}
        self.warnings: list[str] = []  # every warning of the session, in order (builds take theirs from here)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            self.progress.warn(message)

    # --- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        for v in self._variants.values():
            for stage in v.stages.values():
                stage.close()
        self._tmp.cleanup()

    def __enter__(self) -> EvaluationSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _workdir(self, label: str) -> Path:
        self._n += 1
        d = Path(self._tmp.name) / f"{self._n:03d}-{label.replace(' ', '_').replace('(', '').replace(')', '')}"
        d.mkdir(parents=True)
        return d

    # --- the reference -----------------------------------------------------------------------------

    @property
    def threads(self) -> int:
        return self.benchmark.threads

    @property
    def eval_batch(self) -> int:
        return eval_batch_size(self.model.inputs)

    def reference_outputs(self) -> list[np.ndarray]:
        """The FP32 PyTorch model's outputs on the eval data: what every artifact is compared with (computed once)."""
        if self._reference is None:
            runner = TorchModuleRunner(self.model.module, self.model.input_names, self.model.output_names, threads=self.threads)
            with self.progress.bar(f"FP32 reference outputs on {len(self.eval_data)} samples", total=len(self.eval_data)) as advance:
                reference = run_all(runner, self.eval_data, self.model.inputs, self.eval_batch, advance)
            self._check_reference(reference)
            self._reference = reference
        return self._reference

    def reference_fidelity(self) -> Fidelity:
        """The FP32 outputs compared with themselves: which fidelity figures this model's output and eval data can measure."""
        if self._reference_fidelity is None:
            ref = self.reference_outputs()
            self._reference_fidelity = compare(ref, ref, self.eval_data.labels, self.eval_data.synthetic, self.task)
        return self._reference_fidelity

    def check_budgets(self) -> None:
        """Refuse, in one line, an accuracy budget this model's output or eval data cannot measure."""
        self.gate.check_measurable(self.reference_fidelity(), tuple(self.reference_outputs()[0].shape))

    @property
    def objective(self) -> Objective:
        return self.gate.objective(self.reference_fidelity())

    def _check_reference(self, outputs: list[np.ndarray]) -> None:
        """The FP32 outputs every artifact is judged against must be numbers, and labels must name their classes."""
        for i, out in enumerate(outputs):
            if np.issubdtype(out.dtype, np.floating) and not np.isfinite(out).all():
                bad = int((~np.isfinite(out.reshape(len(out), -1)).all(axis=1)).sum())
                raise InputError(f"the FP32 model's output {i} is NaN/inf on {bad} of {len(out)} eval samples: check the checkpoint "
                                 "and the input preprocessing (--scale/--mean/--std) before compressing")
        labels, main = self.eval_data.labels, outputs[0]
        if labels is not None and self.task != "embedding" and main.ndim == 2 and len(labels) and labels.max() >= main.shape[1]:
            raise InputError(f"the eval labels go up to {int(labels.max())} but the model scores {main.shape[1]} classes: labels must be "
                             f"class indices 0..{main.shape[1] - 1} (check the labels file, or --arch-kwargs for the number of classes)")

    # --- what can run ------------------------------------------------------------------------------

    def status(self, spec: TargetSpec, quantization: QuantizationSettings | None = None) -> tuple[bool, str]:
        """Whether ``spec`` can be built and run here in this session (its backend, and the data it needs)."""
        if spec.needs_calibration and self.calib is None:
            return False, "static INT8 needs calibration data: pass --calib DATA"
        return quantization_status(spec, quantization or self.quantization)

    def prepare(self, candidates: list[Candidate]) -> None:
        """Announce every candidate before evaluating any, so each model is calibrated once for all its targets."""
        for c in candidates:
            try:
                spec = get_target(c.target)
            except TargetError:
                continue
            if spec.precision.quantized and spec.ir == IRFormat.TORCH and spec.pt2e_quantizer:
                self._pt2e_wanted.setdefault(self._variant_key(c.pruning, spec), set()).add(spec.pt2e_quantizer)

    # --- building ----------------------------------------------------------------------------------

    def _variant_key(self, pruning: PruningSettings | None, spec: TargetSpec) -> str:
        if pruning is None:
            return "as loaded"
        return json.dumps([pruning.model_dump(mode="json"), pruning.round_to or spec.prune_multiple])

    def variant(self, pruning: PruningSettings | None, spec: TargetSpec) -> _Variant:
        """The model a candidate is built from: as loaded, or pruned for the target's channel multiple (once per multiple)."""
        key = self._variant_key(pruning, spec)
        if key not in self._variants:
            if pruning is None:
                self._variants[key] = _Variant(self.model, None)
            else:
                from compressor.pruning.stage import prune_model

                model, report = prune_model(self.model, pruning, self.finetune, self.finetune_data, pruning.round_to or spec.prune_multiple,
                                            self.task, self.progress, self.eval_data, warn=self.warn)
                self._variants[key] = _Variant(model, report)
        return self._variants[key]

    def float_ir(self, variant: _Variant, fmt: IRFormat, what: str) -> IR:
        """The float IR of a model, exported once per format and shared by every target that consumes it."""
        if fmt == IRFormat.ONNX:
            if variant.onnx is None:
                from compressor.io.export_onnx import export_onnx

                path = self._workdir("float-onnx") / "model.onnx"
                with self.progress.stage("exported to ONNX"):
                    details = export_onnx(variant.model, path)
                variant.onnx = IR(IRFormat.ONNX, Precision.FP32, path=path, export=details)
            return variant.onnx
        if fmt == IRFormat.TORCH:
            if variant.torch is None:
                from compressor.io.export_torch import export_program

                program = export_program(variant.model, what=what)
                variant.torch = IR(IRFormat.TORCH, Precision.FP32, program=program, export={"exporter": "torch.export"})
            return variant.torch
        raise InputError(f"no exporter for IR format {fmt}")

    def stage(self, variant: _Variant, key: str, settings: QuantizationSettings | None = None,
              qat: QatSettings | None = None) -> QuantizationStage:
        """The quantization stage of a model for some quantization settings: it plans (and calibrates) once. With QAT, the stage
        of the model trained from the PTQ plan (one training serves every target of the session)."""
        settings = settings or self.quantization
        if (qat or self.qat).enabled:
            return self._qat_stage(variant, key, settings, qat or self.qat)
        skey = settings.plan_key()
        if skey not in variant.stages:
            float_onnx = self.float_ir(variant, IRFormat.ONNX, "quantization")
            stage = QuantizationStage(variant.model, float_onnx.path, settings, self.calib, self.calib_samples, progress=self.progress,
                                      warn=self.warn, threads=self.threads, analysis=self.eval_data, task=self.task)
            for flavour in self._pt2e_wanted.get(key, ()):
                stage.want_pt2e(flavour)
            variant.stages[skey] = stage
        return variant.stages[skey]

    def _qat_stage(self, variant: _Variant, key: str, settings: QuantizationSettings, qat: QatSettings) -> QuantizationStage:
        skey = f"qat {settings.plan_key()} {qat.model_dump_json()}"
        if skey not in variant.stages:
            from compressor.core.model import ModelHandle
            from compressor.quantization.qat import check_quantizer, train

            check_quantizer(settings.quantizer)
            ptq = self.stage(variant, key, settings, QatSettings())
            plan = ptq.plan("static")
            m = ptq.model
            result = train(m.module, plan, m.example_inputs(for_export=True), self.finetune_data, qat, self.finetune, self.task,
                           self.progress)
            model = ModelHandle(result.module, m.inputs, m.output_names, m.preprocessing, dict(m.source))
            trained = _Variant(model, variant.pruning)
            float_onnx = self.float_ir(trained, IRFormat.ONNX, "quantization")
            stage = QuantizationStage(model, float_onnx.path, settings.model_copy(update={"equalize": False, "scale_migration": False}),
                                      self.calib, self.calib_samples, progress=self.progress, warn=self.warn, threads=self.threads,
                                      analysis=self.eval_data, task=self.task, qat=result)
            stage.transforms = dict(ptq.transforms)  # what was done to the model QAT started from
            for flavour in self._pt2e_wanted.get(key, ()):
                stage.want_pt2e(flavour)
            variant.stages[skey] = stage
        return variant.stages[skey]

    def ir(self, variant: _Variant, key: str, spec: TargetSpec, settings: QuantizationSettings | None = None,
           qat: QatSettings | None = None, float_layers: tuple[str, ...] = ()) -> IR:
        if not spec.precision.quantized:
            return self.float_ir(variant, spec.ir, f"the {spec.name} artifact")
        settings = settings or self.quantization
        if (qat or self.qat).enabled and spec.precision.quant_mode != "static":
            raise InputError(f"--qat trains the ranges of static INT8 plans, and {spec.name} quantizes activations at run time (dynamic "
                             "INT8): use a static INT8 target (ort-cpu-int8, openvino-cpu-int8, executorch-xnnpack-int8), or drop --qat")
        tuning = self.tuning(variant) if settings.capabilities.tunes and self.gate.active else None
        stage = self.stage(variant, key, settings, qat)
        plan = stage.excluding(stage.plan_for(spec), float_layers, FLOAT_REASON) if float_layers else None
        return stage.realise(spec, plan, tuning=tuning)

    def tuning(self, variant: _Variant):
        """The gate as Intel Neural Compressor's autotune objective: one metric on (up to TUNING_SAMPLES of) the eval data,
        with the relative loss the gate tolerates; the quantized module is run eagerly (it computes what its package does)."""
        from compressor.quantization.inc_quantizer import Tuning

        data = self.eval_data.take(TUNING_SAMPLES)
        ref = [r[:len(data)] for r in self.reference_outputs()]
        base = compare(ref, ref, data.labels, data.synthetic, self.task)
        metric, loss = self.gate.objective(base).inc_tolerance(base)

        def evaluate(module) -> float:
            runner = TorchModuleRunner(module, variant.model.input_names, variant.model.output_names, threads=self.threads)
            f = compare(ref, run_all(runner, data, variant.model.inputs, self.eval_batch, lambda n: None), data.labels,
                        data.synthetic, self.task)
            return float(getattr(f, metric))

        return Tuning(metric=metric, evaluate=evaluate, tolerable_loss=loss)

    def _resolve(self, candidate: Candidate) -> tuple[TargetSpec | None, CandidateResult | None]:
        try:
            spec = get_target(candidate.target).with_run(self.model.inputs, self.threads)
        except TargetError as e:
            return None, CandidateResult(candidate, None, "unusable", str(e))
        ok, why = self.status(spec, candidate.quantization)
        if not ok:
            return spec, CandidateResult(candidate, spec, "unusable", why)
        return spec, None

    def build(self, candidate: Candidate) -> CandidateResult:
        """Build one candidate: prune, make its IR, compile it; with its quantization section (kernels read back)."""
        spec, refused = self._resolve(candidate)
        if refused is not None:
            return refused
        backend = get_backend(spec.backend)
        backend.check_model(self.model, spec)
        t0, seen = time.perf_counter(), len(self.warnings)
        key = self._variant_key(candidate.pruning, spec)
        variant = self.variant(candidate.pruning, spec)
        ctx = CompileContext(threads=self.threads, progress=self.progress, warnings=[], build=self.build_settings)
        qat = candidate.qat or self.qat
        with time_limit(self.build_settings.timeout, f"the {spec.name} build"), self.progress.stage(f"built {spec.name} artifact"):
            ir = self.ir(variant, key, spec, candidate.quantization, qat, candidate.float_layers)
            stage = self.stage(variant, key, candidate.quantization, qat) if ir.plan is not None else None
            model = stage.model if stage is not None and stage.qat is not None else variant.model
            artifact = backend.compile(model, ir, spec, self._workdir(candidate.label), ctx)
        result = CandidateResult(candidate, spec, "ok", artifact=artifact, pruning=variant.pruning, plan=ir.plan,
                                 build={**ir.export, **artifact.details}, build_seconds=time.perf_counter() - t0,
                                 qat=stage.qat if stage is not None else None)
        if ir.plan is not None:
            result.quantization = self._quantization_section(backend, artifact, ir, spec, ctx, variant, key,
                                                             candidate.quantization or self.quantization, qat)
        result.warnings = list(dict.fromkeys(self.warnings[seen:] + ctx.warnings))
        return result

    def _quantization_section(self, backend, artifact: Artifact, ir: IR, spec: TargetSpec, ctx: CompileContext, variant, key,
                              settings: QuantizationSettings, qat: QatSettings) -> dict:
        plan = ir.plan
        kernels = backend.kernel_report(artifact, ir, spec, ctx) or {}
        running_float = set(kernels.get("planned_int8_layers_running_float") or [])
        if running_float:  # never claim INT8 for a layer the runtime runs in float
            import copy

            plan = copy.deepcopy(plan)
            for layer in plan.layers:
                if layer.name in running_float:
                    layer.precision, layer.reason = "float", f"{spec.backend} did not fuse it into an INT8 kernel"
            ctx.warn(f"{len(running_float)} planned INT8 layer(s) run in float on {spec.backend}: {', '.join(sorted(running_float)[:5])}")
        summary = plan.summary()
        if "weight_layers_int8" in kernels and kernels["weight_layers_int8"] < summary["layers_int8"]:
            summary["layers_int8"] = kernels["weight_layers_int8"]
        plan_path = artifact.path.parent / PLAN_FILE
        plan_path.write_text(json.dumps(plan.to_dict(), separators=(",", ":")) + "\n")
        artifact.files.append(plan_path)
        section = {**summary, "kernels": kernels, "plan_file": PLAN_FILE, "realiser": ir.export.get("quantization_realiser")}
        for key in ("pt2e", "autotune"):
            if ir.export.get(key):
                section[key] = ir.export[key]
        if settings.sensitivity and plan.int8_layers:
            section["sensitivity"] = self.sensitivity(variant, key, spec, ir.plan, settings, qat)
            if section["sensitivity"] is None:
                section.pop("sensitivity")
        return section

    # --- sensitivity -------------------------------------------------------------------------------

    def sensitivity(self, variant: _Variant, key: str, spec: TargetSpec, plan: QuantPlan,
                    settings: QuantizationSettings | None = None, qat: QatSettings | None = None) -> dict[str, Any] | None:
        """Per-layer sensitivity of ``plan``: each layer alone realised and run on ``spec``'s own runtime (``--sensitivity-on
        runtime``), or in the plan's QDQ simulation (the fast default of compress and bench)."""
        settings = settings or self.quantization
        stage = self.stage(variant, key, settings, qat)
        if settings.sensitivity_on == "simulation":
            if not of_plan(plan.quantizer).supports_simulation:
                self.warn(f"no per-layer sensitivity in simulation for the {plan.quantizer} quantizer (its ranges are its own): "
                          "use --sensitivity-on runtime, or compressor analyze")
                return None
            cache = (key, id(plan))  # the same plan simulates the same for every target built from it
            if cache not in self._simulated:
                self._simulated[cache] = stage.sensitivity(plan, stage.simulate, runtime="QDQ simulation (ONNX Runtime, basic optimisation)")
            return self._simulated[cache]
        backend = get_backend(spec.backend)
        feeds = stage.sensitivity_feeds()
        quiet = CompileContext(threads=self.threads)

        def measure(plans: Sequence[QuantPlan]) -> Iterator[np.ndarray]:
            for p in plans:
                ir = stage.realise(spec, p, quiet=True)
                with tempfile.TemporaryDirectory(prefix="compressor-sens-", dir=self._tmp.name) as tmp:
                    artifact = backend.compile(stage.model, ir, spec, Path(tmp), quiet)
                    runner = backend.load(artifact.path, spec, threads=self.threads)
                    out = np.concatenate([np.asarray(runner.run(f)[0]) for f in feeds])
                    del runner
                yield out

        return stage.sensitivity(plan, measure, runtime=f"{spec.name} ({spec.backend})")

    def analyze(self, target: str) -> dict[str, Any]:
        """The quantization section (plan, kernels, per-layer sensitivity on the target's runtime) of ``target``, no validation."""
        spec, refused = self._resolve(Candidate(target))
        if refused is not None:
            raise TargetError(f"target '{target}' cannot run here: {refused.reason}")
        if not spec.precision.quantized:
            raise InputError(f"analyze needs an INT8 target (e.g. --target ort-cpu-int8), not {spec.name}")
        candidate = Candidate(target, quantization=self.quantization.model_copy(update={"sensitivity": True}))
        self.prepare([candidate])
        result = self.build(candidate)
        return {"target": spec.name, "quantization": result.quantization, "warnings": result.warnings}

    # --- validation and benchmarks -----------------------------------------------------------------

    def validate(self, result: CandidateResult) -> None:
        backend = get_backend(result.target.backend)
        runner = backend.load(result.artifact.path, result.target, threads=self.threads)
        n = len(self.eval_data)
        ref = self.reference_outputs()
        with self.progress.bar(f"validated {result.target.name} on {n} samples", total=n) as advance:
            outputs = run_all(runner, self.eval_data, self.model.inputs, self.eval_batch, advance)
        del runner
        result.fidelity = compare(ref, outputs, self.eval_data.labels, self.eval_data.synthetic, self.task)
        result.outputs = outputs
        if result.qat is not None and result.quantization is not None:
            result.quantization["qat"] = self._qat_section(result) if not result.candidate.float_layers else {
                **result.qat.report, "artifact_vs_fake_quant": None,
                "note": "layers returned to float after QAT: the artifact is not the all-INT8 model QAT simulated"}

    def _qat_section(self, result: CandidateResult) -> dict[str, Any]:
        """What QAT did, and how far the exported artifact agrees with the fake-quantized model it was trained as."""
        model = self.model
        fake = self._fake_quant_outputs.get(id(result.qat))
        if fake is None:  # once per training run: every target (and auto-precision step) made from it compares with the same
            runner = TorchModuleRunner(result.qat.fake_quant, model.input_names, model.output_names, threads=self.threads)
            with self.progress.bar(f"ran the fake-quantized QAT model on {len(self.eval_data)} samples", total=len(self.eval_data)) as advance:
                fake = self._fake_quant_outputs[id(result.qat)] = run_all(runner, self.eval_data, model.inputs, self.eval_batch, advance)
        vs_artifact = compare(fake, result.outputs, None, self.eval_data.synthetic, self.task)
        vs_reference = compare(self.reference_outputs(), fake, self.eval_data.labels, self.eval_data.synthetic, self.task)
        return {**result.qat.report,
                "fake_quant_vs_fp32": {k: v for k, v in vs_reference.to_dict().items() if v is not None},
                "artifact_vs_fake_quant": {"cosine_mean": vs_artifact.cosine_mean, "cosine_min": vs_artifact.cosine_min,
                                           "top1_agreement": vs_artifact.top1_agreement,
                                           "max_abs_difference": float(max(np.abs(a - b).max() for a, b in zip(fake, result.outputs)))}}

    def benchmark_feeds(self, batch_size: int) -> dict[str, np.ndarray]:
        return benchmark_feeds(self.eval_data, self.model.inputs, batch_size)

    def bench(self, result: CandidateResult, batch_sizes: list[int] | None = None) -> None:
        for b in batch_sizes or [self.benchmark.batch_size]:
            settings = self.benchmark.with_batch(b)
            with self.progress.stage(f"benchmarked {result.target.name} ({settings.threads} threads, batch {b})"):
                try:
                    result.benchmarks[b] = run_isolated(result.target.name, result.artifact.path, self.benchmark_feeds(b), settings)
                except CompressorError as e:
                    result.benchmarks[b] = {"error": str(e)}

    def eager(self, batch_size: int) -> tuple[dict | None, int | None]:
        """The FP32 eager baseline at ``batch_size`` (the unpruned model; measured once per batch size) and its size."""
        if batch_size not in self._eager:
            ref = reference_target().with_run(self.model.inputs, self.threads)
            if self._eager_artifact is None:
                with self.progress.stage("built the torch eager FP32 baseline"):
                    ir = self.float_ir(self.variant(None, ref), ref.ir, f"the {ref.name} artifact")
                    self._eager_artifact = get_backend(ref.backend).compile(self.model, ir, ref, self._workdir("eager"), CompileContext())
            with self.progress.stage(f"benchmarked torch eager FP32 (the baseline, batch {batch_size})"):
                self._eager[batch_size] = run_isolated(ref.name, self._eager_artifact.path, self.benchmark_feeds(batch_size),
                                                       self.benchmark.with_batch(batch_size))
        return self._eager[batch_size], self._eager_artifact.size_bytes

    def evaluate(self, candidate: Candidate, batch_sizes: list[int] | None = None, benchmark: bool = True,
                 raise_errors: bool = False) -> CandidateResult:
        """Build, validate and benchmark one candidate. Unless ``raise_errors``, a failure is the result's status."""
        try:
            result = self.build(candidate)
            if not result.ok:
                return result
            runs, why = get_backend(result.target.backend).runnable(result.target)
            if not runs:
                result.status, result.reason = "built", f"not run: {why}"
                return result
            self.validate(result)
            if benchmark:
                self.bench(result, batch_sizes)
            return result
        except Exception as e:  # noqa: BLE001 - one candidate's failure is its result; the caller decides
            if raise_errors or (strict() and not isinstance(e, CompressorError)):
                raise
            return CandidateResult(candidate, self._safe_target(candidate.target), "failed", first_line(e))

    @staticmethod
    def _safe_target(name: str) -> TargetSpec | None:
        try:
            return get_target(name)
        except TargetError:
            return None


def quantization_status(spec: TargetSpec, q: QuantizationSettings) -> tuple[bool, str]:
    """Whether ``spec`` can be built here with quantization settings ``q`` (its backend; for INT8, the quantizer and the
    calibration runtime); the data a target needs is the session's to check."""
    ok, why = target_status(spec)
    if not ok:
        return ok, why
    if spec.precision.quantized:
        if q.quantizer != "sdk" and q.quantizer not in spec.quantizers:
            return False, f"--quantizer {q.quantizer} is not offered for {spec.name} (it takes: {', '.join(spec.quantizers)})"
        missing = package_missing("onnxruntime")
        if missing:
            return False, f"quantization plans are calibrated by running the float ONNX graph with ONNX Runtime: {missing}"
    return True, ""


def benchmark_feeds(data: DataSource, inputs, batch_size: int) -> dict[str, np.ndarray]:
    """``batch_size`` real samples (repeated if the data has fewer), shaped for the input specs."""
    for spec in inputs:
        d0 = spec.dims[0]
        if not d0.dynamic and d0.value != batch_size:
            raise InputError(f"--batch-size {batch_size} does not fit input '{spec.name}' with fixed batch {d0.value}: "
                             f"use --batch-size {d0.value} or a dynamic batch (batch,…) in --input-shape")
        if d0.dynamic and not d0.accepts(batch_size):
            raise InputError(f"--batch-size {batch_size} is outside the batch range {d0.min}..{d0.max} of input '{spec.name}'")
    reps = -(-batch_size // len(data))
    return {s.name: np.ascontiguousarray(np.concatenate([a] * reps)[:batch_size]) for s, a in zip(inputs, data.inputs)}

"""The main job: checkpoint → artifact for a target → validated, benchmarked bundle.

``compress`` is one candidate of an evaluation session (see compressor/evaluation/session.py), then the
gate, then the bundle: the artifact, its reference inputs and outputs, the typed manifest and the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from compressor.app.recipe import RunConfig
from compressor.app.session import open_session
from compressor.bundle.auto_precision_plot import PLOT_FILE, plot
from compressor.bundle.html import HTML_REPORT, manifest_results, render
from compressor.bundle.report import bundle_report, row
from compressor.bundle.writer import MANIFEST, REFERENCE_INPUTS, REFERENCE_OUTPUTS, REPORT, BundleWriter, check_destination
from compressor.core.environment import describe_environment
from compressor.core.errors import CompressorError, GateError, InputError, TargetError
from compressor.core.progress import Progress
from compressor.core.registry import get_backend, get_target, reference_target, require
from compressor.core.targets import PlanMode
from compressor.core.version import __version__
from compressor.evaluation.auto_precision import AutoPrecision
from compressor.evaluation.benchmark import METHOD
from compressor.evaluation.session import Candidate, CandidateResult, EvaluationSession
from compressor.evaluation.validate import run_all

#: verify tolerance: |artifact - recorded| <= ATOL + RTOL * max|recorded| per output, and cosine >= COSINE_MIN
VERIFY_TOLERANCE = {"atol": 1e-5, "rtol_of_max": 1e-3, "cosine_min": 0.9999}
#: for an artifact that could not run where it was built: verify compares it on the device with the FP32 reference outputs,
#: within what its precision allows
DEVICE_TOLERANCE = {"fp16": {"atol": 1e-3, "rtol_of_max": 0.02, "cosine_min": 0.999},
                    "bf16": {"atol": 1e-2, "rtol_of_max": 0.05, "cosine_min": 0.995},
                    "int8": {"atol": 1e-2, "rtol_of_max": 0.25, "cosine_min": 0.97}}


@dataclass
class CompressResult:
    bundle: Path | None
    manifest: dict[str, Any]
    rows: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.manifest["gate"]["passed"])

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest["metrics"]

    @property
    def fidelity(self) -> dict[str, Any]:
        return self.manifest["metrics"]["fidelity"]


def compress(config: RunConfig, quiet: bool = False) -> CompressResult:
    ui = Progress(quiet)
    spec = get_target(config.target)
    require(spec)
    if config.output is None:
        raise InputError("no output directory: pass --output DIR (or output.path in the recipe)")
    out = Path(config.output.path)
    check_destination(out, config.output.overwrite)
    if config.output.verify_on:
        _check_verify_on(spec, config.output.verify_on)
    if config.build.input_layout != "nchw" and spec.backend != "litert":
        raise InputError(f"--input-layout {config.build.input_layout} is a LiteRT option and {spec.name} takes N,C,H,W inputs: "
                         "drop --input-layout, or pick a litert-xnnpack-* target")
    if spec.needs_calibration and not config.data.calib and not config.data.synthetic:
        raise InputError(f"target {spec.name} needs calibration data: pass --calib DATA (representative inputs, "
                         "100 or more recommended; image folder, .npy/.npz or package.module:function)")
    if config.qat.enabled and spec.precision.quant_mode != PlanMode.STATIC:
        raise InputError(f"--qat trains static INT8 plans, and {spec.name} is not one ({spec.precision}"
                         f"{', activations quantized at run time' if spec.precision.quantized else ''}): pick a static INT8 target "
                         "(ort-cpu-int8, openvino-cpu-int8, executorch-xnnpack-int8), or drop --qat")
    if not spec.precision.quantized and config.quantization.model_fields_set:
        ui.warn(f"quantization settings ({', '.join(sorted(config.quantization.model_fields_set))}) are ignored: "
                f"{spec.name} is {spec.precision}; pick an INT8 target (compressor targets) to quantize")
    with open_session(config, ui, calibrate=spec.needs_calibration) as session:
        session.check_budgets()
        candidate = Candidate(spec.name, config.pruning)
        session.prepare([candidate])
        auto = None
        if config.quantization.auto_precision:
            result, _, auto = AutoPrecision(session, candidate).run()
        else:
            result = session.evaluate(candidate, benchmark=False, raise_errors=True)
        written = write_result(config, session, result, auto, ui, out)
    if config.output.verify_on:
        written.manifest = _verify_on(written.bundle, config.output, ui)
    return written


def _check_verify_on(spec, isa: str) -> None:
    """Refuse --verify-on before any work when the check cannot run here (no emulation, no environment, another runtime)."""
    from compressor.bundle import arm64

    runtime = get_backend(spec.backend).arm64_runtime
    if runtime is None:
        raise InputError(f"--verify-on {isa}: {spec.name}'s runtime has no {isa} runner here (it checks ExecuTorch, LiteRT and ONNX "
                         "Runtime bundles): drop --verify-on, or pick one of those targets")
    problem = arm64.environment_problem(runtime)
    if problem:
        raise TargetError(f"--verify-on {isa}: {problem}")


def _verify_on(bundle: Path, output, ui: Progress) -> dict[str, Any]:
    """The bundle just written, re-run on the emulated ISA; a failure leaves it written but without validation.arm64 (and says so)."""
    import backends.edge_worker
    from compressor.bundle import arm64
    from compressor.bundle.verify_arm64 import verify_on
    from compressor.bundle.writer import read_manifest, write_tarball

    try:
        verify_on(bundle, output.verify_on, Path(backends.edge_worker.__file__), cpus=arm64.parse_cpus(output.verify_cpus), progress=ui)
    except CompressorError as e:
        raise type(e)(f"the bundle is written at {bundle} but FAILED its {output.verify_on} check (no validation.{output.verify_on} in "
                      f"its manifest): {e}") from None
    if output.tar:  # the tarball written beside the bundle carries the same manifest
        write_tarball(bundle)
    return read_manifest(bundle)


def write_result(config: RunConfig, session: EvaluationSession, result: CandidateResult, auto: dict | None, ui: Progress,
                 out: Path) -> CompressResult:
    """The gate on one evaluated candidate, then its bundle at ``out`` (``config`` is the candidate's own run settings: its
    recipe goes into the manifest). Raises GateError, writing nothing, when it fails its gate without ``force``."""
    spec, gate = result.target, config.gate
    built_only = result.status == "built"
    if not result.ok and not built_only:
        raise InputError(f"target {spec.name} cannot run here: {result.reason}")
    if built_only:
        ui.warn(f"{spec.name} {result.reason}: the bundle is written NOT validated, with the FP32 reference outputs; run "
                "`compressor verify BUNDLE` on the device" + (" (the accuracy gate is checked there only within the tolerance of "
                                                              "its precision)" if gate.active else ""))
    failures = gate.artifact_failures(None if built_only else result.fidelity, result.size_bytes)
    if failures and not gate.force:
        if auto is not None:
            best = auto["steps"][auto["chosen_step"] - 1]
            why = f"; it stopped there: {auto['stopped']}" if auto.get("stopped") else ""
            raise GateError(f"--auto-precision: no plan of {spec.name} met the gate ({'; '.join(failures)} at best, reached by step "
                            f"{best['step']}: {best['label']}, {len(auto['steps'])} plans measured{why}): no bundle written; relax the "
                            "gate, add --qat, or pass --force to write the best plan marked as failing")
        raise GateError(f"the {spec.name} artifact failed its gate ({'; '.join(failures)}): no bundle written; "
                        "relax the gate or pass --force to write it marked as failing")
    if auto is not None:
        plot_path = result.artifact.path.parent / PLOT_FILE
        plot(auto, plot_path, f"{spec.name}: auto precision, {auto['objective']['shown_label']} vs latency")
        if plot_path not in result.artifact.files:
            result.artifact.files.append(plot_path)
        chosen = auto["steps"][auto["chosen_step"] - 1]
        speedup = auto["speedup_vs_fp32"]
        ui.note(f"auto precision chose step {chosen['step']} ({chosen['label']}): {len(chosen['float_layers'])} layer(s) float, "
                f"p50 {chosen['p50_ms']:.3g} ms" + (f", {speedup:.2f}× as fast as {auto['fp32_target']}" if speedup else ""))
        if speedup is not None and speedup < 1:
            ui.warn(f"the chosen plan is slower than {auto['fp32_target']} here ({chosen['p50_ms']:.3g} vs {auto['fp32_p50_ms']:.3g} ms "
                    f"p50): INT8 does not pay on this model and CPU; {auto['fp32_target']} is the faster artifact")
    bench = eager = eager_size = None
    if config.benchmark.enabled and not built_only:
        if session.benchmark.batch_size not in result.benchmarks:
            session.bench(result)
        bench = result.benchmarks[session.benchmark.batch_size]
        if bench.error:
            raise CompressorError(bench.error)
        if config.benchmark.compare_eager:
            if spec.reference and config.pruning is None:
                eager, eager_size = bench, result.size_bytes
            else:
                eager, eager_size = session.eager(session.benchmark.batch_size)
    for budget, flag in ((gate.max_memory_mb, "--max-memory-mb"), (gate.max_latency_ms, "--max-latency-ms")):
        if budget is not None and bench is None:
            raise InputError(f"{flag} needs the benchmark (it is measured): drop --no-benchmark")
    if bench is not None:
        over = gate.measured_failures(bench)
        if over and not gate.force:
            raise GateError(f"the {spec.name} artifact is over its budget ({'; '.join(over)}): no bundle written; "
                            "raise the budget, quantize or prune, or pass --force")
        failures += over
    with BundleWriter(out, config.output.overwrite) as bundle:
        path, manifest, rows = _write_bundle(bundle, config, session, result, failures, bench, eager, eager_size)
    if failures:
        ui.warn(f"bundle written with --force although it FAILED its gate: {'; '.join(failures)}")
    return CompressResult(path, manifest, rows)


def _write_bundle(bundle: BundleWriter, config: RunConfig, session: EvaluationSession, result: CandidateResult, failures, bench,
                  eager, eager_size) -> tuple[Path, dict, list[dict]]:
    spec, artifact = result.target, result.artifact
    backend = get_backend(spec.backend)
    for f in artifact.files:
        bundle.add_file(f, f.name)
    n_ref = min(config.output.reference_samples, len(session.eval_data))
    ref_data = session.eval_data.take(n_ref)
    if result.status == "built":  # cannot run here: the device compares the artifact with the FP32 reference
        expected = [o[:n_ref] for o in session.reference_outputs()]
    else:
        runner = backend.load(bundle.path(artifact.path.name), spec, threads=session.threads)
        expected = run_all(runner, ref_data, session.model.inputs, session.eval_batch)
        del runner
    np.savez(bundle.path(REFERENCE_INPUTS), **{s.name: a for s, a in zip(session.model.inputs, ref_data.inputs)})
    np.savez(bundle.path(REFERENCE_OUTPUTS), **{n: o for n, o in zip(session.model.output_names, expected)})
    speedup = eager.p50_ms / bench.p50_ms if bench and eager else None
    manifest = build_manifest(config, session, result, failures, bench, eager, speedup, n_ref)
    rows = []
    fid = result.fidelity
    if eager is not None and not spec.reference and fid is not None:
        ref_fid = {"accuracy": fid.reference_accuracy, "top1_agreement": 1.0 if fid.top1_agreement is not None else None,
                   "cosine_mean": 1.0, "cosine_min": 1.0, "synthetic": fid.synthetic}
        rows.append(row(f"{reference_target().name} (reference)", "fp32", eager_size, ref_fid, eager, 1.0))
    rows.append(row(spec.name, spec.precision, result.size_bytes, fid.to_dict() if fid else None, bench, speedup))
    bundle.path(REPORT).write_text(bundle_report(manifest, rows, backend.report_sections(manifest)))
    bundle.path(HTML_REPORT).write_text(render([manifest_results(manifest, MANIFEST)]))
    sparse = config.pruning is not None and config.pruning.sparsity is not None  # zeros are only saved when stored compressed
    return bundle.commit(manifest, tar=config.output.tar or sparse), manifest, rows


def _output_specs(session: EvaluationSession, outputs: list[np.ndarray]) -> list[dict]:
    inputs = session.model.inputs
    first = inputs[0].dims[0] if inputs and inputs[0].dims else None
    specs = []
    for name, o in zip(session.model.output_names, outputs):
        shape: list[Any] = list(o.shape)
        if shape and first is not None:
            shape[0] = first.name if first.dynamic else first.value
        specs.append({"name": name, "shape": shape, "dtype": str(o.dtype)})
    return specs


def build_manifest(config: RunConfig, session: EvaluationSession, result: CandidateResult, failures, bench, eager, speedup,
                   n_ref: int) -> dict[str, Any]:
    spec = result.target
    validated = result.status != "built"
    metrics: dict[str, Any] = {"fidelity": result.fidelity.to_dict() if result.fidelity else None}
    if bench:
        metrics.update({k: v for k, v in bench.to_dict().items()
                        if k in ("latency_ms", "throughput_per_s", "peak_rss_mb", "model_rss_mb", "load_time_s", "iterations")})
    if eager:
        metrics["torch_eager_latency_ms"] = eager.to_dict()["latency_ms"]
        metrics["speedup_vs_torch_eager"] = speedup
    handle = session.model
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sdk": {"name": "compressor", "version": __version__},
        "target": spec.to_dict(),
        "precision": spec.precision.value,
        "artifact": {"path": result.artifact.path.name, "files": [f.name for f in result.artifact.files],
                     "size_bytes": result.size_bytes, "build": {**result.build, "build_seconds": result.build_seconds}},
        "quantization": result.quantization,
        "pruning": result.pruning,
        "warnings": result.warnings,
        "inputs": [s.to_dict() for s in handle.inputs],
        "outputs": _output_specs(session, result.outputs if result.outputs is not None else session.reference_outputs()),
        "validation": {"validated": validated, "reason": None if validated else result.reason},
        "preprocessing": handle.preprocessing.to_dict() if handle.preprocessing else None,
        "source": {k: v for k, v in handle.source.items() if k != "path"},
        "data": {"eval": session.eval_data.to_dict(), "calibration": session.calib.to_dict() if session.calib else None,
                 "eval_batch_size": session.eval_batch},
        "gate": {**config.gate.to_dict(), "passed": not failures, "failures": failures, "forced": bool(failures) and config.gate.force},
        "metrics": metrics,
        "benchmark": {
            "settings": session.benchmark.to_dict() if bench else None,
            "method": METHOD,
            "runtime": bench.runtime if bench else None,
            "warmup": bench.extra.get("warmup") if bench else None,
            "input_shapes": bench.extra.get("input_shapes") if bench else None,
        },
        "environment": describe_environment(),
        "reference": {
            "inputs": REFERENCE_INPUTS,
            "outputs": REFERENCE_OUTPUTS,
            "samples": n_ref,
            "batch_size": session.eval_batch,
            "tolerance": VERIFY_TOLERANCE if validated else DEVICE_TOLERANCE.get(spec.precision.value, DEVICE_TOLERANCE["int8"]),
            "produced_by": f"the {spec.name} artifact itself (compressor verify re-runs it and compares)" if validated else
            f"the FP32 PyTorch reference: the artifact could not run where it was built ({result.reason}); compressor verify on the "
            f"device compares the artifact with it within the tolerance of {spec.precision.value}",
        },
        "recipe": config.model_dump(mode="json"),
    }

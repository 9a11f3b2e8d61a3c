"""The main job: checkpoint → artifact for a target → validated, benchmarked bundle.

This is the orchestration layer: it is the one place in ``compressor/`` that reaches into
``backends/`` (lazily), and it is shared by the CLI and the Python API.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from compressor.evaluation.benchmark import BenchSettings, run_isolated
from compressor.bundle.writer import REFERENCE_INPUTS, REFERENCE_OUTPUTS, REPORT, BundleWriter, check_destination
from compressor.data.sources import DataSource, load_data, synthetic_data
from compressor.core.environment import describe_environment
from compressor.core.errors import GateError, InputError
from compressor.io.loading import load_model
from compressor.core.model import ModelHandle
from compressor.core.progress import Progress
from compressor.app.recipe import RunConfig
from compressor.bundle.report import bundle_report, row
from compressor.core.backend import BuildContext, TorchModuleRunner
from compressor.core.targets import REFERENCE_TARGET, get_target
from compressor.evaluation.validate import Fidelity, Gate, compare, eval_batch_size, run_all

#: verify tolerance: |artifact - recorded| <= ATOL + RTOL * max|recorded| per output, and cosine >= COSINE_MIN
VERIFY_TOLERANCE = {"atol": 1e-5, "rtol_of_max": 1e-3, "cosine_min": 0.9999}


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


def bench_settings(config: RunConfig) -> BenchSettings:
    b = config.benchmark
    return BenchSettings(
        threads=b.threads, batch_size=b.batch_size, duration_s=b.duration, min_iters=b.iterations,
        warmup_iters=b.warmup_iterations, warmup_s=b.warmup_seconds,
    ).resolved()


def benchmark_feeds(data: DataSource, handle_inputs, batch_size: int) -> dict[str, np.ndarray]:
    """``batch_size`` real samples (repeated if the data has fewer), shaped for the input specs."""
    for spec in handle_inputs:
        d0 = spec.dims[0]
        if not d0.dynamic and d0.value != batch_size:
            raise InputError(f"--batch-size {batch_size} does not fit input '{spec.name}' with fixed batch {d0.value}: "
                             f"use --batch-size {d0.value} or a dynamic batch (batch,…) in --input-shape")
        if d0.dynamic and not d0.accepts(batch_size):
            raise InputError(f"--batch-size {batch_size} is outside the batch range {d0.min}..{d0.max} of input '{spec.name}'")
    reps = -(-batch_size // len(data))
    return {s.name: np.ascontiguousarray(np.concatenate([a] * reps)[:batch_size]) for s, a in zip(handle_inputs, data.inputs)}


def load_eval_data(config: RunConfig, handle: ModelHandle, pre) -> DataSource:
    d = config.data
    if d.eval:
        return load_data(d.eval, handle.inputs, pre, d.eval_labels, d.eval_samples, what="eval data")
    if d.synthetic:
        return synthetic_data(handle.inputs, d.synthetic_samples)
    raise InputError(
        "no eval data: pass --eval DATA (image folder, .npy/.npz, or package.module:function), "
        "or --synthetic to validate on random inputs (every fidelity number is then marked synthetic)"
    )


def gate_of(config: RunConfig) -> Gate:
    g = config.gate
    return Gate(g.max_accuracy_drop, g.min_agreement, g.min_cosine, g.max_size_mb, g.max_memory_mb)


def quant_settings(config: RunConfig):
    from compressor.quantization.ptq import DEFAULT_CALIB_SAMPLES, QuantSettings

    q = config.quantization
    return QuantSettings(calibration=q.calibration, percentile=q.percentile, exclude=list(q.exclude), sensitivity=q.sensitivity,
                         sensitivity_samples=q.sensitivity_samples, calib_samples=config.data.calib_samples or DEFAULT_CALIB_SAMPLES,
                         quantizer=q.quantizer)


def load_calibration(config: RunConfig, handle: ModelHandle, pre, spec, ui) -> DataSource | None:
    """Calibration data: --calib, or synthetic when the run is synthetic; static INT8 cannot do without."""
    d = config.data
    if d.calib:
        with ui.stage("read calibration data"):
            return load_data(d.calib, handle.inputs, pre, d.calib_labels, d.calib_samples, what="calibration data")
    if spec.precision == "int8" and d.synthetic:
        ui.warn("calibrating on synthetic (random) data: real inputs may need other scales")
        return synthetic_data(handle.inputs, d.calib_samples or 64, seed=1)
    if spec.precision == "int8":
        raise InputError(f"target {spec.name} needs calibration data: pass --calib DATA (representative inputs, "
                         "100 or more recommended; image folder, .npy/.npz or package.module:function)")
    return None


def load_model_and_eval(config: RunConfig, pre, ui: Progress) -> tuple[ModelHandle, DataSource]:
    with ui.stage(f"loaded {Path(config.model.checkpoint).name}"):
        m = config.model
        handle = load_model(m.checkpoint, config.input_specs(), m.arch, m.arch_kwargs, m.trust_checkpoint, pre, m.output_names)
    with ui.stage("read eval data"):
        eval_data = load_eval_data(config, handle, pre)
    return handle, eval_data


def reference_outputs(handle: ModelHandle, eval_data: DataSource, threads, ui: Progress) -> list[np.ndarray]:
    """The FP32 PyTorch model's outputs on the eval data: what every artifact is compared with."""
    reference = TorchModuleRunner(handle.module, handle.input_names, handle.output_names, threads=threads)
    with ui.bar(f"FP32 reference outputs on {len(eval_data)} samples", total=len(eval_data)) as advance:
        return run_all(reference, eval_data, handle.inputs, eval_batch_size(handle.inputs), advance)


def validate_artifact(backend, artifact, target, handle, eval_data, ref_out, task, threads, ui) -> tuple[Fidelity, list[np.ndarray]]:
    """Run the artifact on the eval data and compare with the reference outputs."""
    runner = backend.load(artifact.path, target, threads=threads)
    with ui.bar(f"validated {target.name} on {len(eval_data)} samples", total=len(eval_data)) as advance:
        art_out = run_all(runner, eval_data, handle.inputs, eval_batch_size(handle.inputs), advance)
    del runner
    return compare(ref_out, art_out, eval_data.labels, eval_data.synthetic, task), art_out


def artifact_size(artifact) -> int:
    """Bytes of the model itself (model.xml + model.bin, model.pte, …), not of side files (plan, README)."""
    return sum(f.stat().st_size for f in artifact.files if f.stem == artifact.path.stem)


def apply_pruning(config: RunConfig, handle: ModelHandle, spec, pre, ui: Progress,
                  sample: DataSource | None = None) -> tuple[ModelHandle, dict | None]:
    """Prune (and fine-tune) a copy of ``handle`` as the recipe asks; the original stays the FP32 reference."""
    p = config.pruning
    if p is None:
        if config.finetune.data:
            raise InputError("--finetune without pruning: fine-tuning here recovers accuracy after pruning; add --prune-macs or --prune-ratio")
        return handle, None
    import importlib

    from compressor.pruning.finetune import FinetuneSettings, finetune
    from compressor.pruning.prune import PruneSettings, prune, vector_width

    settings = PruneSettings(ratio=p.ratio, macs=p.macs, head_ratio=p.heads or 0.0, importance=p.importance,
                             global_pruning=p.global_pruning, round_to=p.round_to, exclude=list(p.exclude),
                             keep_first_and_last=p.keep_first_and_last)
    f = config.finetune
    ft_settings = FinetuneSettings(epochs=f.epochs, lr=f.lr, batch_size=f.batch_size, distill=f.distill, temperature=f.temperature,
                                   alpha=f.alpha, patience=f.patience, amp=f.amp, loss=f.loss)
    train = None
    if f.data:
        with ui.stage("read fine-tuning data"):
            train = load_data(f.data, handle.inputs, pre, f.labels, f.samples, what="fine-tuning data")
    if p.save and handle.kind != "state_dict":
        raise InputError("--save-pruned writes a state_dict + architecture record, so the source must be a state_dict with --arch "
                         f"(this one is a {handle.kind})")
    hook = None
    if p.hook:
        mod, _, name = p.hook.partition(":")
        try:
            hook = getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError) as e:
            raise InputError(f"cannot load the pruning hook '{p.hook}': {e}")

    def grad_batches(model):
        import torch
        import torch.nn.functional as F

        if train is None or train.labels is None:
            raise InputError("--prune-importance taylor needs labelled data for its gradients: pass --finetune DATA with labels")
        idx = slice(0, min(len(train), 64))
        out = model(*[torch.from_numpy(a[idx]) for a in train.inputs])
        F.cross_entropy(out[0] if isinstance(out, (tuple, list)) else out, torch.from_numpy(train.labels[idx])).backward()

    round_to = settings.round_to or vector_width(spec.name)
    import torch

    # MACs are counted on a real sample when there is one (a transformer's cost depends on its sequence length)
    example = tuple(torch.from_numpy(a[:1]) for a in sample.inputs) if sample is not None else handle.example_inputs(batch=1)
    with ui.stage(f"pruned ({settings.importance} importance, channels rounded to {round_to})"):
        pruned, report = prune(handle.module, example, settings, round_to, grad_batches, hook, ui.warn)
    ui.note(f"  MACs {report['macs_before'] / 1e9:.3f} → {report['macs_after'] / 1e9:.3f} G ({report['macs_removed']:.1%} removed), "
            f"parameters {report['params_before'] / 1e6:.2f} → {report['params_after'] / 1e6:.2f} M")
    if train is not None:
        report["finetune"] = finetune(pruned, handle.module, train, ft_settings, config.model.task, ui)
    else:
        report["finetune"] = None
    if p.save:
        from compressor.io.pruned import save_pruned

        summary = {k: v for k, v in report.items() if k not in ("layers_changed", "finetune")}
        save_pruned(pruned, Path(p.save), handle.source["arch"], handle.source.get("arch_kwargs") or {}, summary)
        report["saved_to"] = str(p.save)
        ui.note(f"  pruned checkpoint: {p.save} (reload with --arch {handle.source['arch']} {p.save})")
    return ModelHandle(module=pruned, inputs=handle.inputs, output_names=list(handle.output_names), preprocessing=handle.preprocessing,
                       source={**handle.source, "pruned_in_this_run": True}), report


def compress(config: RunConfig, quiet: bool = False) -> CompressResult:
    import backends

    ui = Progress(quiet)
    spec = get_target(config.target)
    backend = backends.require(spec)
    if config.output is None:
        raise InputError("no output directory: pass --output DIR (or output.path in the recipe)")
    out = Path(config.output.path)
    check_destination(out, config.output.overwrite)
    if not config.data.eval and not config.data.synthetic:
        load_eval_data(config, None, None)  # raises the "no eval data" error before any work
    settings = bench_settings(config) if config.benchmark.enabled else None
    threads = settings.threads if settings else None
    pre = config.preprocessing.to_preprocessing() if config.preprocessing else None
    gate = gate_of(config)

    handle, eval_data = load_model_and_eval(config, pre, ui)
    gate.check_possible(eval_data.labels is not None)
    calib = load_calibration(config, handle, pre, spec, ui)
    model, pruning = apply_pruning(config, handle, spec, pre, ui, eval_data)
    target = spec.with_run(handle.inputs, threads)
    if spec.precision not in ("int8", "int8-dynamic") and config.quantization.model_fields_set:
        ui.warn(f"quantization settings ({', '.join(sorted(config.quantization.model_fields_set))}) are ignored: "
                f"{spec.name} is {spec.precision}; pick an INT8 target (compressor targets) to quantize")
    ctx = BuildContext(calib=calib, eval=eval_data, quant=quant_settings(config), progress=ui, task=config.model.task)

    with tempfile.TemporaryDirectory(prefix="compressor-") as tmp, BundleWriter(out, config.output.overwrite) as bundle:
        work = Path(tmp)
        (work / "artifact").mkdir()
        with ui.stage(f"built {target.name} artifact"):
            artifact = backend.build(model, target, work / "artifact", ctx)
        batch = eval_batch_size(handle.inputs)
        ref_out = reference_outputs(handle, eval_data, threads, ui)
        fidelity, art_out = validate_artifact(backend, artifact, target, handle, eval_data, ref_out, config.model.task, threads, ui)
        failures = gate.failures(fidelity) + [f for f in [gate.size_failure(artifact_size(artifact))] if f]
        if failures and not config.gate.force:
            raise GateError(f"the {target.name} artifact failed its gate ({'; '.join(failures)}): no bundle written; "
                            "relax the gate or pass --force to write it marked as failing")

        bench = eager = None
        eager_size = None
        if settings is not None:
            feeds = benchmark_feeds(eval_data, handle.inputs, settings.batch_size)
            with ui.stage(f"benchmarked {target.name} ({settings.threads} threads, batch {settings.batch_size})"):
                bench = run_isolated(target.name, artifact.path, feeds, settings)
            if config.benchmark.compare_eager:
                if target.name == REFERENCE_TARGET and pruning is None:
                    eager, eager_size = bench, artifact_size(artifact)
                else:
                    ref_spec = get_target(REFERENCE_TARGET).with_run(handle.inputs, threads)
                    (work / "reference").mkdir()
                    with ui.stage("benchmarked torch eager FP32 (the baseline)"):
                        ref_art = backends.get_backend(ref_spec.backend).build(handle, ref_spec, work / "reference")  # unpruned
                        eager = run_isolated(REFERENCE_TARGET, ref_art.path, feeds, settings)
                        eager_size = artifact_size(ref_art)

        if gate.max_memory_mb is not None:
            if bench is None:
                raise InputError("--max-memory-mb needs the benchmark (it measures memory): drop --no-benchmark")
            too_much = gate.memory_failure(bench.get("model_rss_mb"))
            if too_much and not config.gate.force:
                raise GateError(f"the {target.name} artifact is over its memory budget ({too_much}): no bundle written; "
                                "raise the budget, quantize or prune, or pass --force")
            failures += [too_much] if too_much else []
        for f in artifact.files:
            bundle.add_file(f, f.name)
        n_ref = min(config.output.reference_samples, len(eval_data))
        ref_data = eval_data.take(n_ref)
        ref_runner = backend.load(bundle.path(artifact.path.name), target, threads=threads)
        expected = run_all(ref_runner, ref_data, handle.inputs, batch)
        np.savez(bundle.path(REFERENCE_INPUTS), **{s.name: a for s, a in zip(handle.inputs, ref_data.inputs)})
        np.savez(bundle.path(REFERENCE_OUTPUTS), **{n: o for n, o in zip(handle.output_names, expected)})
        del ref_runner

        speedup = None
        if bench and eager:
            speedup = eager["latency_ms"]["p50"] / bench["latency_ms"]["p50"]
        manifest = build_manifest(config, handle, target, artifact, eval_data, calib, fidelity, failures, bench, eager, speedup,
                                  settings, art_out, n_ref, batch, ctx.warnings)
        manifest["pruning"] = pruning
        rows = []
        if eager is not None and target.name != REFERENCE_TARGET:
            ref_fid = {"accuracy": fidelity.reference_accuracy, "top1_agreement": 1.0 if fidelity.top1_agreement is not None else None,
                       "cosine_mean": 1.0, "cosine_min": 1.0, "synthetic": fidelity.synthetic}
            rows.append(row(f"{REFERENCE_TARGET} (reference)", "fp32", eager_size, ref_fid, eager, 1.0))
        rows.append(row(target.name, target.precision, manifest["artifact"]["size_bytes"], fidelity.to_dict(), bench, speedup))
        bundle.path(REPORT).write_text(bundle_report(manifest, rows))
        path = bundle.commit(manifest, tar=config.output.tar)
    if failures:
        ui.warn(f"bundle written with --force although it FAILED its gate: {'; '.join(failures)}")
    return CompressResult(path, manifest, rows)


def _output_specs(handle: ModelHandle, outputs: list[np.ndarray]) -> list[dict]:
    first = handle.inputs[0].dims[0] if handle.inputs and handle.inputs[0].dims else None
    specs = []
    for name, o in zip(handle.output_names, outputs):
        shape: list[Any] = list(o.shape)
        if shape and first is not None:
            shape[0] = first.name if first.dynamic else first.value
        specs.append({"name": name, "shape": shape, "dtype": str(o.dtype)})
    return specs


def build_manifest(config, handle, target, artifact, eval_data, calib, fidelity: Fidelity, failures, bench, eager, speedup,
                   settings, outputs, n_ref, batch, warnings) -> dict[str, Any]:
    import compressor
    build = dict(artifact.details)
    quantization = build.pop("quantization", None)

    metrics: dict[str, Any] = {"fidelity": fidelity.to_dict()}
    if bench:
        metrics.update({
            "latency_ms": bench["latency_ms"],
            "throughput_per_s": bench["throughput_per_s"],
            "peak_rss_mb": bench["peak_rss_mb"],
            "model_rss_mb": bench["model_rss_mb"],
            "load_time_s": bench["load_time_s"],
            "iterations": bench["iterations"],
        })
    if eager:
        metrics["torch_eager_latency_ms"] = eager["latency_ms"]
        metrics["speedup_vs_torch_eager"] = speedup
    size = artifact_size(artifact)
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sdk": {"name": "compressor", "version": compressor.__version__},
        "target": target.to_dict(),
        "precision": target.precision,
        "artifact": {"path": artifact.path.name, "files": [f.name for f in artifact.files], "size_bytes": size, "build": build},
        "quantization": quantization,
        "warnings": warnings,
        "inputs": [s.to_dict() for s in handle.inputs],
        "outputs": _output_specs(handle, outputs),
        "preprocessing": handle.preprocessing.to_dict() if handle.preprocessing else None,
        "source": {k: v for k, v in handle.source.items() if k != "path"},
        "data": {"eval": eval_data.to_dict(), "calibration": calib.to_dict() if calib else None, "eval_batch_size": batch},
        "gate": {**gate_of(config).to_dict(), "passed": not failures,
                 "failures": failures, "forced": bool(failures) and config.gate.force},
        "metrics": metrics,
        "benchmark": {
            "settings": settings.to_dict() if settings else None,
            "method": "fresh process per measurement; warm-up >= warmup_iters and >= warmup_s; timed until >= min_iters and >= duration_s; "
                      "latency per call of one batch; peak RSS of the benchmark process",
            "runtime": bench.get("runtime") if bench else None,
            "warmup": bench.get("warmup") if bench else None,
            "input_shapes": bench.get("input_shapes") if bench else None,
        },
        "environment": describe_environment(),
        "reference": {
            "inputs": REFERENCE_INPUTS,
            "outputs": REFERENCE_OUTPUTS,
            "samples": n_ref,
            "batch_size": batch,
            "tolerance": VERIFY_TOLERANCE,
            "produced_by": f"the {target.name} artifact itself (compressor verify re-runs it and compares)",
        },
        "recipe": config.model_dump(mode="json"),
    }


def analyze(config: RunConfig, quiet: bool = False) -> dict[str, Any]:
    """Per-layer INT8 sensitivity of a model for an INT8 target, without writing a bundle."""
    import backends

    ui = Progress(quiet)
    spec = get_target(config.target)
    if spec.precision not in ("int8", "int8-dynamic"):
        raise InputError(f"analyze needs an INT8 target (e.g. --target ort-cpu-int8), not {spec.name}")
    backend = backends.require(spec)
    pre = config.preprocessing.to_preprocessing() if config.preprocessing else None
    with ui.stage(f"loaded {Path(config.model.checkpoint).name}"):
        m = config.model
        handle = load_model(m.checkpoint, config.input_specs(), m.arch, m.arch_kwargs, m.trust_checkpoint, pre, m.output_names)
    eval_data = None
    if config.data.eval or config.data.synthetic:
        with ui.stage("read eval data"):
            eval_data = load_eval_data(config, handle, pre)
    calib = load_calibration(config, handle, pre, spec, ui)
    if eval_data is None and calib is None:
        raise InputError("analyze needs data to measure on: pass --eval DATA (and --calib DATA for static INT8)")
    settings = quant_settings(config)
    settings.sensitivity = True
    ctx = BuildContext(calib=calib, eval=eval_data, quant=settings, progress=ui, task=config.model.task)
    target = spec.with_run(handle.inputs, config.benchmark.threads)
    with tempfile.TemporaryDirectory(prefix="compressor-analyze-") as tmp:
        artifact = backend.build(handle, target, Path(tmp), ctx)
    q = artifact.details["quantization"]
    return {"target": spec.name, "model": Path(config.model.checkpoint).name, "quantization": q, "warnings": ctx.warnings}

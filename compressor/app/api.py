"""The Python API: the same runs as the CLI, through the same recipe and pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.app.recipe import build_config


def _overrides(
    checkpoint=None, arch=None, arch_kwargs=None, trust_checkpoint=None, input_shape=None, input_names=None,
    input_dtype=None, output_names=None, preprocessing=None, target=None, eval=None, eval_labels=None, eval_samples=None,
    calib=None, calib_labels=None, calib_samples=None, synthetic=None, max_accuracy_drop=None, min_agreement=None, min_cosine=None, task=None, max_size_mb=None, max_memory_mb=None,
    force=None, threads=None, batch_size=None, duration=None, iterations=None, benchmark=None, compare_eager=None,
    output=None, overwrite=None, tar=None, calibration=None, percentile=None, exclude=None, sensitivity=None,
    sensitivity_samples=None, quantizer=None, prune_ratio=None, prune_macs=None, prune_heads=None, prune_importance=None,
    prune_global=None, prune_exclude=None, round_to=None, save_pruned=None, prune_hook=None, finetune=None, finetune_labels=None,
    finetune_samples=None, finetune_epochs=None, finetune_lr=None, finetune_batch_size=None, distill=None, finetune_loss=None,
    finetune_amp=None,
) -> dict[str, Any]:
    """Map flag-style arguments to recipe fields (dotted keys). None means "not given"."""
    inputs = None
    if input_shape is not None:
        shapes = [input_shape] if isinstance(input_shape, str) else list(input_shape)
        names = list(input_names) if input_names else (["input"] if len(shapes) == 1 else [f"input_{i}" for i in range(len(shapes))])
        dtypes = [input_dtype] if isinstance(input_dtype, str) or input_dtype is None else list(input_dtype)
        if len(names) != len(shapes):
            from compressor.core.errors import InputError

            raise InputError(f"{len(shapes)} input shapes but {len(names)} input names: give one name per --input-shape")
        if len(dtypes) == 1:
            dtypes = dtypes * len(shapes)
        if len(dtypes) != len(shapes):
            from compressor.core.errors import InputError

            raise InputError(f"{len(shapes)} input shapes but {len(dtypes)} dtypes: give one --input-dtype, or one per input")
        inputs = [{"name": n, "shape": s, **({"dtype": d} if d else {})} for n, s, d in zip(names, shapes, dtypes)]
    return {
        "model.checkpoint": None if checkpoint is None else str(checkpoint),
        "model.arch": arch,
        "model.arch_kwargs": arch_kwargs,
        "model.trust_checkpoint": trust_checkpoint,
        "model.output_names": list(output_names) if output_names else None,
        "inputs": inputs,
        **{f"preprocessing.{k}": v for k, v in (preprocessing or {}).items()},
        "target": target,
        "data.eval": None if eval is None else str(eval),
        "data.eval_labels": None if eval_labels is None else str(eval_labels),
        "data.eval_samples": eval_samples,
        "data.calib": None if calib is None else str(calib),
        "data.calib_labels": None if calib_labels is None else str(calib_labels),
        "data.calib_samples": calib_samples,
        "data.synthetic": synthetic,
        "gate.max_accuracy_drop": max_accuracy_drop,
        "gate.min_agreement": min_agreement,
        "gate.min_cosine": min_cosine,
        "gate.max_size_mb": max_size_mb,
        "gate.max_memory_mb": max_memory_mb,
        "model.task": task,
        "gate.force": force,
        "benchmark.enabled": benchmark,
        "benchmark.threads": threads,
        "benchmark.batch_size": batch_size,
        "benchmark.duration": duration,
        "benchmark.iterations": iterations,
        "benchmark.compare_eager": compare_eager,
        "quantization.calibration": calibration,
        "quantization.percentile": percentile,
        "quantization.exclude": [exclude] if isinstance(exclude, str) else (list(exclude) if exclude else None),
        "quantization.sensitivity": sensitivity,
        "quantization.sensitivity_samples": sensitivity_samples,
        "quantization.quantizer": quantizer,
        "pruning.ratio": prune_ratio,
        "pruning.macs": prune_macs,
        "pruning.heads": prune_heads,
        "pruning.importance": prune_importance,
        "pruning.global_pruning": prune_global,
        "pruning.exclude": [prune_exclude] if isinstance(prune_exclude, str) else (list(prune_exclude) if prune_exclude else None),
        "pruning.round_to": round_to,
        "pruning.save": None if save_pruned is None else str(save_pruned),
        "pruning.hook": prune_hook,
        "finetune.data": None if finetune is None else str(finetune),
        "finetune.labels": None if finetune_labels is None else str(finetune_labels),
        "finetune.samples": finetune_samples,
        "finetune.epochs": finetune_epochs,
        "finetune.lr": finetune_lr,
        "finetune.batch_size": finetune_batch_size,
        "finetune.distill": distill,
        "finetune.loss": finetune_loss,
        "finetune.amp": finetune_amp,
        "output.path": None if output is None else str(output),
        "output.overwrite": overwrite,
        "output.tar": tar,
    }


def compress(checkpoint: str | Path | None = None, *, recipe: str | Path | None = None, quiet: bool = True, **options: Any):
    """Compress ``checkpoint`` for a target and write a bundle; returns a :class:`CompressResult`.

    Options are the CLI's flags with underscores (``arch``, ``input_shape``, ``target``, ``eval``,
    ``output``, ``max_accuracy_drop``, …) or a ``recipe`` file; options override recipe fields.
    ``preprocessing`` takes a dict of the recipe's preprocessing fields.
    """
    from compressor.app.compress import compress as run

    config = build_config(recipe, _overrides(checkpoint=checkpoint, **options))
    return run(config, quiet=quiet)


def verify(bundle: str | Path, threads: int | None = None) -> dict[str, Any]:
    """Re-check every file's sha256 and re-run the reference inputs; raises VerificationError on failure."""
    from compressor.bundle.verify import verify_bundle

    return verify_bundle(bundle, threads=threads)


def bench(artifact_or_bundle: str | Path, *, target: str | None = None, threads: int | None = None, batch_size: int = 1,
          duration: float = 3.0, iterations: int = 50) -> dict[str, Any]:
    """Benchmark an existing bundle or artifact file in a fresh process."""
    from compressor.app.bench_artifact import bench_existing
    from compressor.evaluation.benchmark import BenchSettings

    return bench_existing(artifact_or_bundle, BenchSettings(threads=threads, batch_size=batch_size, duration_s=duration,
                                                            min_iters=iterations), target=target)


def list_targets() -> list[dict[str, Any]]:
    """Every known target, whether it is usable on this machine, and if not, why."""
    import backends

    return [{"name": s.name, "backend": s.backend, "device": s.device, "precision": s.precision, "format": s.artifact_format,
             "usable": ok, "reason": why, "description": s.description} for s, ok, why in backends.all_targets()]

"""``compressor bench ARTIFACT_OR_BUNDLE``: benchmark something already built.

A bundle brings its target, input specs and reference inputs (real data). A bare artifact file is
matched to a target by its suffix (each backend declares the suffixes its targets open) and fed random
inputs of its own input shapes — fine for latency, which does not depend on values here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compressor.bundle.verify import manifest_inputs
from compressor.bundle.writer import open_bundle, read_manifest
from compressor.core.environment import describe_environment
from compressor.core.errors import InputError, TargetError, first_line
from compressor.core.registry import get_target, require, target_for_file
from compressor.data.sources import DataSource, synthetic_data
from compressor.evaluation.benchmark import BenchmarkSettings, run_isolated
from compressor.evaluation.session import benchmark_feeds


def bench_existing(path: str | Path, settings: BenchmarkSettings, target: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"'{path}' not found: give a bundle directory, a .tar.gz bundle, or an artifact file (.onnx, .pt2, …)")
    settings = settings.resolved()
    with tempfile.TemporaryDirectory(prefix="compressor-bench-") as tmp:
        if path.is_dir() or path.name.endswith((".tar.gz", ".tgz")):
            bundle = open_bundle(path, Path(tmp))
            manifest = read_manifest(bundle)
            spec = get_target(target or manifest["target"]["name"])
            artifact = bundle / manifest["artifact"]["path"]
            specs = manifest_inputs(manifest)
            with np.load(bundle / manifest["reference"]["inputs"]) as z:
                data = DataSource([z[s.name] for s in specs], None, "bundle reference inputs")
            feeds_from = "bundle reference inputs (real data)"
            precision = spec.precision.value
        else:
            spec = get_target(target) if target else target_for_file(path)
            artifact = path
            try:
                specs = require(spec).artifact_inputs(path)
            except Exception as e:  # noqa: BLE001 - each runtime's reader raises its own types for a file that is not its format
                raise InputError(f"'{path.name}' cannot be read as a {spec.name} artifact ({first_line(e, 120)}): it is not a valid "
                                 f"{path.suffix} file; rebuild it, or benchmark the bundle it came from") from e
            data = synthetic_data(specs, samples=settings.batch_size)
            feeds_from = "random inputs (latency only)"
            precision = "unknown (bare file: run it from its bundle to know)" if target is None else spec.precision.value
        runs, why = require(spec).runnable(spec)
        if not runs:
            raise TargetError(f"{spec.name} cannot run on this machine ({why}): benchmark it on the device")
        result = run_isolated(spec.name, artifact, benchmark_feeds(data, specs, settings.batch_size), settings).to_dict()
        size = artifact.stat().st_size
    result.update({"artifact": str(path), "precision": precision, "size_bytes": size,
                   "feeds": feeds_from, "settings": settings.to_dict(), "environment": describe_environment()})
    return result

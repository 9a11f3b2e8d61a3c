"""``compressor bench ARTIFACT_OR_BUNDLE``: benchmark something already built.

A bundle brings its target, input specs and reference inputs (real data). A bare artifact file is
matched to a target by its format (``.onnx`` → ort-cpu-fp32, ``.pt2`` → torch-cpu-fp32) and fed
random inputs of its own input shapes — fine for latency, which does not depend on values here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compressor.evaluation.benchmark import BenchSettings, run_isolated
from compressor.bundle.writer import open_bundle, read_manifest
from compressor.data.sources import DataSource, synthetic_data
from compressor.core.errors import InputError
from compressor.core.targets import get_target
from compressor.bundle.verify import manifest_inputs

_BY_SUFFIX = {".onnx": "ort-cpu-fp32", ".pt2": "torch-cpu-fp32", ".xml": "openvino-cpu-fp32", ".pte": "executorch-xnnpack-fp32", ".ort": "ort-mobile-int8"}


def bench_existing(path: str | Path, settings: BenchSettings, target: str | None = None) -> dict[str, Any]:
    import backends

    path = Path(path)
    if not path.exists():
        raise InputError(f"'{path}' not found: give a bundle directory, a .tar.gz bundle, or an artifact file (.onnx, .pt2)")
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
            precision = spec.precision
        else:
            name = target or _BY_SUFFIX.get(path.suffix)
            if name is None:
                raise InputError(f"cannot tell the target of '{path.name}' from its suffix: pass --target (known: {', '.join(_BY_SUFFIX.values())})")
            spec = get_target(name)
            artifact = path
            specs = backends.require(spec).artifact_inputs(path)
            data = synthetic_data(specs, samples=settings.batch_size)
            feeds_from = "random inputs (latency only)"
            precision = "unknown (bare file: run it from its bundle to know)" if target is None else spec.precision
        backends.require(spec)
        from compressor.app.compress import benchmark_feeds

        feeds = benchmark_feeds(data, specs, settings.batch_size)
        result = run_isolated(spec.name, artifact, feeds, settings)
        size = artifact.stat().st_size
    from compressor.core.environment import describe_environment

    result.update({"artifact": str(path), "precision": precision, "size_bytes": size,
                   "feeds": feeds_from, "settings": settings.to_dict(), "environment": describe_environment()})
    return result

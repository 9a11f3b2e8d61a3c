"""Benchmark worker: ``python -m compressor.evaluation.bench_worker REQUEST.json``; prints one JSON line.

Runs in its own process (see :mod:`compressor.benchmark`), so its memory peak is the artifact's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from compressor.core.environment import peak_rss_mb
from compressor.core.errors import first_line


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text())
    try:
        import numpy as np

        from compressor.core.registry import get_backend, get_target
        from compressor.evaluation.benchmark import BenchmarkSettings, multi_stream, summarize, time_loop

        settings = BenchmarkSettings(**request["settings"])
        spec = get_target(request["target"])
        backend = get_backend(spec.backend)
        with np.load(request["feeds"]) as z:
            feeds = {k: z[k] for k in z.files}
        backend.preload()  # the runtime's own libraries are not the model's memory
        rss_before = _rss_mb()
        t0 = time.perf_counter()
        runner = backend.load(Path(request["artifact"]), spec, threads=settings.threads)
        runner.run(feeds)  # first inference counts as part of loading (lazy initialisation)
        load_s = time.perf_counter() - t0
        rss_after_load = _rss_mb()
        lat, warm = time_loop(lambda: runner.run(feeds), settings)
        result = summarize(lat, settings.batch_size)
        if settings.streams > 1:
            result["multi_stream"] = multi_stream(runner, lambda threads: backend.load(Path(request["artifact"]), spec, threads=threads), feeds,
                                                  settings)
        device = runner.device_metrics(feeds, settings.iterations)
        if device is not None:
            result["device"] = device
        peak = peak_rss_mb()
        result.update(
            {
                "target": spec.name,
                "load_time_s": load_s,
                "warmup": warm,
                "peak_rss_mb": peak,
                "rss_before_load_mb": rss_before,
                "model_rss_mb": max(0.0, peak - rss_before),  # what loading and running the model added
                "rss_after_load_mb": rss_after_load,
                "runtime": runner.describe(),
                "threads": settings.threads,
                "batch_size": settings.batch_size,
                "input_shapes": {k: list(v.shape) for k, v in feeds.items()},
            }
        )
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        result = {"error": f"{type(e).__name__}: {first_line(e, empty='')}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

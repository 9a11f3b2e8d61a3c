"""The benchmark harness, written once for every runtime.

Each measurement runs in a fresh Python process (``compressor.bench_worker``), so one runtime's
thread pools, allocator caches and memory peak never leak into the next. Inside it: load (timed),
warm up for at least ``warmup_iters`` iterations *and* ``warmup_s`` seconds, then time iterations
until both ``min_iters`` and ``duration_s`` are reached. Latencies are per call (one batch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from compressor.core.errors import CompressorError, InputError


@dataclass
class BenchSettings:
    threads: int | None = None  # None: every usable CPU
    batch_size: int = 1
    duration_s: float = 3.0
    min_iters: int = 50
    warmup_iters: int = 10
    warmup_s: float = 0.2
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be at least 1, got {self.threads}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.duration_s <= 0:
            raise InputError(f"--duration must be positive (seconds), got {self.duration_s}")
        if self.min_iters < 1:
            raise InputError(f"--iterations must be at least 1, got {self.min_iters}")
        if self.warmup_iters < 10 or self.warmup_s < 0.2:
            raise InputError("warm-up must be at least 10 iterations and 0.2 s (--warmup)")

    def resolved(self) -> "BenchSettings":
        from compressor.core.environment import default_threads

        return BenchSettings(**{**asdict(self), "threads": self.threads or default_threads()})

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(latencies_s: list[float], batch_size: int) -> dict:
    ms = np.asarray(latencies_s) * 1000.0
    p50 = float(np.percentile(ms, 50))
    return {
        "latency_ms": {
            "p50": p50,
            "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)),
            "mean": float(ms.mean()),
            "min": float(ms.min()),
            "max": float(ms.max()),
            "std": float(ms.std()),
        },
        "iterations": int(ms.size),
        "throughput_per_s": batch_size * 1000.0 / p50 if p50 > 0 else None,
    }


def time_loop(call: Callable[[], object], settings: BenchSettings) -> tuple[list[float], dict]:
    """Warm up, then time ``call``; returns per-call latencies (s) and what the warm-up did."""
    clock = time.perf_counter
    start, n = clock(), 0
    while n < settings.warmup_iters or clock() - start < settings.warmup_s:
        call()
        n += 1
    warm = {"iterations": n, "seconds": clock() - start}
    lat: list[float] = []
    start = clock()
    while len(lat) < settings.min_iters or clock() - start < settings.duration_s:
        t0 = clock()
        call()
        lat.append(clock() - t0)
    return lat, warm


def run_isolated(target_name: str, artifact: Path, feeds: dict[str, np.ndarray], settings: BenchSettings) -> dict:
    """Benchmark ``artifact`` for ``target_name`` in a fresh process; return the worker's JSON result."""
    settings = settings.resolved()
    with tempfile.TemporaryDirectory(prefix="compressor-bench-") as tmp:
        feeds_path = Path(tmp) / "feeds.npz"
        np.savez(feeds_path, **feeds)
        request = {"target": target_name, "artifact": str(artifact), "feeds": str(feeds_path), "settings": settings.to_dict()}
        req_path = Path(tmp) / "request.json"
        req_path.write_text(json.dumps(request))
        env = dict(os.environ)
        env["OMP_NUM_THREADS"] = str(settings.threads)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH", "")] if p)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "compressor.evaluation.bench_worker", str(req_path)],
                capture_output=True, text=True, env=env, timeout=settings.timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise CompressorError(f"benchmark of {target_name} did not finish in {settings.timeout_s:.0f} s: lower --duration")
        lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
            raise CompressorError(f"benchmark worker for {target_name} failed (exit {proc.returncode}): {tail}")
        result = json.loads(lines[-1])
    if "error" in result:
        raise CompressorError(f"benchmark of {target_name} failed: {result['error']}")
    return result

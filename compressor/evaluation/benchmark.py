"""The benchmark harness, written once for every runtime.

Each measurement runs in a fresh Python process (``compressor.bench_worker``), so one runtime's
thread pools, allocator caches and memory peak never leak into the next. Inside it: load (timed),
warm up for at least ``warmup_iters`` iterations *and* ``warmup_s`` seconds, then time iterations
until both ``min_iters`` and ``duration_s`` are reached. Latencies are per call (one batch).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np

from compressor.core.errors import CompressorError
from compressor.core.options import BENCH, Settings, option


class BenchmarkSettings(Settings):
    """How every benchmark is run (recipe section ``benchmark``); the worker process receives it as it is."""

    enabled: bool = option(True, "Skip benchmarking (no latency in the manifest).", flag="--no-benchmark", negate=True, keyword="benchmark",
                           panel=BENCH)
    threads: Optional[int] = option(None, "Threads for every runtime (default: all usable CPUs).", flag="--threads", panel=BENCH, ge=1)
    batch_size: int = option(1, "Batch size for the benchmark (default 1).", flag="--batch-size", panel=BENCH, ge=1)
    duration: float = option(3.0, "Minimum timed seconds per benchmark (default 3).", flag="--duration", panel=BENCH, gt=0)
    iterations: int = option(50, "Minimum timed iterations per benchmark (default 50).", flag="--iterations", panel=BENCH, ge=1)
    warmup_iterations: int = option(10, "Warm-up iterations before timing (at least 10).", ge=10)
    warmup_seconds: float = option(0.2, "Warm-up seconds before timing (at least 0.2).", ge=0.2)
    compare_eager: bool = option(True, "Do not benchmark torch eager for the speed-up.", flag="--no-eager-baseline", negate=True,
                                 panel=BENCH)
    streams: int = option(1, "Also measure throughput with N concurrent streams (N instances of the artifact, the threads split "
                             "between them); reported apart from single-stream latency.", flag="--streams", panel=BENCH, ge=1)
    timeout: float = option(600.0, "Seconds one benchmark process may take.", gt=0)

    def resolved(self) -> BenchmarkSettings:
        """The same settings with ``threads`` decided (all usable CPUs when not given)."""
        from compressor.core.environment import default_threads

        return self.model_copy(update={"threads": self.threads or default_threads()})

    def with_batch(self, batch_size: int) -> BenchmarkSettings:
        return self.model_copy(update={"batch_size": batch_size})

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", exclude={"enabled", "compare_eager"})


@dataclass(frozen=True)
class Latency:
    """Per-call latency of one batch, in milliseconds."""

    p50: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float
    std: float


@dataclass
class BenchResult:
    """One benchmark of an artifact in its fresh process: typed from the worker's report to the manifest boundary (``to_dict``)."""

    target: str
    latency_ms: Latency
    iterations: int
    throughput_per_s: float | None
    load_time_s: float
    peak_rss_mb: float  # the benchmark process's peak (MiB)
    model_rss_mb: float  # what loading and running the model added to it (MiB)
    threads: int
    batch_size: int
    runtime: dict[str, Any] = field(default_factory=dict)  # what the runtime says it ran (providers, compiled precisions, …)
    extra: dict[str, Any] = field(default_factory=dict)  # the rest of the report (warm-up, RSS before/after load, streams, device)
    error: ClassVar[None] = None  # a BenchFailure has one

    @property
    def p50_ms(self) -> float:
        return self.latency_ms.p50

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchResult:
        names = {f.name for f in fields(cls)} - {"latency_ms", "extra"}
        return cls(latency_ms=Latency(**d["latency_ms"]), **{k: d[k] for k in names if k in d},
                   extra={k: v for k, v in d.items() if k not in names and k != "latency_ms"})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {**d.pop("extra"), **d}


@dataclass(frozen=True)
class BenchFailure:
    """A benchmark that did not finish (the worker failed, crashed or timed out): why, in one line."""

    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error}


METHOD = ("fresh process per measurement; warm-up >= warmup_iterations and >= warmup_seconds; timed until >= iterations and "
          ">= duration seconds; latency per call of one batch; peak RSS of the benchmark process")


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


def time_loop(call: Callable[[], object], settings: BenchmarkSettings) -> tuple[list[float], dict]:
    """Warm up, then time ``call``; returns per-call latencies (s) and what the warm-up did."""
    clock = time.perf_counter
    start, n = clock(), 0
    while n < settings.warmup_iterations or clock() - start < settings.warmup_seconds:
        call()
        n += 1
    warm = {"iterations": n, "seconds": clock() - start}
    lat: list[float] = []
    start = clock()
    while len(lat) < settings.iterations or clock() - start < settings.duration:
        t0 = clock()
        call()
        lat.append(clock() - t0)
    return lat, warm


def multi_stream(runner, load: Callable[[int], object], feeds: dict, settings: BenchmarkSettings) -> dict:
    """Throughput with ``settings.streams`` requests in flight: the runtime's own mode where it has one
    (``runner.throughput``: OpenVINO's THROUGHPUT hint), else that many instances run concurrently (one Python thread
    each; the runtimes release the GIL), each with its share of the threads: what a server running several requests at
    once gets."""
    import threading

    n = settings.streams
    seconds = max(settings.duration, 1.0)
    native = runner.throughput(feeds, n, seconds)
    if native is not None:
        return {"streams": n, **native, "throughput_per_s": native["calls"] * settings.batch_size / native["seconds"]}
    per = max(1, (settings.threads or 1) // n)
    runners = [load(per) for _ in range(n)]
    for r in runners:
        r.run(feeds)
    counts = [0] * n
    start = time.perf_counter()
    stop = start + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < stop:
            runners[i].run(feeds)
            counts[i] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    return {"streams": n, "threads_per_stream": per, "seconds": elapsed, "calls": sum(counts),
            "throughput_per_s": sum(counts) * settings.batch_size / elapsed,
            "method": f"{n} instances of the artifact, {per} thread(s) each, one Python thread per instance"}


def run_isolated(target_name: str, artifact: Path, feeds: dict[str, np.ndarray], settings: BenchmarkSettings) -> BenchResult:
    """Benchmark ``artifact`` for ``target_name`` in a fresh process: the worker's report."""
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
                capture_output=True, text=True, env=env, timeout=settings.timeout,
            )
        except subprocess.TimeoutExpired:
            raise CompressorError(f"benchmark of {target_name} did not finish in {settings.timeout:.0f} s: lower --duration")
        lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            raise CompressorError(f"benchmark worker for {target_name} was killed by {name}"
                                  + (" (out of memory?)" if name == "SIGKILL" else "") + ": no timing for it")
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
            raise CompressorError(f"benchmark worker for {target_name} failed (exit {proc.returncode}): {tail}")
        result = json.loads(lines[-1])
    if "error" in result:
        raise CompressorError(f"benchmark of {target_name} failed: {result['error']}")
    return BenchResult.from_dict(result)

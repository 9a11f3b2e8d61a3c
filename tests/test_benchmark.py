"""The benchmark harness's rules, on a real ONNX Runtime session in a fresh process."""

import time

import numpy as np
import pytest
from pydantic import ValidationError

from compressor.evaluation.benchmark import BenchmarkSettings, summarize, time_loop


def test_warmup_and_timing_rules():
    calls = []
    lat, warm = time_loop(lambda: (calls.append(1), time.sleep(0.001)), BenchmarkSettings(duration=0.05, iterations=7))
    assert warm["iterations"] >= 10 and warm["seconds"] >= 0.2  # at least 10 iterations and 200 ms
    assert len(lat) >= 7 and sum(lat) >= 0.04
    assert len(calls) == warm["iterations"] + len(lat)


def test_summary_percentiles():
    s = summarize([0.001 * i for i in range(1, 101)], batch_size=4)
    assert s["latency_ms"]["p50"] == pytest.approx(50.5) and s["latency_ms"]["p90"] == pytest.approx(90.1)
    assert s["throughput_per_s"] == pytest.approx(4 * 1000 / 50.5) and s["iterations"] == 100


@pytest.mark.parametrize("kw", [{"duration": 0}, {"duration": -1}, {"threads": 0}, {"batch_size": 0}, {"warmup_iterations": 3}])
def test_bad_settings(kw):
    with pytest.raises(ValidationError):
        BenchmarkSettings(**kw)


def test_isolated_run_records_threads_memory_and_runtime(tmp_path, fashion_ckpt):
    from compressor.core.backend import CompileContext
    from compressor.core.registry import get_backend, get_target
    from compressor.core.specs import InputSpec
    from compressor.data.context import RunContext
    from compressor.data.sources import synthetic_data
    from compressor.evaluation.benchmark import BenchResult, run_isolated
    from compressor.evaluation.session import EvaluationSession
    from compressor.io.loading import load_model

    from .conftest import FASHION_ARCH

    h = load_model(fashion_ckpt, [InputSpec.parse("1,1,28,28")], FASHION_ARCH)
    spec = get_target("ort-cpu-fp32").with_run(h.inputs, 1)
    with EvaluationSession(h, RunContext(eval_data=synthetic_data(h.inputs, 4))) as session:
        ir = session.variants.float_ir(session.variants.get(None, spec), spec.ir, "test")
        art = get_backend("onnxruntime").compile(h, ir, spec, tmp_path, CompileContext())
    r = run_isolated("ort-cpu-fp32", art.path, {"input": np.zeros((1, 1, 28, 28), np.float32)},
                     BenchmarkSettings(threads=1, duration=0.2, iterations=5))
    assert r.threads == 1 and r.runtime["intra_op_threads"] == 1 and r.runtime["providers"] == ["CPUExecutionProvider"]
    assert 0 < r.extra["rss_before_load_mb"] < r.peak_rss_mb < 1000  # the worker's own peak, not the parent's
    assert r.load_time_s > 0 and r.p50_ms > 0 and r.error is None
    assert BenchResult.from_dict(r.to_dict()) == r and r.to_dict()["latency_ms"]["p50"] == r.p50_ms  # typed to the manifest and back

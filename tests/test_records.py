"""Typed records up to the manifest boundary, and the one presenter every table formats its figures with."""

from __future__ import annotations

import pytest

from compressor.bundle.present import bench_cells, cell, result_cells
from compressor.core.backend import KernelReport
from compressor.core.errors import CompressorError
from compressor.evaluation.benchmark import BenchFailure, BenchResult, summarize

WORKER = {**summarize([0.010, 0.012, 0.011, 0.030], 1), "target": "ort-cpu-fp32", "load_time_s": 0.2, "peak_rss_mb": 210.0,
          "model_rss_mb": 12.5, "threads": 2, "batch_size": 1, "runtime": {"providers": ["CPUExecutionProvider"]},
          "warmup": {"iterations": 10, "seconds": 0.2}, "input_shapes": {"input": [1, 3]}}


def test_a_worker_report_is_typed_and_comes_back_unchanged_at_the_manifest():
    r = BenchResult.from_dict(WORKER)
    assert r.p50_ms == pytest.approx(11.5) and r.latency_ms.p90 > r.p50_ms and r.error is None
    assert r.extra == {"warmup": WORKER["warmup"], "input_shapes": WORKER["input_shapes"]}
    assert r.to_dict() == WORKER
    assert BenchFailure("worker killed").error == "worker killed" and BenchFailure("x").to_dict() == {"error": "x"}


def test_a_kernel_report_is_typed_and_a_plugin_mapping_is_checked():
    k = KernelReport.of({"weight_layers_total": 6, "weight_layers_int8": 5, "summary": "s", "method": "m", "int8_kernels": {"QLinearConv": 5},
                         "planned_int8_layers_running_float": ["fc"]}, "plugin")
    assert (k.weight_layers_int8, k.planned_int8_layers_running_float, k.details) == (5, ["fc"], {"int8_kernels": {"QLinearConv": 5}})
    assert k.to_dict()["int8_kernels"] == {"QLinearConv": 5} and KernelReport.of(k, "plugin") is k
    with pytest.raises(CompressorError, match="backend 'plugin' returned a kernel report without weight_layers_int8, method"):
        KernelReport.of({"weight_layers_total": 6, "summary": "s"}, "plugin")


def test_one_presenter_formats_a_figure_the_same_everywhere():
    cells = result_cells(3 * 2**20, {"accuracy": 0.91234, "top1_agreement": 0.99, "cosine_mean": 0.999991, "synthetic": True},
                         BenchResult.from_dict(WORKER), 2.5)
    assert cells["size"] == "3.0 MiB" and cells["p50 ms"] == "11.5" and cells["peak RSS"] == "210 MiB"
    assert cells["top-1"] == "0.9123 (synthetic)" and cells["speed-up vs torch"] == "2.50×" and cells["drop pts"] == "–"
    assert bench_cells(WORKER) == bench_cells(BenchResult.from_dict(WORKER))  # typed or as a manifest holds it: the same text
    assert cell("size", 812) == "812 B" and cell("p50 ms", None) == "–" and cell("p50 ms", 0.051234) == "0.05123"

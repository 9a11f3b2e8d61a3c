"""OpenVINO targets and `compressor bench MODEL --targets`: real OpenVINO, real models, real data."""

import json

import pytest

import compressor
from compressor.core.errors import TargetError

from .conftest import FASHION, FASHION_ARCH, FASHION_PRE, cli, read_manifest

FASHION_OPTS = dict(arch=FASHION_ARCH, input_shape="batch=1:64,1,28,28", preprocessing=FASHION_PRE,
                    eval=FASHION / "test_subset.npz", calib=FASHION / "calib_subset.npz")


@pytest.fixture(scope="module")
def ov_bundles(fashion_bundles):
    return {t: fashion_bundles.get(t, duration=0.3, iterations=10, sensitivity=False)
            for t in ("openvino-cpu-fp32", "openvino-cpu-bf16", "openvino-cpu-int8")}


def test_precision_is_explicit_and_recorded(ov_bundles):
    for t, want in (("openvino-cpu-fp32", "f32"), ("openvino-cpu-bf16", "bf16"), ("openvino-cpu-int8", "f32")):
        m = read_manifest(ov_bundles[t].bundle)
        ir = m["artifact"]["build"]["ir"]
        assert ir["inference_precision_hint"] == want and ir["compress_to_fp16"] is False
        assert m["benchmark"]["runtime"]["inference_precision"] == {"f32": "float32", "bf16": "bfloat16"}[want]  # read back
        assert set(m["files"]) >= {"model.xml", "model.bin"}
    fp32 = read_manifest(ov_bundles["openvino-cpu-fp32"].bundle)["artifact"]["build"]["ir"]
    assert all(k.endswith(":f32") for k in fp32["compiled_layer_precisions"])  # really f32, not silently bf16
    assert "f16" not in fp32["weights_and_constants"]
    bf16 = read_manifest(ov_bundles["openvino-cpu-bf16"].bundle)["artifact"]["build"]["ir"]
    assert all(k.endswith(":bf16") for k in bf16["compiled_layer_precisions"])


def test_int8_accuracy_and_kernels(ov_bundles):
    r = ov_bundles["openvino-cpu-int8"]
    assert r.fidelity["accuracy_drop_pp"] <= 0.3
    k = r.manifest["quantization"]["kernels"]
    assert k["weight_layers_int8"] == k["weight_layers_total"] == 6
    assert compressor.verify(r.bundle)["passed"]


def test_ir_run_with_another_precision_is_refused(ov_bundles):
    from compressor.core.registry import get_backend, get_target

    xml = ov_bundles["openvino-cpu-bf16"].bundle / "model.xml"
    with pytest.raises(TargetError, match="built for precision bf16 but is being run as fp32"):
        get_backend("openvino").load(xml, get_target("openvino-cpu-fp32"), threads=1)
    res = cli("bench", str(xml), "--target", "openvino-cpu-fp32", "--duration", "0.2", "--iterations", "5")
    assert res.returncode != 0 and "built for precision bf16" in res.stderr


def test_nncf_quantizer_alternative(tmp_path):
    r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="openvino-cpu-int8", quantizer="nncf", benchmark=False,
                            output=tmp_path / "nncf", exclude=["classifier.*"], **FASHION_OPTS)
    q = r.manifest["quantization"]
    assert q["quantizer"].startswith("nncf") and q["float_layers"] == {"classifier.1": "excluded by 'classifier.*'"}
    assert q["kernels"]["weight_layers_int8"] == 5  # the excluded classifier really runs in float
    assert r.fidelity["accuracy_drop_pp"] <= 0.5


def test_bench_all_targets_table_json_and_plot(tmp_path):
    res = cli("bench", str(FASHION / "fashion_cnn.safetensors"), "--targets", "all", "--arch", FASHION_ARCH,
              "--input-shape", "batch,1,28,28", "--scale", str(1 / 255), "--mean", "0.2860", "--std", "0.3530",
              "--eval", str(FASHION / "test_subset.npz"), "--eval-samples", "256", "--calib", str(FASHION / "calib_subset.npz"),
              "--calib-samples", "64", "--no-sensitivity", "--duration", "0.2", "--iterations", "5", "--batch-sizes", "1,4",
              "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png"))
    assert res.returncode == 0, res.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    rows = {x["target"]: x for x in r["rows"]}
    from compressor.core.registry import catalogue

    assert set(rows) == set(catalogue())  # a row for every known target
    for name in ("torch-cpu-fp32", "ort-cpu-fp32", "ort-cpu-int8", "openvino-cpu-fp32", "openvino-cpu-int8"):
        assert rows[name]["status"] == "ok" and set(rows[name]["batches"]) == {"1", "4"}
        assert rows[name]["batches"]["1"]["latency_ms"]["p50"] > 0
    assert rows["ort-cpu-int8"]["batches"]["1"]["speedup_vs_torch_eager"] > 0
    for name in ("litert-xnnpack-fp32", "litert-xnnpack-int8", "executorch-xnnpack-int8"):  # fixed-shape edge runtimes: a row
        assert rows[name]["status"] == "failed" and "fixed shapes" in rows[name]["reason"]   # that says which shape to give
    import torch

    if not torch.cuda.is_available():
        assert rows["tensorrt-gpu-fp16"]["status"] == "built" and "no NVIDIA GPU" in rows["tensorrt-gpu-fp16"]["reason"]
    assert r["settings"]["batch_sizes"] == [1, 4] and "fresh process" in r["methodology"] and r["environment"]["cpu"]
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("tensorrt-gpu-fp16", "openvino-cpu-bf16", "ort-cpu-int8"):
        assert name in res.stdout


@pytest.mark.parametrize("args, match", [
    (["--targets", "ort-cpu-fp32,magic-npu"], "unknown target 'magic-npu'"),
    (["--targets", "ort-cpu-fp32", "--duration", "0"], "duration"),
    (["--targets", "ort-cpu-fp32", "--batch-sizes", "1,x"], "--batch-sizes"),
    (["--targets", "ort-cpu-fp32", "--batch-sizes", "2"], "does not fit input"),
])
def test_bench_bad_input(args, match, tmp_path):
    res = cli("bench", str(FASHION / "fashion_cnn.safetensors"), "--arch", FASHION_ARCH, "--input-shape", "1,1,28,28",
              "--synthetic", "--json", str(tmp_path / "r.json"), *args)
    assert res.returncode != 0 and match in res.stderr, res.stderr
    assert not (tmp_path / "r.json").exists()


def test_a_failing_target_is_its_own_row(tmp_path, monkeypatch):
    """A crashed benchmark worker is reported in its row; the other targets still run."""
    import compressor.evaluation.benchmark as bm
    import compressor.evaluation.benchmarker as benchmarker_module
    from compressor.app import bench as multibench
    from compressor.app.options import overrides
    from compressor.app.recipe import build_config

    real = bm.run_isolated

    def crashing(target, *a, **k):
        if target == "ort-cpu-fp32":
            return real(target, "/nonexistent/model.onnx", *a[1:], **k)  # the worker really fails to load it
        return real(target, *a, **k)

    monkeypatch.setattr(benchmarker_module, "run_isolated", crashing)
    config = build_config(None, overrides(dict(checkpoint=FASHION / "fashion_cnn.safetensors", arch=FASHION_ARCH, input_shape="1,1,28,28",
                                               synthetic=True, duration=0.2, iterations=5)))
    r = multibench.bench_targets(config, "ort-cpu-fp32,openvino-cpu-fp32", quiet=True)
    rows = {x["target"]: x for x in r["rows"]}
    assert "error" in rows["ort-cpu-fp32"]["batches"]["1"] and "failed" in rows["ort-cpu-fp32"]["batches"]["1"]["error"]
    assert rows["openvino-cpu-fp32"]["batches"]["1"]["latency_ms"]["p50"] > 0


def test_bf16_without_hardware_support_is_unusable_not_silently_f32(monkeypatch):
    """On a CPU whose OpenVINO reports no BF16 capability the target is refused with the reason."""
    from backends import openvino as ov_backend
    from compressor.core import registry
    from compressor.core.registry import get_target

    monkeypatch.setattr(ov_backend, "cpu_capabilities", lambda: ["FP32", "INT8"])  # what such a CPU reports
    ok, why = registry.target_status(get_target("openvino-cpu-bf16"))
    assert not ok and "no bf16 support" in why and "not emulated or silently replaced" in why
    with pytest.raises(TargetError, match="cannot run on this machine"):
        registry.require(get_target("openvino-cpu-bf16"))


def test_int8_slower_than_its_float_sibling_is_flagged():
    from compressor.app import bench as multibench
    from compressor.core.progress import Progress

    def row(target, backend, precision, p50):
        return {"target": target, "backend": backend, "precision": precision, "status": "ok",
                "batches": {"1": {"latency_ms": {"p50": p50}}}}

    rows = [row("executorch-xnnpack-fp32", "executorch", "fp32", 2.9), row("executorch-xnnpack-int8", "executorch", "int8", 3.3),
            row("ort-cpu-fp32", "onnxruntime", "fp32", 3.0), row("ort-cpu-int8", "onnxruntime", "int8", 1.5)]
    multibench._slower_than_float(rows, [1], Progress(quiet=True))
    assert "SLOWER than executorch-xnnpack-fp32" in rows[1]["warnings"][0] and rows[1]["batches"]["1"]["slower_than_float"] > 1.1
    assert "warnings" not in rows[3]

"""Edge bundles: ExecuTorch XNNPACK (.pte) and ONNX Runtime Mobile (.ort), checked on this host."""

import json
import shutil

import pytest

import compressor
from compressor.core.errors import ExportError, GateError, VerificationError

from .conftest import FASHION, FASHION_ARCH, FASHION_PRE, ROOT, read_manifest

EDGE_OPTS = dict(arch=FASHION_ARCH, input_shape="1,1,28,28", preprocessing=FASHION_PRE,
                 eval=FASHION / "test_subset.npz", calib=FASHION / "calib_subset.npz", duration=0.3, iterations=10)


@pytest.fixture(scope="module")
def et_int8(fashion_bundles):
    return fashion_bundles.get("executorch-xnnpack-int8", input_shape="1,1,28,28", duration=0.3, iterations=10)


def test_executorch_int8_accuracy_delegation_size_memory(et_int8):
    f = et_int8.fidelity
    assert f["samples"] == 2000 and f["accuracy_drop_pp"] <= 0.3
    m = read_manifest(et_int8.bundle)
    b = m["artifact"]["build"]
    assert b["executorch_version"] and b["pte_size_bytes"] == (et_int8.bundle / "model.pte").stat().st_size
    d = b["delegation"]
    assert d["delegate_calls"] >= 1 and d["delegated_ops"]["convolution"] == 5 and d["portable_ops"] == {}
    assert m["quantization"]["calibration"]["method"] == "mse" and m["quantization"]["layers_int8"] == 6
    assert 0 < m["metrics"]["model_rss_mb"] < 200 and m["metrics"]["peak_rss_mb"] > m["metrics"]["model_rss_mb"]
    assert {"model.pte", "README.md", "reference/inputs.npz", "reference/outputs.npz"} <= set(m["files"])
    readme = (et_int8.bundle / "README.md").read_text()
    assert "load_method" in readme and "module.forward" in readme
    assert "Delegated to XnnpackBackend" in (et_int8.bundle / "REPORT.md").read_text()


@pytest.mark.slow  # builds the module's ExecuTorch INT8 bundle (et_int8): 30-40 s, over the fast tier's share
def test_executorch_verify_passes_then_fails_on_a_changed_byte_or_version(et_int8, tmp_path):
    assert compressor.verify(et_int8.bundle)["passed"]
    copy = tmp_path / "c"
    shutil.copytree(et_int8.bundle, copy)
    data = bytearray((copy / "model.pte").read_bytes())
    data[len(data) // 3] ^= 0x10
    (copy / "model.pte").write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="model.pte changed"):
        compressor.verify(copy)
    other = tmp_path / "v"
    shutil.copytree(et_int8.bundle, other)
    m = read_manifest(other)
    m["artifact"]["build"]["executorch_version"] = "0.0.1"
    (other / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(VerificationError, match="written by ExecuTorch 0.0.1 but this machine has ExecuTorch"):
        compressor.verify(other)


def test_executorch_fp32_and_size_ratio(et_int8, tmp_path):
    r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="executorch-xnnpack-fp32", output=tmp_path / "fp32", **EDGE_OPTS)
    assert r.fidelity["top1_agreement"] == 1.0
    assert (et_int8.bundle / "model.pte").stat().st_size <= 0.3 * (r.bundle / "model.pte").stat().st_size


def test_budgets_fail_clearly(tmp_path):
    with pytest.raises(GateError, match=r"over --max-size-mb 0.01 by 0.1\d MiB.*no bundle written"):
        compressor.compress(FASHION / "fashion_cnn.safetensors", target="executorch-xnnpack-int8", output=tmp_path / "s",
                            max_size_mb=0.01, **EDGE_OPTS)
    with pytest.raises(GateError, match="over --max-memory-mb 0.001 by"):
        compressor.compress(FASHION / "fashion_cnn.safetensors", target="executorch-xnnpack-fp32", output=tmp_path / "m",
                            max_memory_mb=0.001, **EDGE_OPTS)
    assert not list(tmp_path.iterdir())


def test_dynamic_shapes_ask_for_a_fixed_shape(tmp_path):
    with pytest.raises(ExportError, match="fixed shapes.*--input-shape 1,1,28,28"):
        compressor.compress(FASHION / "fashion_cnn.safetensors", target="executorch-xnnpack-fp32", output=tmp_path / "d",
                            **{**EDGE_OPTS, "input_shape": "batch,1,28,28"})


def test_ort_mobile_int8(tmp_path):
    r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="ort-mobile-int8", output=tmp_path / "om", **EDGE_OPTS)
    m = read_manifest(r.bundle)
    assert m["artifact"]["path"] == "model.ort" and r.fidelity["accuracy_drop_pp"] <= 0.3
    assert m["quantization"]["kernels"]["weight_layers_int8"] == 6
    assert compressor.verify(r.bundle)["passed"]
    b = compressor.bench(r.bundle / "model.ort", duration=0.2, iterations=5)
    assert b["target"] == "ort-mobile-int8" and b["latency_ms"]["p50"] > 0


def test_efficientnet_lite0_executorch_int8_fidelity(tmp_path):
    from compressor.zoo.paths import efficientnet_lite0_weights, imagenet_samples

    images = imagenet_samples()
    r = compressor.compress(efficientnet_lite0_weights(), recipe=ROOT / "examples" / "efficientnet_lite0.yaml",
                            target="executorch-xnnpack-int8", eval=images, calib=images,
                            calib_labels=ROOT / "examples" / "imagenet20_labels.txt", output=tmp_path / "e", benchmark=False)
    assert r.fidelity["top1_agreement"] >= 0.95


def test_executorch_fp16_needs_fp16_arithmetic_and_builds_where_it_has_it(tmp_path, monkeypatch):
    import compressor.core.environment as et
    from compressor.core.registry import get_backend, get_target

    spec = get_target("executorch-xnnpack-fp16")
    backend = get_backend("executorch")
    real = et.cpu_info()
    monkeypatch.setattr(et, "cpu_info", lambda: {**real, "isa": ["avx2", "avx512f"]})
    ok, why = backend.available(spec)
    assert not ok and "no fp16 arithmetic" in why and "precision.md" in why
    # on a CPU with fp16 arithmetic (an Arm device, simulated here): the program computes in fp16, IO stays float32
    monkeypatch.setattr(et, "cpu_info", lambda: {**real, "isa": ["asimd", "asimdhp"]})
    r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="executorch-xnnpack-fp16", output=tmp_path / "b",
                            benchmark=False, **{k: v for k, v in EDGE_OPTS.items() if k not in ("duration", "iterations")})
    m = read_manifest(r.bundle)
    # everything delegated but the float32 <-> float16 casts at the input and the output
    assert m["precision"] == "fp16" and m["artifact"]["build"]["delegation"]["portable_ops"] == {"dim_order_ops._to_dim_order_copy": 2}
    assert r.fidelity["cosine_min"] > 0.999 and r.fidelity["top1_agreement"] >= 0.999


# --- LiteRT (.tflite, XNNPACK delegate) ----------------------------------------------------------------------------------

def test_litert_fp32_and_int8_from_the_plan_verified_with_a_kernel_report(tmp_path):
    fp = compressor.compress(FASHION / "fashion_cnn.safetensors", target="litert-xnnpack-fp32", output=tmp_path / "fp32", **EDGE_OPTS)
    assert fp.fidelity["top1_agreement"] == 1.0
    r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="litert-xnnpack-int8", output=tmp_path / "int8", **EDGE_OPTS)
    assert r.fidelity["accuracy_drop_pp"] <= 0.3 and r.fidelity["top1_agreement"] >= 0.99
    m = read_manifest(r.bundle)
    k = m["artifact"]["build"]["kernels"]
    assert k["builtin_ops"] == {} and k["weight_ops_int8_delegated"] == k["weight_ops"] == 6  # every op on XNNPACK, in int8
    assert m["artifact"]["build"]["converter"]["weights_unfolded"] >= 6  # the int8 weights handed back as quantize(float)
    assert m["quantization"]["kernels"]["weight_layers_int8"] == 6 and m["quantization"]["calibration"]["method"] == "mse"
    assert (r.bundle / "model.tflite").stat().st_size <= 0.3 * (fp.bundle / "model.tflite").stat().st_size
    assert "Delegated to XNNPACK" in (r.bundle / "REPORT.md").read_text() and "quantize inputs" in (r.bundle / "README.md").read_text()
    assert compressor.verify(r.bundle)["passed"]
    b = compressor.bench(r.bundle / "model.tflite", duration=0.2, iterations=5)
    assert b["target"] == "litert-xnnpack-fp32" and b["latency_ms"]["p50"] > 0  # a bare .tflite opens as LiteRT


@pytest.mark.slow  # two litert-torch conversions and four timed runs: 60 s
def test_bench_targets_has_litert_rows_beside_the_others(tmp_path):
    from compressor.core.environment import fp16_problem

    res = compressor.bench_targets(FASHION / "fashion_cnn.safetensors", targets="ort-cpu-fp32,litert-xnnpack-fp32,litert-xnnpack-fp16,"
                                   "litert-xnnpack-int8", **{**EDGE_OPTS, "duration": 0.2, "iterations": 5})
    rows = {r["target"]: r for r in res["rows"]}
    for name in ("litert-xnnpack-fp32", "litert-xnnpack-int8"):
        assert rows[name]["status"] == "ok", rows[name]
        assert rows[name]["batches"]["1"]["latency_ms"]["p50"] > 0
    assert rows["litert-xnnpack-int8"]["fidelity"]["top1_agreement"] >= 0.99
    assert rows["litert-xnnpack-int8"]["size_bytes"] <= 0.3 * rows["litert-xnnpack-fp32"]["size_bytes"]
    fp16 = rows["litert-xnnpack-fp16"]
    assert fp16["status"] == "ok" if fp16_problem("x") is None else "no fp16 arithmetic" in fp16["reason"]


@pytest.mark.slow  # two litert-torch conversions: 30 s
def test_litert_fp16_weights_and_channels_last_input(tmp_path, monkeypatch):
    import compressor.core.environment as env
    from compressor.core.registry import get_backend, get_target

    real = env.cpu_info()
    monkeypatch.setattr(env, "cpu_info", lambda: {**real, "isa": ["avx2", "avx512f"]})
    ok, why = get_backend("litert").available(get_target("litert-xnnpack-fp16"))
    assert not ok and "no fp16 arithmetic" in why and "litert-xnnpack-fp32" in why
    monkeypatch.setattr(env, "cpu_info", lambda: {**real, "isa": ["asimd", "asimdhp"]})  # an Arm CPU with fp16 arithmetic
    opts = {k: v for k, v in EDGE_OPTS.items() if k not in ("duration", "iterations", "calib")}
    fp16 = compressor.compress(FASHION / "fashion_cnn.safetensors", target="litert-xnnpack-fp16", output=tmp_path / "h", benchmark=False, **opts)
    b = read_manifest(fp16.bundle)["artifact"]["build"]
    assert b["converter"]["fp16_weights"] and b["kernels"]["delegated_ops"]["DEQUANTIZE"] == 6 and b["kernels"]["builtin_ops"] == {}
    assert fp16.fidelity["top1_agreement"] == 1.0 and fp16.fidelity["cosine_min"] > 0.9999
    nhwc = compressor.compress(FASHION / "fashion_cnn.safetensors", target="litert-xnnpack-fp32", input_layout="nhwc",
                               output=tmp_path / "c", benchmark=False, **opts)
    m = read_manifest(nhwc.bundle)
    assert m["artifact"]["build"]["layout"] == "NHWC" and m["recipe"]["build"]["input_layout"] == "nhwc"
    from ai_edge_litert.interpreter import Interpreter

    assert list(Interpreter(model_path=str(nhwc.bundle / "model.tflite")).get_input_details()[0]["shape"]) == [1, 28, 28, 1]
    assert nhwc.fidelity["top1_agreement"] == 1.0 and "NHWC" in (nhwc.bundle / "README.md").read_text()
    assert compressor.verify(nhwc.bundle)["passed"]  # fed N,C,H,W from the stored inputs: the runner transposes
    assert (fp16.bundle / "model.tflite").stat().st_size < 0.55 * (nhwc.bundle / "model.tflite").stat().st_size


def test_efficientnet_lite0_litert_int8_converts_and_agrees(tmp_path):
    """litert-torch's own PT2E flow fails on EfficientNet-Lite0 ("non-NHWC compatible node … dequantize_per_tensor"); the
    SDK's plan (ReLU6 folded into the conv's output quantization, strict export) converts."""
    from compressor.zoo.paths import efficientnet_lite0_weights, imagenet_samples

    images = imagenet_samples()
    r = compressor.compress(efficientnet_lite0_weights(), recipe=ROOT / "examples" / "efficientnet_lite0.yaml",
                            target="litert-xnnpack-int8", eval=images, calib=images,
                            calib_labels=ROOT / "examples" / "imagenet20_labels.txt", output=tmp_path / "e", benchmark=False)
    assert r.fidelity["top1_agreement"] >= 0.95 and r.fidelity["cosine_mean"] > 0.98


def test_litert_needs_its_converter_environment_and_names_a_failing_op(monkeypatch, tmp_path):
    from backends.litert import _named
    from compressor.core.registry import get_backend, get_target

    monkeypatch.setenv("COMPRESSOR_LITERT_PYTHON", str(tmp_path / "missing" / "python"))
    ok, why = get_backend("litert").available(get_target("litert-xnnpack-fp32"))
    assert not ok and "make setup" in why and ".venv-litert" in why
    line = _named("ValueError: Attempting to convert non-NHWC compatible node to NHWC: dequantize_per_tensor")
    assert "op 'dequantize_per_tensor'" in line and "--exclude" in line and "litert-xnnpack-fp32" in line

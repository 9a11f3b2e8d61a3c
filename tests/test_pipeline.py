"""The main job end to end through the Python API: real model, real data, real ONNX Runtime."""

import json

import numpy as np
import onnx
import pytest

import compressor
from compressor.core.errors import GateError, InputError, VerificationError

from .conftest import FASHION, FASHION_ARCH, FAST_BENCH, read_manifest

REQUIRED = {"schema_version", "target", "precision", "files", "inputs", "outputs", "preprocessing", "source", "metrics", "environment"}
FIDELITY = {"top1_agreement", "cosine_mean", "cosine_min", "max_abs_error", "accuracy", "reference_accuracy", "synthetic"}


@pytest.fixture(scope="module")
def fashion_bundle(fashion_bundles):
    return fashion_bundles.get("ort-cpu-fp32", calib=None, max_accuracy_drop=0.1, tar=True, **FAST_BENCH)


def test_fashion_ort_fp32_keeps_real_accuracy(fashion_bundle):
    f = fashion_bundle.fidelity
    assert f["samples"] == 2000 and not f["synthetic"]
    trained = json.loads((FASHION / "training.json").read_text())
    assert f["reference_accuracy"] == pytest.approx(trained["test_accuracy_subset"], abs=1e-4)  # the committed model, reproduced
    assert f["reference_accuracy"] > 0.9
    assert f["top1_agreement"] == 1.0 and f["accuracy"] == f["reference_accuracy"]
    assert f["cosine_min"] > 0.99999 and f["max_abs_error"] < 1e-3


def test_manifest_has_every_field(fashion_bundle):
    m = read_manifest(fashion_bundle.bundle)
    assert REQUIRED <= set(m)
    assert FIDELITY <= set(m["metrics"]["fidelity"])
    assert {"p50", "p90", "p99", "mean"} <= set(m["metrics"]["latency_ms"])
    assert m["metrics"]["throughput_per_s"] > 0 and m["metrics"]["peak_rss_mb"] > 0 and m["metrics"]["load_time_s"] > 0
    assert m["metrics"]["speedup_vs_torch_eager"] > 0
    assert m["target"]["name"] == "ort-cpu-fp32" and m["precision"] == "fp32"
    assert set(m["files"]) == {"model.onnx", "reference/inputs.npz", "reference/outputs.npz", "REPORT.md", "report.html"}
    page = (fashion_bundle.bundle / "report.html").read_text()
    assert page.count("<svg") >= 1 and "torch-cpu-fp32 (reference)" in page and "ort-cpu-fp32" in page  # the same figures as `report`
    assert m["inputs"][0]["shape"] == ["batch", 1, 28, 28] and m["outputs"][0]["shape"] == ["batch", 10]
    assert m["preprocessing"]["mean"] == [0.2860]
    assert m["source"]["file"] == "fashion_cnn.safetensors" and len(m["source"]["sha256"]) == 64
    env = m["environment"]
    assert env["cpu"]["usable_cpus"] >= 1 and "onnxruntime" in env["libraries"] and "torch" in env["libraries"]
    assert m["benchmark"]["settings"]["threads"] >= 1 and m["benchmark"]["warmup"]["iterations"] >= 10
    assert m["gate"] == {"max_accuracy_drop": 0.1, "min_agreement": None, "min_cosine": None, "max_size_mb": None,
                         "max_memory_mb": None, "max_latency_ms": None,
                         "max_perplexity_increase": None, "passed": True, "failures": [], "forced": False}
    assert "ort-cpu-fp32" in (fashion_bundle.bundle / "REPORT.md").read_text()


def test_export_is_clean_and_dynamic(fashion_bundle):
    m = read_manifest(fashion_bundle.bundle)
    build = m["artifact"]["build"]
    assert build["batchnorm_remaining"] == 0 and "BatchNormalization" not in build["ops"]
    model = onnx.load(str(fashion_bundle.bundle / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    import onnxruntime as ort

    s = ort.InferenceSession(str(fashion_bundle.bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    for b in (1, 5):
        assert s.run(None, {"input": np.zeros((b, 1, 28, 28), np.float32)})[0].shape == (b, 10)


def test_verify_passes_then_fails_on_one_changed_byte(fashion_bundle, tmp_path):
    import shutil

    assert compressor.verify(fashion_bundle.bundle)["passed"]
    assert compressor.verify(str(fashion_bundle.bundle) + ".tar.gz")["passed"]
    copy = tmp_path / "copy"
    shutil.copytree(fashion_bundle.bundle, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="model.onnx changed"):
        compressor.verify(copy)


def test_verify_catches_drifted_outputs(fashion_bundle, tmp_path):
    """Outputs that no longer match (recorded values edited and the manifest re-signed) fail verification."""
    import shutil

    from compressor.io.loading import sha256_file

    copy = tmp_path / "drift"
    shutil.copytree(fashion_bundle.bundle, copy)
    with np.load(copy / "reference/outputs.npz") as z:
        outs = {k: z[k] + 0.5 for k in z.files}
    np.savez(copy / "reference/outputs.npz", **outs)
    m = read_manifest(copy)
    m["files"]["reference/outputs.npz"] = sha256_file(copy / "reference/outputs.npz")
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(VerificationError, match="drifted"):
        compressor.verify(copy)


def test_gate_failure_writes_nothing_and_force_writes_a_marked_bundle(tmp_path):
    import torch

    from .models_for_tests import diverges_when_exported

    torch.save(diverges_when_exported().state_dict(), tmp_path / "d.pth")
    np.savez(tmp_path / "e.npz", x=np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32))
    common = dict(arch="tests.models_for_tests:diverges_when_exported", input_shape="batch,16", eval=tmp_path / "e.npz",
                  min_agreement=0.9, benchmark=False)
    with pytest.raises(GateError, match="agreement .* below 0.9.*no bundle written"):
        compressor.compress(tmp_path / "d.pth", output=tmp_path / "b", **common)
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.tmp-*"))
    r = compressor.compress(tmp_path / "d.pth", output=tmp_path / "b", force=True, **common)
    m = read_manifest(r.bundle)
    assert not r.passed and m["gate"]["passed"] is False and m["gate"]["forced"] is True and m["gate"]["failures"]
    assert "FAILED" in (r.bundle / "REPORT.md").read_text()


def test_accuracy_gate_needs_labels(tmp_path, fashion_ckpt):
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((8, 1, 28, 28), np.float32))
    with pytest.raises(GateError, match="needs labelled eval data.*--min-agreement"):
        compressor.compress(fashion_ckpt, arch=FASHION_ARCH, input_shape="1,1,28,28", eval=tmp_path / "nolabels.npz",
                            max_accuracy_drop=0.5, output=tmp_path / "o", benchmark=False)
    assert not (tmp_path / "o").exists()


def test_synthetic_is_marked_everywhere(tmp_path, fashion_ckpt):
    r = compressor.compress(fashion_ckpt, arch=FASHION_ARCH, input_shape="1,1,28,28", synthetic=True,
                            output=tmp_path / "s", benchmark=False)
    assert r.fidelity["synthetic"] is True and read_manifest(r.bundle)["data"]["eval"]["synthetic"] is True
    assert "synthetic" in (r.bundle / "REPORT.md").read_text()


def test_no_eval_data_is_refused(tmp_path, fashion_ckpt):
    with pytest.raises(InputError, match="--synthetic"):
        compressor.compress(fashion_ckpt, arch=FASHION_ARCH, input_shape="1,1,28,28", output=tmp_path / "x", benchmark=False)


def test_torch_target_and_multi_input_model(tmp_path):
    """Two inputs (int64 ids + floats), two outputs, dynamic batch, through both implemented targets."""
    import torch

    from .models_for_tests import two_inputs

    torch.save(two_inputs().state_dict(), tmp_path / "t.pth")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "e.npz", ids=rng.integers(0, 100, (20, 12)), feats=rng.standard_normal((20, 8)).astype(np.float32))
    for target in ("ort-cpu-fp32", "torch-cpu-fp32"):
        r = compressor.compress(tmp_path / "t.pth", arch="tests.models_for_tests:two_inputs", input_shape=["batch,12", "batch,8"],
                                input_names=["ids", "feats"], input_dtype=["int64", "float32"], eval=tmp_path / "e.npz",
                                target=target, output=tmp_path / target, min_agreement=1.0, **FAST_BENCH)
        m = read_manifest(r.bundle)
        assert [o["name"] for o in m["outputs"]] == ["output_0", "output_1"]
        assert r.fidelity["top1_agreement"] == 1.0 and r.fidelity["cosine_min"] > 0.9999
        assert compressor.verify(r.bundle)["passed"]
        # a bare artifact file (no manifest): its inputs, names included, are read from the file itself
        b = compressor.bench(r.bundle / m["artifact"]["path"], batch_size=3, duration=0.2, iterations=5)
        assert b["input_shapes"] == {"ids": [3, 12], "feats": [3, 8]} and b["latency_ms"]["p50"] > 0


def test_existing_output_is_refused_before_any_work(tmp_path, fashion_ckpt):
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputError, match="already exists.*--overwrite"):
        compressor.compress(fashion_ckpt, arch=FASHION_ARCH, input_shape="1,1,28,28", synthetic=True, output=tmp_path / "exists")

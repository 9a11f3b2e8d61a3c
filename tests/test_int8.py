"""INT8 post-training quantization: calibration maths, the plan, QDQ layout, real models end to end."""

import json

import numpy as np
import pytest

import compressor
from compressor.core.errors import DataError, InputError
from compressor.quantization.calibrate import BINS, Observation, choose_range, quant_params
from compressor.quantization.qdq import quantize_weight

from .conftest import FASHION, FASHION_ARCH, FASHION_PRE, ROOT, read_manifest

FASHION_INT8 = dict(arch=FASHION_ARCH, input_shape="batch=1:64,1,28,28", preprocessing=FASHION_PRE,
                    eval=FASHION / "test_subset.npz", calib=FASHION / "calib_subset.npz")


def _obs(x: np.ndarray) -> Observation:
    o = Observation(float(x.min()), float(x.max()))
    o.hist = np.histogram(np.abs(x), bins=BINS, range=(0, o.absmax))[0].astype(float)
    return o


def test_calibration_methods_on_a_distribution_with_outliers():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.abs(rng.standard_normal(100_000)), [40.0]])  # one far outlier
    o = _obs(x)
    assert choose_range(o, "minmax") == (0.0, 40.0)
    for method in ("percentile", "entropy"):
        lo, hi = choose_range(o, method)
        assert lo == 0.0 and 2.0 < hi < 10.0, (method, hi)  # the outlier is clipped, the bulk kept
    # MSE weighs the squared error of clipping: one far outlier costs more than coarser steps, so it stays;
    # on a heavy-tailed bulk (Laplace) it clips the sparse tail
    assert choose_range(o, "mse")[1] > 30
    lap = _obs(rng.laplace(size=200_000))
    lo, hi = choose_range(lap, "mse")
    assert lap.lo < lo < 0 < hi <= lap.hi and max(-lo, hi) < 0.8 * lap.absmax
    with pytest.raises(InputError, match="unknown calibration method"):
        choose_range(o, "magic")


def test_ranges_always_hold_zero_and_uint8_params():
    o = _obs(np.linspace(2.0, 5.0, 1000))
    lo, hi = choose_range(o, "minmax")
    assert lo == 0.0 and hi == 5.0
    q = quant_params("t", -1.0, 3.0, "uint8", "minmax")
    assert q.zero_point == round(1.0 / q.scale) and abs(q.scale - 4.0 / 255) < 1e-7


def test_per_channel_symmetric_weights_in_onnx_range():
    w = np.random.default_rng(0).standard_normal((8, 4, 3, 3)).astype(np.float32)
    w[3] *= 100
    q, s = quantize_weight(w, 0)
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127 and s.shape == (8,)
    err = np.abs(q * s[:, None, None, None] - w).max(axis=(1, 2, 3))
    assert np.all(err <= s / 2 + 1e-6)  # rounding error only, per channel


@pytest.fixture(scope="module")
def fashion_int8(fashion_bundles):
    return fashion_bundles.get("ort-cpu-int8", max_accuracy_drop=0.3, duration=0.3, iterations=10)


def test_fashion_int8_keeps_accuracy_within_0_3_points(fashion_int8):
    f = fashion_int8.fidelity
    assert f["samples"] == 2000 and f["accuracy_drop_pp"] <= 0.3 and f["top1_agreement"] > 0.99
    assert fashion_int8.passed


def test_fashion_int8_manifest_tells_the_truth(fashion_int8):
    m = read_manifest(fashion_int8.bundle)
    q = m["quantization"]
    assert m["precision"] == "int8" and q["mode"] == "static" and q["activation_dtype"] == "uint8"
    assert q["calibration"]["method"] == "mse" and q["calibration"]["samples"] == 128
    k = q["kernels"]
    assert k["weight_layers_int8"] == k["weight_layers_total"] == 6 and k["heavy_ops_float"] == 0
    assert k["int8_kernels"] == {"QGemm": 1, "QLinearConv": 5}
    assert "quantization_plan.json" in m["files"]
    plan = json.loads((fashion_int8.bundle / "quantization_plan.json").read_text())
    assert all(l["weight"]["granularity"] == "per_channel" for l in plan["layers"])
    assert len(q["sensitivity"]["layers_alone"]) == 6
    report = (fashion_int8.bundle / "REPORT.md").read_text()
    assert "## Quantization" in report and "Per-layer sensitivity" in report
    assert compressor.verify(fashion_int8.bundle)["passed"]
    # smaller and faster than the float model measured in the same run
    assert m["metrics"]["speedup_vs_torch_eager"] > 1


def test_exclusions_keep_layers_float_and_say_so(tmp_path):
    r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="ort-cpu-int8", output=tmp_path / "x", benchmark=False,
                            sensitivity=False, exclude=["classifier.*", "re:^nothing$"], **FASHION_INT8)
    q = r.manifest["quantization"]
    assert q["float_layers"] == {"classifier.1": "excluded by 'classifier.*'"}
    assert q["kernels"]["weight_layers_int8"] == 5 and q["kernels"]["float_heavy_kernels"]
    assert any("'re:^nothing$' matches no quantizable layer" in w for w in r.manifest["warnings"])


def test_dynamic_int8_on_a_cnn_keeps_convs_float_and_says_why(tmp_path):
    r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="ort-cpu-int8-dynamic", output=tmp_path / "d",
                            benchmark=False, sensitivity=False, **{**FASHION_INT8, "calib": None})
    q = r.manifest["quantization"]
    assert q["layers_int8"] == 1 and all("dynamic quantization covers MatMul/Gemm" in why for why in q["float_layers"].values())
    assert r.fidelity["top1_agreement"] > 0.99


def test_unsupported_weighted_op_stays_float_by_name(tmp_path):
    import torch

    from .models_for_tests import with_deconv

    torch.save(with_deconv().state_dict(), tmp_path / "d.pth")
    np.savez(tmp_path / "c.npz", x=np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32))
    r = compressor.compress(tmp_path / "d.pth", arch="tests.models_for_tests:with_deconv", input_shape="batch,1,8,8",
                            target="ort-cpu-int8", eval=tmp_path / "c.npz", calib=tmp_path / "c.npz", task="other",
                            output=tmp_path / "o", benchmark=False, sensitivity=False)
    q = r.manifest["quantization"]
    assert "does not quantize ConvTranspose" in q["float_layers"]["up"]
    assert q["kernels"]["weight_layers_int8"] == 2


@pytest.mark.parametrize("case, error, match", [
    ("no_calib", InputError, "needs calibration data: pass --calib"),
    ("few_calib", DataError, "at least 10"),
    ("bad_calib_shape", DataError, "calibration data .* expects"),
    ("no_layers", InputError, "no quantizable layers"),
    ("all_excluded", InputError, "nothing would be INT8"),
])
def test_bad_quantization_input(case, error, match, tmp_path):
    opts = dict(FASHION_INT8)
    ckpt = FASHION / "fashion_cnn.safetensors"
    if case == "no_calib":
        opts["calib"] = None
    elif case == "few_calib":
        with np.load(FASHION / "calib_subset.npz") as z:
            np.savez(tmp_path / "few.npz", x=z["x"][:5])
        opts["calib"] = tmp_path / "few.npz"
    elif case == "bad_calib_shape":
        np.savez(tmp_path / "bad.npz", x=np.zeros((20, 3, 28, 28), np.float32))
        opts["calib"] = tmp_path / "bad.npz"
    elif case == "no_layers":
        import torch

        torch.save({}, tmp_path / "empty.pth")
        ckpt = tmp_path / "empty.pth"
        opts.update(arch="tests.models_for_tests:no_weights", task="other")
    elif case == "all_excluded":
        opts["exclude"] = ["type:Conv2d", "type:Linear"]
    with pytest.raises(error, match=match):
        compressor.compress(ckpt, target="ort-cpu-int8", output=tmp_path / "o", benchmark=False, sensitivity=False, **opts)
    assert not (tmp_path / "o").exists()


def test_efficientnet_lite0_int8_fidelity(tmp_path):
    from compressor.zoo.paths import efficientnet_lite0_weights, imagenet_samples

    images = imagenet_samples()
    r = compressor.compress(efficientnet_lite0_weights(), recipe=ROOT / "examples" / "efficientnet_lite0.yaml", target="ort-cpu-int8",
                            eval=images, calib=images, calib_labels=ROOT / "examples" / "imagenet20_labels.txt",
                            output=tmp_path / "e", benchmark=False, sensitivity=False)
    f = r.fidelity
    assert f["top1_agreement"] >= 0.95 and f["accuracy"] == f["reference_accuracy"]
    assert r.manifest["quantization"]["kernels"]["weight_layers_int8"] == r.manifest["quantization"]["kernels"]["weight_layers_total"]
    fp32_size = 4 * 4.65e6
    assert r.manifest["artifact"]["size_bytes"] < 0.27 * fp32_size


@pytest.mark.slow
def test_minilm_dynamic_int8_embeddings(tmp_path):
    from compressor.zoo.minilm import weights_path

    r = compressor.compress(weights_path(), arch="compressor.zoo.minilm:minilm_l6", input_shape=["batch,seq=1:256", "batch,seq=1:256"],
                            input_names=["input_ids", "attention_mask"], input_dtype="int64", task="embedding",
                            eval="compressor.zoo.lee:sentences", target="ort-cpu-int8-dynamic", min_cosine=0.98,
                            output=tmp_path / "m", benchmark=False, sensitivity_samples=4)
    f = r.fidelity
    assert f["cosine_mean"] >= 0.98 and f["top1_agreement"] is None and f["accuracy"] is None
    q = r.manifest["quantization"]
    # 30 linears run INT8 kernels; the 6 fed by GELU keep int8 weights with a float product (by design, reported)
    assert q["kernels"]["weight_layers_int8"] == 30 and q["kernels"]["weight_layers_total"] == 36
    assert sorted(q["layers_int8_weight_only"]) == [f"encoder.layer.{i}.output.dense" for i in range(6)]
    assert "embeddings.word_embeddings" not in q["float_layers"] and not q["kernels"]["planned_int8_layers_running_float"]
    assert r.manifest["artifact"]["size_bytes"] < 0.27 * 4 * 22.7e6
    assert q["sensitivity"]["layers_alone"][0]["layer"].startswith("encoder.layer.")


def test_analyze_command_lists_layers(tmp_path):
    from .conftest import cli

    res = cli("analyze", str(FASHION / "fashion_cnn.safetensors"), "--arch", FASHION_ARCH, "--input-shape", "batch,1,28,28",
              "--scale", str(1 / 255), "--mean", "0.2860", "--std", "0.3530", "--calib", str(FASHION / "calib_subset.npz"),
              "--eval", str(FASHION / "test_subset.npz"), "--json", str(tmp_path / "a.json"))
    assert res.returncode == 0, res.stderr
    assert "classifier.1" in res.stdout and "features.0.0" in res.stdout
    a = json.loads((tmp_path / "a.json").read_text())
    assert len(a["quantization"]["sensitivity"]["layers_alone"]) == 6
    res = cli("analyze", str(FASHION / "fashion_cnn.safetensors"), "--arch", FASHION_ARCH, "--input-shape", "batch,1,28,28",
              "--synthetic", "--target", "ort-cpu-fp32")
    assert res.returncode != 0 and "needs an INT8 target" in res.stderr

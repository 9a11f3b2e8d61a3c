"""The core stages: one calibration serves every INT8 target of a run, each target's realiser takes the
plan's ranges, and sensitivity is measured on the target's own runtime by `compressor analyze`."""

from __future__ import annotations

import json

import pytest

import compressor

from .conftest import FASHION, FASHION_ARCH, FASHION_PRE, cli

FIXED = ["--arch", FASHION_ARCH, "--input-shape", "1,1,28,28", "--scale", str(1 / 255), "--mean", "0.2860", "--std", "0.3530",
         "--eval", str(FASHION / "test_subset.npz"), "--eval-samples", "256", "--calib", str(FASHION / "calib_subset.npz")]
INT8_TARGETS = ("ort-cpu-int8", "openvino-cpu-int8", "executorch-xnnpack-int8")


@pytest.mark.slow
def test_three_int8_targets_calibrate_once(tmp_path):
    res = cli("bench", str(FASHION / "fashion_cnn.safetensors"), "--targets", ",".join(INT8_TARGETS), *FIXED, "--no-sensitivity",
              "--duration", "0.2", "--iterations", "5", "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    calibrations = [line for line in res.stderr.splitlines() if "calibrated" in line]
    assert len(calibrations) == 1 and "calibrated 128 samples (mse)" in calibrations[0], calibrations
    rows = {r["target"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    for t in INT8_TARGETS:
        assert rows[t]["status"] == "ok" and rows[t]["int8_layers"]["weight_layers_int8"] == 6, rows[t]
        assert rows[t]["fidelity"]["top1_agreement"] >= 0.99
    pt2e = rows["executorch-xnnpack-int8"]["quantization"]["pt2e"]
    assert pt2e["ranges_from_plan"] == pt2e["observers"] > 0 and pt2e["calibrated_in_pt2e"] == 0  # every range is the plan's


@pytest.mark.slow
@pytest.mark.parametrize("target, extra", [(t, []) for t in INT8_TARGETS] + [("openvino-cpu-int8", ["--quantizer", "nncf"])])
def test_analyze_measures_on_the_targets_own_runtime(target, extra, tmp_path):
    res = cli("analyze", str(FASHION / "fashion_cnn.safetensors"), *FIXED, "--target", target, *extra, "--json", str(tmp_path / "a.json"))
    assert res.returncode == 0, res.stderr
    s = json.loads((tmp_path / "a.json").read_text())["quantization"]["sensitivity"]
    assert s["runtime"].startswith(target) and len(s["layers_alone"]) == 6
    assert {d["layer"] for d in s["layers_alone"]} == {"features.0.0", "features.1.0", "features.3.0", "features.4.0", "features.6.0",
                                                        "classifier.1"}
    assert all(d["loss"] > 1e-9 for d in s["layers_alone"])  # each layer alone really was quantized on that runtime
    assert "per-layer sensitivity" in res.stdout and "classifier.1" in res.stdout and f"run on {target}" in res.stdout


def test_executorch_exclusion_keeps_the_layer_float(tmp_path):
    r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="executorch-xnnpack-int8", arch=FASHION_ARCH, input_shape="1,1,28,28",
                            preprocessing=FASHION_PRE, eval=FASHION / "test_subset.npz", eval_samples=256, calib=FASHION / "calib_subset.npz",
                            exclude=["features.1.0"], benchmark=False, sensitivity=False, output=tmp_path / "b")
    q = r.manifest["quantization"]
    assert q["float_layers"] == {"features.1.0": "excluded by 'features.1.0'"}
    assert q["kernels"]["weight_layers_int8"] == 5 and q["kernels"]["weight_layers_total"] == 6  # read back from the lowered program
    assert r.fidelity["accuracy_drop_pp"] <= 0.5

"""Quantization-aware training: one training run feeds the ONNX Runtime, OpenVINO and ExecuTorch INT8 artifacts, each of
which computes what the fake-quantized model computes; bad input gets one line and nothing written."""

import json

import numpy as np
import pytest
import torch

from compressor.quantization.plan import LayerQuant, QuantPlan, TensorQuant, WeightQuant
from compressor.quantization.qat import instrument
from compressor.quantization.qdq import quantize_weight

from .conftest import FASHION, FASHION_ARCH, cli, cli_in_process, fashion_args, one_line_error

FIXED = ["--arch", FASHION_ARCH, "--input-shape", "1,1,28,28", "--scale", str(1 / 255), "--mean", "0.2860", "--std", "0.3530"]
QAT = ["--qat", "--qat-epochs", "1", "--finetune", str(FASHION / "finetune_subset.npz"), "--finetune-samples", "800",
       "--qat-lr", "1e-4"]


def test_one_qat_run_feeds_every_int8_target(tmp_path, fashion_ckpt, fashion_small):
    out = tmp_path / "bench.json"
    res = cli("bench", str(fashion_ckpt), *FIXED, "--eval", str(fashion_small), "--calib", str(FASHION / "calib_subset.npz"),
              "--targets", "ort-cpu-int8,openvino-cpu-int8,executorch-xnnpack-int8", *QAT, "--duration", "0.2", "--iterations", "5",
              "--json", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("QAT epoch 1/1") == 1, res.stderr  # trained once, realised three times
    rows = {r["target"]: r for r in json.loads(out.read_text())["rows"]}
    for target in ("ort-cpu-int8", "openvino-cpu-int8", "executorch-xnnpack-int8"):
        r = rows[target]
        assert r["status"] == "ok", r
        qat = r["quantization"]["qat"]
        assert qat["layers_simulated"] == 6 and qat["batchnorm_folded"] == 5 and qat["epochs_run"] == 1
        assert r["quantization"]["calibration"]["qat"]["learned_tensors"] > 0
        # the exported artifact computes what the model was trained as
        agree = qat["artifact_vs_fake_quant"]
        assert agree["top1_agreement"] >= 0.98 and agree["cosine_mean"] >= 0.999, (target, agree)
        assert qat["fake_quant_vs_fp32"]["top1_agreement"] >= 0.97
        assert r["fidelity"]["accuracy_drop_pp"] < 1.5
        kernels = r["int8_layers"]
        assert kernels and kernels.get("planned_int8_layers_running_float") in (None, []), (target, kernels)


def test_fake_quant_matches_the_realised_weights_and_ranges():
    """The simulation's weight grid is the realiser's, and a folded ReLU is what a [0, hi] output range computes."""
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    w = conv[0].weight.detach().numpy()
    _, scales = quantize_weight(w, 0)
    plan = QuantPlan("static", "uint8", "int8", {"method": "mse"},
                     [LayerQuant("0", "conv", "Conv", "Conv2d", "int8", weight=WeightQuant("per_channel", 0, "int8", True, list(scales)),
                                 inputs=["x"], output="y")],
                     activations={"x": TensorQuant("x", "uint8", 4 / 255, 128, (-2.0, 2.0), "mse"),
                                  "y": TensorQuant("y", "uint8", 3 / 255, 0, (0.0, 3.0), "mse")})
    model, quantizers, roles, done = instrument(conv, plan, (torch.randn(1, 3, 8, 8),))
    assert done["layers_simulated"] == 1 and set(roles) == {"x", "y"}
    with torch.no_grad():
        fq_w = model[0].weight.numpy()
        q, s = quantize_weight(w, 0)
        np.testing.assert_allclose(fq_w, q * s.reshape(-1, 1, 1, 1), rtol=0, atol=1e-6)
        x = torch.randn(2, 3, 8, 8)
        out = model[0](x)  # conv with its input and output quantizers: no ReLU applied yet
    assert float(out.min()) >= 0.0 and float(out.max()) <= 3.0 + 1e-6  # the folded ReLU and the range clip
    levels = np.unique(np.round(out.numpy() / (3 / 255), 3))
    assert np.allclose(levels, np.round(levels)), "outputs lie on the uint8 grid"


@pytest.mark.parametrize("extra, target, needles", [
    (["--qat"], "ort-cpu-int8", ("--qat needs training data", "--finetune")),
    (QAT, "ort-cpu-int8-dynamic", ("--qat", "static INT8")),
    (QAT, "ort-cpu-fp32", ("--qat", "static INT8")),
    ([*QAT, "--quantizer", "nncf"], "openvino-cpu-int8", ("--qat cannot be combined with --quantizer nncf",)),
])
def test_qat_bad_input(extra, target, needles, tmp_path, fashion_ckpt, fashion_small):
    out = tmp_path / "b"
    res = cli(*fashion_args(fashion_ckpt, fashion_small, out, "--target", target, "--calib", str(FASHION / "calib_subset.npz"),
                            "--no-benchmark", *extra))
    one_line_error(res, *needles)
    assert not out.exists()


AUTO = ["--target", "ort-cpu-int8", "--calib", str(FASHION / "calib_subset.npz"), "--auto-precision", "--duration", "0.3",
        "--iterations", "10"]


def test_auto_precision_returns_sensitive_layers_to_float_until_the_gate_passes(tmp_path, fashion_ckpt, fashion_subset):
    out = tmp_path / "b"
    res = cli(*fashion_args(fashion_ckpt, fashion_subset, out, *AUTO, "--min-cosine", "0.99999"))
    assert res.returncode == 0, res.stderr
    m = json.loads((out / "manifest.json").read_text())
    ap = m["quantization"]["auto_precision"]
    steps = ap["steps"]
    assert steps[0]["label"].startswith("all layers INT8") and steps[0]["float_layers"] == []
    assert not steps[0]["passed"], "the gate is set above what all-INT8 reaches on this model"
    chosen = steps[ap["chosen_step"] - 1]
    assert chosen["passed"] and chosen["chosen"] and m["gate"]["passed"]
    assert m["metrics"]["fidelity"]["cosine_mean"] >= 0.99999
    # float layers in the order measured on the target's runtime, with why; the plan says so too
    ranking = [d["layer"] for d in ap["sensitivity_ranking"]]
    assert chosen["float_layers"] == ranking[:len(chosen["float_layers"])]
    assert set(ap["float_layers"]) == set(chosen["float_layers"]) and all("rank" in why for why in ap["float_layers"].values())
    assert set(chosen["float_layers"]) <= set(m["quantization"]["float_layers"])
    assert all(s["p50_ms"] > 0 for s in steps) and ap["fp32_target"] == "ort-cpu-fp32" and ap["fp32_p50_ms"] > 0
    assert (out / "auto_precision.png").stat().st_size > 10_000
    assert "### Auto precision" in (out / "REPORT.md").read_text()


def test_auto_precision_bad_input(tmp_path, fashion_ckpt, fashion_small):
    out = tmp_path / "b"
    one_line_error(cli_in_process(*fashion_args(fashion_ckpt, fashion_small, out, *AUTO)), "--auto-precision needs an accuracy gate")
    assert not out.exists()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("quantization:\n  auto_precision_steps: 2\n")
    line = one_line_error(cli_in_process(*fashion_args(fashion_ckpt, fashion_small, out, *AUTO, "--min-cosine", "0.999995", "--recipe", str(recipe))),
                          "no plan of ort-cpu-int8 met the gate", "at best")
    assert "2 plans measured" in line and "--force" in line  # the steps it may take
    assert not out.exists()
    line = one_line_error(cli_in_process(*fashion_args(fashion_ckpt, fashion_small, out, *AUTO, "--min-cosine", "1.0")), "no plan of ort-cpu-int8")
    assert "1 plans measured" in line and "ort-cpu-fp32 itself fails the gate" in line  # float layers cannot beat the float model
    assert not out.exists()


def test_learned_ranges_reach_tensors_tied_to_them():
    """A reshape or pooling output shares its producer's scale in the plan: a learned range must move both."""
    from compressor.quantization.qat import QatResult

    plan = QuantPlan("static", "uint8", "int8", {"method": "mse"}, [LayerQuant("fc", "n", "Gemm", "Linear", "int8", inputs=["x"], output="y")],
                     activations={"x": TensorQuant("x", "uint8", 4 / 255, 128, (-2.0, 2.0), "mse"),
                                  "y": TensorQuant("y", "uint8", 3 / 255, 0, (0.0, 3.0), "mse"),
                                  "y_view": TensorQuant("y_view", "uint8", 3 / 255, 0, (0.0, 3.0), "same as y")})
    out = QatResult(None, None, {"fc|input": (-1.0, 1.0), "fc|output": (0.0, 6.0)}).apply(plan)
    assert out.activations["x"].range == (-1.0, 1.0) and out.activations["y"].scale == pytest.approx(6 / 255)
    assert out.activations["y_view"].scale == out.activations["y"].scale and out.activations["y_view"].method == "same as y"
    assert plan.activations["y"].scale == pytest.approx(3 / 255), "the original plan is not changed"

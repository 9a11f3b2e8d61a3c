"""PTQ that survives activation outliers: cross-layer equalization, scale migration and bias correction, on a
model with real outlier channels (the bundled Fashion-MNIST CNN made into one by
examples/fashion_mnist/make_outlier_model.py: same function, a few channels 64x wider)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import compressor
from compressor.quantization.equalize import transform

from .conftest import FASHION, FASHION_ARCH, FASHION_PRE

OUTLIERS = FASHION / "fashion_cnn_outliers.safetensors"
OPTS = dict(arch=FASHION_ARCH, input_shape="1,1,28,28", preprocessing=FASHION_PRE, eval=FASHION / "test_subset.npz",
            calib=FASHION / "calib_subset.npz", benchmark=False, sensitivity=False, force=True)


def _batches(n=4):
    with np.load(FASHION / "calib_subset.npz") as z:
        x = ((z["x"][: n * 16].astype(np.float32) / 255.0) - 0.2860) / 0.3530
    return [(torch.from_numpy(x[i * 16:(i + 1) * 16]),) for i in range(n)]


def test_equalization_keeps_the_function_and_narrows_the_outliers():
    from compressor.core.specs import InputSpec
    from compressor.io.loading import load_model

    h = load_model(OUTLIERS, [InputSpec.parse("1,1,28,28")], FASHION_ARCH)
    model, report = transform(h.module, h.example_inputs(for_export=True), _batches(), equalization=True, migration=False)
    assert model is not h.module and len(report.batchnorm_folded) == 5
    assert {(e["first"], e["second"]) for e in report.equalized} == {
        ("features.0.0", "features.1.0"), ("features.1.0", "features.3.0"), ("features.3.0", "features.4.0"),
        ("features.4.0", "features.6.0"), ("features.6.0", "classifier.1")}
    assert all(e["spread_before"] > 30 and e["spread_after"] < 3 for e in report.equalized)
    with torch.no_grad():
        x = _batches(8)
        diff = max(float((h.module(*b) - model(*b)).abs().max()) for b in x)
    assert diff < 1e-4 and report.max_abs_output_change < 1e-4  # the FP32 function is unchanged


def test_a_balanced_model_is_left_as_it_is():
    from compressor.core.specs import InputSpec
    from compressor.io.loading import load_model

    h = load_model(FASHION / "fashion_cnn.safetensors", [InputSpec.parse("1,1,28,28")], FASHION_ARCH)
    model, report = transform(h.module, h.example_inputs(for_export=True), _batches(), equalization=True, migration=True)
    assert model is h.module and not report.changed  # nothing measured to help: nothing changed
    assert all("not narrow" in s["reason"] for s in report.skipped)


@pytest.mark.slow
def test_outlier_model_int8_within_one_point_on_every_runtime_and_at_least_as_good_as_nncf(tmp_path):
    drops = {}
    for target, quantizer in [("ort-cpu-int8", "sdk"), ("openvino-cpu-int8", "sdk"), ("executorch-xnnpack-int8", "sdk"),
                              ("openvino-cpu-int8", "nncf")]:
        r = compressor.compress(OUTLIERS, target=target, quantizer=quantizer, output=tmp_path / f"{target}-{quantizer}", **OPTS)
        drops[(target, quantizer)] = r.fidelity["accuracy_drop_pp"]
        if quantizer == "sdk":
            eq = r.manifest["quantization"]["transforms"]["equalization"]
            assert eq["applied"] and eq["phase"] == "float" and len(eq["equalized"]) == 5
            assert r.manifest["quantization"]["kernels"]["weight_layers_int8"] == 6  # still every layer INT8
    nncf = drops.pop(("openvino-cpu-int8", "nncf"))
    for key, drop in drops.items():
        assert drop <= 1.0, (key, drop)
        assert drop <= nncf, (key, drop, nncf)
    report = (tmp_path / "ort-cpu-int8-sdk" / "REPORT.md").read_text()
    assert "Equalized `features.0.0` → `features.1.0`" in report and "the FP32 function is unchanged" in report


def test_switches_and_what_the_plan_records(tmp_path):
    off = compressor.compress(OUTLIERS, target="ort-cpu-int8", equalize=False, scale_migration=False, output=tmp_path / "off", **OPTS)
    assert off.fidelity["accuracy_drop_pp"] > 5  # the outliers, unequalized, cost points
    assert not off.manifest["quantization"]["transforms"]  # no pass ran, none is recorded
    on = compressor.compress(OUTLIERS, target="ort-cpu-int8", bias_correction=True, output=tmp_path / "on", **OPTS)
    transforms = on.manifest["quantization"]["transforms"]
    assert list(transforms) == ["equalization", "bias_correction"]  # the pipeline's order: float passes, then plan passes
    bc = transforms["bias_correction"]
    assert bc["layers"] == 6 and "output_mse_after" in bc and bc["phase"] == "plan"
    import json

    plan = json.loads((on.bundle / "quantization_plan.json").read_text())
    corrected = [l for l in plan["layers"] if l["bias_correction"] is not None]
    assert (len(corrected) == 6) == bc["applied"]


def test_scale_migration_keeps_the_function_and_lowers_the_int8_error():
    """A post-LN block as in BERT: the LayerNorm feeds the Linear and the residual, so the scale goes into the Linear."""
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(32)
            self.fc = nn.Linear(32, 32)

        def forward(self, x):
            y = self.norm(x)
            return self.fc(y) + y

    m = Block().eval()
    with torch.no_grad():
        m.norm.weight[[3, 17]] = 40.0  # two outlier channels, as transformers grow them
    batches = [(torch.randn(8, 16, 32),) for _ in range(4)]
    ref = [m(*b) for b in batches]
    smoothed, report = transform(m, batches[0], batches, equalization=False, migration=True)
    assert report.migrated and report.migrated[0]["layers"] == ["fc"] and report.migrated[0]["into"] == "a multiply before the layer"
    assert report.migrated[0]["error_after"] < 0.5 * report.migrated[0]["error_before"]
    with torch.no_grad():
        assert max(float((r - smoothed(*b)).abs().max()) for r, b in zip(ref, batches)) < 1e-3

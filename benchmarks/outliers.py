"""Outliers suite: PTQ with cross-layer equalization, scale migration and bias correction, before and after.

1. The Fashion-MNIST CNN with outlier channels (examples/fashion_mnist/make_outlier_model.py: same function, a
   few activation channels 64x wider): INT8 accuracy drop on ONNX Runtime, OpenVINO and ExecuTorch with the
   transforms (the default) and without them (--no-equalize --no-scale-migration), beside NNCF's default
   quantization of the same model with the same calibration data.
2. Models PTQ already handled (no regression): the bundled Fashion-MNIST CNN (2,000 test images) and
   EfficientNet-Lite0 (20 ImageNet images), before and after, on the three runtimes.
3. all-MiniLM-L6-v2 with static INT8 of every Linear (what OpenVINO/ExecuTorch/TensorRT run for transformers):
   embedding cosine with and without scale migration; and the dynamic INT8 target, which the transforms leave alone.
4. Bias correction (opt-in, --bias-correction): the same models with it.

Accuracy only (no timing): ``.venv/bin/python benchmarks/outliers.py``. Writes results/outliers.json and .md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EFFNET_OPTS, FASHION, run_suite, say  # noqa: E402

import compressor  # noqa: E402
from compressor.zoo.minilm import weights_path as minilm_weights  # noqa: E402
from compressor.zoo.paths import efficientnet_lite0_weights, imagenet_samples  # noqa: E402

RUNTIMES = ("ort-cpu-int8", "openvino-cpu-int8", "executorch-xnnpack-int8")
FASHION_FIXED = dict(arch="compressor.zoo.fashion_cnn:fashion_cnn", input_shape="1,1,28,28",
                     preprocessing={"scale": 1 / 255, "mean": [0.2860], "std": [0.3530]},
                     eval=FASHION / "test_subset.npz", calib=FASHION / "calib_subset.npz")
OFF = dict(equalize=False, scale_migration=False)
COMMON = dict(benchmark=False, sensitivity=False, force=True)


def _fid(r) -> dict:
    f = r.fidelity
    t = r.manifest["quantization"].get("transforms") or {}  # one record per compression pass that ran
    eq = t.get("equalization") or {}
    return {"accuracy": f["accuracy"], "reference_accuracy": f["reference_accuracy"], "accuracy_drop_pp": f["accuracy_drop_pp"],
            "top1_agreement": f["top1_agreement"], "cosine_mean": f["cosine_mean"], "equalized_pairs": len(eq.get("equalized", [])),
            "migrated_groups": len(eq.get("migrated", [])), "bias_correction": (t.get("bias_correction") or {}).get("applied")}


def fashion(tmp: Path, ckpt: Path, name: str, with_nncf: bool) -> dict:
    out = {}
    for t in RUNTIMES:
        for label, extra in (("before", OFF), ("after", {}), ("after + bias correction", {"bias_correction": True})):
            say(f"{name}: {t}, {label}")
            out[f"{t} | {label}"] = _fid(compressor.compress(ckpt, target=t, output=tmp / f"{name}-{t}-{len(out)}", **FASHION_FIXED,
                                                             **COMMON, **extra))
    if with_nncf:
        say(f"{name}: NNCF")
        out["openvino-cpu-int8 | NNCF default"] = _fid(compressor.compress(ckpt, target="openvino-cpu-int8", quantizer="nncf",
                                                                           output=tmp / f"{name}-nncf", **FASHION_FIXED, **COMMON))
    return out


def effnet(tmp: Path) -> dict:
    images = imagenet_samples()
    out = {}
    for t in RUNTIMES:
        for label, extra in (("before", OFF), ("after", {}), ("after + bias correction", {"bias_correction": True})):
            say(f"efficientnet-lite0: {t}, {label}")
            opts = {**EFFNET_OPTS, "eval": images, "calib": images}
            out[f"{t} | {label}"] = _fid(compressor.compress(efficientnet_lite0_weights(), target=t, output=tmp / f"eff-{len(out)}",
                                                             **opts, **COMMON, **extra))
    return out


def minilm(tmp: Path) -> dict:
    opts = dict(arch="compressor.zoo.minilm:minilm_l6", input_shape=["batch,seq=1:256", "batch,seq=1:256"],
                input_names=["input_ids", "attention_mask"], input_dtype="int64", task="embedding", eval="compressor.zoo.lee:sentences",
                calib="compressor.zoo.lee:background_sentences", **COMMON)
    out = {}
    for t, label, extra in (("ort-cpu-int8", "static, before", OFF), ("ort-cpu-int8", "static, after (scale migration)", {}),
                            ("ort-cpu-int8-dynamic", "dynamic (transforms not applied)", {})):
        say(f"minilm: {t}, {label}")
        r = compressor.compress(minilm_weights(), target=t, output=tmp / f"minilm-{len(out)}", **opts, **extra)
        out[f"{t} | {label}"] = _fid(r)
    return out


def sections(tmp: Path, args) -> dict:
    return {"outlier_fashion": lambda: fashion(tmp, FASHION / "fashion_cnn_outliers.safetensors", "fashion-outliers", True),
            "fashion": lambda: fashion(tmp, FASHION / "fashion_cnn.safetensors", "fashion", False),
            "efficientnet_lite0": lambda: effnet(tmp), "minilm": lambda: minilm(tmp)}


def _table(rows: dict, cosine: bool = False) -> list[str]:
    head = "| runtime | quantization | top-1 | drop (points) | top-1 agreement | cosine | equalized pairs | migrated groups | bias correction |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for key, v in rows.items():
        rt, label = key.split(" | ")
        acc = "–" if v["accuracy"] is None else f"{v['accuracy']:.4f}"
        drop = "–" if v["accuracy_drop_pp"] is None else f"{v['accuracy_drop_pp']:.2f}"
        agree = "–" if v["top1_agreement"] is None else f"{v['top1_agreement']:.4f}"
        lines.append(f"| {rt} | {label} | {acc} | {drop} | {agree} | {v['cosine_mean']:.4f} | {v['equalized_pairs']} | "
                     f"{v['migrated_groups']} | {v['bias_correction'] or '–'} |")
    return lines


def markdown(res: dict) -> str:
    env = res["environment"]
    lines = [f"# Outliers suite — {res['date'][:10]}", "",
             f"Machine: {env['cpu']['model']}, {env['cpu']['usable_cpus']} usable CPUs. Accuracy and fidelity only. \"before\" = "
             "`--no-equalize --no-scale-migration`; \"after\" = the defaults (each transform kept only where exact and measured to help); "
             "bias correction is opt-in (`--bias-correction`).", "",
             "## Fashion-MNIST CNN with outlier channels (2,000 test images; calibrated on 512 training images)", ""]
    lines += _table(res["outlier_fashion"])
    lines += ["", "## Bundled Fashion-MNIST CNN (no outliers): no regression", ""] + _table(res["fashion"])
    lines += ["", "## EfficientNet-Lite0 (real weights, 20 ImageNet images; calibrated on the same images)", ""] + _table(res["efficientnet_lite0"])
    lines += ["", "## all-MiniLM-L6-v2, Lee corpus sentences (embedding cosine with FP32)", ""] + _table(res["minilm"])
    lines += ["", "## Notes", "",
              "- Equalization applies where it is exact and narrows an activation's channel spread at least 1.5×: on the outlier "
              "model, all five conv→conv/linear pairs (through ReLU, max and average pooling); on the bundled CNN none (spreads "
              "below 2 stay as they are); EfficientNet-Lite0 joins its layers by ReLU6, which does not commute with a scale.",
              "- Bias correction raises every runtime's output cosine on EfficientNet-Lite0, and moves its one near-tie image "
              "(the two top FP32 logits 0.05 apart) across the boundary on ONNX Runtime and ExecuTorch (and back on OpenVINO): "
              "with 20 images, that is 5 points of top-1. It is not exact, so it is opt-in.",
              "- Static INT8 of every Linear of MiniLM (attention scores, softmax and LayerNorm stay float) loses much more "
              "than the dynamic target; scale migration recovers part of it. The dynamic target is what this SDK offers for "
              "transformers on CPU."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_suite("outliers", __doc__.splitlines()[0], sections, markdown)

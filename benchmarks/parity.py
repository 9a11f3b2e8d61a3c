"""Parity suite: do ONNX Runtime, OpenVINO and ExecuTorch compute the same INT8 plan the same way? (EfficientNet-Lite0, the demo)

One evaluation session (one plan, one calibration) realised for ort-cpu-int8, openvino-cpu-int8 and executorch-xnnpack-int8,
on the demo's 20 ImageNet images (calibrated on the same images, as the demo does). For each runtime: agreement and cosine
with FP32; for each pair of runtimes: how far their outputs are from each other; for each image: FP32's margin between its
top two classes, and which runtimes change its top-1. Also the plan's own arithmetic (the QDQ model run by ONNX Runtime
with every graph optimisation off), so a runtime's departure from the plan is told apart from INT8's own error.

Accuracy only: ``.venv/bin/python benchmarks/parity.py``. Writes results/parity.json and .md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EFFNET_OPTS, run_suite, say  # noqa: E402

from compressor.app.options import overrides  # noqa: E402
from compressor.app.recipe import build_config  # noqa: E402
from compressor.app.session import open_session  # noqa: E402
from compressor.core.progress import Progress  # noqa: E402
from compressor.evaluation.session import Candidate  # noqa: E402
from compressor.zoo.paths import efficientnet_lite0_weights, imagenet_samples  # noqa: E402

TARGETS = ("ort-cpu-int8", "openvino-cpu-int8", "executorch-xnnpack-int8")


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _plan_arithmetic(qdq_path: Path, data) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(qdq_path), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[None]})[0] for x in data.inputs[0]])


def sections(tmp: Path, args) -> dict:
    images = str(imagenet_samples())
    opts = {k: v for k, v in EFFNET_OPTS.items() if k != "recipe"}
    config = build_config(EFFNET_OPTS["recipe"], overrides({"checkpoint": efficientnet_lite0_weights(), **opts, "eval": images,
                                                             "calib": images, "sensitivity": False}))
    out: dict = {"runtimes": {}, "pairs": {}, "images": []}
    with open_session(config, Progress(quiet=True), calibrate=True) as session:
        ref = session.reference_outputs()[0]
        labels = session.eval_data.labels
        candidates = [Candidate(t) for t in TARGETS]
        session.prepare(candidates)
        outs = {}
        for c in candidates:
            say(f"effnet-lite0: {c.target}")
            r = session.evaluate(c, benchmark=False, raise_errors=True)
            outs[c.target] = r.outputs[0]
            if c.target == "ort-cpu-int8":
                outs["plan arithmetic (QDQ, no ORT fusion)"] = _plan_arithmetic(r.artifact.path, session.eval_data)
    top2 = np.sort(ref, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    for name, o in outs.items():
        out["runtimes"][name] = {"top1_agreement": float((o.argmax(1) == ref.argmax(1)).mean()),
                                 "accuracy": float((o.argmax(1) == labels).mean()) if labels is not None else None,
                                 "cosine_mean": float(_cos(ref, o).mean()), "cosine_min": float(_cos(ref, o).min()),
                                 "logit_error_rms": float(np.sqrt(np.mean((o - ref) ** 2)))}
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            out["pairs"][f"{a} vs {b}"] = {"cosine_mean": float(_cos(outs[a], outs[b]).mean()),
                                           "logit_difference_rms": float(np.sqrt(np.mean((outs[a] - outs[b]) ** 2))),
                                           "top1_agreement": float((outs[a].argmax(1) == outs[b].argmax(1)).mean())}
    for k in np.argsort(margin):
        out["images"].append({"image": int(k), "fp32_top2_margin": float(margin[k]),
                              "flipped_by": [n for n, o in outs.items() if o[k].argmax() != ref[k].argmax()],
                              "int8_margin": {n: float(np.sort(o[k])[-1] - np.sort(o[k])[-2]) for n, o in outs.items()}})
    out["typical_int8_logit_error_rms"] = float(np.median([v["logit_error_rms"] for v in out["runtimes"].values()]))
    return out


def markdown(res: dict) -> str:
    env = res["environment"]
    lines = [f"# INT8 parity across runtimes — {res['date'][:10]}", "",
             f"CPU: {env['cpu']['model']}. EfficientNet-Lite0, the demo's 20 ImageNet images (calibrated on the same images), one "
             "plan realised for each runtime.", "", "| runtime | top-1 agreement | top-1 | cosine mean / min | logit error (RMS) |",
             "|---|---|---|---|---|"]
    for n, v in res["runtimes"].items():
        acc = "–" if v["accuracy"] is None else f"{v['accuracy']:.2f}"
        lines.append(f"| {n} | {v['top1_agreement']:.2f} | {acc} | {v['cosine_mean']:.4f} / {v['cosine_min']:.4f} | {v['logit_error_rms']:.3f} |")
    lines += ["", "| pair | cosine mean | logit difference (RMS) | top-1 agreement |", "|---|---|---|---|"]
    for n, v in res["pairs"].items():
        lines.append(f"| {n} | {v['cosine_mean']:.4f} | {v['logit_difference_rms']:.3f} | {v['top1_agreement']:.2f} |")
    lines += ["", "Images by FP32's margin between its two top classes (the five closest calls):", "",
              "| image | FP32 top-2 margin | top-1 changed by |", "|---|---|---|"]
    for im in res["images"][:5]:
        lines.append(f"| {im['image']} | {im['fp32_top2_margin']:.3f} | {', '.join(im['flipped_by']) or '–'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_suite("parity", __doc__.splitlines()[0], sections, markdown)

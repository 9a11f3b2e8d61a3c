"""Per-layer INT8 sensitivity tables (QDQ simulation) of the Fashion-MNIST CNN (256 eval samples) and resnet50 (random
weights, seed 0; the 100 ImageNet samples of `compressor.zoo.paths imagenet-samples` as calibration and eval data), written
as JSON: run it from two checkouts and compare, to show that a change left the tables as they were.

    .venv/bin/python benchmarks/sensitivity_tables.py OUT.json [--compare OTHER.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tables() -> dict:
    import torch
    import torchvision

    import compressor

    fashion = ROOT / "examples" / "fashion_mnist"
    out = {}
    t0 = time.time()
    out["fashion"] = compressor.analyze(fashion / "fashion_cnn.safetensors", arch="compressor.zoo.fashion_cnn:fashion_cnn",
                                        input_shape="1,1,28,28", preprocessing={"scale": 1 / 255, "mean": [0.2860], "std": [0.3530]},
                                        eval=fashion / "test_subset.npz", eval_samples=256, calib=fashion / "calib_subset.npz",
                                        target="ort-cpu-int8", sensitivity_on="simulation")
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet50().state_dict(), Path(tmp) / "resnet50.pth")
        images = subprocess.run([sys.executable, "-m", "compressor.zoo.paths", "imagenet-samples"], capture_output=True, text=True,
                                check=True).stdout.strip()
        out["resnet50"] = compressor.analyze(Path(tmp) / "resnet50.pth", arch="torchvision:resnet50", input_shape="1,3,224,224",
                                             calib=images, eval=images, target="ort-cpu-int8", sensitivity_on="simulation")
    out["seconds"] = round(time.time() - t0, 1)
    return out


def compare(a: dict, b: dict) -> list[str]:
    lines = []
    for model in ("fashion", "resnet50"):
        sa, sb = a[model]["quantization"]["sensitivity"], b[model]["quantization"]["sensitivity"]
        rows = [[(d["layer"], d["loss"], d.get("top1_agreement"), d.get("cosine_mean")) for d in s["layers_alone"]] for s in (sa, sb)]
        same = rows[0] == rows[1] and sa["all_quantized"] == sb["all_quantized"] and sa["all_quantized_worst_sqnr"] == sb["all_quantized_worst_sqnr"]
        lines.append(f"{model}: {len(rows[0])} layers, {'identical' if same else 'DIFFERENT'} (per-layer loss, agreement and cosine; "
                     "the all-INT8 row; the worst SQNRs)")
    return lines


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--compare", type=Path)
    a = p.parse_args()
    result = tables()
    a.out.write_text(json.dumps(result, default=str, indent=1))
    if a.compare:
        print("\n".join(compare(json.loads(a.compare.read_text()), result)))


if __name__ == "__main__":
    main()

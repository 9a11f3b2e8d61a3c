"""Foundation suite: ONNX Runtime FP32 against torch eager, measured by the SDK's own pipeline.

For each model, `compressor.compress` builds the ort-cpu-fp32 bundle and benchmarks it and the torch
eager reference (each in a fresh process, same threads, same batch, same real input) within one run;
the speed-up is the ratio measured in that run. Repeated ``--repeats`` times; medians reported.
Also times ``compressor --help``. Writes ``results/foundation.json`` and ``results/foundation.md``.

    .venv/bin/python benchmarks/foundation.py [--repeats 3] [--duration 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import compressor  # noqa: E402
from compressor.core.environment import describe_environment  # noqa: E402
from compressor.zoo.efficientnet_lite import PREPROCESSING  # noqa: E402
from compressor.zoo.paths import efficientnet_lite0_weights, imagenet_samples  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def resnet18_case(tmp: Path) -> dict:
    import torch
    import torchvision

    torch.manual_seed(0)
    ckpt = tmp / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), ckpt)
    from compressor.core.specs import InputSpec, Preprocessing
    from compressor.data.sources import load_data

    # real images (the 20 ImageNet samples, torchvision preprocessing) saved as .npz eval data
    spec = [InputSpec.parse("1,3,224,224")]
    pre = Preprocessing(resize=256, crop=224, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    ds = load_data(str(imagenet_samples()), spec, pre, labels_file=str(ROOT / "examples/imagenet20_labels.txt"))  # selects the 20 images
    np.savez(tmp / "imagenet20.npz", x=ds.inputs[0])  # no labels: random weights have no accuracy to report
    return {"name": "resnet18 (random weights)", "checkpoint": ckpt, "arch": "torchvision:resnet18",
            "input_shape": "1,3,224,224", "eval": tmp / "imagenet20.npz"}


def effnet_case() -> dict:
    return {"name": "efficientnet-lite0 (ImageNet weights)", "checkpoint": efficientnet_lite0_weights(),
            "arch": "compressor.zoo.efficientnet_lite:efficientnet_lite0", "input_shape": "1,3,224,224",
            "eval": imagenet_samples(), "eval_labels": ROOT / "examples/imagenet20_labels.txt", "preprocessing": PREPROCESSING}


def help_time(repeats: int = 5) -> float:
    exe = Path(sys.executable).parent / "compressor"
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([str(exe), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for case in (resnet18_case(tmp), effnet_case()):
            runs = []
            for i in range(args.repeats):
                name = case["name"]
                print(f"{name}: pass {i + 1}/{args.repeats}", flush=True)
                opts = {k: v for k, v in case.items() if k not in ("name", "checkpoint")}
                r = compressor.compress(case["checkpoint"], target="ort-cpu-fp32", output=tmp / f"b{len(rows)}-{i}",
                                        duration=args.duration, iterations=100, quiet=False, **opts)
                m = r.metrics
                runs.append({"ort_p50_ms": m["latency_ms"]["p50"], "torch_p50_ms": m["torch_eager_latency_ms"]["p50"],
                             "ratio_ort_over_torch": m["latency_ms"]["p50"] / m["torch_eager_latency_ms"]["p50"],
                             "top1_agreement": r.fidelity["top1_agreement"], "accuracy": r.fidelity["accuracy"],
                             "reference_accuracy": r.fidelity["reference_accuracy"]})
            rows.append({"model": case["name"], "runs": runs,
                         "median_ratio_ort_over_torch": statistics.median(x["ratio_ort_over_torch"] for x in runs),
                         "median_ort_p50_ms": statistics.median(x["ort_p50_ms"] for x in runs),
                         "median_torch_p50_ms": statistics.median(x["torch_p50_ms"] for x in runs),
                         "top1_agreement": runs[0]["top1_agreement"], "accuracy": runs[0]["accuracy"]})
    result = {
        "suite": "foundation",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "method": f"compressor.compress per pass; ORT and torch eager each benchmarked in a fresh process within the same pass; "
                  f"batch 1, all usable CPUs as threads, >= {args.duration} s and >= 100 timed iterations after >= 10 iterations / 0.2 s warm-up; "
                  f"{args.repeats} passes, medians",
        "models": rows,
        "cli_help_seconds_median": help_time(),
        "environment": describe_environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "foundation.json").write_text(json.dumps(result, indent=2) + "\n")
    env = result["environment"]["cpu"]
    lines = [f"# Foundation suite — {result['date'][:10]}", "",
             f"Machine: {env['model']}, {env['usable_cpus']} usable CPUs, ISA {', '.join(env['isa'])}. {result['method']}.", "",
             "| model | torch eager p50 ms | ORT FP32 p50 ms | ORT / torch (median of per-pass ratios) | top-1 agreement | top-1 |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        acc = "–" if r["accuracy"] is None else f"{r['accuracy']:.2f}"
        lines.append(f"| {r['model']} | {r['median_torch_p50_ms']:.2f} | {r['median_ort_p50_ms']:.2f} | {r['median_ratio_ort_over_torch']:.2f} | "
                     f"{r['top1_agreement']:.2f} | {acc} |")
    lines += ["", f"`compressor --help`: {result['cli_help_seconds_median']:.2f} s (median of 5)", ""]
    (RESULTS / "foundation.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

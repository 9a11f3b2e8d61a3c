"""GPU check: TensorRT FP16/INT8 engines beside torch CUDA FP16 eager, on one NVIDIA GPU, in under 10 minutes.

For resnet50 (random weights, seed 0) and EfficientNet-Lite0 (real weights, the 20 ImageNet images), one
``compressor bench`` run each over torch-gpu-fp16, tensorrt-gpu-fp16 and tensorrt-gpu-int8 (INT8 calibrated on the
20 images), batch 1: every engine is built for the local GPU, validated against the FP32 PyTorch reference, and
benchmarked in a fresh process (end-to-end p50/p90/p99, plus host→device copy, compute and device→host copy timed
apart with CUDA events, and GPU memory). Needs only what `make setup` installs, and the GPU.

    .venv/bin/python benchmarks/gpu_check.py [--duration 3]
Writes results/gpu_check.json and results/gpu_check.md; refuses to run without a GPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EFFNET_OPTS, run_suite, say, torchvision_case  # noqa: E402

import compressor  # noqa: E402
from compressor.zoo.paths import efficientnet_lite0_weights, imagenet_samples  # noqa: E402

TARGETS = "torch-gpu-fp16,tensorrt-gpu-fp16,tensorrt-gpu-int8"


def _rows(res: dict) -> dict:
    out = {}
    for r in res["rows"]:
        b = (r.get("batches") or {}).get("1") or {}
        out[r["target"]] = {"status": r["status"], "reason": r.get("reason"), "size_bytes": r.get("size_bytes"),
                            "fidelity": r.get("fidelity"), "latency_ms": b.get("latency_ms"), "device": b.get("device"),
                            "build_seconds": r.get("build_seconds"), "warnings": r.get("warnings")}
    return out


def sections(tmp: Path, args) -> dict:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check needs an NVIDIA GPU (torch sees no CUDA device): run it on the GPU machine")
    say("resnet50: torch CUDA FP16, TensorRT FP16 and INT8")
    ckpt, _ = torchvision_case("resnet50", tmp)
    r50 = compressor.bench_targets(ckpt, targets=TARGETS, arch="torchvision:resnet50", input_shape="1,3,224,224",
                                   eval=tmp / "imagenet20.npz", calib=tmp / "imagenet20.npz", sensitivity=False, duration=args.duration,
                                   compare_eager=False, quiet=False)
    say("EfficientNet-Lite0: torch CUDA FP16, TensorRT FP16 and INT8")
    images = str(imagenet_samples())
    eff = compressor.bench_targets(efficientnet_lite0_weights(), targets=TARGETS, **{**EFFNET_OPTS, "eval": images, "calib": images},
                                   sensitivity=False, duration=args.duration, compare_eager=False, quiet=False)
    return {"gpu": torch.cuda.get_device_name(0), "resnet50": _rows(r50), "efficientnet_lite0": _rows(eff)}


def markdown(res: dict) -> str:
    lines = [f"# GPU check — {res['date']}", "", f"GPU: {res['gpu']}", ""]
    for model in ("resnet50", "efficientnet_lite0"):
        lines += [f"## {model}, batch 1", "", "| target | status | size | agreement | p50 ms | compute p50 ms | H2D / D2H p50 ms | GPU memory |",
                  "|---|---|---|---|---|---|---|---|"]
        for t, r in res[model].items():
            lat, dev, f = r["latency_ms"] or {}, r["device"] or {}, r["fidelity"] or {}
            lines.append(f"| {t} | {r['status']} | {r['size_bytes']} | {f.get('top1_agreement')} | {lat.get('p50')} | "
                         f"{(dev.get('compute_ms') or {}).get('p50')} | {(dev.get('h2d_ms') or {}).get('p50')} / "
                         f"{(dev.get('d2h_ms') or {}).get('p50')} | {dev.get('gpu_memory_used_mb')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    run_suite("gpu_check", __doc__.splitlines()[0], sections, markdown)

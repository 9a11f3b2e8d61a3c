"""Edge suite: ExecuTorch XNNPACK INT8 against a plain PT2E XNNPACK export made as ExecuTorch's docs show.

1. resnet18 (random weights), batch 1: our executorch-xnnpack-int8 vs the peer (XNNPACKQuantizer with
   get_symmetric_quantization_config(is_per_channel=True), prepare_pt2e → calibrate → convert_pt2e →
   to_edge_transform_and_lower(XnnpackPartitioner) → .pte), same calibration images; and our fp32 .pte.
   Every .pte timed by our harness in a fresh process, ``--repeats`` passes, medians of per-pass ratios.
   Size INT8 .pte / FP32 .pte.
2. Accuracy: Fashion-MNIST executorch-xnnpack-int8 (2,000 test images), EfficientNet-Lite0 agreement
   (20 ImageNet images), and ort-mobile-int8 on Fashion-MNIST.

    .venv/bin/python benchmarks/edge.py [--repeats 3] [--duration 5]
Writes results/edge.json and results/edge.md.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EFFNET_OPTS, FASHION, FASHION_OPTS, run_suite, say, torchvision_case  # noqa: E402

import compressor  # noqa: E402
from compressor.evaluation.benchmark import BenchmarkSettings, run_isolated  # noqa: E402
from compressor.zoo.paths import efficientnet_lite0_weights, imagenet_samples  # noqa: E402


def peer_pt2e(ckpt: Path, out: Path, calib) -> Path:
    """ExecuTorch's documented PT2E XNNPACK flow, nothing added."""
    import torch
    import torchvision
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model = torchvision.models.resnet18()
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    model.eval()
    example = (torch.from_numpy(calib[:1]),)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    m = prepare_pt2e(torch.export.export(model, example).module(), quantizer)
    with torch.no_grad():
        for i in range(len(calib)):
            m(torch.from_numpy(calib[i:i + 1]))
    m = convert_pt2e(m)
    prog = to_edge_transform_and_lower(torch.export.export(m, example), partitioner=[XnnpackPartitioner()]).to_executorch()
    out.write_bytes(prog.buffer)
    return out


def resnet18(tmp: Path, repeats: int, duration: float) -> dict:
    ckpt, x = torchvision_case("resnet18", tmp)
    common = dict(arch="torchvision:resnet18", input_shape="1,3,224,224", eval=tmp / "imagenet20.npz", benchmark=False, quiet=False)
    say("resnet18: building executorch-xnnpack-fp32 and -int8")
    fp32 = compressor.compress(ckpt, target="executorch-xnnpack-fp32", output=tmp / "fp32", **common)
    ours = compressor.compress(ckpt, target="executorch-xnnpack-int8", calib=tmp / "imagenet20.npz", output=tmp / "int8", **common)
    say("resnet18: the peer, ExecuTorch's documented PT2E XNNPACK flow")
    peer = peer_pt2e(ckpt, tmp / "peer.pte", x)
    files = {"ours executorch-xnnpack-int8": ours.bundle / "model.pte", "peer PT2E XNNPACK (docs)": peer,
             "ours executorch-xnnpack-fp32": fp32.bundle / "model.pte"}
    settings = BenchmarkSettings(batch_size=1, duration=duration, iterations=100)
    passes, memory = [], []
    for i in range(repeats):
        say(f"resnet18: timing pass {i + 1}/{repeats}")
        runs = {k: run_isolated("executorch-xnnpack-int8", f, {"input": x[:1]}, settings) for k, f in files.items()}
        passes.append({k: v.p50_ms for k, v in runs.items()})
        memory.append(runs["ours executorch-xnnpack-int8"].model_rss_mb)
    return {
        "passes": passes,
        "median_p50_ms": {k: statistics.median(p[k] for p in passes) for k in files},
        "ours_over_peer": statistics.median(p["ours executorch-xnnpack-int8"] / p["peer PT2E XNNPACK (docs)"] for p in passes),
        "ours_int8_over_fp32": statistics.median(p["ours executorch-xnnpack-int8"] / p["ours executorch-xnnpack-fp32"] for p in passes),
        "size_int8_over_fp32": (ours.bundle / "model.pte").stat().st_size / (fp32.bundle / "model.pte").stat().st_size,
        "size_peer_over_fp32": peer.stat().st_size / (fp32.bundle / "model.pte").stat().st_size,
        "delegation_int8": ours.manifest["artifact"]["build"]["delegation"],
        "memory_int8_mb": statistics.median(memory),
    }


def accuracy(tmp: Path) -> dict:
    out = {}
    opts = {**FASHION_OPTS, "input_shape": "1,1,28,28"}
    for t in ("executorch-xnnpack-int8", "ort-mobile-int8"):
        say(f"fashion-mnist: {t}")
        r = compressor.compress(FASHION / "fashion_cnn.safetensors", target=t, benchmark=False, sensitivity=False,
                                output=tmp / f"fashion-{t}", **opts)
        out[f"fashion_{t}"] = {k: r.fidelity[k] for k in ("accuracy", "reference_accuracy", "accuracy_drop_pp", "top1_agreement")}
    images = imagenet_samples()
    say("efficientnet-lite0: executorch-xnnpack-int8")
    r = compressor.compress(efficientnet_lite0_weights(), target="executorch-xnnpack-int8", benchmark=False, force=True,
                            output=tmp / "effnet", **{**EFFNET_OPTS, "eval": images, "calib": images})
    out["effnet_executorch-xnnpack-int8"] = {k: r.fidelity[k] for k in ("accuracy", "reference_accuracy", "top1_agreement", "cosine_mean")}
    return out


def markdown(res: dict) -> str:
    r, a = res["resnet18"], res["accuracy"]
    env = res["environment"]
    lines = [f"# Edge suite — {res['date'][:10]}", "",
             f"Machine: {env['cpu']['model']}, {env['cpu']['usable_cpus']} usable CPUs; ExecuTorch {env['libraries'].get('executorch')}, "
             f"torchao {env['libraries'].get('torchao')}; batch 1; every .pte run by ExecuTorch's Python runtime in a fresh process, "
             f"{res['repeats']} passes, medians of per-pass ratios.", "",
             "## resnet18 (random weights), batch 1", "", "| program | p50 ms |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in r["median_p50_ms"].items()]
    d = r["delegation_int8"]
    lines += ["", f"ours INT8 / peer: **{r['ours_over_peer']:.3f}×** (target ≤ 1.05); ours INT8 / ours FP32: {r['ours_int8_over_fp32']:.3f}×. "
              f"Size INT8 .pte / FP32 .pte: **{r['size_int8_over_fp32']:.3f}** (target ≤ 0.27; peer {r['size_peer_over_fp32']:.3f}). "
              f"Delegated to XNNPACK: {d['delegated_op_count']} ops; on portable operators: {d['portable_op_count']}. "
              f"Model memory at load and while running: {r['memory_int8_mb']:.1f} MB.", "", "## Accuracy", ""]
    for t in ("executorch-xnnpack-int8", "ort-mobile-int8"):
        f = a[f"fashion_{t}"]
        lines.append(f"- Fashion-MNIST {t}: top-1 {f['accuracy']:.4f} vs FP32 {f['reference_accuracy']:.4f} (drop {f['accuracy_drop_pp']:.2f} "
                     f"points; target ≤ 0.3), agreement {f['top1_agreement']:.4f}.")
    e = a["effnet_executorch-xnnpack-int8"]
    lines.append(f"- EfficientNet-Lite0 executorch-xnnpack-int8: top-1 agreement with FP32 {e['top1_agreement']:.2f} (target ≥ 0.95), "
                 f"top-1 {e['accuracy']:.2f} (FP32 {e['reference_accuracy']:.2f}), cosine {e['cosine_mean']:.4f}.")
    return "\n".join(lines) + "\n"


def sections(tmp: Path, args) -> dict:
    return {"resnet18": resnet18(tmp, args.repeats, args.duration), "accuracy": accuracy(tmp)}


if __name__ == "__main__":
    run_suite("edge", __doc__.splitlines()[0], sections, markdown)

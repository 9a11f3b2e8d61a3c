"""Sparsity suite: what 2:4 weight sparsity buys on this machine — storage, and (not) speed.

1. resnet18 (random weights, seed 0), batch 1: one ``compressor bench --sparsity 2:4`` run over ort-cpu-fp32,
   openvino-cpu-fp32, executorch-xnnpack-fp32 and ort-cpu-int8, so each runtime is timed dense and 2:4-sparse in
   fresh processes within the same run; plus the TensorRT engines (built here with SPARSE_WEIGHTS, not run).
2. The bundled Fashion-MNIST CNN, 2:4 with 2 epochs of recovery fine-tuning on the 60,000 training images:
   accuracy against the dense model on the 2,000-image test subset, and the .tar.gz bundle sizes (dense vs sparse).

    .venv/bin/python benchmarks/sparsity.py [--duration 5]
Writes results/sparsity.json and results/sparsity.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, FASHION_OPTS, run_suite, say, torchvision_case  # noqa: E402

import compressor  # noqa: E402

CPU_TARGETS = ("ort-cpu-fp32", "openvino-cpu-fp32", "executorch-xnnpack-fp32", "ort-cpu-int8")


def resnet18(tmp: Path, duration: float) -> dict:
    ckpt, _ = torchvision_case("resnet18", tmp)
    say("resnet18: dense and 2:4 on every CPU runtime, one bench run")
    res = compressor.bench_targets(ckpt, targets=",".join(CPU_TARGETS + ("tensorrt-gpu-fp16",)), arch="torchvision:resnet18",
                                   input_shape="1,3,224,224", eval=tmp / "imagenet20.npz", calib=tmp / "imagenet20.npz", sparsity="2:4",
                                   sensitivity=False, duration=duration, quiet=False)
    out = {}
    for r in res["rows"]:
        b = (r.get("batches") or {}).get("1") or {}
        out[r["target"]] = {"status": r["status"], "p50_ms": (b.get("latency_ms") or {}).get("p50"), "size_bytes": r.get("size_bytes"),
                            "sparse_weights": ((r.get("build") or {}).get("sparse_weights"))}
    ratios = {}
    for t in CPU_TARGETS:
        dense, sparse = out.get(t, {}).get("p50_ms"), out.get(f"{t} (pruned)", {}).get("p50_ms")
        ratios[t] = sparse / dense if dense and sparse else None
    return {"rows": out, "sparse_over_dense_p50": ratios}


def fashion(tmp: Path) -> dict:
    opts = {**FASHION_OPTS, "input_shape": "batch=1:64,1,28,28", "benchmark": False}
    opts.pop("calib")
    say("fashion-mnist: dense bundle (.tar.gz)")
    dense = compressor.compress(FASHION / "fashion_cnn.safetensors", target="ort-cpu-fp32", output=tmp / "dense", tar=True, **opts)
    say("fashion-mnist: 2:4, fine-tuned 2 epochs on the 60,000 training images")
    sparse = compressor.compress(FASHION / "fashion_cnn.safetensors", target="ort-cpu-fp32", output=tmp / "sparse", sparsity="2:4",
                                 finetune="compressor.zoo.fashion:train", finetune_epochs=2, quiet=False, **opts)
    sp = sparse.manifest["pruning"]["sparsity"]
    d, s = (tmp / "dense.tar.gz").stat().st_size, (tmp / "sparse.tar.gz").stat().st_size
    return {"dense_accuracy": dense.fidelity["accuracy"], "sparse_accuracy": sparse.fidelity["accuracy"],
            "drop_pp": sparse.fidelity["accuracy_drop_pp"], "layers": sp["layers"], "skipped": sp["skipped"],
            "zeros": sp["zeros_in_sparsified_weights"], "weights_storage": sp["storage"],
            "bundle_tar_gz_bytes": {"dense": d, "sparse": s, "factor": d / s},
            "finetune_epochs": len(sparse.manifest["pruning"]["finetune"]["history"]) - 1}


def sections(tmp: Path, args) -> dict:
    return {"resnet18": resnet18(tmp, args.duration), "fashion_mnist": fashion(tmp)}


def markdown(res: dict) -> str:
    env = res["environment"]
    r, f = res["resnet18"], res["fashion_mnist"]
    lines = [f"# 2:4 sparsity — {res['date']}", "",
             f"CPU: {env['cpu']['model']} ({env['cpu']['usable_cpus']} usable cores; {' '.join(env['cpu']['isa'])}).", "",
             "## resnet18, batch 1: dense vs 2:4-sparse weights, one bench run (random weights, no fine-tuning)", "",
             "| runtime | dense p50 ms | 2:4 p50 ms | sparse / dense |", "|---|---|---|---|"]
    for t in CPU_TARGETS:
        d, s = r["rows"].get(t, {}).get("p50_ms"), r["rows"].get(f"{t} (pruned)", {}).get("p50_ms")
        ratio = r["sparse_over_dense_p50"][t]
        lines.append(f"| {t} | {d:.2f} | {s:.2f} | {ratio:.2f} |" if ratio else f"| {t} | {d} | {s} | – |")
    trt = r["rows"].get("tensorrt-gpu-fp16 (pruned)", {})
    lines += ["", "None of the CPU runtimes here is faster with 2:4-sparse weights (ratios near 1.0 are noise): ONNX Runtime "
              "densifies the weights, OpenVINO's and XNNPACK's kernels are dense for these layers. The gain on CPUs is storage.",
              f"TensorRT FP16 engine from the 2:4 model: {trt.get('status')}, SPARSE_WEIGHTS: {trt.get('sparse_weights')} "
              "(its sparse kernels run on Ampere and later GPUs; not measured here).", "",
              "## Fashion-MNIST CNN, 2:4 + 2 epochs of fine-tuning", "",
              f"- Top-1 on the 2,000-image test subset: {f['dense_accuracy']:.4f} dense → {f['sparse_accuracy']:.4f} 2:4 "
              f"({f['drop_pp']:+.2f} points drop) after {f['finetune_epochs']} epoch(s)",
              f"- {len(f['layers'])} layers 2:4 ({f['zeros']:.1%} zeros in them); not sparsified: {', '.join(f['skipped'])} (1 input channel)",
              f"- Bundle as .tar.gz: {f['bundle_tar_gz_bytes']['dense'] / 1024:.0f} KB dense → {f['bundle_tar_gz_bytes']['sparse'] / 1024:.0f} KB "
              f"2:4 (**{f['bundle_tar_gz_bytes']['factor']:.2f}× smaller**); weights alone compressed: "
              f"{f['weights_storage']['factor']:.2f}× smaller"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_suite("sparsity", __doc__.splitlines()[0], sections, markdown)

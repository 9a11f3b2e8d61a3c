"""Pruning suite: speed from structured pruning, accuracy after recovery, transformers, reload.

1. resnet50 (random weights) pruned to half its MACs: `compressor bench` rows for ort-cpu-fp32 and ort-cpu-int8,
   unpruned and pruned, each in a fresh process within one pass; ``--repeats`` passes, medians of per-pass ratios.
2. Fashion-MNIST CNN pruned to half its MACs, fine-tuned 2 epochs on the 60,000 training images (Debian package):
   accuracy on the committed 2,000-image test subset against the unpruned model.
3. all-MiniLM-L6-v2: a quarter of the attention heads and of the MLP width removed, distilled for 2 epochs on the
   sentences of lee_background.cor: embedding cosine with the original on the Lee sentences, ONNX Runtime latency ratio.
4. Reload: the pruned resnet50 saved by the SDK loads in a fresh process and gives identical outputs.

    .venv/bin/python benchmarks/pruning.py [--repeats 3] [--duration 5]
Writes results/pruning.json and results/pruning.md.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, FASHION_OPTS, ROOT, run_suite, say, torchvision_case  # noqa: E402

import compressor  # noqa: E402
from compressor.zoo.minilm import weights_path as minilm_weights  # noqa: E402


def p50(rows: dict, target: str) -> float:
    return rows[target]["batches"]["1"]["latency_ms"]["p50"]


def resnet50(tmp: Path, repeats: int, duration: float) -> dict:
    ckpt, x = torchvision_case("resnet50", tmp)
    opts = dict(arch="torchvision:resnet50", input_shape="1,3,224,224", eval=tmp / "imagenet20.npz", calib=tmp / "imagenet20.npz",
                prune_macs=0.5, sensitivity=False, duration=duration, iterations=100, compare_eager=False,
                save_pruned=tmp / "resnet50_pruned.safetensors")
    passes, pruning = [], None
    for i in range(repeats):
        say(f"resnet50: pass {i + 1}/{repeats} (build, validate and time four artifacts)")
        result = compressor.bench_targets(ckpt, "ort-cpu-fp32,ort-cpu-int8", quiet=False, **opts)
        rows = {r["target"]: r for r in result["rows"]}
        pruning = rows["ort-cpu-fp32 (pruned)"]["pruning"]
        passes.append({t: p50(rows, t) for t in rows})
    ratio = lambda a, b: statistics.median(p[a] / p[b] for p in passes)  # noqa: E731
    say("resnet50: reload the saved pruned checkpoint in a fresh process")
    reload = reload_check(tmp, tmp / "resnet50_pruned.safetensors", x[:2])
    return {"passes": passes, "median_p50_ms": {t: statistics.median(p[t] for p in passes) for t in passes[0]},
            "pruned_fp32_over_fp32": ratio("ort-cpu-fp32 (pruned)", "ort-cpu-fp32"),
            "pruned_int8_over_pruned_fp32": ratio("ort-cpu-int8 (pruned)", "ort-cpu-fp32 (pruned)"),
            "pruned_int8_over_fp32": ratio("ort-cpu-int8 (pruned)", "ort-cpu-fp32"),
            "macs_removed": pruning["macs_removed"], "params_removed": pruning["params_removed"], "round_to": pruning["round_to"],
            "reload": reload}


def reload_check(tmp: Path, path: Path, x: np.ndarray) -> dict:
    import torch

    from compressor.core.specs import InputSpec
    from compressor.io.loading import load_model

    np.save(tmp / "x.npy", x)
    h = load_model(path, [InputSpec.parse("batch,3,224,224")], "torchvision:resnet50")
    with torch.no_grad():
        here = h.module(torch.from_numpy(x)).numpy()
    code = (f"import numpy as np, torch; from compressor.loading import load_model; from compressor.specs import InputSpec; "
            f"h = load_model(r'{path}', [InputSpec.parse('batch,3,224,224')], 'torchvision:resnet50'); "
            f"np.save(r'{tmp / 'y.npy'}', h.module(torch.from_numpy(np.load(r'{tmp / 'x.npy'}'))).detach().numpy())")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    there = np.load(tmp / "y.npy")
    return {"identical": bool(np.array_equal(here, there)), "max_abs_difference": float(np.abs(here - there).max()),
            "file_bytes": path.stat().st_size}


def fashion(tmp: Path) -> dict:
    say("fashion-mnist: prune to half the MACs, fine-tune 2 epochs on the full training split")
    r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="ort-cpu-fp32", prune_macs=0.5, finetune="compressor.zoo.fashion:train",
                            finetune_epochs=2, benchmark=False, output=tmp / "fashion", quiet=False,
                            **{**FASHION_OPTS, "calib": None})
    p = r.manifest["pruning"]
    return {"accuracy": r.fidelity["accuracy"], "unpruned_accuracy": r.fidelity["reference_accuracy"],
            "drop_pp": r.fidelity["accuracy_drop_pp"], "agreement": r.fidelity["top1_agreement"], "macs_removed": p["macs_removed"],
            "finetune": {k: p["finetune"][k] for k in ("samples", "history", "loss_used", "bf16_autocast", "seconds")}}


def minilm(tmp: Path, duration: float) -> dict:
    say("minilm: remove a quarter of heads and MLP width, distil 2 epochs on lee_background sentences")
    result = compressor.bench_targets(
        minilm_weights(), "ort-cpu-fp32", quiet=False, arch="compressor.zoo.minilm:minilm_l6",
        input_shape=["batch,seq=1:256", "batch,seq=1:256"], input_names=["input_ids", "attention_mask"], input_dtype="int64",
        task="embedding", eval="compressor.zoo.lee:sentences", prune_heads=0.25, prune_ratio=0.25,
        finetune="compressor.zoo.lee:background_sentences", finetune_epochs=2, finetune_batch_size=32, finetune_lr=2e-4,
        duration=duration, iterations=100, compare_eager=False)
    rows = {r["target"]: r for r in result["rows"]}
    pr = rows["ort-cpu-fp32 (pruned)"]
    changed = pr["pruning"]
    return {"cosine_mean_with_original": pr["fidelity"]["cosine_mean"], "cosine_min_with_original": pr["fidelity"]["cosine_min"],
            "sentences": pr["fidelity"]["samples"], "p50_ms_unpruned": p50(rows, "ort-cpu-fp32"), "p50_ms_pruned": p50(rows, "ort-cpu-fp32 (pruned)"),
            "pruned_over_unpruned": p50(rows, "ort-cpu-fp32 (pruned)") / p50(rows, "ort-cpu-fp32"),
            "macs_removed": changed["macs_removed"], "params_removed": changed["params_removed"],
            "size_bytes": {"unpruned": rows["ort-cpu-fp32"]["size_bytes"], "pruned": pr["size_bytes"]},
            "finetune": {k: changed["finetune"][k] for k in ("samples", "history", "loss_used", "seconds")},
            "kept": "hidden size 384, 6 layers, embeddings, LayerNorms; removed: 3 of 12 heads per layer, 384 of 1,536 MLP units per layer"}


def markdown(res: dict) -> str:
    r, f, m = res["resnet50"], res["fashion"], res["minilm"]
    env = res["environment"]["cpu"]
    lines = [f"# Pruning suite — {res['date'][:10]}", "",
             f"Machine: {env['model']}, {env['usable_cpus']} usable CPUs; torch-pruning {res['environment']['libraries'].get('torch-pruning')}; "
             f"batch 1; each artifact timed in a fresh process; {res['repeats']} passes, medians of per-pass ratios.", "",
             f"## resnet50 (random weights) pruned to half its MACs ({r['macs_removed']:.1%} MACs, {r['params_removed']:.1%} parameters removed; "
             f"channels rounded to multiples of {r['round_to']}/16)", "", "| artifact | p50 ms |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in r["median_p50_ms"].items()]
    lines += ["", f"pruned FP32 / unpruned FP32: **{r['pruned_fp32_over_fp32']:.3f}×** (target ≤ 0.65); pruned INT8 / pruned FP32: "
              f"**{r['pruned_int8_over_pruned_fp32']:.3f}×** (faster again); pruned INT8 / unpruned FP32: {r['pruned_int8_over_fp32']:.3f}×.",
              f"Reload in a fresh process: identical outputs: **{r['reload']['identical']}** (max difference {r['reload']['max_abs_difference']:.3g}).", "",
              "## Fashion-MNIST CNN, half the MACs, fine-tuned 2 epochs", "",
              f"Top-1 on the 2,000-image test subset: **{f['accuracy']:.4f}** vs unpruned {f['unpruned_accuracy']:.4f} "
              f"(drop {f['drop_pp']:.2f} points; target ≤ 1). {f['macs_removed']:.1%} MACs removed; {f['finetune']['samples']} training "
              f"images, {f['finetune']['loss_used']}, {f['finetune']['seconds']} s; validation accuracy by epoch: "
              + ", ".join(f"{h['val_metric']:.4f}" for h in f["finetune"]["history"]) + ".", "",
              "## all-MiniLM-L6-v2: a quarter of heads and MLP width removed, distilled", "",
              f"Embedding cosine with the original on {m['sentences']} Lee sentences: **{m['cosine_mean_with_original']:.4f}** mean, "
              f"{m['cosine_min_with_original']:.4f} min. ONNX Runtime FP32 p50 {m['p50_ms_pruned']:.2f} ms vs {m['p50_ms_unpruned']:.2f} ms "
              f"unpruned: **{m['pruned_over_unpruned']:.3f}×**. {m['macs_removed']:.1%} MACs and {m['params_removed']:.1%} parameters removed "
              f"(the 11.7 M-parameter word-embedding table is kept whole). Kept: {m['kept']}. Distillation: {m['finetune']['samples']} sentences, "
              f"{m['finetune']['loss_used']}, {m['finetune']['seconds']} s. What was lost: the cosine above is the honest measure; "
              "no task accuracy was measured.", ""]
    return "\n".join(lines + ["## Notes", "", *NOTES, ""])


NOTES = [
    "- The MiniLM section was rerun alone on 2026-12-01 with correct attention masks (before, every sentence's mask covered",
    "  the tokenizer's padding to 128): cosine with the original 0.8924 (was 0.9382 on padded inputs), the same in two reruns.",
    "  Its latency ratio is one pass: the two reruns, minutes apart and alone on the machine, gave pruned/unpruned 1.244×",
    "  (22.36 vs 17.96 ms) and 0.693× (14.84 vs 21.43 ms; the table shows this one). Single passes of MiniLM on ONNX Runtime",
    "  are that noisy here; the earlier 0.705× (7.25 vs 10.29 ms) came from the export of 2026-11-28.",
]


def sections(tmp: Path, args) -> dict:
    return {"resnet50": lambda: resnet50(tmp, args.repeats, args.duration), "fashion": lambda: fashion(tmp),
            "minilm": lambda: minilm(tmp, args.duration)}


if __name__ == "__main__":
    run_suite("pruning", __doc__.splitlines()[0], sections, markdown)

"""PyTorch-native INT8 suite: AOTInductor packages (FP32, INT8 through Intel Neural Compressor's x86 quantizer
configuration) beside torch eager and the ONNX runtimes' INT8.

1. resnet50 (random weights, seed 0), batch 1, one ``compressor bench`` run per repeat over torch eager FP32,
   torch-inductor-cpu-fp32/bf16/int8 (bf16 only where the CPU has it), ort-cpu-int8 and openvino-cpu-int8 (each benchmarked in a fresh process;
   calibrated on the 20 ImageNet images): p50 of each row, the ratios the issue asks for, build (compile)
   seconds, and the oneDNN INT8 kernels found in the package. Medians of per-run ratios.
2. The bundled Fashion-MNIST CNN: torch-inductor-cpu-int8 accuracy against FP32 on the 2,000-image test subset,
   with the SDK's plan (default) and with ``--quantizer inc`` (INC's observers), and with INC's autotune under a
   0.3-point gate.

    .venv/bin/python benchmarks/inductor.py [--repeats 1] [--duration 5]
Writes results/inductor.json and results/inductor.md.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, FASHION_OPTS, run_suite, say, torchvision_case  # noqa: E402

import compressor  # noqa: E402

TARGETS = ("torch-cpu-fp32", "torch-inductor-cpu-fp32", "torch-inductor-cpu-bf16", "torch-inductor-cpu-int8", "ort-cpu-int8",
           "openvino-cpu-int8")


def _p50(row: dict) -> float | None:
    res = (row.get("batches") or {}).get("1") or {}
    return res.get("latency_ms", {}).get("p50")


def resnet50(tmp: Path, repeats: int, duration: float) -> dict:
    ckpt, _ = torchvision_case("resnet50", tmp)
    runs = []
    for i in range(repeats):
        say(f"resnet50: compressor bench over {', '.join(TARGETS)} (run {i + 1}/{repeats})")
        res = compressor.bench_targets(ckpt, targets=",".join(TARGETS), arch="torchvision:resnet50", input_shape="1,3,224,224",
                                       eval=tmp / "imagenet20.npz", calib=tmp / "imagenet20.npz", sensitivity=False, duration=duration,
                                       quiet=False)
        rows = {r["target"]: r for r in res["rows"]}
        p50 = {t: _p50(rows[t]) for t in TARGETS}  # None where a target could not run here
        int8 = p50["torch-inductor-cpu-int8"]
        runs.append({"p50_ms": p50, "build_seconds": {t: rows[t].get("build_seconds") for t in TARGETS},
                     "status": {t: rows[t]["status"] + (f": {rows[t]['reason']}" if rows[t].get("reason") else "") for t in TARGETS},
                     "inductor_int8_speedup_vs_eager_fp32": p50["torch-cpu-fp32"] / int8 if int8 else None,
                     "inductor_int8_over_inductor_fp32": int8 / p50["torch-inductor-cpu-fp32"] if int8 else None,
                     "inductor_int8_over_ort_int8": int8 / p50["ort-cpu-int8"] if int8 else None,
                     "inductor_int8_over_openvino_int8": int8 / p50["openvino-cpu-int8"] if int8 else None,
                     "int8_kernels": (rows["torch-inductor-cpu-int8"].get("int8_layers") or {}).get("int8_kernels"),
                     "agreement": {t: (rows[t].get("fidelity") or {}).get("top1_agreement") for t in TARGETS}})
    keys = [k for k in runs[0] if k.startswith("inductor_int8_")]
    bf16 = [r["p50_ms"]["torch-inductor-cpu-bf16"] / r["p50_ms"]["torch-inductor-cpu-fp32"] for r in runs if r["p50_ms"]["torch-inductor-cpu-bf16"]]
    return {"runs": runs, "median": {k: statistics.median(r[k] for r in runs if r[k] is not None) for k in keys},
            "median_bf16_over_fp32": statistics.median(bf16) if bf16 else None,
            "median_p50_ms": {t: statistics.median([r["p50_ms"][t] for r in runs if r["p50_ms"][t]] or [0.0]) or None for t in TARGETS}}


def fashion(tmp: Path) -> dict:
    out = {}
    opts = {**FASHION_OPTS, "input_shape": "1,1,28,28"}  # INT8 packages are built for fixed shapes (see backends/inductor.py)
    for name, extra in (("sdk", {}), ("inc", {"quantizer": "inc"}), ("inc autotune, gate 0.3 pt", {"quantizer": "inc", "max_accuracy_drop": 0.3})):
        say(f"fashion-mnist: torch-inductor-cpu-int8, quantizer {name}")
        r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="torch-inductor-cpu-int8", sensitivity=False,
                                output=tmp / f"fashion-{name.split()[0]}-{len(out)}", **opts, **extra)
        f = r.fidelity
        out[name] = {"accuracy": f["accuracy"], "fp32_accuracy": f["reference_accuracy"], "drop_pp": f["accuracy_drop_pp"],
                     "top1_agreement": f["top1_agreement"], "autotune": r.manifest["quantization"].get("autotune"),
                     "compile_seconds": r.manifest["artifact"]["build"].get("compile_seconds"),
                     "p50_ms": r.manifest["metrics"]["latency_ms"]["p50"], "torch_eager_p50_ms": r.manifest["metrics"].get("torch_eager_latency_ms", {}).get("p50")}
    return out


def sections(tmp: Path, args) -> dict:
    return {"resnet50": resnet50(tmp, args.repeats, args.duration), "fashion_mnist": fashion(tmp)}


def markdown(res: dict) -> str:
    env = res["environment"]
    r = res["resnet50"]
    lines = [f"# PyTorch-native INT8 (AOTInductor) — {res['date']}", "",
             f"CPU: {env['cpu']['model']} ({env['cpu']['usable_cpus']} usable cores; {' '.join(env['cpu']['isa'])}); "
             f"torch {env['libraries'].get('torch')}, neural-compressor-pt {env['libraries'].get('neural-compressor-pt')}; "
             f"{res['repeats']} bench run(s), medians.", "",
             "## resnet50, batch 1 (random weights; one `compressor bench` run per repeat)", "",
             "| target | p50 ms (median) | build s (last run) | status (last run) |", "|---|---|---|---|"]
    last = r["runs"][-1]
    for t in TARGETS:
        p = r["median_p50_ms"].get(t)
        b = last["build_seconds"].get(t)
        lines.append(f"| {t} | {p:.2f} | {'–' if b is None else f'{b:.1f}'} | {last['status'][t]} |" if p else f"| {t} | – | – | {last['status'][t]} |")
    m = r["median"]
    lines += ["", f"- torch-inductor-cpu-int8 is **{m['inductor_int8_speedup_vs_eager_fp32']:.2f}×** faster than torch eager FP32, "
              f"{1 / m['inductor_int8_over_inductor_fp32']:.2f}× faster than torch-inductor-cpu-fp32; its p50 is "
              f"{m['inductor_int8_over_ort_int8']:.2f}× ORT INT8's and {m['inductor_int8_over_openvino_int8']:.2f}× OpenVINO INT8's.",
              f"- oneDNN INT8 kernel calls in the package: {last['int8_kernels']}",
              "- torch-inductor-cpu-bf16: " + ("not run (this CPU has no native bf16)" if r["median_bf16_over_fp32"] is None
                                               else f"{r['median_bf16_over_fp32']:.2f}× the p50 of torch-inductor-cpu-fp32"), "",
              "## Fashion-MNIST CNN (2,000 test images, fixed shape 1×1×28×28)", "",
              "| quantizer | FP32 top-1 | INT8 top-1 | drop (points) | agreement | p50 ms (batch 1) | autotune |", "|---|---|---|---|---|---|---|"]
    for name, f in res["fashion_mnist"].items():
        t = f.get("autotune")
        tune = "–" if not t else f"{t['metric']} {t['trials'][t['chosen_trial'] - 1]:.4f} in trial {t['chosen_trial']}/{len(t['trials'])}"
        lines.append(f"| {name} | {f['fp32_accuracy']:.4f} | {f['accuracy']:.4f} | {f['drop_pp']:.2f} | {f['top1_agreement']:.4f} | "
                     f"{f['p50_ms']:.2f} | {tune} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_suite("inductor", __doc__.splitlines()[0], sections, markdown)

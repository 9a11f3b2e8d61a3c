"""OpenVINO suite: our OpenVINO targets against NNCF's default INT8 flow and against OpenVINO's own
``benchmark_app`` on the same IRs, plus the accuracy checks.

1. resnet50 (random weights), batch 1: openvino-cpu-fp32 / -bf16 / -int8 (the SDK's plan) built by
   ``compressor.compress``; the peer = NNCF's default ``nncf.quantize`` on the same float IR with the same
   calibration images (as NNCF's documentation shows it). All IRs timed by our harness (fresh process
   each) in ``--repeats`` passes; medians of per-pass ratios.
2. Our harness against ``benchmark_app -hint none -nstreams 1 -nthreads N -api sync -b 1 -infer_precision P``
   (benchmark_app allows -nthreads only without a hint; one stream is what the latency hint picks) on the
   same IRs: medians compared.
3. Accuracy: Fashion-MNIST openvino-cpu-int8 (2,000 test images); EfficientNet-Lite0 int8 and bf16
   (20 ImageNet images).

    .venv/bin/python benchmarks/openvino_suite.py [--repeats 3] [--duration 5]
Writes results/openvino.json and results/openvino.md.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EFFNET_OPTS, FASHION, FASHION_OPTS, run_suite, say, torchvision_case  # noqa: E402

import compressor  # noqa: E402
from compressor.core.environment import default_threads  # noqa: E402
from compressor.evaluation.benchmark import BenchmarkSettings, run_isolated  # noqa: E402
from compressor.zoo.paths import efficientnet_lite0_weights, imagenet_samples  # noqa: E402


def nncf_default(fp32_xml: Path, out: Path, calib: list[dict]) -> Path:
    """NNCF's default post-training quantization of an OpenVINO model, as its documentation shows it."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    q = nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib))
    # the float IR's precision tag travels with it; say what it now is, so the harness runs it as INT8 (f32 hint)
    q.set_rt_info("int8", ["compressor", "target_precision"])
    ov.save_model(q, str(out), compress_to_fp16=False)
    return out


def benchmark_app(xml: Path, precision: str, threads: int, seconds: int) -> float:
    exe = Path(sys.executable).parent / "benchmark_app"
    # benchmark_app refuses -nthreads beside -hint latency; "-hint none -nstreams 1 -nthreads N" is the same setting as our
    # runner's (PERFORMANCE_HINT=LATENCY → one stream; INFERENCE_NUM_THREADS=N)
    cmd = [str(exe), "-m", str(xml), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-api", "sync", "-b", "1",
           "-nthreads", str(threads), "-infer_precision", precision, "-t", str(seconds)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark_app failed: {(proc.stdout + proc.stderr)[-800:]}")
    out = proc.stdout
    m = re.search(r"Median:\s+([\d.]+)\s*ms", out)
    if not m:
        raise RuntimeError(f"could not read benchmark_app's median from its output:\n{out[-800:]}")
    return float(m.group(1))


def resnet50(tmp: Path, repeats: int, duration: float) -> dict:
    ckpt, x = torchvision_case("resnet50", tmp)
    common = dict(arch="torchvision:resnet50", input_shape="1,3,224,224", eval=tmp / "imagenet20.npz", benchmark=False, quiet=False)
    built = {}
    for t in ("openvino-cpu-fp32", "openvino-cpu-bf16", "openvino-cpu-int8"):
        say(f"resnet50: building {t}")
        extra = {"calib": tmp / "imagenet20.npz", "sensitivity": False} if t.endswith("int8") else {}
        built[t] = compressor.compress(ckpt, target=t, output=tmp / t, **common, **extra)
    say("resnet50: NNCF default INT8 flow (the peer) on the same float IR and calibration images")
    peer = nncf_default(built["openvino-cpu-fp32"].bundle / "model.xml", tmp / "nncf.xml", [{"input": x[i:i + 1]} for i in range(len(x))])
    files = {"openvino-cpu-fp32": ("openvino-cpu-fp32", built["openvino-cpu-fp32"].bundle / "model.xml"),
             "openvino-cpu-bf16": ("openvino-cpu-bf16", built["openvino-cpu-bf16"].bundle / "model.xml"),
             "openvino-cpu-int8 (ours)": ("openvino-cpu-int8", built["openvino-cpu-int8"].bundle / "model.xml"),
             "nncf default INT8 (peer)": ("openvino-cpu-int8", peer)}
    settings = BenchmarkSettings(batch_size=1, duration=duration, iterations=100)
    threads = default_threads()
    passes = []
    for i in range(repeats):
        say(f"resnet50: timing pass {i + 1}/{repeats}")
        p50 = {k: run_isolated(t, f, {"input": x[:1]}, settings).p50_ms for k, (t, f) in files.items()}
        passes.append(p50)
    med = {k: statistics.median(p[k] for p in passes) for k in files}
    ratio = lambda a, b: statistics.median(p[a] / p[b] for p in passes)  # noqa: E731
    say("resnet50: benchmark_app on the same IRs")
    bapp = {}
    for k, prec in (("openvino-cpu-fp32", "f32"), ("openvino-cpu-int8 (ours)", "f32"), ("openvino-cpu-bf16", "bf16")):
        b = benchmark_app(files[k][1], prec, threads, int(max(duration * 2, 10)))
        ours = run_isolated(files[k][0], files[k][1], {"input": x[:1]}, settings).p50_ms
        bapp[k] = {"benchmark_app_median_ms": b, "ours_p50_ms_same_moment": ours, "ours_over_benchmark_app": ours / b}
    q = built["openvino-cpu-int8"].manifest["quantization"]["kernels"]
    rt = built["openvino-cpu-fp32"].manifest["benchmark"]
    return {
        "passes": passes, "median_p50_ms": med,
        "ours_int8_over_nncf": ratio("openvino-cpu-int8 (ours)", "nncf default INT8 (peer)"),
        "fp32_over_bf16": ratio("openvino-cpu-fp32", "openvino-cpu-bf16"),
        "benchmark_app": bapp,
        "int8_layers": q,
        "fp32_manifest_precision": built["openvino-cpu-fp32"].manifest["artifact"]["build"]["ir"],
        "threads": threads,
        "runtime_fp32": rt,
    }


def accuracy(tmp: Path) -> dict:
    say("fashion-mnist: openvino-cpu-int8")
    r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="openvino-cpu-int8", benchmark=False, sensitivity=False,
                            output=tmp / "fashion-ov-int8", **FASHION_OPTS)
    out = {"fashion_int8": {k: r.fidelity[k] for k in ("accuracy", "reference_accuracy", "accuracy_drop_pp", "top1_agreement")}}
    images = imagenet_samples()
    for t in ("openvino-cpu-int8", "openvino-cpu-bf16"):
        say(f"efficientnet-lite0: {t}")
        extra = {"calib": images, "sensitivity": False} if t.endswith("int8") else {"calib_labels": None}
        r = compressor.compress(efficientnet_lite0_weights(), target=t, benchmark=False, output=tmp / f"effnet-{t}", force=True,
                                **{**EFFNET_OPTS, "eval": images, **({"calib": None} if not t.endswith("int8") else {}), **extra})
        out[f"effnet_{t}"] = {k: r.fidelity[k] for k in ("accuracy", "reference_accuracy", "top1_agreement", "cosine_mean")}
    return out


def markdown(res: dict) -> str:
    r = res["resnet50"]
    acc = res["accuracy"]
    env = res["environment"]["cpu"]
    lines = [f"# OpenVINO suite — {res['date'][:10]}", "",
             f"Machine: {env['model']}, {env['usable_cpus']} usable CPUs, ISA {', '.join(env['isa'])}; OpenVINO "
             f"{res['environment']['libraries'].get('openvino')}, NNCF {res['environment']['libraries'].get('nncf')}; batch 1, "
             f"{r['threads']} threads, PERFORMANCE_HINT=LATENCY, one stream. {res['repeats']} passes, medians of per-pass ratios.", "",
             "## resnet50 (random weights), batch 1", "", "| IR | p50 ms |", "|---|---|"]
    for k, v in r["median_p50_ms"].items():
        lines.append(f"| {k} | {v:.2f} |")
    lines += ["", f"ours INT8 / NNCF default INT8: **{r['ours_int8_over_nncf']:.3f}×** (target ≤ 1.05). "
              f"fp32 / bf16: **{r['fp32_over_bf16']:.2f}×** (fp32 really runs f32: compiled layer precisions "
              f"{r['fp32_manifest_precision']['compiled_layer_precisions']}, hint {r['fp32_manifest_precision']['inference_precision_hint']}). "
              f"INT8 layers with weights running INT8: {r['int8_layers']['weight_layers_int8']} of {r['int8_layers']['weight_layers_total']}.", "",
              "## Our harness against benchmark_app (same IR, same settings)", "",
              "| IR | benchmark_app median ms | ours p50 ms | ours / benchmark_app |", "|---|---|---|---|"]
    for k, v in r["benchmark_app"].items():
        lines.append(f"| {k} | {v['benchmark_app_median_ms']:.2f} | {v['ours_p50_ms_same_moment']:.2f} | {v['ours_over_benchmark_app']:.3f} |")
    f = acc["fashion_int8"]
    lines += ["", "## Accuracy", "",
              f"- Fashion-MNIST openvino-cpu-int8: top-1 {f['accuracy']:.4f} vs FP32 {f['reference_accuracy']:.4f} "
              f"(drop {f['accuracy_drop_pp']:.2f} points; target ≤ 0.3), agreement {f['top1_agreement']:.4f}."]
    for t in ("openvino-cpu-int8", "openvino-cpu-bf16"):
        e = acc[f"effnet_{t}"]
        lines.append(f"- EfficientNet-Lite0 {t}: top-1 agreement with FP32 {e['top1_agreement']:.2f} (target ≥ 0.95), "
                     f"top-1 {e['accuracy']:.2f} (FP32 {e['reference_accuracy']:.2f}), cosine {e['cosine_mean']:.4f}.")
    return "\n".join(lines) + "\n"


def sections(tmp: Path, args) -> dict:
    return {"resnet50": resnet50(tmp, args.repeats, args.duration), "accuracy": accuracy(tmp)}


if __name__ == "__main__":
    run_suite("openvino", __doc__.splitlines()[0], sections, markdown)

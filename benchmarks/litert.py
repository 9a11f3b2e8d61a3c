"""LiteRT and the Arm check: LiteRT INT8 against litert-torch's own flow, and edge bundles re-run on emulated Arm CPUs.

1. mobilenet_v2 (torchvision, random weights, seed 0), batch 1, 1 thread: the SDK's litert-xnnpack-fp32 and
   litert-xnnpack-int8 (its plan: 20 ImageNet images calibrate it) against litert-torch's documented PT2E flow on the same
   float program and images (benchmarks/litert_peer.py, in .venv-litert). Every .tflite timed by the SDK's harness in a
   fresh process through ai-edge-litert (XNNPACK), ``--repeats`` passes, medians of per-pass ratios.
2. EfficientNet-Lite0 (real ImageNet weights, the demo model; 20 labelled ImageNet images): litert-xnnpack-fp32 and -int8
   top-1 agreement with FP32.
3. `compressor verify --on arm64` (qemu user mode, Debian arm64 root, the runtimes' aarch64 wheels), each on
   Cortex-A53 and Neoverse-N1: Fashion-MNIST CNN executorch-xnnpack-int8 and litert-xnnpack-int8, the demo's
   EfficientNet-Lite0 executorch-xnnpack-int8; then a Fashion bundle whose stored outputs were altered (hashes fixed up)
   must fail. Wall time of each check (emulated: never device latency).

    .venv/bin/python benchmarks/litert.py [--repeats 3] [--duration 5] [--only mobilenet_v2,efficientnet,arm64]
Writes results/litert.json and results/litert.md.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EFFNET_OPTS, FASHION, FASHION_OPTS, ROOT, run_suite, say, torchvision_case  # noqa: E402

import compressor  # noqa: E402
from compressor.core.errors import CompressorError  # noqa: E402
from compressor.evaluation.benchmark import BenchmarkSettings, run_isolated  # noqa: E402
from compressor.zoo.paths import efficientnet_lite0_weights, imagenet_samples  # noqa: E402

LITERT_PYTHON = ROOT / ".venv-litert" / "bin" / "python"
DYNAMIC = "dynamic-range INT8 candidate (ai-edge-quantizer)"


def mobilenet_v2(tmp: Path, repeats: int, duration: float) -> dict:
    import torch
    import torchvision

    ckpt, x = torchvision_case("mobilenet_v2", tmp)
    common = dict(arch="torchvision:mobilenet_v2", input_shape="1,3,224,224", eval=tmp / "imagenet20.npz", benchmark=False, quiet=False)
    say("mobilenet_v2: litert-xnnpack-fp32 and -int8 (the SDK)")
    fp32 = compressor.compress(ckpt, target="litert-xnnpack-fp32", output=tmp / "fp32", **common)
    ours = compressor.compress(ckpt, target="litert-xnnpack-int8", calib=tmp / "imagenet20.npz", output=tmp / "int8", **common)
    say("mobilenet_v2: litert-torch's documented PT2E flow (its own environment)")
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    program = tmp / "float.pt2"
    torch.export.save(torch.export.export(model.eval(), (torch.from_numpy(x[:1]),)), str(program))
    peer = tmp / "peer.tflite"
    peer_info = _in_litert_env(str(program), str(tmp / "imagenet20.npz"), str(peer))
    say("mobilenet_v2: the dynamic-range INT8 candidate (ai-edge-quantizer on our FP32 file)")
    dynamic = tmp / "dynamic.tflite"
    dynamic_info = _in_litert_env("--dynamic", str(fp32.bundle / "model.tflite"), str(dynamic))
    files = {"ours litert-xnnpack-int8": ours.bundle / "model.tflite", "peer litert-torch PT2E (docs)": peer,
             "ours litert-xnnpack-fp32": fp32.bundle / "model.tflite", DYNAMIC: dynamic}
    settings = BenchmarkSettings(batch_size=1, threads=1, duration=duration, iterations=100)
    passes = []
    for i in range(repeats):
        say(f"mobilenet_v2: timing pass {i + 1}/{repeats}")
        passes.append({k: run_isolated("litert-xnnpack-fp32", f, {"input": x[:1]}, settings).p50_ms for k, f in files.items()})
    ours_k = ours.manifest["artifact"]["build"]["kernels"]
    return {"passes": passes, "median_p50_ms": {k: statistics.median(p[k] for p in passes) for k in files},
            "ours_over_peer": statistics.median(p["ours litert-xnnpack-int8"] / p["peer litert-torch PT2E (docs)"] for p in passes),
            "ours_int8_over_fp32": statistics.median(p["ours litert-xnnpack-int8"] / p["ours litert-xnnpack-fp32"] for p in passes),
            "dynamic_over_fp32": statistics.median(p[DYNAMIC] / p["ours litert-xnnpack-fp32"] for p in passes),
            "size_bytes": {k: f.stat().st_size for k, f in files.items()}, "kernels_int8": ours_k, "peer": peer_info,
            "dynamic": dynamic_info, "threads": 1}


def _in_litert_env(*args: str) -> dict:
    """benchmarks/litert_peer.py in .venv-litert (litert-torch and ai-edge-quantizer cannot share the project's venv)."""
    done = subprocess.run([str(LITERT_PYTHON), str(ROOT / "benchmarks" / "litert_peer.py"), *args], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0:
        raise SystemExit(f"litert_peer.py {args[0]} failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads([ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1])


def efficientnet(tmp: Path) -> dict:
    images, out = imagenet_samples(), {}
    for t in ("litert-xnnpack-fp32", "litert-xnnpack-int8"):
        say(f"efficientnet-lite0: {t}")
        r = compressor.compress(efficientnet_lite0_weights(), target=t, benchmark=False, output=tmp / f"effnet-{t}",
                                **{**EFFNET_OPTS, "eval": images, "calib": images if t.endswith("int8") else None})
        out[t] = {k: r.fidelity[k] for k in ("accuracy", "reference_accuracy", "top1_agreement", "cosine_mean")}
    return out


def _timed_verify(bundle: Path) -> dict:
    t0 = time.perf_counter()
    try:
        res = compressor.verify(bundle, on="arm64", quiet=False)
        return {**res, "wall_s": round(time.perf_counter() - t0, 1)}
    except CompressorError as e:
        return {"passed": False, "error": str(e), "wall_s": round(time.perf_counter() - t0, 1)}


def arm64_checks(tmp: Path) -> dict:
    from compressor.bundle import arm64
    from compressor.core.files import sha256_file

    problem = arm64.environment_problem("executorch") or arm64.environment_problem("litert")
    if problem:
        return {"skipped": problem}
    opts = {**FASHION_OPTS, "input_shape": "1,1,28,28"}
    bundles = {}
    for t in ("executorch-xnnpack-int8", "litert-xnnpack-int8"):
        say(f"fashion-mnist: {t}")
        bundles[f"Fashion-MNIST CNN {t}"] = compressor.compress(FASHION / "fashion_cnn.safetensors", target=t, benchmark=False,
                                                                sensitivity=False, output=tmp / f"fashion-{t}", **opts).bundle
    say("efficientnet-lite0: executorch-xnnpack-int8 (the demo's edge bundle)")
    images = imagenet_samples()
    bundles["EfficientNet-Lite0 executorch-xnnpack-int8 (demo)"] = compressor.compress(
        efficientnet_lite0_weights(), target="executorch-xnnpack-int8", benchmark=False, output=tmp / "effnet-et",
        **{**EFFNET_OPTS, "eval": images, "calib": images}).bundle
    rows = {}
    for name, b in bundles.items():
        say(f"verify --on arm64: {name}")
        rows[name] = _timed_verify(b)
    bad = tmp / "altered"
    shutil.copytree(bundles["Fashion-MNIST CNN executorch-xnnpack-int8"], bad)
    with np.load(bad / "reference" / "outputs.npz") as z:
        outs = {k: z[k] for k in z.files}
    first = next(iter(outs))
    outs[first] = outs[first] + 1.0
    np.savez(bad / "reference" / "outputs.npz", **outs)
    m = json.loads((bad / "manifest.json").read_text())
    m["files"] = {rel: sha256_file(bad / rel) for rel in m["files"]}
    m.pop("validation", None)
    (bad / "manifest.json").write_text(json.dumps(m, indent=2))
    say("verify --on arm64: the altered bundle (must fail)")
    rows["altered stored outputs (must fail)"] = _timed_verify(bad)
    return {"rows": rows, "environment": arm64.installed(), "emulator": arm64.qemu_version()}


def markdown(res: dict) -> str:
    env = res["environment"]
    lines = [f"# LiteRT and the Arm check — {res['date'][:10]}", "",
             f"Machine: {env['cpu']['model']}, {env['cpu']['usable_cpus']} usable CPUs; ai-edge-litert "
             f"{env['libraries'].get('ai-edge-litert')}, ExecuTorch {env['libraries'].get('executorch')}.", ""]
    m = res.get("mobilenet_v2")
    if m:
        lines += ["## mobilenet_v2 (random weights), batch 1, 1 thread", "",
                  f"Each .tflite in a fresh process through ai-edge-litert with XNNPACK, {len(m['passes'])} passes, medians of per-pass ratios.",
                  "", "| artifact | p50 ms | size |", "|---|---|---|"]
        lines += [f"| {k} | {v:.2f} | {m['size_bytes'][k] / 1e6:.1f} MB |" for k, v in m["median_p50_ms"].items()]
        k = m["kernels_int8"]
        lines += ["", f"- ours INT8 / litert-torch's own PT2E flow: **{m['ours_over_peer']:.3f}×** (target ≤ 1.05)",
                  f"- ours INT8 / ours FP32: **{m['ours_int8_over_fp32']:.3f}×** (target ≤ 0.6)",
                  f"- dynamic-range INT8 / ours FP32: **{m['dynamic_over_fp32']:.3f}×**: "
                  + ("faster than FP32 here" if m["dynamic_over_fp32"] < 1 else "slower than FP32 on this CPU, so no dynamic-range target"),
                  f"- ours INT8 kernels: {k['delegated_op_count']} ops on XNNPACK, {k['builtin_op_count']} on built-in kernels; "
                  f"{k['weight_ops_int8']} of {k['weight_ops']} weight ops int8", ""]
    e = res.get("efficientnet")
    if e:
        lines += ["## EfficientNet-Lite0 (the demo model), 20 ImageNet images", ""]
        lines += [f"- {t}: top-1 agreement with FP32 **{r['top1_agreement']:.2f}**, top-1 {r['accuracy']:.2f} (FP32 {r['reference_accuracy']:.2f}), "
                  f"cosine {r['cosine_mean']:.4f}" for t, r in e.items()]
        lines.append("")
    a = res.get("arm64")
    if a and "skipped" in a:
        lines += ["## verify --on arm64", "", f"Not run here: {a['skipped']}", ""]
    elif a:
        inst = a["environment"]
        lines += ["## verify --on arm64", "", f"{a['emulator']}; {inst.get('root')} ({inst.get('size_bytes', 0) / 1e9:.2f} GB); runtimes "
                  + ", ".join(f"{r} {', '.join(f'{d} {v}' for d, v in x['versions'].items())}" for r, x in inst.get("runtimes", {}).items())
                  + ". Wall time is emulated time for the whole check (both CPUs, runtime import included), never device latency.", "",
                  "| bundle | result | CPUs (max abs error) | CPUs agree | wall s |", "|---|---|---|---|---|"]
        for name, r in a["rows"].items():
            if r.get("passed"):
                cpus = ", ".join(f"{c['cpu']} ({c['max_abs_error']:.2g})" for c in r["cpus"])
                lines.append(f"| {name} | PASS ({r['runtime']} {r['runtime_version']}) | {cpus} | {'bit for bit' if r['cpus_agree'] else 'no'} | {r['wall_s']} |")
            else:
                lines.append(f"| {name} | FAIL: {r['error']} | – | – | {r['wall_s']} |")
        lines.append("")
    return "\n".join(lines)


def sections(tmp: Path, args) -> dict:
    return {"mobilenet_v2": lambda: mobilenet_v2(tmp, args.repeats, args.duration), "efficientnet": lambda: efficientnet(tmp),
            "arm64": lambda: arm64_checks(tmp)}


if __name__ == "__main__":
    run_suite("litert", __doc__.splitlines()[0], sections, markdown)

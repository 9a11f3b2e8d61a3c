"""``compressor bench MODEL --targets LIST|all``: one model on every target, in one honest run.

Every target is built from the same loaded model, validated against the same FP32 PyTorch outputs on
the same eval data, and benchmarked in its own fresh process with the same threads, batch sizes,
duration and warm-up. Targets that cannot run here get a row that says why; a target that fails
gets a row with its error and the others go on.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compressor.evaluation.benchmark import run_isolated
from compressor.data.sources import DataSource
from compressor.core.environment import describe_environment
from compressor.core.errors import CompressorError, InputError, TargetError, first_line
from compressor.app.compress import (apply_pruning, artifact_size, bench_settings, benchmark_feeds, load_calibration, load_model_and_eval,
                       quant_settings, reference_outputs, validate_artifact)
from compressor.pruning.prune import vector_width
from compressor.core.progress import Progress
from compressor.app.recipe import RunConfig
from compressor.core.backend import BuildContext
from compressor.core.targets import CATALOGUE, REFERENCE_TARGET, get_target

METHOD = ("Each target is built from the same model, validated against the FP32 PyTorch outputs on the same eval data, and "
          "benchmarked in a fresh process (one runtime's threads and memory never touch the next) with the same thread count, "
          "batch sizes, input, duration and warm-up. Every runtime runs one inference at a time on one stream: ONNX Runtime "
          "with intra_op_num_threads = threads, inter_op 1, sequential; OpenVINO with PERFORMANCE_HINT=LATENCY and "
          "INFERENCE_NUM_THREADS = threads; torch with set_num_threads. Throughput = batch / p50 latency; larger batches "
          "(--batch-sizes) are how throughput is compared, so no runtime gets more parallel streams than another.")


def parse_targets(text: str) -> list[str]:
    if text.strip() == "all":
        return list(CATALOGUE)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise InputError("--targets is empty: give a comma-separated list or 'all' (see `compressor targets`)")
    for n in names:
        if n not in CATALOGUE:
            raise TargetError(f"unknown target '{n}' in --targets: known targets are {', '.join(CATALOGUE)}")
    return list(dict.fromkeys(names))


def parse_batch_sizes(text: str | None, default: int) -> list[int]:
    if not text:
        return [default]
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--batch-sizes takes whole numbers separated by commas, like 1,8,32; got '{text}'")
    if not sizes or any(b < 1 for b in sizes):
        raise InputError(f"--batch-sizes must be positive whole numbers, got '{text}'")
    return sizes


def bench_targets(config: RunConfig, targets: str, batch_sizes: str | None = None, quiet: bool = False) -> dict[str, Any]:
    import backends

    ui = Progress(quiet)
    names = parse_targets(targets)
    if Path(config.model.checkpoint).is_dir() or str(config.model.checkpoint).endswith((".tar.gz", ".tgz")):
        raise InputError("a bundle holds one built artifact: bench it without --targets (compressor bench BUNDLE), "
                         "or give the checkpoint to build every target")
    settings = bench_settings(config)
    sizes = parse_batch_sizes(batch_sizes, settings.batch_size)
    if REFERENCE_TARGET not in names and config.benchmark.compare_eager:
        names.insert(0, REFERENCE_TARGET)  # the speed-up baseline is always measured
    pre = config.preprocessing.to_preprocessing() if config.preprocessing else None
    handle, eval_data = load_model_and_eval(config, pre, ui)
    for b in sizes:  # fail on a batch size the inputs cannot take before building anything
        benchmark_feeds(eval_data, handle.inputs, b)
    calib = None
    if config.data.calib or config.data.synthetic:
        calib = load_calibration(config, handle, pre, get_target("ort-cpu-int8"), ui)
    ref_out = reference_outputs(handle, eval_data, settings.threads, ui)
    variants = [(handle, None)]
    pruned_cache: dict[int, tuple] = {}
    rows = []
    for name in names:
        spec = CATALOGUE[name]
        ok, why = backends.target_status(spec)
        row: dict[str, Any] = {"target": name, "precision": spec.precision, "backend": spec.backend, "usable": ok}
        if not ok:
            rows.append({**row, "status": "unusable", "reason": why})
            ui.note(f"[yellow]–[/] {name}: not run here ({why})")
            continue
        if spec.precision == "int8" and calib is None:
            rows.append({**row, "status": "unusable", "reason": "static INT8 needs calibration data: pass --calib DATA"})
            ui.note(f"[yellow]–[/] {name}: not run (needs --calib)")
            continue
        variants = [(handle, None)]
        if config.pruning is not None:
            round_to = config.pruning.round_to or vector_width(spec.name)
            if round_to not in pruned_cache:  # prune (and fine-tune) once per channel multiple
                pruned_cache[round_to] = apply_pruning(config, handle, spec, pre, ui, eval_data)
            variants.append(pruned_cache[round_to])
        for model, pruning in variants:
            label = name if pruning is None else f"{name} (pruned)"
            this = {**row, "target": label, "pruned": pruning is not None}
            try:
                result = _run_target(spec, model, eval_data, calib, ref_out, config, settings, sizes, ui)
                if pruning is not None:
                    result["pruning"] = {k: v for k, v in pruning.items() if k != "layers_changed"}
                rows.append({**this, **result})
            except Exception as e:  # noqa: BLE001 - one target's failure is its row, the others go on
                msg = first_line(e)
                rows.append({**this, "status": "failed", "reason": msg})
                ui.warn(f"{label} failed: {msg}")
    _speedups(rows, sizes)
    _slower_than_float(rows, sizes, ui)
    return {
        "suite": "compressor bench",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"checkpoint": Path(config.model.checkpoint).name, "source": handle.source, "inputs": [s.to_dict() for s in handle.inputs]},
        "eval": eval_data.to_dict(),
        "calibration": calib.to_dict() if calib else None,
        "settings": {**settings.to_dict(), "batch_sizes": sizes},
        "methodology": METHOD,
        "rows": rows,
        "environment": describe_environment(),
    }


def _run_target(spec, handle, eval_data: DataSource, calib, ref_out, config, settings, sizes, ui) -> dict[str, Any]:
    import backends

    backend = backends.get_backend(spec.backend)
    target = spec.with_run(handle.inputs, settings.threads)
    ctx = BuildContext(calib=calib, eval=eval_data, quant=quant_settings(config), progress=ui, task=config.model.task)
    with tempfile.TemporaryDirectory(prefix="compressor-bench-") as tmp:
        with ui.stage(f"built {spec.name}"):
            artifact = backend.build(handle, target, Path(tmp), ctx)
        fidelity, _ = validate_artifact(backend, artifact, target, handle, eval_data, ref_out, config.model.task, settings.threads, ui)
        per_batch = {}
        for b in sizes:
            s = type(settings)(**{**settings.to_dict(), "batch_size": b})
            with ui.stage(f"benchmarked {spec.name} at batch {b}"):
                try:
                    per_batch[str(b)] = run_isolated(spec.name, artifact.path, benchmark_feeds(eval_data, handle.inputs, b), s)
                except CompressorError as e:
                    per_batch[str(b)] = {"error": str(e)}
        q = artifact.details.get("quantization") or {}
        return {
            "status": "ok",
            "size_bytes": artifact_size(artifact),
            "fidelity": fidelity.to_dict(),
            "batches": per_batch,
            "runtime": next((r.get("runtime") for r in per_batch.values() if "runtime" in r), None),
            "int8_layers": q.get("kernels"),
            "warnings": list(ctx.warnings),
        }


def _speedups(rows: list[dict], sizes: list[int]) -> None:
    ref = next((r for r in rows if r["target"] == REFERENCE_TARGET and r.get("status") == "ok" and not r.get("pruned")), None)
    for r in rows:
        for b in sizes:
            res = (r.get("batches") or {}).get(str(b))
            base = (ref or {}).get("batches", {}).get(str(b)) if ref else None
            if res and "latency_ms" in res and base and "latency_ms" in base:
                res["speedup_vs_torch_eager"] = base["latency_ms"]["p50"] / res["latency_ms"]["p50"]


def _slower_than_float(rows: list[dict], sizes: list[int], ui) -> None:
    """An INT8 artifact slower than the FP32 one on the same runtime is the field's commonest complaint: say so loudly."""
    fp32 = {(r["backend"], bool(r.get("pruned"))): r for r in rows if r.get("status") == "ok" and r["precision"] == "fp32"}
    for r in rows:
        base = fp32.get((r["backend"], bool(r.get("pruned"))))
        if r.get("status") != "ok" or not r["precision"].startswith("int8") or base is None:
            continue
        for b in sizes:
            mine, theirs = r["batches"].get(str(b), {}), base["batches"].get(str(b), {})
            if "latency_ms" in mine and "latency_ms" in theirs and mine["latency_ms"]["p50"] > theirs["latency_ms"]["p50"]:
                ratio = mine["latency_ms"]["p50"] / theirs["latency_ms"]["p50"]
                msg = f"INT8 is SLOWER than {base['target']} at batch {b} ({ratio:.2f}× its latency): prefer the float target here"
                mine["slower_than_float"] = ratio
                r.setdefault("warnings", []).append(msg)
                ui.warn(f"{r['target']}: {msg}")


def table_rows(result: dict) -> list[dict]:
    from compressor.bundle.report import fmt_size

    out = []
    for r in result["rows"]:
        if r.get("status") != "ok":
            out.append({"target": r["target"], "precision": r["precision"], "status": f"{r['status']}: {r['reason']}"})
            continue
        f = r["fidelity"]
        for b, res in r["batches"].items():
            base = {"target": r["target"], "precision": r["precision"], "batch": b, "size": fmt_size(r["size_bytes"]),
                    "agreement": "–" if f["top1_agreement"] is None else f"{f['top1_agreement']:.4f}",
                    "top-1": "–" if f["accuracy"] is None else f"{f['accuracy']:.4f}", "cosine mean": f"{f['cosine_mean']:.5f}"}
            if "error" in res:
                out.append({**base, "status": f"benchmark failed: {res['error']}"})
                continue
            lat = res["latency_ms"]
            out.append({**base, "p50 ms": f"{lat['p50']:.2f}", "p90 ms": f"{lat['p90']:.2f}", "throughput/s": f"{res['throughput_per_s']:.1f}",
                        "speed-up vs torch": "–" if "speedup_vs_torch_eager" not in res else f"{res['speedup_vs_torch_eager']:.2f}×",
                        "peak RSS": f"{res['peak_rss_mb']:.0f} MB",
                        "status": "ok" if "slower_than_float" not in res else f"SLOWER than fp32 ({res['slower_than_float']:.2f}×)"})
    return out


TABLE_COLUMNS = ("target", "precision", "batch", "size", "top-1", "agreement", "cosine mean", "p50 ms", "p90 ms", "throughput/s",
                 "speed-up vs torch", "peak RSS", "status")


def write_json(path: Path, result: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    tmp.rename(path)


def plot(result: dict, path: Path) -> None:
    """Latency (batch = the first size) against fidelity, one point per target, the Pareto front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = str(result["settings"]["batch_sizes"][0])
    pts = []
    for r in result["rows"]:
        res = (r.get("batches") or {}).get(b) or {}
        if r.get("status") == "ok" and "latency_ms" in res:
            f = r["fidelity"]
            fid = f["top1_agreement"] if f["top1_agreement"] is not None else f["cosine_mean"]
            pts.append((res["latency_ms"]["p50"], fid, r["target"]))
    if not pts:
        raise InputError("no target produced a latency to plot")
    metric = "top-1 agreement with FP32" if any(r.get("fidelity", {}).get("top1_agreement") is not None
                                                for r in result["rows"] if r.get("status") == "ok") else "output cosine with FP32"
    front = [p for p in pts if not any(q[0] <= p[0] and q[1] >= p[1] and q != p and (q[0] < p[0] or q[1] > p[1]) for q in pts)]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="tab:blue")
    for x, y, name in pts:
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    fs = sorted(front)
    ax.plot([p[0] for p in fs], [p[1] for p in fs], color="tab:red", linestyle="--", marker="o", label="Pareto front")
    ax.set_xscale("log")
    from matplotlib.ticker import FormatStrFormatter

    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel(f"p50 latency, batch {b} (ms, log scale)")
    ax.set_ylabel(metric)
    env = result["environment"]["cpu"]
    ax.set_title(f"{result['model']['checkpoint']}: {env['model']}, {result['settings']['threads']} threads", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.rename(path)

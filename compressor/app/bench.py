"""``compressor bench MODEL --targets LIST|all``: one model on every target, in one honest run.

Every target is built from the same loaded model, validated against the same FP32 PyTorch outputs on
the same eval data, and benchmarked in its own fresh process with the same threads, batch sizes,
duration and warm-up. Targets that cannot run here get a row that says why; a target that fails
gets a row with its error and the others go on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compressor.app.recipe import RunConfig
from compressor.app.session import open_session
from compressor.bundle.present import bench_cells, cell, result_cells
from compressor.core.environment import describe_environment
from compressor.core.errors import InputError, TargetError
from compressor.core.progress import Progress
from compressor.core.registry import catalogue, reference_target
from compressor.core.targets import Precision
from compressor.evaluation.roofline import METHOD as ROOFLINE_METHOD
from compressor.evaluation.roofline import ceilings, model_flops, rate
from compressor.evaluation.session import Candidate, CandidateResult

METHOD = ("Each target is built from the same model, validated against the FP32 PyTorch outputs on the same eval data, and "
          "benchmarked in a fresh process (one runtime's threads and memory never touch the next) with the same thread count, "
          "batch sizes, input, duration and warm-up. Every runtime runs one inference at a time on one stream: ONNX Runtime "
          "with intra_op_num_threads = threads, inter_op 1, sequential; OpenVINO with PERFORMANCE_HINT=LATENCY and "
          "INFERENCE_NUM_THREADS = threads; torch with set_num_threads. Throughput = batch / p50 latency; larger batches "
          "(--batch-sizes) are how throughput is compared, so no runtime gets more parallel streams than another.")


def parse_targets(text: str) -> list[str]:
    cat = catalogue()
    if text.strip() == "all":
        return list(cat)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise InputError("--targets is empty: give a comma-separated list or 'all' (see `compressor targets`)")
    for n in names:
        if n not in cat:
            raise TargetError(f"unknown target '{n}' in --targets: known targets are {', '.join(cat)}")
    return list(dict.fromkeys(names))


def parse_batch_sizes(text: str | None, default: int) -> list[int]:
    if not text:
        return [default]
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--batch-sizes takes whole numbers separated by commas, like 1,8,32; got '{text}'") from None
    if not sizes or any(b < 1 for b in sizes):
        raise InputError(f"--batch-sizes must be positive whole numbers, got '{text}'")
    return sizes


def bench_targets(config: RunConfig, targets: str, batch_sizes: str | None = None, quiet: bool = False) -> dict[str, Any]:
    ui = Progress(quiet)
    names = parse_targets(targets)
    if Path(config.model.checkpoint).is_dir() or str(config.model.checkpoint).endswith((".tar.gz", ".tgz")):
        raise InputError("a bundle holds one built artifact: bench it without --targets (compressor bench BUNDLE), "
                         "or give the checkpoint to build every target")
    sizes = parse_batch_sizes(batch_sizes, config.benchmark.batch_size)
    reference = reference_target().name
    if reference not in names and config.benchmark.compare_eager:
        names.insert(0, reference)  # the speed-up baseline is always measured
    cat = catalogue()
    calibrate = any(cat[n].needs_calibration for n in names)
    with open_session(config, ui, calibrate=calibrate) as session:
        for b in sizes:  # fail on a batch size the inputs cannot take before building anything
            session.benchmark_feeds(b)
        candidates = [Candidate(n) for n in names]
        if config.pruning is not None:  # each target pruned too, beside its unpruned row
            candidates = [c for n in names for c in (Candidate(n), Candidate(n, config.pruning))]
        session.prepare(candidates)
        session.reference_outputs()
        rows = [_row(session.evaluate(c, sizes), ui) for c in candidates]
        env = describe_environment()
        with ui.stage("work per sample counted and this machine's matmul ceilings (measured once, then cached)"):
            flops = model_flops(session.model.module, session.model.example_inputs(batch=1))
            ceiling = ceilings(env, session.threads)
        result = {
            "suite": "compressor bench",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": {"checkpoint": Path(config.model.checkpoint).name, "source": session.model.source,
                      "inputs": [s.to_dict() for s in session.model.inputs]},
            "eval": session.eval_data.to_dict(),
            "calibration": session.calib.to_dict() if session.calib else None,
            "settings": {**session.benchmark.to_dict(), "batch_sizes": sizes},
            "methodology": METHOD,
            "rows": rows,
            "roofline": {"flops_per_sample": flops, "ceilings": ceiling, "method": ROOFLINE_METHOD},
            "environment": env,
        }
    _speedups(rows, sizes)
    _roofline(rows, sizes, flops, ceiling)
    _slower_than_float(rows, sizes, ui)
    return result


# of the quantization section, into a bench row
QUANT_KEYS = ("quantizer", "realiser", "calibration", "pt2e", "autotune", "qat", "sensitivity", "auto_precision")


def _row(r: CandidateResult, ui: Progress) -> dict[str, Any]:
    """One table/JSON row of a candidate's result."""
    spec = r.target
    row: dict[str, Any] = {"target": r.candidate.label, "precision": spec.precision.value if spec else None,
                           "backend": spec.backend if spec else None, "pruned": r.candidate.pruning is not None,
                           "usable": r.status != "unusable", "reference": bool(spec and spec.reference)}
    if r.status == "unusable":
        ui.note(f"[yellow]–[/] {r.candidate.label}: not run here ({r.reason})")
        return {**row, "status": "unusable", "reason": r.reason}
    if r.status == "built":
        ui.note(f"[yellow]–[/] {r.candidate.label}: built, {r.reason}")
        return {**row, "status": "built", "reason": r.reason, "size_bytes": r.size_bytes, "build_seconds": r.build_seconds,
                "int8_layers": (r.quantization or {}).get("kernels"), "build": r.build, "warnings": list(r.warnings)}
    if r.status == "failed":
        ui.warn(f"{r.candidate.label} failed: {r.reason}")
        return {**row, "status": "failed", "reason": r.reason}
    q = r.quantization or {}
    out = {**row, "status": "ok", "size_bytes": r.size_bytes, "fidelity": r.fidelity.to_dict(),
           "batches": {str(b): res.to_dict() for b, res in r.benchmarks.items()},
           "runtime": next((res.runtime for res in r.benchmarks.values() if not res.error), None),
           "int8_layers": q.get("kernels"), "quantization": {k: q[k] for k in QUANT_KEYS if k in q} or None,
           "build_seconds": r.build_seconds, "warnings": list(r.warnings)}
    if r.pruning is not None:
        out["pruning"] = {k: v for k, v in r.pruning.items() if k != "layers_changed"}
    return out


def _speedups(rows: list[dict], sizes: list[int]) -> None:
    ref = next((r for r in rows if r.get("reference") and r.get("status") == "ok" and not r.get("pruned")), None)
    for r in rows:
        for b in sizes:
            res = (r.get("batches") or {}).get(str(b))
            base = (ref or {}).get("batches", {}).get(str(b)) if ref else None
            if res and "latency_ms" in res and base and "latency_ms" in base:
                res["speedup_vs_torch_eager"] = base["latency_ms"]["p50"] / res["latency_ms"]["p50"]


def _roofline(rows: list[dict], sizes: list[int], flops: int | None, ceiling: dict) -> None:
    """Each measured batch's work rate (GFLOP/s, GOP/s for INT8) and its share of the machine's ceiling for that precision.
    A pruned row does the work of its pruned model (its MACs were counted when it was pruned)."""
    for r in rows:
        p = r.get("pruning") or {}
        mine = flops * p["macs_after"] / p["macs_before"] if flops and p.get("macs_before") else flops
        for b in sizes:
            res = (r.get("batches") or {}).get(str(b))
            if res and "latency_ms" in res and r.get("precision"):
                res["roofline"] = rate(mine, b, res["latency_ms"]["p50"], r["precision"], ceiling)


def _slower_than_float(rows: list[dict], sizes: list[int], ui) -> None:
    """An INT8 artifact slower than the float one on the same runtime (FP32, else FP16 on GPUs) is the field's commonest
    complaint: say so loudly."""
    fp32: dict[tuple, dict] = {}
    for p in (Precision.BF16, Precision.FP16, Precision.FP32):  # the last written wins: FP32 where there is one
        fp32.update({(r["backend"], bool(r.get("pruned"))): r for r in rows if r.get("status") == "ok" and r["precision"] == p})
    for r in rows:
        base = fp32.get((r["backend"], bool(r.get("pruned"))))
        if r.get("status") != "ok" or not Precision(r["precision"]).quantized or base is None:
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
    """The terminal table of a bench result (its JSON): one row per target and batch size, formatted by the one presenter."""
    out = []
    for r in result["rows"]:
        head = {"target": r["target"], "precision": r["precision"]}
        if r.get("status") == "built":
            out.append({**head, "size": cell("size", r["size_bytes"]), "build s": cell("build s", r["build_seconds"]),
                        "status": f"built, {r['reason']}"})
            continue
        if r.get("status") != "ok":
            out.append({**head, "status": f"{r['status']}: {r['reason']}"})
            continue
        for b, res in r["batches"].items():
            base = {**head, "batch": b, **result_cells(r["size_bytes"], r["fidelity"], None)}
            if "error" in res:
                out.append({**base, "status": f"benchmark failed: {res['error']}"})
                continue
            ms = res.get("multi_stream")
            out.append({**base, **bench_cells(res, res.get("speedup_vs_torch_eager")), "work/s (of peak)": _work(res.get("roofline")),
                        "multi-stream/s": "–" if not ms else f"{cell('throughput/s', ms['throughput_per_s'])} ({ms['streams']} streams)",
                        "build s": cell("build s", r.get("build_seconds")),
                        "status": "ok" if "slower_than_float" not in res else f"SLOWER than float ({res['slower_than_float']:.2f}×)"})
    return out


TABLE_COLUMNS = ("target", "precision", "batch", "size", "top-1", "agreement", "cosine mean", "p50 ms", "p90 ms", "throughput/s",
                 "speed-up vs torch", "work/s (of peak)", "multi-stream/s", "peak RSS", "build s", "status")


def _work(rf: dict | None) -> str:
    if not rf:
        return "–"
    share = f" ({rf['share_of_ceiling']:.0%})" if rf.get("share_of_ceiling") is not None else ""
    return f"{rf['rate']:.1f} {rf['unit']}{share}"


def plot(result: dict, path: Path) -> None:
    """Latency (the smallest batch) against fidelity, every target named beside the plot, the Pareto front marked: the same
    figure as the HTML report's."""
    import matplotlib.pyplot as plt

    from compressor.bundle.html import fidelity_metric, points, tradeoff_figure

    pts = points([{**result, "source": str(path)}])
    fig = tradeoff_figure(pts, *fidelity_metric(pts))
    if fig is None:
        raise InputError("no target produced a latency to plot")
    env = result["environment"]["cpu"]
    fig.axes[0].set_title(f"{result['model']['checkpoint']}: {env['model']}, {result['settings']['threads']} threads", fontsize=10)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.rename(path)

"""Result tables: one row format for the terminal (rich) and the bundle's REPORT.md (markdown)."""

from __future__ import annotations

from collections.abc import Sequence

from compressor.bundle.present import NUMERIC, fmt, result_cells
from compressor.core.files import fmt_size

COLUMNS = ("target", "precision", "size", "top-1", "agreement", "cosine mean", "cosine min", "p50 ms", "p90 ms", "throughput/s", "peak RSS",
           "speed-up vs torch")


def row(target: str, precision: str, size: int | None, fidelity: dict | None, bench, speedup: float | None) -> dict:
    """One artifact's row (``bench``: a BenchResult, or a benchmark as a manifest holds it)."""
    return {"target": target, "precision": precision, **result_cells(size, fidelity, bench, speedup)}


def console():
    """A stdout console; when output is not a terminal (CI logs, pipes) it is wide enough for our tables."""
    from rich.console import Console

    c = Console(highlight=False)
    return c if c.is_terminal else Console(highlight=False, width=200)


def print_table(rows: Sequence[dict], title: str | None = None, columns: Sequence[str] = COLUMNS) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    columns = [c for c in columns if c in ("target", "status") or any(r.get(c, "–") != "–" for r in rows)]  # no empty columns
    for c in columns:
        table.add_column(c, justify="right" if c in NUMERIC else "left", no_wrap=c == "target")
    for r in rows:
        table.add_row(*[str(r.get(c, "–")) for c in columns])
    console().print(table)


def markdown_table(rows: Sequence[dict], columns: Sequence[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(r.get(c, "–")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def bundle_report(manifest: dict, rows: Sequence[dict], sections: Sequence[str] = ()) -> str:
    """The short human report that travels in the bundle; ``sections`` are the backend's own (markdown lines)."""
    m = manifest
    fid = m["metrics"]["fidelity"]
    env = m["environment"]
    status = "PASSED" if m["gate"]["passed"] else "FAILED its gate: " + "; ".join(m["gate"]["failures"])
    validation = m.get("validation") or {"validated": True}
    if not validation["validated"]:
        status = f"NOT VALIDATED ({validation['reason']}): run `compressor verify` on the device"
    bs = m["benchmark"]["settings"]
    measured = (f"{bs['threads']} threads, batch {bs['batch_size']}" if bs else "not benchmarked (--no-benchmark)"
                if validation["validated"] else f"built here, not run ({validation['reason']})")
    lines = [
        f"# {m['source']['file']} → {m['target']['name']}",
        "",
        f"- Status: **{status}**",
        f"- Artifact: `{m['artifact']['path']}` ({fmt_size(m['artifact']['size_bytes'])}, {m['target']['artifact_format']}, {m['precision']})",
        "- Inputs: " + ", ".join(f"`{i['name']}` ({i['spec']}, {i['dtype']})" for i in m["inputs"]),
        f"- Eval data: {m['data']['eval']['description']}" + (" — **synthetic: fidelity says nothing about accuracy**"
                                                              if fid and fid["synthetic"] else ""),
        f"- Measured on: {env['cpu']['model']} ({env['cpu']['usable_cpus']} CPUs, ISA: {', '.join(env['cpu']['isa']) or 'n/a'}), "
        f"{measured}",
        "- Figures: `report.html` (self-contained; open it in a browser)",
        "",
        markdown_table(rows),
        "",
        (f"Fidelity against the FP32 PyTorch reference on {fid['samples']} samples: "
         f"top-1 agreement {fmt(fid['top1_agreement'], '.4f')}, cosine mean {fid['cosine_mean']:.6f} / min {fid['cosine_min']:.6f}, "
         f"max abs error {fid['max_abs_error']:.3g}." if fid else
         "Fidelity: not measured here (the artifact could not run on this machine). `reference/outputs.npz` holds the FP32 "
         f"reference's outputs; verify on the device compares with them within {m['reference']['tolerance']}."),
        "",
        "Check this bundle on the device: `compressor verify <bundle>` (re-hashes every file and re-runs the reference inputs).",
        "",
    ]
    pr = m.get("pruning")
    if pr:
        ft = pr.get("finetune")
        sp = pr.get("sparsity")
        lines += ["## Pruning", ""]
        if pr.get("structured", True):
            lines += [f"- {pr['importance']} importance, channels rounded to {pr['round_to']}; kept whole: {', '.join(pr['kept_whole']) or 'none'}",
                      f"- MACs {pr['macs_before'] / 1e9:.3f} → {pr['macs_after'] / 1e9:.3f} G ({pr['macs_removed']:.1%} removed); "
                      f"parameters {pr['params_before'] / 1e6:.2f} → {pr['params_after'] / 1e6:.2f} M ({pr['params_removed']:.1%} removed); "
                      f"{len(pr['layers_changed'])} layers changed width (all listed in manifest.json)"]
        if sp:
            st = sp["storage"]
            lines += [f"- Sparsity {sp['pattern']} (by magnitude) in {len(sp['layers'])} layer(s), every one checked to hold it "
                      f"({sp['zeros_in_sparsified_weights']:.1%} zeros); not sparsified: {', '.join(sp['skipped']) or 'none'}",
                      f"- Weights stored compressed: {st['dense_compressed_bytes'] / 2**20:.2f} MiB dense → "
                      f"{st['sparse_compressed_bytes'] / 2**20:.2f} MiB sparse ({st['factor']:.2f}× smaller; {st['method']}). "
                      "The CPU runtimes here run sparse weights no faster than dense ones: the gain is storage (and TensorRT's "
                      "sparse kernels on a GPU)."]
        lines += [("- Fine-tuned: " + f"{len(ft['history']) - 1} epoch(s) on {ft['samples']} samples, {ft['loss_used']}; "
                   f"validation {ft['validation_metric']}: {ft['history'][0]['val_metric']:.4f} before → best {ft['best_val_metric']:.4f}")
                  if ft else "- Not fine-tuned.",
                  "- Fidelity above is against the unpruned FP32 model: what was lost by pruning shows there.", ""]
    lines += list(sections)
    if m.get("quantization"):
        lines += quantization_section(m["quantization"])
    if m.get("warnings"):
        lines += ["## Warnings", ""] + [f"- {w}" for w in m["warnings"]] + [""]
    return "\n".join(lines)


def quantization_section(q: dict, top: int = 10) -> list[str]:
    k = q.get("kernels", {})
    cal = q["calibration"]
    realiser = q.get("realiser") or "the runtime's own format"
    lines = [
        "## Quantization",
        "",
        f"- Mode: {q['mode']}; weights {q['weight_dtype']} per channel (symmetric), activations {q['activation_dtype']} per tensor",
        f"- Calibration: {cal['method']}" + (f" (percentile {cal['percentile']})" if "percentile" in cal else "") + f", {cal['samples']} samples",
        f"- Quantizer: {q.get('quantizer', 'sdk')}; realised as {realiser}. "
        f"INT8 layers planned: {q['layers_int8']} of {q['layers_total']}. "
        f"Layers with weights running INT8 kernels in the runtime (read back after its optimisations): "
        f"**{k.get('weight_layers_int8', '?')} of {k.get('weight_layers_total', '?')}**" + (f"; {k['summary']}" if k.get("summary") else ""),
    ]
    if q["float_layers"]:
        lines.append("- Float layers: " + "; ".join(f"`{n}` ({why})" for n, why in q["float_layers"].items()))
    lines += transforms_lines(q.get("transforms") or {})
    t = q.get("autotune")
    if t:
        lines.append(f"- Autotune (Intel Neural Compressor, {t['space']}): {t['metric']} {t['trials'][t['chosen_trial'] - 1]:.4f} in trial "
                     f"{t['chosen_trial']} of {len(t['trials'])} against {t['baseline']:.4f} in FP32 (needed ≥ {t['threshold']:.4f}: "
                     f"{'met' if t['met'] else 'not met, the best trial kept'}); trials: {', '.join(f'{v:.4f}' for v in t['trials'])}")
    lines += qat_lines(q.get("qat"))
    lines += auto_precision_lines(q.get("auto_precision"))
    s = q.get("sensitivity")
    if s:
        lines += ["", sensitivity_markdown(s, top)]
    return lines + [""]


def qat_lines(t: dict | None) -> list[str]:
    if not t:
        return []
    h = t["history"]
    a = t.get("artifact_vs_fake_quant") or {}
    return [f"- QAT: {t['epochs_run']} epoch(s) on {t['samples']} samples ({t['loss']}; bf16 autocast: {'yes' if t['bf16_autocast'] else 'no'}), "
            f"{t['layers_simulated']} layers and {t['activation_tensors']} activation ranges trained; held-out {t['validation_metric']} "
            f"{h[0]['val_metric']:.4f} with the PTQ plan → best {t['best_val_metric']:.4f}",
            f"- The exported artifact against the fake-quantized model it was trained as: cosine {fmt(a.get('cosine_mean'), '.6f')}, "
            f"top-1 agreement {fmt(a.get('top1_agreement'), '.4f')}, max abs difference {fmt(a.get('max_abs_difference'), '.3g')}"
            if a else f"- {t.get('note', 'the artifact was not compared with the fake-quantized model')}"]


def auto_precision_lines(ap: dict | None) -> list[str]:
    if not ap:
        return []
    metric = ap["metric"]
    out = ["", "### Auto precision", "",
           f"Gate: {', '.join(f'{k} {v}' for k, v in ap['gate'].items() if v is not None and k.startswith(('max_acc', 'min_')))}. "
           f"{ap['method']}. Chosen: step {ap['chosen_step']}"
           + (f", {ap['speedup_vs_fp32']:.2f}× as fast as {ap['fp32_target']} ({ap['fp32_p50_ms']:.3g} ms)" if ap.get("speedup_vs_fp32") else "")
           + ".", "", f"![{metric} against latency per step](auto_precision.png)", "",
           f"| step | phase | plan | layers float | INT8 layers | {metric.replace('_', ' ')} | p50 ms | gate |", "|---|---|---|---|---|---|---|---|"]
    for st in ap["steps"]:
        mark = " **(chosen)**" if st.get("chosen") else ""
        out.append(f"| {st['step']}{mark} | {st['phase']} | {st['label']} | {len(st['float_layers'])} | {st['int8_layers']} | "
                   f"{fmt(st[metric], '.4f')} | {fmt(st['p50_ms'], '.3f')} | {'pass' if st['passed'] else '; '.join(st['failures'])} |")
    if ap.get("float_layers"):
        out += ["", "Float in the chosen plan: " + "; ".join(f"`{n}` ({why})" for n, why in ap["float_layers"].items())]
    return out


def transforms_lines(tr: dict) -> list[str]:
    """What each compression pass of the plan did (or why it did not), in its own words."""
    from compressor.quantization.pipeline import report_lines

    return report_lines(tr)


def sensitivity_markdown(s: dict, top: int = 10) -> str:
    a = s["all_quantized"]
    rows = [f"Per-layer sensitivity on {s['samples']} samples, measured on {s.get('runtime') or 'the runtime'} "
            f"(all layers INT8: output cosine {a['cosine_mean']:.5f}"
            + (f", top-1 agreement {a['top1_agreement']:.3f}" if a.get("top1_agreement") is not None else "") + ").",
            "Layers ranked by the output-cosine loss when quantized alone (keep the top ones float with --exclude if accuracy drops):", "",
            "| rank | layer | op | loss alone (1 − cosine) | top-1 agreement alone | output SQNR with all INT8 (dB) | input range spread |",
            "|---|---|---|---|---|---|---|"]
    sqnr = {d["layer"]: d["sqnr_db"] for d in s["all_quantized_worst_sqnr"]}
    for i, d in enumerate(s["layers_alone"][:top], 1):
        agree = "–" if d["top1_agreement"] is None else f"{d['top1_agreement']:.3f}"
        db = sqnr.get(d["layer"])
        spread = d.get("input_range_spread")
        rows.append(f"| {i} | `{d['layer']}` | {d['op_type']} | {d['loss']:.2e} | {agree} | {'–' if db is None else f'{db:.1f}'} | "
                    f"{'–' if spread is None else f'{spread:.1f}'} |")
    return "\n".join(rows)

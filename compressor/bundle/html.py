"""One self-contained static HTML page of results: no server, no network, every figure inlined as SVG.

Reads ``compressor bench --json`` results and bundle manifests (a bundle folder or its manifest.json), and shows: the
results table (click a heading to sort), latency against fidelity with the Pareto front for each file (every point
named in a column beside the plot, joined by a line, so close points never hide each other's labels), per-layer INT8 sensitivity, auto-precision
steps, and the environment and method of each file.
"""

from __future__ import annotations

import html
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compressor.bundle.present import cell
from compressor.core.errors import InputError
from compressor.evaluation.gate import GateSettings

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
th{cursor:pointer;background:#f5f5f5;user-select:none}th.sorted-asc:after{content:" \\25B2"}th.sorted-desc:after{content:" \\25BC"}
td:first-child,th:first-child,td.text{text-align:left}.bad{color:#b00}.note{color:#666;font-size:12px}
figure{margin:1em 0}svg{max-width:100%;height:auto}code{background:#f3f3f3;padding:0 3px}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var asc=!th.classList.contains('sorted-asc');
    t.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc');});
    th.classList.add(asc?'sorted-asc':'sorted-desc');
    var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var x=a.cells[i].getAttribute('data-v'),y=b.cells[i].getAttribute('data-v');
      var nx=parseFloat(x),ny=parseFloat(y);
      var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:String(x).localeCompare(String(y));
      return asc?c:-c;});
    rows.forEach(function(r){body.appendChild(r);});
  });});
});
var want=location.hash.match(/^#sort=(.+)$/);  // a link can open the table sorted: report.html#sort=p50%20ms
if(want){document.querySelectorAll('table.sortable th').forEach(function(th){if(th.textContent===decodeURIComponent(want[1]))th.click();});}
document.body.setAttribute('data-ready','1');
"""


def load_results(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Each file as {source, rows, environment, settings, methodology, ...}; a bundle or manifest becomes one row."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            p = p / "manifest.json"
        if not p.is_file():
            raise InputError(f"'{p}' not found: give `compressor bench --json` results or a bundle (folder or its manifest.json)")
        try:
            data = json.loads(p.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"'{p}' is not JSON ({e}): give `compressor bench --json` results or a bundle's manifest.json")
        if isinstance(data, dict) and data.get("task") == "text-generation":
            raise InputError(f"'{p}' is a language-model bundle: the HTML report does not show them yet; read its REPORT.md, "
                             "and `compressor bench BUNDLE --json` for the generation benchmark")
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            out.append({**data, "source": str(p)})
        elif isinstance(data, dict) and isinstance(data.get("target"), dict) and "metrics" in data:
            out.append(manifest_results(data, p))
        else:
            raise InputError(f"'{p}' is neither `compressor bench --json` results (a 'rows' list) nor a bundle manifest")
    if not out:
        raise InputError("no results given: compressor report RESULTS.json [MORE.json …] -o report.html")
    return out


HTML_REPORT = "report.html"


def manifest_results(m: dict, path: str | Path) -> dict:
    """A bundle manifest as one results file: its artifact, and the torch eager FP32 reference where it was measured."""
    metrics = m.get("metrics") or {}
    fid = metrics.get("fidelity") or {}
    reference = []
    if metrics.get("torch_eager_latency_ms"):
        reference = [{"target": "torch-cpu-fp32 (reference)", "precision": "fp32", "status": "ok", "fidelity": {
            "accuracy": fid.get("reference_accuracy"), "top1_agreement": 1.0 if fid.get("top1_agreement") is not None else None,
            "cosine_mean": 1.0}, "batches": {"1": {"latency_ms": metrics["torch_eager_latency_ms"], "speedup_vs_torch_eager": 1.0}}}]
    row = {"target": m["target"]["name"], "precision": m.get("precision"), "backend": m["target"].get("backend"), "status": "ok",
           "size_bytes": (m.get("artifact") or {}).get("size_bytes"), "fidelity": metrics.get("fidelity"),
           "batches": {str(m.get("benchmark", {}).get("batch_size", 1)): {"latency_ms": metrics.get("latency_ms"),
                                                                          "throughput_per_s": metrics.get("throughput_per_s"),
                                                                          "peak_rss_mb": metrics.get("peak_rss_mb")}}
           if metrics.get("latency_ms") else {},
           "quantization": m.get("quantization")}
    if row["batches"] and metrics.get("speedup_vs_torch_eager"):
        next(iter(row["batches"].values()))["speedup_vs_torch_eager"] = metrics["speedup_vs_torch_eager"]
    return {"source": str(path), "rows": [*reference, row], "environment": m.get("environment"), "settings": m.get("benchmark"),
            "gate": m.get("gate"),
            "model": (m.get("source") or {}).get("file"), "date": m.get("created_at"),
            "methodology": (m.get("benchmark") or {}).get("method")}


def points(results: list[dict]) -> list[dict]:
    pts = []
    for i, res in enumerate(results):
        for r in res["rows"]:
            batches = r.get("batches") or {}
            b = min(batches, key=lambda k: int(k)) if batches else None
            bench = batches.get(b) or {} if b else {}
            lat = bench.get("latency_ms") or {}
            fid = r.get("fidelity") or {}
            pts.append({"n": len(pts) + 1, "file": i + 1, "target": r.get("target"), "precision": r.get("precision"),
                        "status": r.get("status") if not bench.get("error") else f"benchmark failed: {bench['error']}",
                        "reason": r.get("reason"), "size": r.get("size_bytes"), "batch": b, "p50": lat.get("p50"), "p90": lat.get("p90"),
                        "throughput": bench.get("throughput_per_s"), "accuracy": fid.get("accuracy"), "agreement": fid.get("top1_agreement"),
                        "cosine": fid.get("cosine_mean"), "speedup": bench.get("speedup_vs_torch_eager"), "row": r,
                        "work": (bench.get("roofline") or {}).get("rate"), "unit": (bench.get("roofline") or {}).get("unit"),
                        "of_peak": (bench.get("roofline") or {}).get("share_of_ceiling"), "gate": res.get("gate")})
    return pts


#: the point key of each fidelity field a plot can show
_POINT_KEY = {"accuracy": "accuracy", "top1_agreement": "agreement", "cosine_mean": "cosine"}


def fidelity_metric(pts: list[dict]) -> tuple[str, str]:
    """The point key and label of the figure the rows' accuracy objective shows (their gate's, else the first they measure)."""
    timed = [p for p in pts if p["p50"] is not None]
    gate = GateSettings.of_manifest(next((p["gate"] for p in timed if p.get("gate")), None))
    measured: dict[str, Any] = {}  # each figure any timed row measured (the reference row has no accuracy drop of its own)
    for p in timed:
        measured |= {k: v for k, v in (p["row"].get("fidelity") or {}).items() if v is not None and k not in measured}
    objective = gate.objective(measured)
    return _POINT_KEY[objective.kind.shown], objective.kind.shown_label


def pareto(pts: list[dict], key: str) -> list[dict]:
    """Points no other point beats on both latency (lower) and ``key`` (higher), by latency."""
    ok = sorted((p for p in pts if p["p50"] is not None and p[key] is not None), key=lambda p: (p["p50"], -p[key]))
    front, best = [], float("-inf")
    for p in ok:
        if p[key] > best:
            front.append(p)
            best = p[key]
    return front


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _spread(ys: list[float], gap: float, xs: list[float] | None = None) -> list[float]:
    """Label heights (axes fraction, 0..1) at least ``gap`` apart, each as near its point's height as that allows; points at
    one height are stacked rightmost lowest, so their leader lines do not cross."""
    order = sorted(range(len(ys)), key=lambda k: (ys[k], -(xs[k] if xs else 0)))
    pos = [0.0] * len(ys)
    last = -1.0
    for k in order:
        pos[k] = max(ys[k], last + gap)
        last = pos[k]
    over = last - 1.0
    if over > 0:  # pushed off the top: shift the stack down, keeping the gaps
        for k in order:
            pos[k] -= over
        floor = 0.0
        for k in order:
            pos[k] = max(pos[k], floor)
            floor = pos[k] + gap
    return pos


def tradeoff_figure(pts: list[dict], key: str, label: str):
    """Latency against fidelity for one model's rows, its Pareto front, and every point named in a column of labels
    beside the plot joined to it by a line (never on top of each other, however close the points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [p for p in pts if p["p50"] is not None and p[key] is not None]
    if not ok:
        return None
    front = pareto(ok, key)
    on_front = {p["n"] for p in front}
    fig, ax = plt.subplots(figsize=(9, max(4.5, 0.32 * len(ok) + 1)))
    ax.scatter([p["p50"] for p in ok], [p[key] for p in ok], s=60, zorder=3,
               color=["#dd8452" if p["n"] in on_front else "#4c72b0" for p in ok])
    if len(front) > 1:
        ax.step([p["p50"] for p in front], [p[key] for p in front], where="post", color="#dd8452", lw=1.5, zorder=2, label="Pareto front")
        ax.legend(loc="best")
    ax.set_xlabel("p50 latency (ms, smallest batch measured)")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    xs, ys = [p["p50"] for p in ok], [p[key] for p in ok]
    xpad, ypad = (max(xs) - min(xs)) * 0.08 or max(xs) * 0.1 or 1, (max(ys) - min(ys)) * 0.08 or abs(max(ys)) * 0.01 or 0.01
    ax.set_xlim(min(xs) - xpad, max(xs) + xpad)
    ax.set_ylim(min(ys) - ypad, max(ys) + ypad)
    y0, y1 = ax.get_ylim()
    heights = _spread([(p[key] - y0) / (y1 - y0) for p in ok], gap=min(0.08, 0.95 / max(1, len(ok))), xs=xs)
    for p, h in zip(ok, heights):
        ax.annotate(f"#{p['n']} {p['target']}", xy=(p["p50"], p[key]), xycoords="data", xytext=(1.03, h), textcoords="axes fraction",
                    va="center", fontsize=8, arrowprops={"arrowstyle": "-", "color": "#999", "lw": 0.6})
    return fig


def sensitivity_svg(s: dict, top: int = 15) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = s["layers_alone"][:top][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(layers) + 1))
    ax.barh([d["layer"] for d in layers], [max(d["loss"], 1e-12) for d in layers], color="#c44e52")
    ax.set_xscale("log")
    ax.set_xlabel("loss when quantized alone (1 − output cosine)")
    ax.tick_params(axis="y", labelsize=7)
    return _svg(fig)


def _cell(v, column: str = "", cls: str = "") -> str:
    """A sortable cell: the raw value to sort by, the text as every other table shows it (the one presenter)."""
    if v is None:
        return '<td data-v="">–</td>'
    text = cell(column, v) if column else str(v)
    return f'<td data-v="{html.escape(str(v))}"{f" class={cls!r}" if cls else ""}>{html.escape(text)}</td>'


def _work_cell(p: dict) -> str:
    if p["work"] is None:
        return _cell(None)
    return f'<td data-v="{p["work"]}">{p["work"]:.1f} {html.escape(p["unit"] or "")}</td>'


def _table(pts: list[dict], several: bool, front: set[int]) -> str:
    heads = ["#", "target", *(["file"] if several else []), "precision", "batch", "size", "top-1", "agreement", "cosine", "p50 ms",
             "p90 ms", "throughput/s", "speed-up vs torch", "work/s", "of peak", "Pareto", "status"]
    rows = []
    for p in pts:
        status = p["status"] if p["status"] == "ok" else f"{p['status']}: {p['reason'] or ''}"
        rows.append("<tr>" + "".join([
            _cell(p["n"]), _cell(p["target"], cls="text"), *([_cell(p["file"])] if several else []), _cell(p["precision"], cls="text"),
            _cell(p["batch"]), _cell(p["size"], "size"), _cell(p["accuracy"], "top-1"), _cell(p["agreement"], "agreement"),
            _cell(p["cosine"], "cosine"), _cell(p["p50"], "p50 ms"), _cell(p["p90"], "p90 ms"), _cell(p["throughput"], "throughput/s"),
            _cell(p["speedup"], "speed-up vs torch"), _work_cell(p), _cell(p["of_peak"], "of peak"),
            _cell("yes" if p["n"] in front else "", cls="text"),
            _cell(status, cls="text" + (" bad" if p["status"] != "ok" else ""))]) + "</tr>")
    return (f'<table class="sortable"><thead><tr>{"".join(f"<th>{h}</th>" for h in heads)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _model_name(res: dict) -> str:
    m = res.get("model")
    return str(m.get("checkpoint") or (m.get("source") or {}).get("file") or "") if isinstance(m, dict) else str(m or "")


def _environment(res: dict, i: int) -> str:
    env = res.get("environment") or {}
    cpu = env.get("cpu") or {}
    libs = env.get("libraries") or {}
    items = [f"<b>File {i}</b>: <code>{html.escape(Path(res['source']).name)}</code>"
             + (f", model <code>{html.escape(_model_name(res))}</code>" if res.get("model") else "")
             + (f", {html.escape(str(res.get('date'))[:19])}" if res.get("date") else ""),
             f"CPU: {html.escape(str(cpu.get('model', '?')))} ({cpu.get('usable_cpus', '?')} usable cores; "
             f"{html.escape(' '.join(cpu.get('isa') or []))})",
             "GPU: " + html.escape(json.dumps(env.get("gpu"))) if env.get("gpu") else "GPU: none",
             f"OS: {html.escape(str(env.get('os', '?')))}, Python {html.escape(str(env.get('python', '?')))}, "
             f"SDK {html.escape(str(env.get('sdk_version', '?')))}",
             "Libraries: " + html.escape(", ".join(f"{k} {v}" for k, v in libs.items())),
             "Settings: " + html.escape(json.dumps(res.get("settings") or {})),
             "Method: " + html.escape(str(res.get("methodology") or "–"))]
    roof = res.get("roofline") or {}
    if roof.get("ceilings"):
        c = roof["ceilings"]
        items.append("Roofline: " + html.escape(f"{roof.get('flops_per_sample') or 0:,} FLOPs per sample; ceilings fp32 "
                                                f"{c.get('fp32') or 0:.0f} GFLOP/s, bf16 {c.get('bf16') or 0:.0f} GFLOP/s, int8 "
                                                f"{c.get('int8') or 0:.0f} GOP/s ({c.get('threads')} threads). {roof.get('method', '')}"))
    return "<ul>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>"


def render(results: list[dict]) -> str:
    pts = points(results)
    front = set()
    for i in range(len(results)):
        mine = [p for p in pts if p["file"] == i + 1]
        front |= {p["n"] for p in pareto(mine, fidelity_metric(mine)[0])}
    parts = [f"<h1>Compression results</h1><p class='note'>{len(pts)} rows from {len(results)} file(s); made "
             f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}. Latency is the median of the smallest batch measured, each "
             "artifact in a fresh process; fidelity is measured against the FP32 PyTorch model on the eval data. Compare "
             "latencies only within one machine and one run.</p>",
             "<h2>Results</h2>", _table(pts, len(results) > 1, front)]
    for i, res in enumerate(results):  # one figure per file: latencies and fidelities of different models do not compare
        mine = [p for p in pts if p["file"] == i + 1]
        fig = tradeoff_figure(mine, *fidelity_metric(mine))
        if fig is not None:
            plot = _svg(fig)
            model = f" — {html.escape(_model_name(res))}" if res.get("model") else ""
            parts += [f"<h2>Latency against {fidelity_metric(mine)[1]}{f' (file {i + 1})' if len(results) > 1 else ''}{model}</h2>",
                      "<p class='note'>Orange: the Pareto front (no other row of this file is both faster and more faithful).</p>",
                      f"<figure>{plot}</figure>"]
    for p in pts:
        q = (p["row"].get("quantization") or {})
        if q.get("sensitivity") and q["sensitivity"].get("layers_alone"):
            s = q["sensitivity"]
            parts += [f"<h2>Per-layer INT8 sensitivity: #{p['n']} {html.escape(str(p['target']))}</h2>",
                      f"<p class='note'>Measured on {html.escape(str(s.get('runtime') or 'the runtime'))}, {s.get('samples')} samples; "
                      "the most sensitive layers first.</p>", f"<figure>{sensitivity_svg(s)}</figure>"]
        if q.get("auto_precision"):
            from compressor.bundle.auto_precision_plot import figure

            svg = _svg(figure(q["auto_precision"], f"#{p['n']} {p['target']}: auto precision"))
            floats = ", ".join(f"<code>{html.escape(k)}</code> ({html.escape(v)})" for k, v in q["auto_precision"].get("float_layers", {}).items())
            parts += [f"<h2>Auto precision: #{p['n']} {html.escape(str(p['target']))}</h2>",
                      f"<p>Float layers in the chosen plan: {floats or 'none'}.</p>", f"<figure>{svg}</figure>" if svg else ""]
    parts += ["<h2>Environment and method</h2>", *(_environment(r, i + 1) for i, r in enumerate(results))]
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Compression results</title><style>{_CSS}</style>"
            f"</head><body>{body}<script>{_JS}</script></body></html>\n")


def write_report(paths: list[str | Path], output: str | Path) -> Path:
    """Render ``paths`` into ``output`` (written whole or not at all)."""
    output = Path(output)
    page = render(load_results(paths))
    if output.is_dir():
        raise InputError(f"-o {output} is a folder: give a file name such as report.html")
    if not output.parent.is_dir():
        raise InputError(f"-o {output}: the folder {output.parent} does not exist")
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        tmp.write_text(page)
        tmp.replace(output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return output

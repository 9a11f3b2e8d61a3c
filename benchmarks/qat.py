"""QAT and auto precision suite: where INT8 PTQ costs accuracy, how much QAT and mixed precision win back, on every INT8 runtime.

1. all-MiniLM-L6-v2 with static INT8 of every Linear (what OpenVINO/ExecuTorch/TensorRT run for transformers), fixed shape
   1×128, on the Lee corpus (146 eval sentences; QAT and calibration on the 2,613 sentences of lee_background.cor). One
   ``compressor bench`` over ORT / OpenVINO / ExecuTorch INT8 and ORT FP32 with PTQ, one with ``--qat`` (one training run
   feeds the three INT8 artifacts): embedding cosine with FP32, the share of the PTQ gap QAT closes, the artifact against
   the fake-quantized model, the INT8 kernels each runtime really runs, latency.
2. The same encoder as a labelled classifier (``compressor.zoo.news_stories:classifier``: which of 300 news stories a
   sentence is from; 1,205 held-out sentences, fixed shape 1×64): PTQ against QAT in top-1, on the three runtimes.
3. ``--auto-precision --max-accuracy-drop 0.3`` on that classifier, on each INT8 runtime, and with ``--qat`` on ORT: the
   steps, the layers left float and why, the chosen plan's speed against the same runtime's FP32 artifact.
4. An fp32 against a bf16-autocast QAT epoch on the same data (where the CPU has native bf16).

Run: ``.venv/bin/python benchmarks/qat.py [--repeats 1] [--duration 3]``. Writes results/qat.json and .md. Takes ~45 minutes here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run_suite, say  # noqa: E402

import compressor  # noqa: E402
from compressor.zoo.minilm import weights_path as minilm_weights  # noqa: E402
from compressor.zoo.news_stories import weights as news_story_weights  # noqa: E402

INT8 = ("ort-cpu-int8", "openvino-cpu-int8", "executorch-xnnpack-int8")
MINILM = dict(arch="compressor.zoo.minilm:minilm_l6", input_shape=["1,128", "1,128"], input_names=["input_ids", "attention_mask"],
              input_dtype="int64", task="embedding", eval="compressor.zoo.lee:sentences", calib="compressor.zoo.lee:background_sentences",
              sensitivity=False)
QAT = dict(qat=True, qat_epochs=2, finetune="compressor.zoo.lee:background_sentences", finetune_batch_size=8, qat_lr=5e-5)
NEWS = dict(arch="compressor.zoo.news_stories:classifier", input_shape=["1,64", "1,64"], input_names=["input_ids", "attention_mask"],
            input_dtype="int64", eval="compressor.zoo.news_stories:eval_data", calib="compressor.zoo.news_stories:train_data", sensitivity=False)
NEWS_QAT = dict(qat=True, qat_epochs=2, finetune="compressor.zoo.news_stories:train_data", finetune_batch_size=16)

NOTES = [
    "- The MiniLM inputs carry an attention mask over the real tokens only. Runs before 2026-11-30 evening fed a mask that also",
    "  covered the tokenizer's padding to 128, so padding took part in attention and pooling; their PTQ cosine (0.932) and QAT",
    "  figures (87/87/81 % of the gap closed) were for that input and are superseded.",
    "- MiniLM QAT runs with batch 8 and weight learning rate 5e-5 (`--finetune-batch-size 8 --qat-lr 5e-5`). With the defaults",
    "  (batch 16 for this suite, lr 2e-5) two epochs closed 64 / 65 / 57 % of the cosine gap on ORT / OpenVINO / ExecuTorch;",
    "  lr 5e-5 at batch 16 gave the same (ORT 0.9851): the number of optimizer steps is what two epochs lack.",
    "- The news-story classifier's PTQ gap is 0.83 points of top-1 (10 of 1,205 sentences), under the 1 point issue 10 asks",
    "  for a QAT demonstration; it is the labelled model for the `--max-accuracy-drop 0.3` gate.",
    "- ORT INT8 MiniLM p50 in the PTQ-against-QAT table of the 22:21 rerun (15.5 ms, 0.86× FP32) is far from the 9.9 ms",
    "  (0.56× FP32) of the earlier full run on the same CPU model; OpenVINO and ExecuTorch did not move. Not",
    "  explained; latency is not what this table is for (compare ratios within one run).",
    "- The `ort-cpu-int8` auto-precision table (run of 2026-11-30 afternoon) ran while tests shared the two cores: its all-INT8",
    "  p50 (9.06 ms) is disturbed; the `+ --qat` table measured the same all-INT8 plan at 5.27 ms. Its gate result and float layer stand.",
]


def _rows(result: dict) -> dict:
    out = {}
    for r in result["rows"]:
        if r.get("status") != "ok":
            out[r["target"]] = {"status": r.get("status"), "reason": r.get("reason")}
            continue
        q = (r.get("quantization") or {}).get("qat") or {}
        k = r.get("int8_layers") or {}
        out[r["target"]] = {"status": "ok", "cosine_mean": r["fidelity"]["cosine_mean"], "cosine_min": r["fidelity"]["cosine_min"],
                            "accuracy": r["fidelity"].get("accuracy"), "top1_agreement": r["fidelity"].get("top1_agreement"),
                            "p50_ms": r["batches"]["1"]["latency_ms"]["p50"],
                            "int8_weight_layers": k.get("weight_layers_int8"), "weight_layers": k.get("weight_layers_total"),
                            "artifact_vs_fake_quant": q.get("artifact_vs_fake_quant"),
                            "fake_quant_cosine": (q.get("fake_quant_vs_fp32") or {}).get("cosine_mean"),
                            "qat": {k2: q[k2] for k2 in ("epochs_run", "samples", "best_val_metric", "bf16_autocast", "seconds", "history",
                                                         "layers_simulated", "activation_tensors") if k2 in q} or None}
    return out


def _ptq_against_qat(name: str, weights: Path, model: dict, qat: dict, metric: str, args, reference: float | None = None) -> dict:
    """PTQ and QAT benches of the same targets, and the share of each INT8 target's gap to ``reference`` (default: the ORT
    FP32 row's ``metric``) that QAT closes."""
    targets = ",".join(("ort-cpu-fp32", *INT8))
    say(f"{name}: PTQ on ORT, OpenVINO, ExecuTorch")
    ptq = _rows(compressor.bench_targets(weights, targets, duration=args.duration, **model))
    say(f"{name}: QAT (2 epochs), the same targets")
    trained = _rows(compressor.bench_targets(weights, targets, duration=args.duration, **model, **qat))
    top = reference if reference is not None else ptq.get("ort-cpu-fp32", {}).get(metric)
    closed = {}
    for t in INT8:
        if top is not None and ptq.get(t, {}).get("status") == "ok" and trained.get(t, {}).get("status") == "ok":
            gap = top - ptq[t][metric]
            closed[t] = (trained[t][metric] - ptq[t][metric]) / gap if gap > 0 else None
    return {"ptq": ptq, "qat": trained, "gap_closed": closed, "reference": top}


def minilm(tmp: Path, args) -> dict:
    return _ptq_against_qat("minilm", minilm_weights(), MINILM, QAT, "cosine_mean", args, reference=1.0)


def news(tmp: Path, args) -> dict:
    out = _ptq_against_qat("news-story classifier", news_story_weights(), NEWS, NEWS_QAT, "accuracy", args)
    return {**out, "fp32_accuracy": out["reference"]}


def auto_precision(tmp: Path, args) -> dict:
    out = {}
    runs = [(t, {}) for t in INT8] + [("ort-cpu-int8", NEWS_QAT)]
    for target, extra in runs:
        name = target + (" + --qat" if extra else "")
        say(f"news-story classifier: --auto-precision --max-accuracy-drop 0.3 on {name}")
        r = compressor.compress(news_story_weights(), target=target, output=tmp / f"auto-{len(out)}", auto_precision=True,
                                max_accuracy_drop=0.3, duration=args.duration, force=True, **NEWS, **extra)
        ap = r.manifest["quantization"]["auto_precision"]
        out[name] = {"passed": r.passed, "auto_precision": ap, "accuracy": r.fidelity.get("accuracy"),
                     "p50_ms": r.manifest["metrics"]["latency_ms"]["p50"]}
    return out


def training_time(tmp: Path) -> dict:
    out = {}
    for amp in ("off", "bf16"):
        say(f"minilm: one QAT epoch on 400 sentences, autocast {amp}")
        r = compressor.compress(minilm_weights(), target="ort-cpu-int8", output=tmp / f"amp-{amp}", benchmark=False, finetune_amp=amp,
                                finetune_samples=400, **MINILM, **{**QAT, "qat_epochs": 1, "finetune_batch_size": 16})
        q = r.manifest["quantization"]["qat"]
        out[amp] = {"seconds": q["seconds"], "bf16_autocast": q["bf16_autocast"], "best_val_metric": q["best_val_metric"],
                    "cosine_mean": r.fidelity["cosine_mean"]}
    out["bf16_over_fp32"] = out["bf16"]["seconds"] / out["off"]["seconds"]
    return out


def sections(tmp: Path, args) -> dict:
    return {"minilm": lambda: minilm(tmp, args), "news": lambda: news(tmp, args), "auto_precision": lambda: auto_precision(tmp, args),
            "training_time": lambda: training_time(tmp)}


def _f(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def markdown(res: dict) -> str:
    env = res["environment"]
    m = res["minilm"]
    lines = [f"# QAT and auto precision — {res['date'][:10]}", "",
             f"CPU: {env['cpu']['model']} ({env['cpu']['usable_cpus']} usable cores; {' '.join(env['cpu']['isa'])}). "
             "all-MiniLM-L6-v2, static INT8 of every Linear, fixed shape 1×128; 146 Lee corpus sentences (embedding cosine with "
             "the FP32 PyTorch model); calibration and QAT on lee_background.cor (2,613 sentences, a tenth held out).", "",
             "## PTQ against QAT (2 epochs, one training run for the three INT8 artifacts)", "",
             "| target | PTQ cosine | QAT cosine | gap closed | QAT artifact vs its fake-quantized model (cosine) | INT8 weight layers | p50 ms PTQ / QAT |",
             "|---|---|---|---|---|---|---|"]
    for t in ("ort-cpu-fp32", *INT8):
        p, q = m["ptq"].get(t, {}), m["qat"].get(t, {})
        if p.get("status") != "ok":
            lines.append(f"| {t} | {p.get('status')}: {p.get('reason')} | | | | | |")
            continue
        closed = m["gap_closed"].get(t)
        avf = (q.get("artifact_vs_fake_quant") or {}).get("cosine_mean")
        lines.append(f"| {t} | {p['cosine_mean']:.4f} | {_f(q.get('cosine_mean'), '.4f')} | {_f(closed, '.0%')} | {_f(avf, '.4f')} | "
                     f"{_f(q.get('int8_weight_layers'), 'd')} of {_f(q.get('weight_layers'), 'd')} | {p['p50_ms']:.2f} / {_f(q.get('p50_ms'), '.2f')} |")
    qa = next((v["qat"] for v in m["qat"].values() if v.get("qat")), None)
    if qa:
        lines += ["", f"QAT: {qa['epochs_run']} epoch(s) on {qa['samples']} sentences, {qa['layers_simulated']} layers and "
                  f"{qa['activation_tensors']} activation ranges trained, bf16 autocast {'on' if qa['bf16_autocast'] else 'off'}, "
                  f"{qa['seconds']:.0f} s; held-out cosine by epoch: " + ", ".join(f"{h['val_metric']:.4f}" for h in qa["history"]) + "."]
    n = res["news"]
    lines += ["", "## The same encoder as a labelled classifier: news-story identification (top-1 over 300 stories)", "",
              "`compressor.zoo.news_stories:classifier` (`news_stories.weights()` / `examples/text/make_news_classifier.py` make it): "
              "the head's rows are the 300 stories' centroids from their enrolment sentences; eval on the 1,205 other sentences, "
              "fixed shape 1×64; calibration and QAT on the 1,359 enrolment sentences.", "",
              "| target | PTQ top-1 | QAT top-1 | PTQ agreement | QAT agreement | gap closed | p50 ms PTQ / QAT |", "|---|---|---|---|---|---|---|"]
    for t in ("ort-cpu-fp32", *INT8):
        p, q = n["ptq"].get(t, {}), n["qat"].get(t, {})
        if p.get("status") != "ok":
            lines.append(f"| {t} | {p.get('status')}: {p.get('reason')} | | | | | |")
            continue
        lines.append(f"| {t} | {_f(p.get('accuracy'), '.4f')} | {_f(q.get('accuracy'), '.4f')} | {_f(p.get('top1_agreement'), '.4f')} | "
                     f"{_f(q.get('top1_agreement'), '.4f')} | {_f(n['gap_closed'].get(t), '.0%')} | {p['p50_ms']:.2f} / {_f(q.get('p50_ms'), '.2f')} |")
    for name, a in res["auto_precision"].items():
        ap = a["auto_precision"]
        lines += ["", f"## `--auto-precision --max-accuracy-drop 0.3` on {name} (news-story classifier)", "",
                  "| step | phase | plan | layers float | top-1 | p50 ms | gate |", "|---|---|---|---|---|---|---|"]
        for st in ap["steps"]:
            lines.append(f"| {st['step']}{' **(chosen)**' if st.get('chosen') else ''} | {st['phase']} | {st['label']} | "
                         f"{len(st['float_layers'])} | {_f(st.get('accuracy'), '.4f')} | {_f(st['p50_ms'], '.2f')} | "
                         f"{'pass' if st['passed'] else 'fail'} |")
        why = "; ".join(f"`{k}`: {v}" for k, v in ap["float_layers"].items()) or "none"
        lines += ["", f"Chosen: {'passes' if a['passed'] else 'FAILS'} its gate, top-1 {_f(a['accuracy'], '.4f')}, p50 {a['p50_ms']:.2f} ms "
                  f"against {ap['fp32_target']} {_f(ap['fp32_p50_ms'], '.2f')} ms ({_f(ap['speedup_vs_fp32'], '.2f')}× faster). "
                  f"Float layers: {why}."]
    tt = res["training_time"]
    lines += ["", "## A QAT epoch in fp32 and in bf16 autocast (400 sentences, batch 16)", "",
              f"- fp32: {tt['off']['seconds']:.1f} s; bf16 autocast: {tt['bf16']['seconds']:.1f} s "
              f"(autocast {'used' if tt['bf16']['bf16_autocast'] else 'NOT used: this CPU has no native bf16'}): "
              f"**{tt['bf16_over_fp32']:.2f}×** the fp32 time; held-out cosine {tt['off']['best_val_metric']:.4f} / {tt['bf16']['best_val_metric']:.4f}."]
    return "\n".join(lines + ["", "## Notes", "", *NOTES]) + "\n"


if __name__ == "__main__":
    run_suite("qat", __doc__.splitlines()[0], sections, markdown)

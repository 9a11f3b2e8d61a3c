"""Search suite: ``compressor search`` on the two must-show cases of the search issue.

- **fashion**: the bundled Fashion-MNIST CNN (recipe examples/fashion_mnist/fashion_cnn.yaml: 2,000 labelled test images,
  512 calibration images, 6,000 fine-tuning images), targets ORT / OpenVINO / ExecuTorch INT8 (each runtime at every
  precision plan), at most 0.5 accuracy points lost, 12 trials. The plain ``compress`` of each listed target is evaluated
  in the same search, so the chosen bundle's speed is compared with it in one run.
- **resnet18**: a torchvision resnet18 state_dict (random weights, seed 0), its ORT FP32 p50 measured first, then a search
  for a candidate under 60 % of it (mean cosine with FP32 ≥ 0.99: random weights have no accuracy), 10 trials.
- **ddp**: pruning recovery of the Fashion CNN in 1 and 2 processes (``--ddp``), accuracy and seconds per epoch.

Run: ``.venv/bin/python benchmarks/search.py [--only fashion,resnet18,ddp]``. Writes results/search.json and .md, and the two
search plots (results/search_fashion.png, results/search_resnet18.png). ~10 minutes here.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, RESULTS, ROOT, run_suite, say, torchvision_case  # noqa: E402

import compressor  # noqa: E402

FASHION_TARGETS = "ort-cpu-int8,openvino-cpu-int8,executorch-xnnpack-int8"


def _summary(r, seconds: float, plot_name: str) -> dict:
    RESULTS.mkdir(exist_ok=True)
    shutil.copy(r.folder / "search.png", RESULTS / plot_name)
    keep = ("trial", "label", "target", "status", "baseline", "p50_ms", "size_mb", "loss", "failures", "reason", "seconds", "node")
    return {"seconds": round(seconds, 1), "chosen": {k: r.chosen.get(k) for k in keep} if r.chosen else None,
            "bundle_written": bool(r.bundle and (r.bundle / "manifest.json").exists()),
            "summary": r.summary, "pareto": [t["trial"] for t in r.front], "dropped": r.dropped, "notes": r.notes, "plot": plot_name,
            "best_per_target": {k: v["trial"] for k, v in r.per_target.items()},
            "trials": [{**{k: t.get(k) for k in keep}, "fidelity": {k: (t.get("fidelity") or {}).get(k) for k in
                                                                    ("accuracy", "accuracy_drop_pp", "top1_agreement", "cosine_mean")}}
                       for t in r.records]}


def fashion(tmp: Path, args) -> dict:
    say("fashion: search over ORT / OpenVINO / ExecuTorch, accuracy drop <= 0.5, 12 trials")
    t0 = time.perf_counter()
    r = compressor.search(FASHION / "fashion_cnn.safetensors", recipe=ROOT / "examples" / "fashion_mnist" / "fashion_cnn.yaml",
                          targets=FASHION_TARGETS, max_accuracy_drop=0.5, trials=12, output=tmp / "fashion", quiet=False)
    return {"command": "compressor search examples/fashion_mnist/fashion_cnn.safetensors --recipe examples/fashion_mnist/fashion_cnn.yaml "
                       f"--targets {FASHION_TARGETS} --max-accuracy-drop 0.5 --trials 12 --output OUT",
            **_summary(r, time.perf_counter() - t0, "search_fashion.png")}


def resnet18(tmp: Path, args) -> dict:
    say("resnet18: ORT FP32 p50 first, then a search under 60 % of it")
    ckpt, _ = torchvision_case("resnet18", tmp)
    common = dict(arch="torchvision:resnet18", input_shape="1,3,224,224", eval=tmp / "imagenet20.npz", duration=args.duration)
    base = compressor.bench_targets(ckpt, "ort-cpu-fp32", compare_eager=False, **common)
    row = next(r for r in base["rows"] if r["target"] == "ort-cpu-fp32")
    p50 = row["batches"]["1"]["latency_ms"]["p50"]
    budget = round(0.6 * p50, 3)
    t0 = time.perf_counter()
    r = compressor.search(ckpt, targets="ort-cpu-int8,openvino-cpu-int8", calib=tmp / "imagenet20.npz", max_latency_ms=budget,
                          min_cosine=0.99, trials=10, output=tmp / "resnet18", quiet=False, **common)
    return {"ort_fp32_p50_ms": p50, "max_latency_ms": budget,
            "command": f"compressor search resnet18.pth --arch torchvision:resnet18 --input-shape 1,3,224,224 --eval imagenet20.npz "
                       f"--calib imagenet20.npz --targets ort-cpu-int8,openvino-cpu-int8 --max-latency-ms {budget} --min-cosine 0.99 "
                       "--trials 10 --output OUT",
            **_summary(r, time.perf_counter() - t0, "search_resnet18.png")}


def ddp(tmp: Path, args) -> dict:
    """Pruning recovery of the Fashion CNN (25 % of MACs, 6,000 images, 2 epochs) in 1 and 2 processes (gloo)."""
    say("ddp: pruning recovery in 1 and 2 processes")
    out = {}
    for n in (1, 2):
        r = compressor.compress(FASHION / "fashion_cnn.safetensors", recipe=ROOT / "examples" / "fashion_mnist" / "fashion_cnn.yaml",
                                target="ort-cpu-fp32", prune_macs=0.25, finetune_epochs=2, ddp=n, output=tmp / f"ddp{n}", benchmark=False)
        ft = r.manifest["pruning"]["finetune"]
        epochs = [h["seconds"] for h in ft["history"] if "seconds" in h]
        out[str(n)] = {"processes": ft["processes"], "accuracy": r.fidelity["accuracy"], "epoch_seconds": epochs,
                       "median_epoch_seconds": sorted(epochs)[len(epochs) // 2], "samples": ft["samples"]}
    return out


def sections(tmp: Path, args) -> dict:
    return {"fashion": lambda: fashion(tmp, args), "resnet18": lambda: resnet18(tmp, args), "ddp": lambda: ddp(tmp, args)}


def _table(section: dict) -> list[str]:
    lines = ["| trial | candidate | status | p50 ms | size MB | accuracy drop (pts) | cosine | s |", "|---|---|---|---|---|---|---|---|"]
    chosen = (section.get("chosen") or {}).get("trial")
    for t in section["trials"]:
        f = t["fidelity"]
        def fmt(v, spec):
            return "–" if v is None else format(v, spec)
        mark = " ★" if t["trial"] == chosen else ""
        status = t["status"] + (" (plain compress)" if t.get("baseline") else "")
        lines.append(f"| {t['trial']}{mark} | {t['label']} | {status} | {fmt(t['p50_ms'], '.3g')} | {fmt(t['size_mb'], '.3g')} | "
                     f"{fmt(f['accuracy_drop_pp'], '.2f')} | {fmt(f['cosine_mean'], '.5f')} | {fmt(t['seconds'], '.0f')} |")
    return lines


def markdown(res: dict) -> str:
    env = res["environment"]
    lines = [f"# Search — {res['date'][:10]}", "", f"CPU: {env['cpu']['model']} ({env['cpu']['usable_cpus']} usable cores).", ""]
    if "fashion" in res:
        f = res["fashion"]
        s = f["summary"]
        lines += ["## Fashion-MNIST CNN: ORT / OpenVINO / ExecuTorch, at most 0.5 points lost, 12 trials", "", f"`{f['command']}`", "",
                  f"Finished in {f['seconds']:.0f} s. Chosen and written: trial {f['chosen']['trial']} ({f['chosen']['label']}), p50 "
                  f"{f['chosen']['p50_ms']:.3g} ms in its trial; bundle written: {f['bundle_written']}."]
        if s.get("best_feasible_plain_compress"):
            b = s["best_feasible_plain_compress"]
            lines.append(f"Best plain `compress` of the listed targets in the same run: trial {b['trial']} ({b['label']}), p50 "
                         f"{b['p50_ms']:.3g} ms in its trial → the chosen bundle is {s['speedup_vs_best_feasible_plain']:.2f}× as fast "
                         "by the trials' single measurements.")
        if s.get("confirmed"):
            c = s["confirmed"]
            lines.append(f"Re-measured in turns at the end ({c['rounds']} rounds each, fresh processes, medians): chosen "
                         f"{c['chosen_p50_ms']:.3g} ms, plain compress (trial {c['plain_trial']}) {c['plain_p50_ms']:.3g} ms → "
                         f"**{c['speedup']:.2f}×** (chosen {', '.join(f'{x:.3g}' for x in c['chosen_p50s'])}; plain "
                         f"{', '.join(f'{x:.3g}' for x in c['plain_p50s'])} ms)"
                         + (f"; under 3 % faster, so the search keeps the plain compress (trial {c['plain_trial']}): the same speed, "
                            "the simpler recipe." if c.get("kept_plain") else "."))
        lines += ["", f"![search plot]({f['plot']})", "", *_table(f), ""]
        lines += [f"- left out: {d}" for d in f["dropped"]] + [f"- note: {n}" for n in f.get("notes", [])] + [""]
    if "resnet18" in res:
        r = res["resnet18"]
        lines += ["## resnet18 (random weights): under 60 % of its ORT FP32 p50", "",
                  f"ORT FP32 p50 measured first: {r['ort_fp32_p50_ms']:.3g} ms → `--max-latency-ms {r['max_latency_ms']}`.", "", f"`{r['command']}`", "",
                  f"Finished in {r['seconds']:.0f} s. " + (f"Feasible candidate found and written: trial {r['chosen']['trial']} "
                                                           f"({r['chosen']['label']}), p50 {r['chosen']['p50_ms']:.3g} ms "
                                                           f"({r['chosen']['p50_ms'] / r['ort_fp32_p50_ms']:.0%} of ORT FP32); bundle written: "
                                                           f"{r['bundle_written']}." if r["chosen"] else "No feasible candidate."),
                  "", f"![search plot]({r['plot']})", "", *_table(r), ""]
        lines += [f"- left out: {d}" for d in r["dropped"]] + [f"- note: {n}" for n in r.get("notes", [])] + [""]
    if "ddp" in res:
        d = res["ddp"]
        lines += ["## DDP fine-tuning: 1 vs 2 processes (gloo)", "",
                  "Fashion CNN pruned by 25 % of MACs, recovered on 6,000 labelled images for 2 epochs; 2 processes each take half of "
                  "every batch of 64 (one thread each; one process has both threads).", "",
                  "| processes | accuracy after | epoch seconds | median |", "|---|---|---|---|"]
        for n, v in d.items():
            lines.append(f"| {n} | {v['accuracy']:.4f} | {', '.join(f'{x:.2f}' for x in v['epoch_seconds'])} | {v['median_epoch_seconds']:.2f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    run_suite("search", __doc__.splitlines()[0], sections, markdown)

"""``compressor compress MODEL --task text-generation``: a decoder LM → weight-only INT4/INT8 (or float) → an ONNX Runtime
GenAI or OpenVINO GenAI model folder, gated on perplexity and next-token agreement, with reference generations that ``verify`` replays.

1. load the model and tokenizer (HF folder or GGUF) and the text (``--eval`` held out, ``--calib`` for the passes);
2. FP32: perplexity and top-1 next-token predictions on the held-out text, greedy continuations of the reference prompts;
3. the weight-only passes (AWQ, scale estimation, GPTQ; mixed INT4/INT8 by ``--ratio``) fill the plan, block by block;
4. the plan's weights are scored on the same text (perplexity, agreement with FP32) and gated;
5. the plan is realised (ONNX Runtime GenAI: the builder's float graph, then MatMulNBits/GatherBlockQuantized from the plan's
   codes; OpenVINO GenAI: the decoder IR written op by op with the plan's codes as compressed weights), loaded by its runtime,
   checked against the plan on one window and run on the prompts: those tokens are the reference I/O.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compressor.app.compress import CompressResult
from compressor.app.lm_bench import model_bytes
from compressor.app.recipe import RunConfig
from compressor.bundle.report import console
from compressor.bundle.writer import REPORT, BundleWriter, check_destination
from compressor.core.environment import describe_environment, peak_rss_mb
from compressor.core.errors import DataError, GateError, InputError
from compressor.core.lm_targets import LM_TARGETS, LmTarget, get_lm_target
from compressor.core.objective import AGREEMENT, PERPLEXITY, Objective
from compressor.core.progress import Progress
from compressor.core.version import __version__
from compressor.data.text import calibration_windows, load_text, token_stream
from compressor.evaluation.perplexity import LmFidelity, cached_reference, evaluate, torch_logits
from compressor.io.causal_lm import CausalLm, check_lm_path, load_causal_lm

ARTIFACT_DIR = "model"
REFERENCE_GENERATIONS = "reference/generations.json"
DEFAULT_CALIB_WINDOWS = 64


def check_lm_config(config: RunConfig, target: LmTarget) -> None:
    """Refuse, before any work, what a language-model run cannot do."""
    check_lm_path(Path(config.model.checkpoint))
    gate = config.gate
    for flag, value in (("--max-accuracy-drop", gate.max_accuracy_drop), ("--min-cosine", gate.min_cosine),
                        ("--max-latency-ms", gate.max_latency_ms)):
        if value is not None:
            raise InputError(f"{flag} does not apply to a language model: gate it with --max-perplexity-increase X (%) and "
                             "--min-agreement X (next-token agreement with FP32)")
    if not config.data.eval:
        raise InputError("--task text-generation needs held-out text to score: --eval (a folder of .txt, a .jsonl with a 'text' "
                         "field, or package.module:function; e.g. examples.wiki_text:evaluation)")
    lm = config.lm
    data_aware = lm.awq or lm.gptq or lm.scale_estimation or lm.ratio < 1
    if target.quantized and data_aware and not config.data.calib:
        raise InputError(f"{target.name} calibrates AWQ/GPTQ/scale estimation on text: pass --calib (never the --eval text), or "
                         "--no-awq --no-gptq --no-scale-estimation for data-free round-to-nearest")
    if config.data.calib and config.data.calib == config.data.eval:
        raise InputError("--calib and --eval are the same text: perplexity must be measured on text the passes never saw")


def compress_lm(config: RunConfig, quiet: bool = False) -> CompressResult:
    ui = Progress(quiet)
    target = get_lm_target(config.target)
    if target.runtime == "torch":
        names = ", ".join(n for n, t in LM_TARGETS.items() if t.runtime != "torch" and not t.missing)
        raise InputError(f"{target.name} is the PyTorch reference the generation benchmark compares with; a bundle needs a "
                         f"runtime target: {names}")
    if config.output is None:
        raise InputError("no output directory: pass --output DIR (or output.path in the recipe)")
    out = Path(config.output.path)
    check_destination(out, config.output.overwrite)
    check_lm_config(config, target)
    settings = config.lm.model_copy(update={"bits": target.bits or 8})
    threads = config.benchmark.threads
    if threads:
        import torch

        torch.set_num_threads(threads)
    eval_src = load_text(config.data.eval, "--eval")
    calib_src = load_text(config.data.calib, "--calib") if config.data.calib and target.quantized else None
    with ui.stage(f"loaded {Path(config.model.checkpoint).name}"):
        lm = load_causal_lm(config.model.checkpoint)
    ui.note(lm.describe())
    if target.runtime == "openvino-genai":
        from compressor.io.export_openvino_lm import check_architecture

        check_architecture(lm.config)
    stream = token_stream(eval_src, lm.tokenizer, settings.eval_tokens)
    if stream.numel() < min(settings.eval_window, settings.eval_tokens):
        raise DataError(f"--eval: {stream.numel()} tokens is shorter than one perplexity window of {settings.eval_window}: give "
                        "more text or a smaller --eval-window")
    calib = None
    if calib_src is not None:
        n = config.data.calib_samples or DEFAULT_CALIB_WINDOWS
        cstream = token_stream(calib_src, lm.tokenizer, n * settings.seq_len * 4)
        calib = calibration_windows(cstream, n, settings.seq_len, "--calib")
    def score_fp32() -> LmFidelity:
        with ui.bar(f"FP32 perplexity on {stream.numel():,} held-out tokens", _windows(stream, settings)) as adv:
            return evaluate(torch_logits(lm.model), stream, settings.eval_window, settings.stride, on_window=adv)

    ref, cached = cached_reference(lm.source["files"], stream, settings.eval_window, settings.stride, score_fp32)
    ui.note(f"FP32 perplexity {ref.perplexity:.3f}" + (" (cached: same model files, text, window and stride)" if cached else ""))
    prompts = [lm.tokenizer(p, add_special_tokens=True)["input_ids"] for p in settings.prompts]
    from backends.torch_eager import TorchLmRunner

    eos = lm.tokenizer.eos_token_id
    fp32_gen = [TorchLmRunner(lm.model, eos).generate(p, settings.new_tokens).tokens for p in prompts]
    plan, fid, rss_before = None, ref, peak_rss_mb()
    t0 = time.perf_counter()
    if target.quantized:
        plan, fid = quantize_and_score(config, target, lm, calib, stream, ref, settings, ui)
    compress_s = time.perf_counter() - t0
    compress_rss = peak_rss_mb()
    metrics = lm_metrics(fid, ref)
    failures = gate_failures(config, metrics)
    if failures and not config.gate.force:
        raise GateError(f"the {target.name} plan failed its gate ({'; '.join(failures)}): no bundle written; relax the gate, "
                        "raise --ratio's INT8 share (a lower --ratio), or pass --force")
    with tempfile.TemporaryDirectory(prefix="compressor-lm-", dir=out.parent) as tmp:
        art = Path(tmp) / ARTIFACT_DIR
        with ui.stage(f"{target.name} built"):
            t1 = time.perf_counter()
            build = realise(lm, plan, target, art)
            build["build_seconds"] = round(time.perf_counter() - t1, 1)
        with ui.stage("artifact run on the reference prompts"):
            check = artifact_check(art, target, lm, stream, settings, prompts, threads)
        same = [a == b for a, b in zip(check["generations"], fp32_gen)]
        with BundleWriter(out, config.output.overwrite) as bundle:
            for f in sorted(art.rglob("*")):
                if f.is_file():
                    bundle.add_file(f, f"{ARTIFACT_DIR}/{f.relative_to(art)}")
            refs = [{"prompt": p, "prompt_ids": ids, "tokens": toks, "fp32_tokens": f32, "same_as_fp32": s,
                     "text": lm.tokenizer.decode(toks, skip_special_tokens=True)}
                    for p, ids, toks, f32, s in zip(settings.prompts, prompts, check["generations"], fp32_gen, same)]
            bundle.path(REFERENCE_GENERATIONS).write_text(json.dumps({"new_tokens": settings.new_tokens, "greedy": True,
                                                                      "prompts": refs}, indent=2))
            size = model_bytes(art)
            manifest = lm_manifest(config, target, lm, plan, ref, fid, metrics, failures, build, check, size, compress_s,
                                   compress_rss, rss_before, eval_src, calib_src, stream, calib, settings)
            rows = lm_rows(target, size, fid, ref, manifest)
            bundle.path(REPORT).write_text(lm_report(manifest, refs))
            path = bundle.commit(manifest, tar=config.output.tar)
    if failures:
        ui.warn(f"bundle written with --force although it FAILED its gate: {'; '.join(failures)}")
    for r in refs[:2]:
        console().print(f"[dim]{r['prompt']}[/] → {r['text'][:160]!r}", soft_wrap=True)
    return CompressResult(path, manifest, rows)


AUTO_RATIOS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)


def quantize_and_score(config, target, lm, calib, stream, ref, settings, ui):
    """The plan and its fidelity. With ``--auto-precision`` (INT4 targets) and a perplexity or agreement budget: the largest
    INT4 share (--ratio 1.0, 0.9, …) whose plan meets the budget, each step re-planned from the float model, the layers
    kept INT8 chosen by measured sensitivity; every step is recorded in the plan."""
    from compressor.quantization.weight_only.stage import quantize_model

    auto = config.quantization.auto_precision and target.bits == 4
    if auto and config.gate.max_perplexity_increase is None and config.gate.min_agreement is None:
        raise InputError("--auto-precision on a language model needs a budget to meet: --max-perplexity-increase X (%) or "
                         "--min-agreement X")
    ratios = [r for r in AUTO_RATIOS if r <= settings.ratio] if auto else [settings.ratio]
    original = {k: v.clone() for k, v in lm.model.state_dict().items()} if len(ratios) > 1 else None
    steps = []
    for i, ratio in enumerate(ratios[: config.quantization.auto_precision_steps]):
        if i:
            lm.model.load_state_dict(original)
        step = settings.model_copy(update={"ratio": ratio})
        plan = quantize_model(lm.model, calib or [], step, ui)
        with ui.bar(f"{target.precision} perplexity" + (f" (INT4 share {ratio:.0%})" if auto else ""), _windows(stream, settings)) as adv:
            fid = evaluate(torch_logits(lm.model), stream, settings.eval_window, settings.stride, reference=ref, on_window=adv)
        ui.note(f"{step.label()}: perplexity {fid.perplexity:.3f} ({_pct(fid, ref):+.2f} %), next-token agreement {fid.agreement:.4f}")
        failures = gate_failures(config, lm_metrics(fid, ref))
        steps.append({"ratio": ratio, "perplexity": fid.perplexity, "increase_pct": _pct(fid, ref), "agreement": fid.agreement,
                      "passed": not failures, "seconds": plan.transforms.get("seconds")})
        if not auto or not failures:
            break
    if auto:
        plan.transforms["auto_precision"] = {"steps": steps, "chosen_ratio": steps[-1]["ratio"],
                                             "met": steps[-1]["passed"], "method": "largest INT4 share meeting the gate, in steps "
                                             "of 0.1; layers kept INT8 by activation-weighted rounding error"}
    return plan, fid


def _windows(stream, settings) -> int:
    from compressor.evaluation.perplexity import spans

    return len(spans(stream.numel(), settings.eval_window, settings.stride))


def _pct(fid: LmFidelity, ref: LmFidelity) -> float:
    return 100.0 * (fid.perplexity / ref.perplexity - 1.0)


def lm_metrics(fid: LmFidelity, ref: LmFidelity) -> dict[str, Any]:
    return {"perplexity": fid.perplexity, "reference_perplexity": ref.perplexity,
            "perplexity_increase_pct": _pct(fid, ref), "top1_agreement": fid.agreement if fid is not ref else 1.0,
            "tokens": fid.tokens, "window": fid.window, "stride": fid.stride,
            "measured_on": "PyTorch with the plan's dequantized weights (the artifact computes the same weights; its own "
                           "next-token agreement with them is under artifact_check)"}


def gate_failures(config: RunConfig, metrics: dict) -> list[str]:
    objectives = [Objective(PERPLEXITY, config.gate.max_perplexity_increase), Objective(AGREEMENT, config.gate.min_agreement)]
    return [f for o in objectives if (f := o.failure(metrics))]


def realise(lm: CausalLm, plan, target: LmTarget, out: Path) -> dict[str, Any]:
    """The plan (None: the float model) as ``target``'s runtime folder; returns what was built, by kind."""
    if target.runtime == "openvino-genai":
        from compressor.io.export_openvino_lm import decoder_graph, float_weight, write_folder

        counts: dict[str, int] = {}
        weights = float_weight
        if plan is not None:
            from compressor.quantization.weight_only.openvino_weights import compressed_weights

            weights = compressed_weights(plan, counts)
        graph = write_folder(lm.model, lm.tokenizer, decoder_graph(lm.model, weights), out)
        return {"builder": "the decoder IR written op by op (stateful KV cache)" + (", the plan's codes as u4/u8 compressed "
                "weights" if plan else ", float32 weights"), "weights": counts, **graph}
    from compressor.io.export_lm import build_genai

    build_genai(lm.model, lm.tokenizer, out)
    counts = {}
    if plan is not None:
        from compressor.quantization.weight_only.matmulnbits import ACCURACY_LEVEL, rewrite

        counts = rewrite(out / "model.onnx", plan)
        counts["accuracy_level"] = ACCURACY_LEVEL
    return {"builder": "onnxruntime-genai model builder (float), then the plan written as MatMulNBits" if plan else
            "onnxruntime-genai model builder (float)", **counts}


def artifact_check(art: Path, target: LmTarget, lm: CausalLm, stream, settings, prompts, threads) -> dict[str, Any]:
    """The artifact loaded by its runtime: next-token agreement with the plan's torch model on the first window, and the
    greedy continuations of the prompts (the bundle's reference I/O)."""
    from backends.lm import open_lm_artifact

    runner = open_lm_artifact(art, target.name, threads)
    ids = stream[: min(settings.eval_window, 512)].numpy().reshape(1, -1)
    got = runner.logits(ids)[0].argmax(-1)
    want = torch_logits(lm.model)(stream[: ids.shape[1]].unsqueeze(0))[0].argmax(-1).numpy()
    gens = [runner.generate(p, settings.new_tokens).tokens for p in prompts]
    return {"agreement_with_plan": float((got == want).mean()), "tokens": int(ids.shape[1]), "generations": gens,
            "runtime": runner.describe()}


def lm_manifest(config, target, lm, plan, ref, fid, metrics, failures, build, check, size, compress_s, compress_rss, rss_before,
                eval_src, calib_src, stream, calib, settings) -> dict[str, Any]:
    return {
        "task": "text-generation",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sdk": {"name": "compressor", "version": __version__},
        "target": target.to_dict(),
        "precision": target.precision,
        "artifact": {"path": ARTIFACT_DIR, "size_bytes": size, "build": build},
        "quantization": plan.to_dict() if plan is not None else None,
        "compression": {"seconds": round(compress_s, 1), "peak_rss_mb": round(compress_rss, 1),
                        "peak_rss_mb_before_passes": round(rss_before, 1),
                        "passes_seconds": plan.transforms.get("seconds") if plan is not None else None,
                        "method": "seconds: the passes and the quantized model's scoring (passes_seconds: the passes alone); peak RSS: "
                                  "VmHWM of the compressing process (loading, FP32 scoring and the passes)"},
        "source": {k: v for k, v in lm.source.items() if k != "path"},
        "model_shape": model_shape(lm),
        "data": {"eval": {"source": eval_src.describe(), "tokens": int(stream.numel())},
                 "calibration": None if calib is None else {"source": calib_src.describe(), "windows": len(calib),
                                                            "seq_len": settings.seq_len}},
        "gate": {**config.gate.to_dict(), "passed": not failures, "failures": failures,
                 "forced": bool(failures) and config.gate.force},
        "metrics": {**metrics, "reference": ref.to_dict(), "fidelity": fid.to_dict()},
        "artifact_check": {k: v for k, v in check.items() if k != "generations"},
        "environment": describe_environment(),
        "reference": {"generations": REFERENCE_GENERATIONS, "prompts": len(settings.prompts), "new_tokens": settings.new_tokens,
                      "produced_by": f"the {target.name} artifact itself, greedy (compressor verify replays it and compares tokens)"},
        "recipe": config.model_dump(mode="json"),
    }


def model_shape(lm: CausalLm) -> dict[str, Any]:
    c = lm.config
    head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv_heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    return {"layers": c.num_hidden_layers, "hidden": c.hidden_size, "heads": c.num_attention_heads, "kv_heads": kv_heads,
            "vocabulary": c.vocab_size, "kv_bytes_per_token": 2 * c.num_hidden_layers * kv_heads * head * 4}


def lm_rows(target, size, fid, ref, manifest) -> list[dict]:
    return [{"target": target.name, "precision": target.precision, "size": size, "perplexity": fid.perplexity,
             "FP32 perplexity": ref.perplexity, "increase %": manifest["metrics"]["perplexity_increase_pct"],
             "agreement": manifest["metrics"]["top1_agreement"]}]


def lm_report(manifest: dict, refs: list[dict]) -> str:
    m, q = manifest["metrics"], manifest["quantization"]
    lines = [f"# {manifest['target']['name']} — {manifest['source']['architecture']}", "",
             f"- precision: {manifest['precision']}; artifact {manifest['artifact']['size_bytes'] / 2**20:.1f} MiB "
             f"({manifest['artifact']['path']}/, {manifest['target']['artifact_format']})",
             f"- perplexity {m['perplexity']:.3f} vs FP32 {m['reference_perplexity']:.3f} ({m['perplexity_increase_pct']:+.2f} %) on "
             f"{m['tokens']:,} held-out tokens (window {m['window']}, stride {m['stride']}); next-token top-1 agreement "
             f"{m['top1_agreement']:.4f}",
             f"- artifact vs plan next-token agreement: {manifest['artifact_check']['agreement_with_plan']:.4f} "
             f"({manifest['artifact_check']['tokens']} tokens)",
             f"- compression: {manifest['compression']['seconds']} s, peak RSS {manifest['compression']['peak_rss_mb']:.0f} MiB",
             f"- gate: {'passed' if manifest['gate']['passed'] else 'FAILED: ' + '; '.join(manifest['gate']['failures'])}"]
    if manifest["source"].get("gguf_note"):
        lines.append(f"- source: {manifest['source']['gguf_note']}")
    if q:
        lines += ["", "## Weight-only plan", "", f"- settings: {json.dumps(q['settings'])}", f"- layers by bits: {q['bits']}",
                  f"- passes: {json.dumps({k: v for k, v in q['transforms'].items() if k != 'mixed_precision'})}", "",
                  "| layer | bits | group | sym | method | AWQ α | weighted error |", "|---|---|---|---|---|---|---|"]
        for layer in q["layers"]:
            a = "–" if layer["awq_alpha"] is None else f"{layer['awq_alpha']:.2f}"
            lines.append(f"| {layer['name']} | {layer['bits']} | {layer['group']} | {layer['symmetric']} | {layer['method']} | {a} | "
                         f"{layer['error']:.2e} |")
    lines += ["", "## Reference generations (greedy)", ""]
    for r in refs:
        lines.append(f"- `{r['prompt']}` → {r['text']!r}" + ("" if r["same_as_fp32"] else " (differs from FP32)"))
    return "\n".join(lines) + "\n"


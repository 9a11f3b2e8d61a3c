"""The generation benchmark: each LM artifact in a fresh process, at batch 1, greedy.

Per artifact: load time, time to first token for prompts of 128 and 512 tokens (prefill plus one sampling step), decode
tokens/s over 128 new tokens with the KV cache (end-of-sequence ignored so every row decodes the same count), peak RSS of
the process, file size, and the greedy tokens of a fixed prompt (compared with FP32's by the caller). Medians of
``repeats``. Decode is bound by memory traffic, so each row also reports the bytes it moves per token (the weights it reads
once per token, plus the KV cache at the mean context) as GB/s and as a share of this machine's measured read bandwidth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from compressor.core.environment import peak_rss_mb
from compressor.core.errors import CompressorError, first_line

PROMPT_LENGTHS = (128, 512)
NEW_TOKENS = 128
REPEATS = 3


def method(repeats: int = REPEATS) -> str:
    return (f"fresh process per artifact, batch 1, greedy; TTFT: prompt of {'/'.join(map(str, PROMPT_LENGTHS))} tokens in, first "
            f"new token out; decode: {NEW_TOKENS} new tokens after the 128-token prompt, end-of-sequence ignored, (tokens − 1) / "
            f"(time after the first); median of {repeats}; peak RSS: the process's VmHWM")


def model_bytes(folder: Path) -> int:
    """The model's own files (graph and weights; the tokenizer's files are not counted)."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.suffix in (".onnx", ".data", ".bin", ".xml", ".safetensors")
               and not f.name.startswith(("openvino_tokenizer", "openvino_detokenizer")))


def measure(runner, prompts: dict[int, list[int]], new_tokens: int, repeats: int) -> dict[str, Any]:
    ttft = {}
    context = runner.describe().get("context_length")
    prompts = {n: ids for n, ids in prompts.items() if not context or n + new_tokens <= context}
    if not prompts:
        raise ValueError(f"the model's context ({context} tokens) is shorter than a prompt plus {new_tokens} new tokens")
    for n, ids in prompts.items():
        runner.generate(ids, 2, exact=True)  # warm-up at this length
        ttft[str(n)] = statistics.median(runner.generate(ids, 1, exact=True).ttft_s for _ in range(repeats)) * 1000
    first = prompts[min(prompts)]
    runs = [runner.generate(first, new_tokens, exact=True) for _ in range(repeats)]
    tps = statistics.median(r.decode_tokens_per_s for r in runs)
    return {"ttft_ms": ttft, "decode_tokens_per_s": tps, "decode_runs": [r.decode_tokens_per_s for r in runs],
            "tokens": runs[0].tokens}


def worker(args) -> dict[str, Any]:
    prompts = {int(k): v for k, v in json.loads(Path(args.prompts).read_text()).items()}
    t0 = time.perf_counter()
    if args.target == "torch-cpu-fp32-lm":
        import torch

        from backends.torch_eager import TorchLmRunner
        from compressor.io.causal_lm import load_causal_lm

        torch.set_num_threads(args.threads)
        lm = load_causal_lm(args.artifact)
        runner = TorchLmRunner(lm.model, lm.tokenizer.eos_token_id, args.threads)
    else:
        from backends.lm import open_lm_artifact

        runner = open_lm_artifact(Path(args.artifact), args.target, args.threads)
    load_s = time.perf_counter() - t0
    rss_loaded = peak_rss_mb()
    found = measure(runner, prompts, args.new_tokens, args.repeats)
    return {**found, "load_time_s": load_s, "rss_after_load_mb": rss_loaded,
            "peak_rss_mb": peak_rss_mb(), "runtime": runner.describe()}


def run_isolated(artifact: Path, target: str, prompts_file: Path, threads: int, new_tokens: int = NEW_TOKENS,
                 repeats: int = REPEATS, timeout: float = 1800) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "compressor.app.lm_bench", "--artifact", str(artifact), "--target", target, "--prompts",
           str(prompts_file), "--threads", str(threads), "--new-tokens", str(new_tokens), "--repeats", str(repeats)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = [ln for ln in (done.stderr or "").splitlines() if ln.strip()]
        raise CompressorError(f"the generation benchmark of {artifact} failed: {first_line(Exception(tail[-1] if tail else 'no output'))}")
    return json.loads(lines[-1])


def roofline(result: dict[str, Any], weight_bytes: int, kv_bytes_per_token: int, context: int, bandwidth_gbs: float) -> dict:
    """Bytes moved per decoded token (weights once, the KV cache at the mean context) as GB/s and share of bandwidth."""
    per_token = weight_bytes + kv_bytes_per_token * context
    gbs = per_token * result["decode_tokens_per_s"] / 1e9
    return {"bytes_per_token": per_token, "gb_per_s": gbs, "bandwidth_gb_per_s": bandwidth_gbs,
            "share_of_bandwidth": gbs / bandwidth_gbs if bandwidth_gbs else None}


def bench_bundle(bundle: Path, manifest: dict, threads: int, repeats: int = REPEATS) -> dict[str, Any]:
    """``compressor bench LM_BUNDLE``: the generation benchmark of the bundle's artifact, prompts cut to 128 and 512 tokens
    from its reference prompts and generations (their content does not change the timing)."""
    import tempfile

    from compressor.evaluation.roofline import BANDWIDTH_METHOD, memory_bandwidth

    ref = json.loads((bundle / manifest["reference"]["generations"]).read_text())
    pool = [t for p in ref["prompts"] for t in p["prompt_ids"] + p["tokens"]]
    ids = (pool * (max(PROMPT_LENGTHS) // max(1, len(pool)) + 1))[: max(PROMPT_LENGTHS)]
    with tempfile.TemporaryDirectory(prefix="compressor-lm-bench-") as tmp:
        prompts = Path(tmp) / "prompts.json"
        prompts.write_text(json.dumps({n: ids[:n] for n in PROMPT_LENGTHS}))
        folder = bundle / manifest["artifact"]["path"]
        r = run_isolated(folder, manifest["target"]["name"], prompts, threads, repeats=repeats)
    src = manifest["source"]
    bw = memory_bandwidth(threads)
    r["size_bytes"] = model_bytes(folder)
    kv = (manifest.get("model_shape") or {}).get("kv_bytes_per_token", 0)
    r["roofline"] = {**roofline(r, r["size_bytes"], kv, 128 + NEW_TOKENS // 2, bw), "method": BANDWIDTH_METHOD}
    return {"target": manifest["target"]["name"], "model": src.get("architecture"), "method": method(repeats), "threads": threads, **r}


def main() -> None:  # pragma: no cover - the worker process
    p = argparse.ArgumentParser()
    p.add_argument("--artifact", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--prompts", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--new-tokens", type=int, default=NEW_TOKENS)
    p.add_argument("--repeats", type=int, default=REPEATS)
    args = p.parse_args()
    print(json.dumps(worker(args)))


if __name__ == "__main__":  # pragma: no cover
    main()

"""How close each runtime comes to this machine's limit: work done per second against a measured matrix-multiply ceiling.

- The model's work: FLOPs of one sample, counted by ``torch.utils.flop_counter`` on the FP32 model (2 per multiply-add of
  every matmul and convolution; element-wise work is not counted, as in every roofline of this kind). An INT8 artifact
  does the same multiply-adds as integer operations, so its rate is reported as GOP/s.
- The ceilings: a square matmul (1024) per precision with the benchmark's threads, the best of several timed runs: fp32
  and bf16 through PyTorch (oneDNN), int8 through ONNX Runtime's ``MatMulInteger`` (u8 × s8 → s32, what its INT8 kernels
  use). Measured once per machine (CPU model, ISA, threads) and cached in ``~/.cache/compressor/roofline.json`` with the
  method, because it takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

N = 1024
METHOD = (f"ceiling: best of 5 timed {N}×{N}×{N} matmuls per precision with the benchmark's threads (fp32/bf16 torch.matmul, int8 "
          "ONNX Runtime MatMulInteger u8×s8); work: torch.utils.flop_counter FLOPs of one sample of the FP32 model (matmuls and "
          "convolutions, 2 per multiply-add)")
CACHE = Path.home() / ".cache" / "compressor" / "roofline.json"


def model_flops(module, example: tuple) -> int | None:
    """FLOPs of one forward pass on ``example`` (batch 1), or None where the counter cannot run the model."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            module(*example)
        total = int(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - TorchScript and some exported programs do not dispatch through the counter
        return None
    return total or None


def _best(call, repeats: int = 5) -> float:
    call()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return best


def _torch_rate(dtype, threads: int) -> float:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(N, N).to(dtype), torch.randn(N, N).to(dtype)
        return 2 * N**3 / _best(lambda: torch.matmul(a, b)) / 1e9
    finally:
        torch.set_num_threads(old)


def _int8_rate(threads: int) -> float | None:
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "mm",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, [N, N]),
                               helper.make_tensor_value_info("b", TensorProto.INT8, [N, N])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [N, N])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(0, 255, (N, N), dtype=np.uint8), "b": rng.integers(-127, 127, (N, N), dtype=np.int8)}
    return 2 * N**3 / _best(lambda: sess.run(None, feeds)) / 1e9


def _key(env: dict, threads: int) -> str:
    cpu = env.get("cpu") or {}
    text = json.dumps([cpu.get("model"), sorted(cpu.get("isa") or []), threads, N])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ceilings(env: dict, threads: int, cache: Path = CACHE) -> dict[str, Any]:
    """{"fp32": GFLOP/s, "bf16": …, "int8": GOP/s, "method", "measured_at"} for this machine and thread count (cached)."""
    import torch

    key = _key(env, threads)
    try:
        stored = json.loads(cache.read_text())
    except (OSError, ValueError):
        stored = {}
    if key in stored:
        return stored[key]
    bf16 = "avx512_bf16" in ((env.get("cpu") or {}).get("isa") or []) or "amx_bf16" in ((env.get("cpu") or {}).get("isa") or [])
    found = {"fp32": _torch_rate(torch.float32, threads), "bf16": _torch_rate(torch.bfloat16, threads) if bf16 else None,
             "int8": _int8_rate(threads), "threads": threads, "cpu": (env.get("cpu") or {}).get("model"), "method": METHOD,
             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{id(found)}")
        tmp.write_text(json.dumps({**stored, key: found}, indent=1))
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home: measure again next time
    return found


def rate(flops_per_sample: int | None, batch: int, p50_ms: float | None, precision: str, ceiling: dict) -> dict[str, Any] | None:
    """The row's work rate and its share of the ceiling of its precision."""
    if not flops_per_sample or not p50_ms:
        return None
    per_s = flops_per_sample * batch / (p50_ms / 1000.0) / 1e9
    kind = "int8" if precision.startswith("int8") else "bf16" if precision == "bf16" else "fp32"
    peak = ceiling.get(kind)
    return {"unit": "GOP/s" if kind == "int8" else "GFLOP/s", "rate": per_s, "ceiling": peak, "ceiling_precision": kind,
            "share_of_ceiling": per_s / peak if peak else None}


BANDWIDTH_BYTES = 1 << 29  # 512 MiB: well past every cache level
BANDWIDTH_METHOD = ("memory read bandwidth: best of 5 timed sums of a 512 MiB float32 tensor with the benchmark's threads "
                    "(torch; bytes read / seconds)")


def memory_bandwidth(threads: int) -> float:
    """GB/s this machine reads from memory with ``threads`` threads (decode of an LM is bound by it)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.ones(BANDWIDTH_BYTES // 4)
        return BANDWIDTH_BYTES / _best(lambda: x.sum()) / 1e9
    finally:
        torch.set_num_threads(old)

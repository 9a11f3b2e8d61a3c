"""What machine and software a number was measured on (recorded with every benchmark)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from functools import lru_cache

ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "asimd", "asimddp", "asimdhp", "fphp", "sve",
    "bf16", "i8mm",
)
LIBRARIES = (
    "torch", "torchvision", "numpy", "onnx", "onnxruntime", "onnxslim", "onnxscript", "openvino", "nncf",
    "torch-pruning", "torchao", "executorch", "ai-edge-litert", "neural-compressor-pt", "tensorrt", "tensorrt-rtx",
)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def cpu_info() -> dict:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "architecture": platform.machine(),
        "usable_cpus": usable_cpus(),
        "isa": [f for f in ISA_FLAGS if f in flags],
    }


#: ISA flags (as cpu_info reports them) of CPUs with native fp16 arithmetic
FP16_ISA = {"asimdhp", "fphp", "avx512_fp16"}


def fp16_problem(alternatives: str) -> str | None:
    """Why an fp16 edge target should not be built here (None when this CPU has fp16 arithmetic)."""
    if set(cpu_info()["isa"]) & FP16_ISA:
        return None
    return ("this CPU has no fp16 arithmetic (no Arm FP16 or AVX512-FP16): XNNPACK would emulate fp16, measured 1.5-1.8x slower "
            f"than FP32 on AMD Zen 4 (benchmarks/results/precision.md); use {alternatives} here")


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str]:
    return {name: v for name in LIBRARIES if (v := package_version(name)) is not None}


NO_CUDA = "no NVIDIA GPU here (torch sees no CUDA device)"


def cuda_device() -> tuple[str, str] | None:
    """(name, 'smXY') of the CUDA device torch sees, or None."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return torch.cuda.get_device_name(0), f"sm{major}{minor}"


@lru_cache(maxsize=1)
def gpu_info() -> list[str]:
    """GPU names from nvidia-smi; empty when there is none (no CUDA import needed)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        res = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [l.strip() for l in res.stdout.splitlines() if l.strip()] if res.returncode == 0 else []


def describe_environment() -> dict:
    try:
        from compressor.core.version import __version__ as sdk_version
    except ImportError:  # pragma: no cover
        sdk_version = "unknown"
    return {
        "cpu": cpu_info(),
        "gpu": gpu_info(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sdk_version": sdk_version,
        "libraries": library_versions(),
    }


def default_threads() -> int:
    return usable_cpus()


def peak_rss_mb() -> float:
    """This process's peak resident memory (MiB). VmHWM belongs to the process image and starts afresh at exec;
    ru_maxrss (the fallback off Linux) carries over the parent's peak from fork and overstates it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@lru_cache(maxsize=1)
def bf16_matmul_speedup() -> float:
    """How many times faster a bfloat16 matmul runs than a float32 one on this CPU with the current threads (best of 3 of
    a 2048 × 576 × 1536 product, the shape of a small LM's MLP on calibration tokens): AMX makes it about 10×, AVX512-BF16
    less, and CPUs without bf16 arithmetic emulate it slower than float32. Measured, never inferred from the ISA flags."""
    import time

    import torch

    def best(dtype) -> float:
        x, w = torch.randn(2048, 576, dtype=dtype), torch.randn(1536, 576, dtype=dtype)
        torch.nn.functional.linear(x, w)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            torch.nn.functional.linear(x, w)
            times.append(time.perf_counter() - t0)
        return min(times)

    return best(torch.float32) / max(best(torch.bfloat16), 1e-9)

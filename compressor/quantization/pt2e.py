"""The SDK's calibration inside PyTorch's PT2E quantization flow (used by the ExecuTorch targets).

PT2E inserts observers where a quantizer (e.g. ExecuTorch's XNNPACKQuantizer) wants activations
quantized. :func:`observer_class` gives an observer that chooses ranges with the SDK's own
calibration methods (:mod:`.calibrate`): a first pass over the calibration data records min/max, a
second fills |x| histograms, then ``calculate_qparams`` applies minmax / percentile / mse / entropy,
so every target calibrates the same way. Exclusions use the same patterns as every other target.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from compressor.quantization.calibrate import BINS, Observation, choose_range
from compressor.quantization.structure import Exclusions

MODULE_OPS = {"Conv1d": "Conv", "Conv2d": "Conv", "Conv3d": "Conv", "Linear": "Gemm"}


@lru_cache(maxsize=1)
def observer_class():
    import torch
    from torchao.quantization.pt2e.observer import UniformQuantizationObserverBase

    class SdkObserver(UniformQuantizationObserverBase):
        """Two-pass observer: set ``phase = "histogram"`` on every instance between the passes."""

        def __init__(self, method: str = "mse", percentile: float = 99.999, **kwargs):
            super().__init__(**kwargs)
            self.method, self.percentile = method, percentile
            self.phase = "range"
            self.clamp: tuple[float, float] | None = None  # a clamp (ReLU6) right after the observed op: observe its result
            self.register_buffer("min_val", torch.tensor(float("inf")))
            self.register_buffer("max_val", torch.tensor(float("-inf")))
            self.hist: np.ndarray | None = None

        def forward(self, x):
            if x.numel() == 0:
                return x
            xd = x.detach().float()
            if self.clamp is not None:
                xd = xd.clamp(*self.clamp)
            if self.phase == "range":
                self.min_val = torch.minimum(self.min_val, xd.min())
                self.max_val = torch.maximum(self.max_val, xd.max())
            else:
                absmax = float(max(abs(self.min_val.item()), abs(self.max_val.item())))
                if absmax > 0:
                    h = torch.histc(xd.abs().clamp(max=absmax), bins=BINS, min=0.0, max=absmax).numpy().astype(np.float64)
                    self.hist = h if self.hist is None else self.hist + h
            return x

        def calculate_qparams(self):
            lo, hi = float(self.min_val.item()), float(self.max_val.item())
            if not np.isfinite(lo) or not np.isfinite(hi):
                lo, hi = 0.0, 1.0
            obs = Observation(lo, hi, self.hist)
            lo, hi = choose_range(obs, self.method if self.hist is not None else "minmax", self.percentile)
            qmin, qmax = self.quant_min, self.quant_max
            scale = max((hi - lo) / float(qmax - qmin), 1e-8)
            zp = int(np.clip(round(qmin - lo / scale), qmin, qmax))
            return torch.tensor([scale], dtype=torch.float32), torch.tensor([zp], dtype=torch.int32)

        def extra_repr(self) -> str:
            return f"method={self.method}, min={self.min_val.item():.4g}, max={self.max_val.item():.4g}"

    return SdkObserver


def set_phase(module, phase: str) -> None:
    cls = observer_class()
    for m in module.modules():
        if isinstance(m, cls):
            m.phase = phase


def fold_clamps(prepared) -> int:
    """Where an observed op output feeds only a clamp (hardtanh: ReLU6), observe the clamped values.

    The quantizer annotates conv → observer → hardtanh → observer; with a wide pre-clamp range the first
    quantization is needlessly coarse. Observing the clamped values gives it the range [0, ≤6], where
    quantizing clamps exactly as ReLU6 does: the same folding the ONNX exporter does for Relu/Clip."""
    import torch

    cls = observer_class()
    clamps = {torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default}
    modules = dict(prepared.named_modules())
    n = 0
    for node in prepared.graph.nodes:
        if node.op != "call_function" or node.target not in clamps:
            continue
        src = node.args[0]
        lo = float(node.args[1]) if len(node.args) > 1 else -1.0
        hi = float(node.args[2]) if len(node.args) > 2 else 1.0
        if getattr(src, "op", None) == "call_module" and len(src.users) == 1 and isinstance(modules.get(src.target), cls):
            modules[src.target].clamp = (lo, hi)
            n += 1
    return n


def excluded_modules(module, patterns: list[str]) -> tuple[list[dict], list[str], list[str]]:
    """(layers with their precision, excluded module names, unmatched patterns) for the weighted modules of ``module``."""
    excl = Exclusions(patterns)
    layers, names = [], []
    for name, m in module.named_modules():
        kind = type(m).__name__
        if kind not in MODULE_OPS:
            continue
        hit = excl.match(name, MODULE_OPS[kind], kind)
        layers.append({"name": name, "module_type": kind, "precision": "float" if hit else "int8",
                       "reason": f"excluded by '{hit}'" if hit else ""})
        if hit:
            names.append(name)
    return layers, names, excl.unmatched()


def calibrate(prepared, batches: list[tuple], method: str, progress: Callable[[int], None] | None = None) -> None:
    """Run the calibration batches through a prepared (observed) model: two passes unless minmax."""
    import torch

    set_phase(prepared, "range")
    with torch.no_grad():
        for args in batches:
            prepared(*args)
            if progress:
                progress(1)
        if method != "minmax":
            set_phase(prepared, "histogram")
            for args in batches:
                prepared(*args)
                if progress:
                    progress(1)

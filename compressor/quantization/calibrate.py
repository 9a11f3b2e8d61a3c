"""Activation calibration: observe tensors over calibration batches, then choose each tensor's range.

Two passes over the data: the first finds each tensor's min and max, the second fills a histogram of
|x| (2,048 bins up to max |x|). A range is then chosen per tensor by one of:

- ``minmax``: the observed extremes (no clipping; outliers stretch the scale);
- ``percentile``: clip |x| at the given percentile of the histogram;
- ``mse``: the clipping threshold that minimises the expected squared error of quantize-dequantize;
- ``entropy``: the threshold minimising the KL divergence between the histogram and its quantized
  version (TensorRT's method).

The calibrator is backend-neutral: it is handed a function that runs the float model and returns
the requested intermediate tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from compressor.core.errors import InputError
from compressor.quantization.plan import CALIBRATION_METHODS, DEFAULT_PERCENTILE, TensorQuant

BINS = 2048
RunFn = Callable[[dict[str, np.ndarray], list[str]], dict[str, np.ndarray]]


@dataclass
class Observation:
    lo: float
    hi: float
    hist: np.ndarray | None = None  # counts of |x| over [0, absmax]

    @property
    def absmax(self) -> float:
        return max(abs(self.lo), abs(self.hi))


def observe(run: RunFn, batches: Iterable[dict[str, np.ndarray]], tensors: list[str], progress=None,
            need_histograms: bool = True) -> dict[str, Observation]:
    """Min/max (and |x| histograms) of ``tensors`` over ``batches`` (a re-iterable sequence)."""
    batches = list(batches)
    obs: dict[str, Observation] = {}
    for feeds in batches:
        for name, value in run(feeds, tensors).items():
            lo, hi = float(np.min(value)), float(np.max(value))
            o = obs.get(name)
            obs[name] = Observation(lo, hi) if o is None else Observation(min(o.lo, lo), max(o.hi, hi))
        if progress:
            progress(1)
    if need_histograms:
        for o in obs.values():
            o.hist = np.zeros(BINS, dtype=np.float64)
        for feeds in batches:
            for name, value in run(feeds, tensors).items():
                o = obs[name]
                if o.absmax > 0:
                    o.hist += abs_histogram(value, o.absmax)
            if progress:
                progress(1)
    return obs


def abs_histogram(value: np.ndarray, absmax: float) -> np.ndarray:
    """Counts of |value| in BINS equal bins over [0, absmax] (the last bin closed), as ``np.histogram`` counts them but
    in a third of its time: bin = floor(|x| · BINS / absmax) in float32 (a value within a rounding of an edge may
    land in the neighbouring bin)."""
    a = np.abs(np.asarray(value, dtype=np.float32)).ravel()
    a *= np.float32(BINS / absmax)
    idx = a.astype(np.int32)
    np.minimum(idx, BINS - 1, out=idx)
    return np.bincount(idx, minlength=BINS)


def _threshold_percentile(o: Observation, percentile: float) -> float:
    cdf = np.cumsum(o.hist)
    if cdf[-1] == 0:
        return o.absmax
    idx = int(np.searchsorted(cdf, cdf[-1] * percentile / 100.0))
    return (min(idx, BINS - 1) + 1) * o.absmax / BINS


def _levels(o: Observation) -> int:
    return 255 if o.lo >= 0 else 127  # the number of steps across [0, t]


def _threshold_mse(o: Observation) -> float:
    width = o.absmax / BINS
    centers = (np.arange(BINS) + 0.5) * width
    best, best_t = np.inf, o.absmax
    levels = _levels(o)
    for i in range(BINS // 16, BINS + 1, 4):
        t = i * width
        step = t / levels
        inside = centers <= t
        err = np.where(inside, step * step / 12.0, (centers - t) ** 2)
        total = float((err * o.hist).sum())
        if total < best:
            best, best_t = total, t
    return best_t


def _threshold_entropy(o: Observation) -> float:
    """TensorRT's KL-divergence calibration over the |x| histogram (as ONNX Runtime implements it):
    for each candidate threshold, p = the histogram clipped there (outliers folded into the last bin),
    q = the same bins merged into the available quantization levels and spread back over p's non-empty
    bins; keep the threshold with the smallest KL(p || q)."""
    hist = o.hist
    nq = _levels(o) + 1
    best, best_i = np.inf, BINS
    for i in range(max(nq, BINS // 16), BINS + 1, 4):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        total = p.sum()
        if total == 0:
            continue
        nz = p > 0
        edges = np.linspace(0, i, nq + 1).astype(int)[:-1]
        sums = np.add.reduceat(hist[:i], edges)
        counts = np.add.reduceat(nz.astype(np.float64), edges)
        lengths = np.diff(np.append(edges, i))
        per_bin = np.repeat(np.where(counts > 0, sums / np.maximum(counts, 1), 0.0), lengths)
        q = np.where(nz, per_bin, 0.0)
        p = p / total
        q = q / q.sum() if q.sum() > 0 else q
        q = np.where(nz & (q == 0), 1e-12, q)  # smoothing: p's mass where q has none costs, but finitely
        kl = float(np.sum(p[nz] * np.log(p[nz] / q[nz])))
        if kl < best:
            best, best_i = kl, i
    return best_i * o.absmax / BINS


def choose_range(o: Observation, method: str, percentile: float = DEFAULT_PERCENTILE) -> tuple[float, float]:
    if method not in CALIBRATION_METHODS:
        raise InputError(f"unknown calibration method '{method}': use one of {', '.join(CALIBRATION_METHODS)}")
    if method == "minmax" or o.absmax == 0 or o.hist is None:
        t = o.absmax
    elif method == "percentile":
        t = _threshold_percentile(o, percentile)
    elif method == "mse":
        t = _threshold_mse(o)
    else:
        t = _threshold_entropy(o)
    lo, hi = max(o.lo, -t), min(o.hi, t)
    return min(lo, 0.0), max(hi, 0.0)  # the range must hold 0 exactly


def quant_params(name: str, lo: float, hi: float, dtype: str, method: str) -> TensorQuant:
    """Asymmetric uint8 (or symmetric int8) scale and zero point for [lo, hi]."""
    if dtype == "uint8":
        scale = (hi - lo) / 255.0 if hi > lo else 1.0
        zp = int(np.clip(round(-lo / scale), 0, 255))
    else:
        m = max(abs(lo), abs(hi))
        scale = m / 127.0 if m > 0 else 1.0
        zp = 0
    return TensorQuant(name=name, dtype=dtype, scale=float(np.float32(scale)), zero_point=zp, range=(lo, hi), method=method)

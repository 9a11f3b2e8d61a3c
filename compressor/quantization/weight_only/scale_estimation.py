"""Scale estimation: per group, the clip ratio and then the (scale, zero) that minimise the activation-weighted error.

The error of one output ``y = W x`` that a weight change ``ΔW`` makes is ``E‖ΔW x‖² = tr(ΔW H ΔWᵀ)`` with ``H = E[x xᵀ]``;
its diagonal part ``Σ_j H_jj ΔW_ij²`` separates by group, so each group's grid is fitted alone against it:

1. a clip-ratio search (the range shrunk by 1.0, 0.95, … 0.5, then per group by ±0.025 around its best — outliers cost
   less than rounding everything coarsely);
2. HQQ-style refinement: with the codes fixed, the weighted least-squares ``(scale, offset)`` has a closed form; round the
   zero point (realisers need integers), re-round the codes, repeat.

Both keep a change only where it lowers the weighted error. Data-free use passes ``h_diag = 1``.
"""

from __future__ import annotations

import torch

from compressor.quantization.pipeline import WeightPass
from compressor.quantization.weight_only.grid import Grid, codes, dequantize, fit_grouped, grouped

CLIP_RATIOS = tuple(1.0 - 0.025 * i for i in range(21))  # 1.0 … 0.5
COARSE = 2  # searched every other ratio, then per group the ratios beside its best: 13 errors instead of 21
REFINE_STEPS = 3


def _error(wg, hg, q, scale, zero):
    d = (q - zero.unsqueeze(-1)).mul_(scale.unsqueeze(-1)).sub_(wg)  # in place: this runs ~20 times per layer
    return d.mul_(d).mul_(hg).sum(-1)


def _codes_g(wg, scale, zero, grid):
    return torch.div(wg, scale.unsqueeze(-1)).round_().add_(zero.unsqueeze(-1)).clamp_(0, grid.qmax)


def estimate(w: torch.Tensor, grid: Grid, h_diag: torch.Tensor | None = None,
             refine: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero), each out × groups, for ``w`` on ``grid`` weighted by ``h_diag`` (per input channel, mean x²)."""
    w = w.float()
    wg = grouped(w, grid)
    h = torch.ones(w.shape[1]) if h_diag is None else h_diag.float().clamp_min(0)
    hg = grouped(h.expand_as(w), grid)
    best_s, best_z = fit_grouped(wg, grid)
    best = _error(wg, hg, _codes_g(wg, best_s, best_z, grid), best_s, best_z)
    best_r = torch.ones_like(best)

    def consider(r):
        nonlocal best_s, best_z, best, best_r
        s, z = fit_grouped(wg, grid, r)
        e = _error(wg, hg, _codes_g(wg, s, z, grid), s, z)
        better = e < best
        best_s, best_z, best = torch.where(better, s, best_s), torch.where(better, z, best_z), torch.minimum(e, best)
        best_r = torch.where(better, r, best_r)

    for r in CLIP_RATIOS[COARSE::COARSE]:  # every other ratio, then per group the two beside its best
        consider(r)
    step = CLIP_RATIOS[0] - CLIP_RATIOS[1]
    for sign in (1.0, -1.0):
        consider((best_r + sign * step).clamp(CLIP_RATIOS[-1], CLIP_RATIOS[0]))
    if not refine:
        return best_s, best_z
    for _ in range(REFINE_STEPS):
        q = _codes_g(wg, best_s, best_z, grid)
        s, z = _weighted_refit(wg, hg, q, best_s, best_z, grid)
        e = _error(wg, hg, _codes_g(wg, s, z, grid), s, z)
        better = e < best
        if not better.any():
            break
        best_s, best_z, best = torch.where(better, s, best_s), torch.where(better, z, best_z), torch.minimum(e, best)
    return best_s, best_z


def _weighted_refit(wg, hg, q, scale, zero, grid):
    """Weighted least squares of w ≈ s·q + c per group (c = −s·zero); the zero point rounded, symmetric grids keep theirs."""
    sw = hg.sum(-1).clamp_min(1e-20)
    mq = (hg * q).sum(-1) / sw
    mw = (hg * wg).sum(-1) / sw
    var = (hg * (q - mq.unsqueeze(-1)) ** 2).sum(-1)
    cov = (hg * (q - mq.unsqueeze(-1)) * (wg - mw.unsqueeze(-1))).sum(-1)
    if grid.symmetric:  # w ≈ s·(q − mid): one parameter
        qc = q - zero.unsqueeze(-1)
        s = (hg * qc * wg).sum(-1) / (hg * qc * qc).sum(-1).clamp_min(1e-20)
        s = torch.where(s > 0, s, scale)
        return s, zero
    s = torch.where(var > 0, cov / var.clamp_min(1e-20), scale)
    s = torch.where(s > 0, s, scale)
    z = torch.round(mq - mw / s).clamp(0, grid.qmax)
    return s, z


def weighted_error(w: torch.Tensor, grid: Grid, scale, zero, h_diag: torch.Tensor | None = None) -> float:
    """Σ_j h_j (w − ŵ)² over the layer, relative to Σ_j h_j w² (the share of the layer's output energy lost)."""
    w = w.float()
    return error_share(w, dequantize(codes(w, scale, zero, grid), scale, zero, grid), h_diag)


def error_share(w: torch.Tensor, dq: torch.Tensor, h_diag: torch.Tensor | None = None) -> float:
    """Σ_j h_j (w − dq)² / Σ_j h_j w² for a weight ``w`` and its dequantized ``dq`` (h = 1 without calibration)."""
    h = torch.ones(w.shape[1]) if h_diag is None else h_diag.float()
    d = w - dq
    return float((d * d * h).sum() / (w * w * h).sum().clamp_min(1e-20))


class ScaleEstimation(WeightPass):
    name, order, switch = "scale_estimation", 20, "scale_estimation"
    description = ("scale estimation: per group, the clip ratio and a weighted least-squares scale and zero point against the "
                   "activation-weighted error; decoder LMs")
    on_by = "default for --task text-generation (--no-scale-estimation)"

    def fit(self, w, grid, h_diag):
        return None if h_diag is None else estimate(w, grid, h_diag)

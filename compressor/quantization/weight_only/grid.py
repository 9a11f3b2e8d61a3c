"""The group-wise integer grid every weight-only algorithm and realiser shares.

A weight ``W`` (out × in) is cut along the input dimension into groups of ``group`` columns (the last one padded);
each (row, group) has a float ``scale`` and an integer ``zero`` point, and each weight an unsigned code
``q ∈ [0, 2^bits − 1]``: ``w ≈ (q − zero) · scale``. Symmetric grids fix ``zero = 2^(bits−1)``. This is exactly the layout
of ONNX Runtime's ``MatMulNBits`` (codes, per-block scales, integer zero points) and of OpenVINO's u4/u8 compressed
weights, so a realiser only packs bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Grid:
    bits: int  # 4 | 8
    group: int  # columns per group; -1: one group per row (per channel)
    symmetric: bool

    @property
    def qmax(self) -> int:
        return (1 << self.bits) - 1

    @property
    def mid(self) -> int:
        return 1 << (self.bits - 1)

    def group_size(self, in_features: int) -> int:
        return in_features if self.group <= 0 else self.group

    def n_groups(self, in_features: int) -> int:
        return math.ceil(in_features / self.group_size(in_features))

    def label(self) -> str:
        g = "per-channel" if self.group <= 0 else f"g{self.group}"
        return f"int{self.bits} {'sym' if self.symmetric else 'asym'} {g}"


def grouped(w: torch.Tensor, grid: Grid) -> torch.Tensor:
    """``w`` (out × in) as (out × groups × group), the last group padded with zeros."""
    out, n = w.shape
    g = grid.group_size(n)
    pad = grid.n_groups(n) * g - n
    if pad:
        w = torch.nn.functional.pad(w, (0, pad))
    return w.reshape(out, -1, g)


def ungrouped(wg: torch.Tensor, in_features: int) -> torch.Tensor:
    return wg.reshape(wg.shape[0], -1)[:, :in_features]


def fit(w: torch.Tensor, grid: Grid, clip: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point (out × groups) covering each group's range, shrunk by ``clip`` (1.0: the full range)."""
    return fit_grouped(grouped(w.float(), grid), grid, clip)


def fit_grouped(wg: torch.Tensor, grid: Grid, clip: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fit` on weights already :func:`grouped`."""
    if grid.symmetric:
        scale = (wg.abs().amax(-1) * clip / (grid.mid - 1)).clamp_min(1e-10)  # ±amax → codes mid ± (mid − 1)
        return scale, torch.full_like(scale, float(grid.mid))
    lo = wg.amin(-1).clamp_max(0) * clip
    hi = wg.amax(-1).clamp_min(0) * clip
    scale = ((hi - lo) / grid.qmax).clamp_min(1e-10)
    zero = torch.round(-lo / scale).clamp(0, grid.qmax)
    return scale, zero


def codes(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, grid: Grid) -> torch.Tensor:
    """The unsigned codes (out × in, uint8) of ``w`` on the grid."""
    wg = grouped(w.float(), grid)
    q = torch.round(wg / scale.unsqueeze(-1)) + zero.unsqueeze(-1)
    return ungrouped(q.clamp(0, grid.qmax), w.shape[1]).to(torch.uint8)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, grid: Grid) -> torch.Tensor:
    qg = grouped(q.float(), grid)
    return ungrouped((qg - zero.unsqueeze(-1)) * scale.unsqueeze(-1), q.shape[1])


def fake_quantize(w: torch.Tensor, grid: Grid, clip: torch.Tensor | float = 1.0) -> torch.Tensor:
    """``dequantize(codes(w, *fit(w)))`` with the same values, in one pass over the groups (AWQ calls it per candidate)."""
    wg = grouped(w.float(), grid)
    scale, zero = fit_grouped(wg, grid, clip)
    scale, zero = scale.unsqueeze(-1), zero.unsqueeze(-1)
    q = torch.round(wg / scale).add_(zero).clamp_(0, grid.qmax)
    return ungrouped(q.sub_(zero).mul_(scale), w.shape[1])

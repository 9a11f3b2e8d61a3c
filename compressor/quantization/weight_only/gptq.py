"""GPTQ (Frantar et al., 2022): round one input column at a time and push its error onto the columns not yet rounded,
through the inverse Hessian of the layer's inputs (``H = E[x xᵀ]`` on calibration text).

Blocked lazy updates (128 columns) keep it at a few seconds per layer on 2 cores; act-order rounds the columns with the
largest ``H_jj`` first, with *static groups*: every group's scale and zero point are fixed before rounding (from the
weights as given, by :mod:`.scale_estimation`), so the order changes nothing in the layout a realiser writes (no g_idx).
"""

from __future__ import annotations

import torch

from compressor.quantization.pipeline import WeightPass
from compressor.quantization.weight_only.grid import Grid

BLOCK = 128
DAMP = 0.01


def gptq_codes(w: torch.Tensor, h: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, grid: Grid,
               act_order: bool = True, damp: float = DAMP, block: int = BLOCK) -> torch.Tensor:
    """The codes (out × in, uint8) of ``w`` on the fixed grid (``scale``/``zero``: out × groups) with error feedback."""
    w = w.detach().float().clone()
    h = h.detach().double().clone()
    out, n = w.shape
    g = grid.group_size(n)
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else torch.arange(n)
    inv = torch.argsort(perm)
    w, h = w[:, perm], h[perm][:, perm]
    group_of = (perm // g).tolist()
    h += damp * torch.mean(torch.diag(h)) * torch.eye(n, dtype=h.dtype)
    try:
        hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).float()
    except torch.linalg.LinAlgError:  # not positive definite even damped: more damping
        h += 0.1 * torch.mean(torch.diag(h)) * torch.eye(n, dtype=h.dtype)
        hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).float()
    q_all = torch.zeros_like(w)
    scale, zero = scale.float(), zero.float()
    for i1 in range(0, n, block):
        i2 = min(i1 + block, n)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        h1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = w1[:, i]
            gi = group_of[i1 + i]
            s, z = scale[:, gi], zero[:, gi]
            q = (torch.round(col / s) + z).clamp(0, grid.qmax)
            q_all[:, i1 + i] = q
            e = (col - (q - z) * s) / h1[i, i]
            w1[:, i:] -= e.unsqueeze(1) * h1[i, i:].unsqueeze(0)
            err1[:, i] = e
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return q_all[:, inv].to(torch.uint8)


class Gptq(WeightPass):
    name, order, switch = "gptq", 30, "gptq"
    description = "GPTQ: rounding with error feedback through the inverse input Hessian (act-order, static groups); decoder LMs"
    on_by = "default for --task text-generation (--no-gptq)"

    def round(self, w, h, scale, zero, grid):
        return None if h is None else gptq_codes(w, h, scale, zero, grid)

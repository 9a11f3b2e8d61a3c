"""GPTQ (Frantar et al., 2022): round one input column at a time and push its error onto the columns not yet rounded,
through the inverse Hessian of the layer's inputs (``H = E[x xᵀ]`` on calibration text).

Blocked lazy updates (128 columns) keep it at a few seconds per layer on 2 cores; act-order rounds the columns with the
largest ``H_jj`` first, with *static groups*: every group's scale and zero point are fixed before rounding (from the
weights as given, by :mod:`.scale_estimation`), so the order changes nothing in the layout a realiser writes (no g_idx).

Layers that read one tensor (q, k and v; gate and up) share ``H`` and its inverse, so the stage rounds them as one
matrix (:func:`gptq_codes_shared`): the sequential column loop, the part that cannot be vectorised, runs once for them.
The loop works on the transposed weights so that each column is a contiguous row.
"""

from __future__ import annotations

import torch

from compressor.quantization.pipeline import WeightPass
from compressor.quantization.weight_only.grid import Grid

BLOCK = 128
DAMP = 0.01


def _inverse_cholesky(h: torch.Tensor, damp: float) -> torch.Tensor:
    n = h.shape[0]
    h = h + damp * torch.mean(torch.diag(h)) * torch.eye(n, dtype=h.dtype)
    try:
        return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).float()
    except torch.linalg.LinAlgError:  # not positive definite even damped: more damping
        h = h + 0.1 * torch.mean(torch.diag(h)) * torch.eye(n, dtype=h.dtype)
        return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).float()


def gptq_codes_shared(ws: list[torch.Tensor], h: torch.Tensor, scales: list[torch.Tensor], zeros: list[torch.Tensor],
                      grid: Grid, act_order: bool = True, damp: float = DAMP, block: int = BLOCK) -> list[torch.Tensor]:
    """The codes (out × in, uint8) of each weight in ``ws`` (all reading inputs with second moment ``h``) on its fixed grid
    (``scales[k]``/``zeros[k]``: out_k × groups), with error feedback; one column loop for all of them."""
    rows = [w.shape[0] for w in ws]
    w = torch.cat([x.detach().float() for x in ws]).clone()
    h = h.detach().float().clone()  # float32 as in the reference implementation (float64 doubled the inverse's time)
    n = w.shape[1]
    g = grid.group_size(n)
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else torch.arange(n)
    inv = torch.argsort(perm)
    hinv = _inverse_cholesky(h[perm][:, perm], damp)
    group_of = perm // g
    scale = torch.cat([s.float() for s in scales])[:, group_of]  # out × n, per (permuted) column
    zero = torch.cat([z.float() for z in zeros])[:, group_of]
    wt = w[:, perm].T.contiguous()  # n × out: column j is row j
    st, zt = scale.T.contiguous(), zero.T.contiguous()
    rst = 1.0 / st
    qt = torch.empty_like(wt)
    for i1 in range(0, n, block):
        i2 = min(i1 + block, n)
        w1, err1, h1 = wt[i1:i2], torch.empty_like(wt[i1:i2]), hinv[i1:i2, i1:i2]
        # the loop below is sequential and bound by per-op overhead: rows are taken as views once per block
        cols, qs, errs, hrows = w1.unbind(0), qt[i1:i2].unbind(0), err1.unbind(0), h1.unbind(0)
        rs, zs, ss = rst[i1:i2].unbind(0), zt[i1:i2].unbind(0), st[i1:i2].unbind(0)
        neg_inv_d = (-1.0 / torch.diag(h1)).tolist()
        last = i2 - i1 - 1
        for i in range(last + 1):
            col, q, e = cols[i], qs[i], errs[i]
            torch.mul(col, rs[i], out=q).round_().add_(zs[i]).clamp_(0, grid.qmax)
            torch.sub(q, zs[i], out=e).mul_(ss[i]).sub_(col).mul_(neg_inv_d[i])  # (w − ŵ) / [H⁻¹]_jj
            if i < last:
                w1[i + 1:].addr_(hrows[i][i + 1:], e, alpha=-1)
        if i2 < n:
            wt[i2:].addmm_(hinv[i1:i2, i2:].T, err1, alpha=-1)
    q_all = qt.T[:, inv].to(torch.uint8)
    return list(torch.split(q_all, rows))


def gptq_codes(w: torch.Tensor, h: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, grid: Grid,
               act_order: bool = True, damp: float = DAMP, block: int = BLOCK) -> torch.Tensor:
    """The codes (out × in, uint8) of ``w`` on the fixed grid (``scale``/``zero``: out × groups) with error feedback."""
    return gptq_codes_shared([w], h, [scale], [zero], grid, act_order, damp, block)[0]


class Gptq(WeightPass):
    name, order, switch = "gptq", 30, "gptq"
    quantized_inputs = True  # its error feedback corrects the error the earlier blocks left in its inputs
    description = "GPTQ: rounding with error feedback through the inverse input Hessian (act-order, static groups); decoder LMs"
    on_by = "default for --task text-generation (--no-gptq)"

    def round(self, w, h, scale, zero, grid):
        return None if h is None else gptq_codes(w, h, scale, zero, grid)

    def round_shared(self, ws, h, scales, zeros, grid):
        """:meth:`round` for layers sharing ``h`` (one column loop); None to pass."""
        return None if h is None else gptq_codes_shared(ws, h, scales, zeros, grid)

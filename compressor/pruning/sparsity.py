"""Weight sparsity: N:M structured (2:4, what NVIDIA's sparse tensor cores run) or unstructured magnitude sparsity.

Zeros are chosen by magnitude per layer; during recovery fine-tuning they are held at zero by a mask
(``torch.nn.utils.prune``), then made permanent. N:M groups run along the input-channel axis (the reduction
TensorRT's sparse kernels use), so only layers whose input channels are a multiple of M are made N:M. What
sparsity buys is storage (zeros compress) and, on TensorRT, sparse kernels; none of the CPU runtimes here runs
faster with sparse weights (see README), so no speed-up is claimed for them.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from compressor.core.errors import InputError


@dataclass(frozen=True)
class SparsityPattern:
    n: int | None = None  # N:M — at most n nonzeros in every group of m
    m: int | None = None
    fraction: float | None = None  # unstructured — this fraction of each layer's weights is zero

    @classmethod
    def parse(cls, text: str) -> SparsityPattern:
        text = str(text).strip()
        nm = re.fullmatch(r"(\d+):(\d+)", text)
        if nm:
            n, m = int(nm[1]), int(nm[2])
            if not 0 < n < m:
                raise InputError(f"--sparsity {text}: N:M needs 0 < N < M (2:4 keeps 2 weights of every 4)")
            return cls(n=n, m=m)
        try:
            f = float(text)
        except ValueError:
            raise InputError(f"--sparsity {text!r}: give an N:M pattern (2:4) or a fraction of zeros in (0, 1) (0.5)") from None
        if not 0.0 < f < 1.0:
            raise InputError(f"--sparsity {text}: a fraction of zeros must be in (0, 1), e.g. 0.5")
        return cls(fraction=f)

    def __str__(self) -> str:
        return f"{self.n}:{self.m}" if self.n is not None else f"{self.fraction:g} unstructured"

    def mask(self, w: np.ndarray) -> np.ndarray | None:
        """The keep-mask of weight ``w`` (out, in, ...), or None when the pattern does not fit the layer."""
        if self.fraction is not None:
            k = int(round(self.fraction * w.size))
            if k == 0:
                return None
            threshold = np.partition(np.abs(w).reshape(-1), k - 1)[k - 1]
            keep = np.abs(w) > threshold
            # ties at the threshold: drop exactly k
            extra = int(keep.size - keep.sum()) - k
            if extra > 0:
                idx = np.flatnonzero((np.abs(w) == threshold).reshape(-1))[:extra]
                keep.reshape(-1)[idx] = True
            return keep
        if w.ndim < 2 or w.shape[1] % self.m:
            return None
        g = np.moveaxis(np.abs(w), 1, -1)  # (out, ..., in)
        shape = g.shape
        g = g.reshape(-1, self.m)
        order = np.argsort(-g, axis=1, kind="stable")
        keep = np.zeros_like(g, dtype=bool)
        np.put_along_axis(keep, order[:, : self.n], True, axis=1)
        return np.moveaxis(keep.reshape(shape), -1, 1)

    def holds(self, w: np.ndarray) -> bool:
        """Whether ``w`` satisfies the pattern (N:M: every group of M along the input axis has at most N nonzeros)."""
        if self.fraction is not None:
            return float((w == 0).mean()) >= self.fraction - 1.0 / max(w.size, 1)
        if w.ndim < 2 or w.shape[1] % self.m:
            return False
        g = np.moveaxis(w, 1, -1).reshape(-1, self.m)
        return bool(((g != 0).sum(axis=1) <= self.n).all())


def _layers(model):
    import torch

    return [(n, m) for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d, torch.nn.Linear))]


def apply(model, pattern: SparsityPattern) -> dict[str, Any]:
    """Mask the weights of every Conv/Linear the pattern fits (reparametrised, so fine-tuning keeps the zeros)."""
    import torch
    from torch.nn.utils import prune as tprune

    done, skipped = [], []
    for name, layer in _layers(model):
        keep = pattern.mask(layer.weight.detach().cpu().numpy())
        if keep is None:
            skipped.append(name)
            continue
        tprune.custom_from_mask(layer, "weight", torch.from_numpy(keep))
        done.append(name)
    if not done:
        raise InputError(f"--sparsity {pattern}: no Conv/Linear layer fits it (N:M needs input channels that are a multiple of M)")
    return {"pattern": str(pattern), "layers": done, "skipped": skipped}


def finish(model, pattern: SparsityPattern, layers: list[str]) -> dict[str, Any]:
    """Make the masks permanent and check every sparsified weight against the pattern."""
    from torch.nn.utils import prune as tprune

    modules = dict(model.named_modules())
    zeros = total = 0
    broken = []
    for name in layers:
        layer = modules[name]
        if tprune.is_pruned(layer):
            tprune.remove(layer, "weight")
        w = layer.weight.detach().cpu().numpy()
        zeros, total = zeros + int((w == 0).sum()), total + w.size
        if not pattern.holds(w):
            broken.append(name)
    if broken:
        raise InputError(f"--sparsity {pattern}: {len(broken)} layer(s) lost the pattern after fine-tuning ({', '.join(broken[:3])})")
    return {"zeros_in_sparsified_weights": zeros / max(total, 1), "all_layers_hold_pattern": True}


def storage(dense_state: dict, sparse_state: dict) -> dict[str, Any]:
    """What the zeros save when the weights are stored compressed (zlib, level 9; float32 as stored in the artifacts)."""
    def blob(state):
        return b"".join(np.ascontiguousarray(v.detach().cpu().numpy()).tobytes() for k, v in sorted(state.items())
                        if hasattr(v, "is_floating_point") and v.is_floating_point())

    dense, sparse = blob(dense_state), blob(sparse_state)
    d, s = len(zlib.compress(dense, 9)), len(zlib.compress(sparse, 9))
    return {"weights_bytes": len(dense), "dense_compressed_bytes": d, "sparse_compressed_bytes": s, "factor": d / max(s, 1),
            "method": "float weights concatenated, zlib level 9, dense model vs sparse model"}

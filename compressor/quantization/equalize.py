"""Float transforms that make a model easier to quantize without changing what it computes.

Activations are quantized per tensor (what the INT8 kernels of every runtime here consume), so a few
channels with a range 10-100x the rest take almost all 256 levels and the others collapse. Two cures,
applied to a copy of the PyTorch module before it is exported, so every INT8 target (ONNX Runtime,
OpenVINO, ExecuTorch, TensorRT) gets the same transformed model:

- **Cross-layer equalization** (Nagel et al. 2019): for two layers joined only by operations that commute
  with a positive per-channel scale (ReLU, max/average pooling, flatten of a 1x1 map, nothing), divide output
  channel i of the first by s_i and multiply input channel i of the second by s_i, with s_i = sqrt(r1_i / r2_i)
  (r1, r2: the channel's weight range in each), so both weight ranges meet at their geometric mean; the
  activation channel between them shrinks with its producer. BatchNorm is folded into its convolution
  first. Pairs joined by ReLU6 (its clip does not commute with a scale) or feeding anything else are skipped.
- **Scale migration** (SmoothQuant, Xiao et al. 2023) for Linear layers whose input has outlier channels that
  cannot be equalized through an activation (transformers): divide input channel j by s_j = max|X_j|^α /
  max|W_j|^(1-α) and multiply the weights' column j by s_j; α is chosen per group of layers reading the same
  tensor by the measured INT8 error of their outputs on calibration data. The division is absorbed into a
  LayerNorm's affine parameters when the LayerNorm feeds only those layers (pre-LN transformers); otherwise
  (post-LN BERT, whose LayerNorm also feeds the residual) it is one float multiply before the quantized input.

Each change is kept only where it is measured to help (the activation channel spread for equalization, the
quantized output error for migration), and the transformed model's outputs are checked against the original's.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compressor.core.layers import torch_layer_kind
from compressor.core.model import flatten_outputs
from compressor.io.export_torch import module_owner

ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: equalization is kept where it narrows the channel spread of the activation between the pair by this factor at least
#: (1.5x ~ 0.6 bit of a per-tensor INT8 scale given back): well-balanced layers are left as they are
MIN_GAIN = 1.5
#: scale migration is kept where it at least halves the layers' INT8 output error (a smaller gain is not worth a changed model)
MIN_ERROR_GAIN = 0.5
_PASS_THROUGH = ("relu", "max_pool", "avg_pool", "adaptive_avg_pool", "mean", "flatten", "view", "reshape", "dropout")


@dataclass
class TransformReport:
    """What was done to the float model, for the plan, the manifest and the report."""

    batchnorm_folded: list[str] = field(default_factory=list)
    equalized: list[dict[str, Any]] = field(default_factory=list)  # first, second, joined by, scale min/max, spread before/after
    skipped: list[dict[str, str]] = field(default_factory=list)  # pairs not equalized, and why
    migrated: list[dict[str, Any]] = field(default_factory=list)  # LayerNorm, its Linear layers, alpha, error before/after
    max_abs_output_change: float = 0.0  # the transformed model against the original, on the probe samples
    reference_max_abs: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"batchnorm_folded": self.batchnorm_folded, "equalized": self.equalized, "skipped": self.skipped,
                "migrated": self.migrated, "max_abs_output_change": self.max_abs_output_change,
                "reference_max_abs": self.reference_max_abs}

    @property
    def changed(self) -> bool:
        return bool(self.equalized or self.migrated)


def _is_layer(node) -> bool:
    return torch_layer_kind(node) in ("conv", "linear")  # the weight is the module's own (not transposed)


def _graph(model, example: tuple):
    import torch

    from compressor.io.export_torch import quiet

    with quiet():
        return torch.export.export(model, example, strict=False).graph


def _set_module(root, name: str, new) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def fold_batchnorms(model, example: tuple, report: TransformReport) -> None:
    """Fold every BatchNorm that directly follows a convolution into it (the module is replaced by Identity)."""
    import torch
    from torch import nn

    graph = _graph(model, example)
    modules = dict(model.named_modules())
    for node in graph.nodes:
        if not _is_layer(node) or "conv" not in str(node.target) or len(node.users) != 1:
            continue
        user = next(iter(node.users))
        if user.op != "call_function" or "batch_norm" not in str(user.target):
            continue
        conv, bn = modules.get(module_owner(node)), modules.get(module_owner(user))
        if not isinstance(conv, nn.modules.conv._ConvNd) or not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.running_var is None:
            continue
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(bn.running_var + bn.eps)
            shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
            conv.weight.mul_(scale.reshape(-1, *[1] * (conv.weight.dim() - 1)))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.bias = nn.Parameter(bias * scale + shift)
        _set_module(model, module_owner(user), nn.Identity())
        report.batchnorm_folded.append(module_owner(user))


def _pairs(model, graph):
    """(first, second, joined by) for layers joined only by scale-commuting operations, plus the skipped and why."""
    modules = dict(model.named_modules())
    pairs, skipped = [], []
    for node in graph.nodes:
        if not _is_layer(node):
            continue
        first = module_owner(node)
        chain, cur = [], node
        while len(cur.users) == 1:
            nxt = next(iter(cur.users))
            if _is_layer(nxt):
                second = module_owner(nxt)
                a, b = modules.get(first), modules.get(second)
                if a is None or b is None or first == second:
                    break
                why = _unsupported(a, b, chain)
                if why:
                    skipped.append({"first": first, "second": second, "reason": why})
                else:
                    pairs.append((first, second, chain))
                break
            name = str(nxt.target)
            if nxt.op != "call_function" or not any(k in name for k in _PASS_THROUGH):
                if "hardtanh" in name or "clamp" in name:
                    skipped.append({"first": first, "second": "(next layer)",
                                    "reason": "joined by ReLU6/clamp: its clip does not commute with a scale"})
                break
            chain.append(name.replace("aten.", "").replace(".default", ""))
            cur = nxt
    return pairs, skipped, modules


def _unsupported(a, b, chain: list[str]) -> str:
    from torch import nn

    conv = nn.modules.conv._ConvNd
    if not isinstance(a, (conv, nn.Linear)) or not isinstance(b, (conv, nn.Linear)):
        return "not a convolution or linear layer"
    out_a = a.out_channels if isinstance(a, conv) else a.out_features
    in_b = b.in_channels if isinstance(b, conv) else b.in_features
    if out_a != in_b:
        return f"{out_a} output channels feed {in_b} inputs (a reshape mixes channels)"
    if isinstance(a, conv) and a.groups not in (1, a.in_channels):
        return "grouped convolution"
    if isinstance(b, conv) and b.groups not in (1, b.in_channels):
        return "grouped convolution"
    return ""


def _weight_ranges(a, b) -> tuple[np.ndarray, np.ndarray]:
    from torch import nn

    wa = a.weight.detach().abs().reshape(a.weight.shape[0], -1).amax(1)
    wb = b.weight.detach().abs()
    if isinstance(b, nn.modules.conv._ConvNd) and b.groups > 1:  # depthwise: input channel i is output channel i
        wb = wb.reshape(wb.shape[0], -1).amax(1)
    else:
        wb = wb.transpose(0, 1).reshape(wb.shape[1], -1).amax(1)
    return wa.numpy().astype(np.float64), wb.numpy().astype(np.float64)


def _apply_scale(a, b, s) -> None:
    import torch
    from torch import nn

    s = torch.as_tensor(s, dtype=a.weight.dtype)
    with torch.no_grad():
        a.weight.div_(s.reshape(-1, *[1] * (a.weight.dim() - 1)))
        if a.bias is not None:
            a.bias.div_(s)
        if isinstance(b, nn.modules.conv._ConvNd) and b.groups > 1:
            b.weight.mul_(s.reshape(-1, *[1] * (b.weight.dim() - 1)))
        else:
            b.weight.mul_(s.reshape(1, -1, *[1] * (b.weight.dim() - 2)))


def _channel_maxima(model, layers: list, batches: list[tuple], flat: bool = False) -> list:
    """Per-channel |x| maxima (or, with ``flat``, the inputs themselves as rows) of each layer's input on ``batches``,
    from one pass over the data with a hook on every layer."""
    import torch

    seen: list[list] = [[] for _ in layers]

    def hook_for(i):
        last = isinstance(layers[i], torch.nn.Linear)  # a Linear's channels are its input's last axis, a conv's the second

        def hook(_m, args):
            x = args[0].detach().float()
            if flat:
                seen[i].append(x.reshape(-1, x.shape[-1]))
            elif last or x.dim() == 2:
                seen[i].append(x.abs().reshape(-1, x.shape[-1]).amax(0))
            else:
                seen[i].append(x.abs().transpose(0, 1).reshape(x.shape[1], -1).amax(1))
        return hook

    handles = [m.register_forward_pre_hook(hook_for(i)) for i, m in enumerate(layers)]
    try:
        with torch.no_grad():
            for batch in batches:
                model(*batch)
    finally:
        for h in handles:
            h.remove()
    return [torch.cat(s) if flat else torch.stack(s).amax(0).numpy().astype(np.float64) for s in seen]


def spread(ch: np.ndarray) -> float:
    """max / median of per-channel ranges: how much of a per-tensor INT8 scale a few channels take (1 = even)."""
    med = float(np.median(ch))
    return float(ch.max() / med) if med > 0 else float("inf")


def equalize(model, graph, batches: list[tuple], report: TransformReport) -> None:
    """Cross-layer equalization of every supported pair, kept where it narrows the activation between them.

    One pass over the probe data gives every pair's activation channel maxima; equalizing divides channel i of that
    activation by s_i exactly (the function is preserved), so its spread afterwards is computed, not measured again."""
    pairs, skipped, modules = _pairs(model, graph)
    report.skipped += skipped
    if not pairs:
        return
    maxima = dict(zip([p[1] for p in pairs], _channel_maxima(model, [modules[p[1]] for p in pairs], batches)))
    for first, second, chain in pairs:
        a, b = modules[first], modules[second]
        ra, rb = _weight_ranges(a, b)
        s = np.where((ra > 0) & (rb > 0), np.sqrt(np.maximum(ra, 1e-12) / np.maximum(rb, 1e-12)), 1.0)
        ch = maxima[second]
        before, after = spread(ch), spread(ch / s)
        if not after * MIN_GAIN < before:  # not measured to help: leave the pair as it is
            report.skipped.append({"first": first, "second": second,
                                   "reason": f"equalizing would not narrow the activation between (spread {before:.1f} → {after:.1f})"})
            continue
        _apply_scale(a, b, s)
        report.equalized.append({"first": first, "second": second, "joined_by": chain or ["nothing"], "scale_min": float(s.min()),
                                 "scale_max": float(s.max()), "spread_before": before, "spread_after": after})


def _quant_error(x, ws: list, s) -> float:
    """Squared error of the Linear outputs when x / s is quantized per tensor (uint8, min-max) and W * s per output
    channel (int8, symmetric), against the float outputs."""
    import torch

    xs = x / s
    lo, hi = float(min(xs.min(), 0)), float(max(xs.max(), 0))
    scale = (hi - lo) / 255 if hi > lo else 1.0
    zp = round(-lo / scale)
    xq = (torch.clamp(torch.round(xs / scale) + zp, 0, 255) - zp) * scale
    err = 0.0
    for w in ws:
        wsd = w * s
        wscale = wsd.abs().amax(1, keepdim=True).clamp(min=1e-12) / 127
        wq = torch.clamp(torch.round(wsd / wscale), -127, 127) * wscale
        err += float(((xq @ wq.T - x @ w.T) ** 2).mean())
    return err


@functools.lru_cache(maxsize=1)
def smoothed_linear_class():
    """A Linear that divides its input by a per-channel scale first (x * inv_scale) and holds weights multiplied by it:
    the same function, with the scale's outlier channels taken out of the quantized input. It keeps the Linear's module
    path and parameter names, so plans, exclusions and sensitivity name it as before."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SmoothedLinear(nn.Linear):
        def __init__(self, linear, scale):
            super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None,
                             device=linear.weight.device, dtype=linear.weight.dtype)
            with torch.no_grad():
                self.weight.copy_(linear.weight * scale.reshape(1, -1))
                if linear.bias is not None:
                    self.bias.copy_(linear.bias)
            self.register_buffer("smooth_inv_scale", (1.0 / scale).to(linear.weight.dtype))

        def forward(self, x):
            return F.linear(x * self.smooth_inv_scale, self.weight, self.bias)

    return SmoothedLinear


def migrate(model, graph, batches: list[tuple], report: TransformReport) -> None:
    """SmoothQuant-style scale migration for Linear layers (grouped by the tensor they read), alpha chosen per group by
    the measured INT8 error of their outputs. Absorbed into a LayerNorm that feeds only those layers; otherwise the
    division happens in the layer itself (one float multiply before the quantized input)."""
    import torch
    from torch import nn

    modules = dict(model.named_modules())
    groups: dict = {}
    for node in graph.nodes:
        if node.op == "call_function" and "linear" in str(node.target) and isinstance(modules.get(module_owner(node)), nn.Linear):
            groups.setdefault(node.args[0], []).append(node)
    members = [list(dict.fromkeys(module_owner(u) for u in users)) for users in groups.values()]
    inputs = _channel_maxima(model, [modules[names[0]] for names in members], batches, flat=True) if members else []
    for (source, users), names, x in zip(groups.items(), members, inputs):
        linears = [modules[n] for n in names]
        ws = [m.weight.detach().float() for m in linears]
        xmax = x.abs().amax(0).clamp(min=1e-5)
        wmax = torch.stack([w.abs().amax(0) for w in ws]).amax(0).clamp(min=1e-5)
        base = _quant_error(x, ws, torch.ones_like(xmax))
        best = (base, None, None)
        for alpha in ALPHAS:
            s = (xmax ** alpha / wmax ** (1 - alpha)).clamp(min=1e-5)
            e = _quant_error(x, ws, s)
            if e < best[0]:
                best = (e, alpha, s)
        if best[1] is None or best[0] > MIN_ERROR_GAIN * base:  # not measured to help enough to change the model
            continue
        s = best[2]
        norm = modules.get(module_owner(source)) if getattr(source, "op", None) == "call_function" and "layer_norm" in str(source.target) else None
        absorbed = isinstance(norm, nn.LayerNorm) and norm.elementwise_affine and set(source.users) <= set(users)
        with torch.no_grad():
            if absorbed:
                norm.weight.div_(s)
                norm.bias.div_(s)
                for m in linears:
                    m.weight.mul_(s.reshape(1, -1))
            else:
                cls = smoothed_linear_class()
                for name, m in zip(names, linears):
                    _set_module(model, name, cls(m, s))
        report.migrated.append({"layers": names, "into": module_owner(source) if absorbed else "a multiply before the layer",
                                "alpha": best[1], "input_spread": float(xmax.max() / xmax.median()),
                                "error_before": base, "error_after": best[0]})


def transform(module, example: tuple, batches: list[tuple], equalization: bool, migration: bool) -> tuple[Any, TransformReport]:
    """A transformed copy of ``module`` and what was done; the original is returned untouched when nothing helped."""
    import torch

    report = TransformReport()
    if not (equalization or migration) or not hasattr(module, "named_modules"):
        return module, report
    model = copy.deepcopy(module).eval()
    if equalization:
        fold_batchnorms(model, example, report)
    graph = _graph(model, example)  # once, after folding: equalizing and migrating change weights, not the graph
    if equalization:
        equalize(model, graph, batches, report)
    if migration:
        migrate(model, graph, batches, report)
    if not report.changed:
        return module, report
    with torch.no_grad():
        ref = [flatten_outputs(module(*b))[0] for b in batches]
        got = [flatten_outputs(model(*b))[0] for b in batches]
    report.max_abs_output_change = max(float((r - g).abs().max()) for r, g in zip(ref, got))
    report.reference_max_abs = max(float(r.abs().max()) for r in ref)
    return model, report

"""Structured pruning on Torch-Pruning's dependency graph, with the targets users think in.

- ``ratio``: remove this fraction of prunable channels (per layer, or globally by importance);
- ``macs``: remove this fraction of the model's MACs, reached by iterative small steps, each step
  re-measuring MACs, stopping at the first step that reaches the target.

Channel counts are rounded to a multiple that suits the target's vector width (``round_to``). The
first layer and the classifier stay whole by default (they set the input and output size and cost
little), and anything matching ``exclude`` (name/glob, ``re:``, ``type:``) too. Attention modules in a layout that
``attention.LAYOUTS`` knows (separate or fused q/k/v projections) lose whole heads (``heads``), and their head count
attribute is updated; MLP widths are pruned as channels.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from compressor.core.errors import InputError, first_line
from compressor.core.selection import Exclusions
from compressor.pruning import attention
from compressor.pruning.settings import PruningSettings


def count(model, example: tuple) -> tuple[int, int]:
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)


def layer_widths(model) -> dict[str, dict[str, int]]:
    from torch import nn

    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            out[name] = {"in": m.in_channels, "out": m.out_channels}
        elif isinstance(m, nn.Linear):
            out[name] = {"in": m.in_features, "out": m.out_features}
    for a in attention.find(model)[0]:
        out.setdefault(a.name, {})["heads"] = getattr(a.module, a.attr)
    return out


def _importance(name: str):
    import torch_pruning as tp

    return {"l1": lambda: tp.importance.MagnitudeImportance(p=1), "l2": lambda: tp.importance.MagnitudeImportance(p=2),
            "taylor": lambda: tp.importance.TaylorImportance(), "bn_scale": lambda: tp.importance.BNScaleImportance()}[name]()


def _weighted(m) -> bool:
    from torch import nn

    return isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))


def _ignored(model, settings: PruningSettings) -> tuple[list, list[str], list[str]]:
    from torch import nn

    excl = Exclusions(settings.exclude)
    weighted = [(n, m) for n, m in model.named_modules() if _weighted(m)]
    if not weighted:
        raise InputError("the model has no Conv or Linear layers to prune")
    ignored, names = [], []
    embeddings = any(isinstance(m, nn.Embedding) for m in model.modules())
    if settings.keep_first_and_last:
        # a network that starts with an embedding keeps that whole instead of its first linear (an attention projection)
        for n, m in ([weighted[-1]] if embeddings else [weighted[0], weighted[-1]]):
            ignored.append(m)
            names.append(n)
    for n, m in weighted:
        kind = type(m).__name__
        if excl.match(n, "Conv" if "Conv" in kind else "Gemm", kind) and m not in ignored:
            ignored.append(m)
            names.append(n)
    # an embedding sets the width of everything after it (residual streams): keep it whole
    for n, m in model.named_modules():
        if isinstance(m, nn.Embedding):
            ignored.append(m)
            names.append(n)
    return ignored, names, excl.unmatched()


def _attention(model, settings: PruningSettings, warn: Callable[[str], None]) -> tuple[dict, list]:
    """{head projection: heads} for Torch-Pruning, and the attention modules whose head count follows the pruning."""
    found, skipped = attention.find(model)
    for why in skipped if settings.heads else ():
        warn(f"--prune-heads leaves {why}")
    if settings.heads and not found:
        raise InputError(f"--prune-heads found no attention module to prune: it knows modules with a head count ({', '.join(attention.HEAD_ATTRS)}) "
                         f"and projections laid out as {attention.known_layouts()}" + (f"; left whole: {'; '.join(skipped)}" if skipped else "")
                         + ": drop --prune-heads, or prune channels with --prune-ratio / --prune-macs")
    return {p: getattr(a.module, a.attr) for a in found for p in a.projections}, found


def prune(module, example: tuple, settings: PruningSettings, round_to: int, grad_batches: Callable[[Any], None] | None = None,
          hook: Callable[[Any, int], None] | None = None, warn: Callable[[str], None] = lambda m: None) -> tuple[Any, dict]:
    """A pruned deep copy of ``module`` and a report (MACs/params before and after, per-layer widths, settings)."""
    import torch
    import torch_pruning as tp

    model = copy.deepcopy(module).eval()
    base_macs, base_params = count(model, example)
    before = layer_widths(model)
    ignored, ignored_names, unmatched = _ignored(model, settings)
    for p in unmatched:
        warn(f"pruning exclusion '{p}' matches no Conv/Linear layer")
    heads, fix = _attention(model, settings, warn)
    steps = 1 if settings.macs is None else settings.max_steps
    ratio = settings.ratio if settings.ratio is not None else (min(0.95, settings.macs * 1.6) if settings.macs else 0.0)
    if ratio == 0.0 and settings.heads:  # heads alone: Torch-Pruning skips a group whose ratio is 0, so every other layer is kept
        ignored = ignored + [m for m in model.modules() if _weighted(m) and m not in heads and m not in ignored]
        ratio = settings.heads
    try:
        pruner = tp.pruner.MetaPruner(
            model, example, importance=_importance(settings.importance), global_pruning=settings.global_pruning,
            pruning_ratio=ratio, iterative_steps=steps, ignored_layers=ignored, round_to=round_to,
            num_heads=heads, prune_num_heads=bool(heads) and (settings.heads or 0.0) > 0, prune_head_dims=False,
            head_pruning_ratio=(settings.heads or 0.0),
        )
    except Exception as e:  # noqa: BLE001 - Torch-Pruning's tracer raises many types
        first = first_line(e)
        raise InputError(f"Torch-Pruning could not trace the model ({first}): exclude the module it names with --prune-exclude, "
                         "or prune a traceable part")
    reached_step, macs = 0, base_macs
    for step in range(steps):
        if settings.importance == "taylor":
            if grad_batches is None:
                raise InputError("--prune-importance taylor needs data with a loss: pass --finetune DATA (labelled)")
            model.zero_grad()
            grad_batches(model)
        pruner.step()
        for a in fix:
            a.sync()
        macs, _ = count(model, example)
        reached_step = step + 1
        if hook is not None:
            hook(model, reached_step)
        if settings.macs is not None and macs <= base_macs * (1.0 - settings.macs):
            break
    macs, params = count(model, example)
    if settings.macs is not None and macs > base_macs * (1.0 - settings.macs) + 1:
        got = 1.0 - macs / base_macs
        raise InputError(f"--prune-macs {settings.macs:g} is not reachable without removing whole layers: the best reached "
                         f"is {got:.3f} of the MACs removed; ask for at most that, or let fewer layers stay whole (--prune-exclude)")
    with torch.no_grad():
        model(*example)  # the pruned model still runs
    after = layer_widths(model)
    changed = {n: {"before": before[n], "after": after[n]} for n in after if after[n] != before.get(n)}
    return model, {
        "target": {"ratio": settings.ratio, "macs": settings.macs, "heads": (settings.heads or 0.0) or None},
        "importance": settings.importance, "global": settings.global_pruning, "round_to": round_to, "steps": reached_step,
        "kept_whole": ignored_names, "macs_before": base_macs, "macs_after": macs, "params_before": base_params, "params_after": params,
        "macs_removed": 1.0 - macs / base_macs, "params_removed": 1.0 - params / base_params, "layers_changed": changed,
        "tool": f"torch-pruning {tp.__version__ if hasattr(tp, '__version__') else ''}".strip(),
    }

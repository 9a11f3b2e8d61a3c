"""Pruned checkpoints: a ``.safetensors`` state_dict whose metadata records how the pruned model differs
from its architecture (layer widths, head counts), so ``--arch REF`` + the file rebuilds it exactly.

Only tensors and JSON: loading never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PRUNED_KEY = "compressor.pruned"
_SCALARS = (int, float, bool)


def _attrs(module) -> dict[str, Any]:
    out = {}
    for name, value in vars(module).items():
        if name.startswith("_") or name == "training":
            continue
        if isinstance(value, _SCALARS) or (isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value)):
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def record(model, fresh) -> dict[str, dict[str, Any]]:
    """Per module, the scalar attributes whose values differ between the pruned ``model`` and a ``fresh`` one."""
    fresh_modules = dict(fresh.named_modules())
    out = {}
    for name, m in model.named_modules():
        ref = fresh_modules.get(name)
        if ref is None:
            continue
        mine, theirs = _attrs(m), _attrs(ref)
        diff = {k: v for k, v in mine.items() if theirs.get(k) != v}
        if diff:
            out[name] = diff
    return out


def save_pruned(model, path: Path, arch: str, arch_kwargs: dict, summary: dict) -> Path:
    from safetensors.torch import save_file

    from compressor.io.arch import build_architecture

    fresh = build_architecture(arch, arch_kwargs)
    meta = {"arch": arch, "arch_kwargs": arch_kwargs, "modules": record(model, fresh), "pruning": summary}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={PRUNED_KEY: json.dumps(meta)})
    return path


def read_record(path: Path) -> dict | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - not a safetensors file we can read: the loader reports it
        return None
    return json.loads(meta[PRUNED_KEY]) if PRUNED_KEY in meta else None


def apply_record(model, rec: dict, state: dict) -> None:
    """Reshape a freshly built architecture into the pruned one: attributes first, then parameter shapes."""
    import torch
    from torch import nn

    for name, attrs in rec.get("modules", {}).items():
        m = model.get_submodule(name)
        for attr, value in attrs.items():
            setattr(m, attr, tuple(value) if isinstance(value, list) else value)
    for key, tensor in state.items():
        owner, _, leaf = key.rpartition(".")
        m = model.get_submodule(owner) if owner else model
        current = getattr(m, leaf, None)
        if not isinstance(current, torch.Tensor) or tuple(current.shape) == tuple(tensor.shape):
            continue
        fresh = torch.empty(tuple(tensor.shape), dtype=tensor.dtype)
        if isinstance(current, nn.Parameter):
            setattr(m, leaf, nn.Parameter(fresh, requires_grad=current.requires_grad))
        else:
            m.register_buffer(leaf, fresh, persistent=leaf not in getattr(m, "_non_persistent_buffers_set", set()))

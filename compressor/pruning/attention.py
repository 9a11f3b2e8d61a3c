"""Attention layouts head pruning understands: which Linear layers carry a module's heads, and how its head count is
kept true after Torch-Pruning removes whole heads.

A layout is a small adapter; the table ``LAYOUTS`` is the one place a new one is added:
- separate projections: ``query``/``key``/``value`` (BERT-style), ``q_proj``/``k_proj``/``v_proj`` (Llama, OPT, BART, ViT-HF),
  ``q_lin``/``k_lin``/``v_lin`` (DistilBERT), ``q``/``k``/``v`` (T5);
- fused projections: one Linear ``qkv`` (timm ViT) or ``in_proj`` holding the three, head-major within each third.
A module whose key/value heads are grouped (GQA: ``num_key_value_heads`` below ``num_heads``) is left whole and named: the
groups would no longer line up after pruning query heads alone.
"""

from __future__ import annotations

from dataclasses import dataclass

HEAD_ATTRS = ("heads", "num_heads", "num_attention_heads", "n_heads", "n_head")
KV_HEAD_ATTRS = ("num_key_value_heads", "num_kv_heads", "n_kv_heads")
#: attributes that hold the concatenated width of all heads (kept in step with the head count)
WIDTH_ATTRS = ("all_head_size", "inner_dim")


@dataclass(frozen=True)
class Layout:
    name: str
    projections: tuple[str, ...]  # the Linear layers whose outputs are the heads (one for fused q, k, v)
    per_head: int = 1  # head widths in one projection's output per head (3 for fused q, k, v)


LAYOUTS = (
    Layout("query/key/value", ("query", "key", "value")),
    Layout("q_proj/k_proj/v_proj", ("q_proj", "k_proj", "v_proj")),
    Layout("q_lin/k_lin/v_lin", ("q_lin", "k_lin", "v_lin")),
    Layout("q/k/v", ("q", "k", "v")),
    Layout("fused qkv", ("qkv",), per_head=3),
    Layout("fused in_proj", ("in_proj",), per_head=3),
)


@dataclass
class AttentionModule:
    name: str
    module: object
    layout: Layout
    attr: str  # the head-count attribute
    head_dim: int

    @property
    def projections(self) -> list:
        return [getattr(self.module, p) for p in self.layout.projections]

    def sync(self) -> None:
        """Set the head count (and the all-heads width) from the pruned projection's width."""
        width = self.projections[0].out_features // self.layout.per_head
        setattr(self.module, self.attr, width // self.head_dim)
        for a in WIDTH_ATTRS:
            if isinstance(getattr(self.module, a, None), int):
                setattr(self.module, a, width)


def head_count(module) -> tuple[str, int] | None:
    attr = next((a for a in HEAD_ATTRS if isinstance(getattr(module, a, None), int)), None)
    return (attr, getattr(module, attr)) if attr else None


def find(model) -> tuple[list[AttentionModule], list[str]]:
    """The attention modules of ``model`` in a known layout, and why others that have a head count were left whole."""
    from torch import nn

    found, skipped = [], []
    for name, m in model.named_modules():
        hc = head_count(m)
        if hc is None:
            continue
        attr, n = hc
        layout = next((lay for lay in LAYOUTS if all(isinstance(getattr(m, p, None), nn.Linear) for p in lay.projections)), None)
        if layout is None:
            continue
        kv = next((getattr(m, a) for a in KV_HEAD_ATTRS if isinstance(getattr(m, a, None), int)), n)
        if kv != n:
            skipped.append(f"{name or '(model)'} groups {n} query heads over {kv} key/value heads (GQA)")
            continue
        width = getattr(m, layout.projections[0]).out_features // layout.per_head
        if n <= 0 or width % n:
            skipped.append(f"{name or '(model)'}: {width} features do not split into {n} heads")
            continue
        found.append(AttentionModule(name, m, layout, attr, width // n))
    return found, skipped


def known_layouts() -> str:
    return ", ".join(lay.name for lay in LAYOUTS)

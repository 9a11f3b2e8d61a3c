"""Perplexity and next-token agreement of a causal LM on held-out text, by sliding windows.

Windows of ``window`` tokens advance by ``stride``; each window scores only the tokens the previous one did not (the
first scores all but its first), so every token after the first is scored exactly once with up to ``window − stride``
tokens of context. Top-1 agreement compares each scored position's argmax with a reference run's (FP32).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class LmFidelity:
    perplexity: float
    nll: float  # mean negative log-likelihood per scored token (nats)
    tokens: int  # tokens scored
    window: int
    stride: int
    seconds: float
    agreement: float | None = None  # next-token top-1 agreement with the reference
    top1: torch.Tensor | None = field(default=None, repr=False)  # the argmax at every scored position

    def to_dict(self) -> dict:
        d = {"perplexity": self.perplexity, "nll": self.nll, "tokens": self.tokens, "window": self.window,
             "stride": self.stride, "seconds": round(self.seconds, 1)}
        if self.agreement is not None:
            d["top1_agreement"] = self.agreement
        return d


def spans(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored position) of each window over ``n_tokens``."""
    out, prev_end, begin = [], 0, 0
    while True:
        end = min(begin + window, n_tokens)
        first = max(prev_end, begin + 1)
        if end > first:
            out.append((begin, end, first))
        prev_end = end
        if end >= n_tokens:
            return out
        begin += stride


@torch.no_grad()
def evaluate(logits_of: Callable[[torch.Tensor], torch.Tensor], stream: torch.Tensor, window: int, stride: int,
             reference: LmFidelity | None = None, on_window: Callable[[int], None] | None = None) -> LmFidelity:
    """``logits_of(ids 1×T) -> logits 1×T×V`` scored on ``stream``; agreement against ``reference.top1`` when given."""
    import time

    t0 = time.perf_counter()
    nll, count, tops = 0.0, 0, []
    for begin, end, first in spans(stream.numel(), window, stride):
        ids = stream[begin:end].unsqueeze(0)
        logits = logits_of(ids)[0, first - begin - 1: end - begin - 1].float()
        target = stream[first:end]
        nll += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
        count += target.numel()
        tops.append(logits.argmax(-1))
        if on_window:
            on_window(1)
    top1 = torch.cat(tops)
    agree = float((top1 == reference.top1).float().mean()) if reference is not None and reference.top1 is not None else None
    return LmFidelity(math.exp(nll / count), nll / count, count, window, stride, time.perf_counter() - t0, agree, top1)


def torch_logits(model) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(ids):
        return model(input_ids=ids, use_cache=False).logits
    return fn

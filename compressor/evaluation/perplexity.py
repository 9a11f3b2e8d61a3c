"""Perplexity and next-token agreement of a causal LM on held-out text, by sliding windows.

Windows of ``window`` tokens advance by ``stride``; each window scores only the tokens the previous one did not, and never
its own first token (it has no context there). With ``stride < window`` every token after the first is scored exactly once,
with at least ``window − stride`` tokens of context; with ``stride == window`` (the default, and the usual report) the
windows are disjoint and each scores its ``window − 1`` last tokens (16,384 tokens in windows of 2,048: 16,376 scored).
Top-1 agreement compares each scored position's argmax with a reference run's (FP32).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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


CACHE = Path.home() / ".cache" / "compressor" / "lm_reference"


def cached_reference(source_files: dict[str, str], stream: torch.Tensor, window: int, stride: int,
                     compute: Callable[[], LmFidelity], cache: Path = CACHE) -> tuple[LmFidelity, bool]:
    """The FP32 scoring of ``stream`` (perplexity and every top-1), computed once per model files, text, window and stride
    and kept in ``cache`` (it takes minutes on a real LM); (fidelity, whether it came from the cache)."""
    key = hashlib.sha256(json.dumps([sorted(source_files.items()), hashlib.sha256(stream.numpy().tobytes()).hexdigest(),
                                     window, stride, torch.__version__]).encode()).hexdigest()[:24]
    path = cache / f"{key}.json"
    try:
        d = json.loads(path.read_text())
        return LmFidelity(d["perplexity"], d["nll"], d["tokens"], window, stride, d["seconds"], None,
                          torch.tensor(d["top1"], dtype=torch.long)), True
    except (OSError, ValueError, KeyError):
        pass
    fid = compute()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{id(fid)}")
        tmp.write_text(json.dumps({**fid.to_dict(), "top1": fid.top1.tolist()}))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home: score again next time
    return fid, False

"""What a runtime that generates text offers the SDK: logits for a token sequence (perplexity, agreement) and greedy
generation with its timings (time to first token, decode tokens/s). Backends for decoder LMs implement
:class:`LmRunner`; validation, verify and the generation benchmark are written once against it.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Generation:
    tokens: list[int]  # the new tokens only
    ttft_s: float  # prompt in → first new token out (prefill and one sampling step)
    decode_s: float  # the rest: len(tokens) − 1 steps, each one token with the KV cache

    @property
    def decode_tokens_per_s(self) -> float | None:
        steps = len(self.tokens) - 1
        return steps / self.decode_s if steps > 0 and self.decode_s > 0 else None


class LmRunner(abc.ABC):
    """A loaded LM artifact."""

    @abc.abstractmethod
    def logits(self, ids: np.ndarray) -> np.ndarray:
        """Logits (1 × T × vocabulary, float32) of every position of ``ids`` (1 × T), from an empty cache."""

    @abc.abstractmethod
    def generate(self, ids: list[int], max_new_tokens: int, exact: bool = False) -> Generation:
        """Greedy generation after the prompt ``ids``; ``exact``: exactly ``max_new_tokens`` (end-of-sequence ignored)."""

    def describe(self) -> dict[str, Any]:
        return {}


def timed_greedy(step_first, step_next, eos: int | None, max_new_tokens: int, exact: bool) -> Generation:
    """The shared timing loop: ``step_first()`` runs the prompt and returns the first token; ``step_next()`` one more."""
    t0 = time.perf_counter()
    tok = step_first()
    t1 = time.perf_counter()
    out = [tok]
    while len(out) < max_new_tokens and (exact or tok != eos):
        tok = step_next()
        out.append(tok)
    t2 = time.perf_counter()
    if not exact and eos is not None and out and out[-1] == eos:
        out = out[:-1] if len(out) > 1 else out
    return Generation(out, t1 - t0, t2 - t1)

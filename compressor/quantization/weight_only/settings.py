"""What weight-only quantization of a decoder LM does (recipe section ``lm``): the grid, the passes, the mixed-precision
ratio, and the text windows it calibrates and is evaluated on. The bit width comes from the target (``…-int4``,
``…-int8-wo``)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from compressor.core.options import Settings, option
from compressor.quantization.weight_only.grid import Grid

GROUP_SIZES = (-1, 32, 64, 128, 256)
LM = "Language models (--task text-generation)"
DEFAULT_PROMPTS = (
    "The capital of France is",
    "Photosynthesis is the process by which",
    "def fibonacci(n):",
    "Explain in one sentence why the sky is blue.",
)


class WeightOnlySettings(Settings):
    bits: int = option(4, "Weight bits of the decoder blocks' linear layers (set by the target: int4 or int8-wo).")
    group_size: int = option(64, "Input columns per weight scale for INT4/INT8 weight-only (-1: one scale per output "
                                 "channel; 32, 64, 128 or 256).", flag="--group-size", panel=LM)
    symmetric: bool = option(False, "Symmetric weight grid (zero point fixed at the middle code); default asymmetric.",
                             flag="--symmetric", panel=LM)
    awq: bool = option(True, "AWQ: activation-aware input-channel scales searched per layer group.", flag="--no-awq",
                       negate=True, panel=LM)
    scale_estimation: bool = option(True, "Fit each group's scale and zero point to the activation-weighted error.",
                                    flag="--no-scale-estimation", negate=True, panel=LM)
    gptq: bool = option(True, "GPTQ error feedback when rounding (without it: round to nearest).", flag="--no-gptq",
                        negate=True, panel=LM)
    ratio: float = option(1.0, "Share of the block weights at the target's low bit width; the most sensitive rest stays "
                               "INT8 (e.g. 0.8).", flag="--ratio", panel=LM, ge=0.0, le=1.0)
    embedding_bits: int = option(8, "Bits of the embeddings and lm_head: 8 (default, as NNCF) or 4 (as the onnxruntime-genai "
                                    "builder's -p int4: smaller and faster to decode, less accurate).", flag="--embedding-bits",
                                 panel=LM)
    calib_precision: Literal["auto", "float32", "bfloat16"] = option(
        "auto", "Precision of the calibration forwards and statistics (AWQ's loss, GPTQ's Hessian): auto picks bfloat16 "
                "where a timed bfloat16 matmul runs at least 2× float32's speed on this CPU (AMX, AVX512-BF16), else "
                "float32. Weights are fitted and rounded in float32 either way.", flag="--calib-precision", panel=LM)
    seq_len: int = option(512, "Tokens per calibration window.", flag="--seq-len", panel=LM, ge=16)
    eval_window: int = option(2048, "Tokens per perplexity window.", flag="--eval-window", panel=LM, ge=16)
    eval_stride: int | None = option(None, "Tokens each perplexity window advances (default: the window; smaller scores "
                                           "with more context).", flag="--eval-stride", panel=LM, ge=1)
    eval_tokens: int = option(16384, "Held-out tokens scored for perplexity and agreement.", flag="--eval-tokens", panel=LM,
                              ge=32)
    prompts: list[str] = option(help="Prompts whose greedy continuations are the bundle's reference I/O.",
                                default_factory=lambda: list(DEFAULT_PROMPTS))
    new_tokens: int = option(24, "New tokens generated per reference prompt.", ge=1)

    @field_validator("bits", "embedding_bits")
    @classmethod
    def _bits(cls, v: int) -> int:
        if v not in (4, 8):
            raise ValueError(f"{v} bits: weight-only quantization is 4 or 8 bits")
        return v

    @field_validator("group_size")
    @classmethod
    def _group(cls, v: int) -> int:
        if v not in GROUP_SIZES:
            raise ValueError(f"group size {v} is not one of {', '.join(map(str, GROUP_SIZES))}")
        return v

    def grid(self) -> Grid:
        return Grid(self.bits, self.group_size, self.symmetric)

    def methods(self) -> list[str]:
        return [n for n in ("awq", "scale_estimation", "gptq") if getattr(self, n)] or ["rtn"]

    def label(self) -> str:
        mix = f", {self.ratio:.0%} at int{self.bits} / rest int8" if self.ratio < 1 and self.bits != 8 else ""
        return self.grid().label() + mix

    @property
    def stride(self) -> int:
        return self.eval_stride or self.eval_window

"""AWQ (Lin et al., 2023): scale the input channels of a group of linear layers that read the same tensor by
``s = E|x|^α / E|w|^(1−α)`` (α searched on a grid per group), divide the producer of that tensor by ``s``, so the float
function is unchanged and the salient channels get finer steps on the weight grid.

The producer is where the division is folded: an RMSNorm's weight (q/k/v after ``input_layernorm``, gate/up after
``post_attention_layernorm``) or the output rows of a linear (down after up; o after v when their shapes match). The loss
of each candidate is the mean squared error of the group's outputs with its weights quantized (plain range fit) over every
calibration token, computed from the input's second moment ``H = E[x xᵀ]`` that GPTQ uses too:
``E‖x ΔWᵀ‖² = Σ_o Δw_o H Δw_oᵀ``, so a candidate costs out × in² instead of tokens × in × out (4–7× less on SmolLM2 with
4,096 tokens, and exact on all of them rather than a subsample).
"""

from __future__ import annotations

import torch

from compressor.quantization.pipeline import WeightPass
from compressor.quantization.weight_only.grid import Grid, fake_quantize

ALPHAS = tuple(i / 20 for i in range(20))


def output_error(delta: torch.Tensor, h: torch.Tensor) -> float:
    """Mean squared output error E[(x·Δw_o)²] over outputs o for inputs with second moment ``h``."""
    return float(((delta @ h) * delta).sum() / delta.shape[0])


def search(h: torch.Tensor, x_abs: torch.Tensor, weights: list[torch.Tensor], grid: Grid) -> tuple[torch.Tensor, float, float, float]:
    """(scales per input channel, best α, loss at α=0 i.e. no scaling, best loss) for linears ``weights`` reading inputs
    with second moment ``h`` (in × in) and mean magnitude ``x_abs`` per channel."""
    h = h.float()
    x_mean = x_abs.float().clamp_min(1e-8)
    best = (torch.ones(h.shape[0]), 0.0, float("inf"))
    plain = float("nan")
    for a in ALPHAS:
        s = x_mean.pow(a)
        s = (s / (s.max() * s.min()).sqrt()).clamp_min(1e-4)
        loss = sum(output_error(fake_quantize(w.float() * s, grid) / s - w.float(), h) for w in weights)
        if a == 0.0:
            plain = loss
        if loss < best[2]:
            best = (s, a, loss)
    return best[0], best[1], plain, best[2]


@torch.no_grad()
def fold(scales: torch.Tensor, consumers: list[torch.nn.Linear], producer: torch.nn.Module) -> None:
    """Multiply the consumers' input channels by ``scales`` and divide the producer's output by them."""
    for lin in consumers:
        lin.weight.mul_(scales.to(lin.weight.dtype))
    if isinstance(producer, torch.nn.Linear):
        producer.weight.div_(scales.to(producer.weight.dtype).unsqueeze(1))
        if producer.bias is not None:
            producer.bias.div_(scales.to(producer.bias.dtype))
    else:  # a norm's elementwise weight
        producer.weight.div_(scales.to(producer.weight.dtype))


class Awq(WeightPass):
    name, order, switch = "awq", 10, "awq"
    description = ("AWQ: per group of linear layers reading one tensor, input-channel scales E|x|^α searched on calibration "
                   "activations and folded into the producer (RMSNorm or linear); decoder LMs")
    on_by = "default for --task text-generation (--no-awq)"

    def __init__(self):
        self.groups = self.scaled = 0
        self.loss_before = self.loss_after = 0.0

    def transform(self, block, stats, bits_of, settings) -> dict[str, float]:
        alphas = {}
        for grp in block.awq_groups:
            lins = [block.linears[c] for c in grp.consumers]
            grid = Grid(min(bits_of(c) for c in grp.consumers), settings.group_size, settings.symmetric)
            first = grp.consumers[0]
            s, alpha, before, after = search(stats.hessian(first), stats.abs_mean(first), [lin.weight.data for lin in lins], grid)
            self.groups += 1
            self.loss_before += before
            self.loss_after += after
            if alpha > 0:
                fold(s, lins, grp.producer)
                self.scaled += 1
                stats.rescale(grp.consumers, (1.0 / s).float())
            alphas.update({c: alpha for c in grp.consumers})
        return alphas

    def record(self) -> dict:
        return {"groups": self.groups, "scaled": self.scaled, "loss_before": self.loss_before, "loss_after": self.loss_after,
                "alphas": list(ALPHAS), "loss": "E‖x ΔWᵀ‖² from H = E[x xᵀ] over every calibration token"}

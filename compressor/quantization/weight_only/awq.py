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
COARSE = 4  # every 4th α first (0, 0.2, … 0.8), then steps of 0.1 and 0.05 around the best


def output_error(delta: torch.Tensor, h: torch.Tensor) -> float:
    """Mean squared output error E[(x·Δw_o)²] over outputs o for inputs with second moment ``h``; the product runs in
    ``h``'s dtype (bfloat16 where the stage chose it), the sum in float32."""
    return float(((delta.to(h.dtype) @ h).float() * delta).sum() / delta.shape[0])


def search(h: torch.Tensor, x_abs: torch.Tensor, weights: list[torch.Tensor], grid: Grid,
           dtype: torch.dtype = torch.float32, exhaustive: bool = False) -> tuple[torch.Tensor, float, float, float]:
    """(scales per input channel, best α, loss at α=0 i.e. no scaling, best loss) for linears ``weights`` reading inputs
    with second moment ``h`` (in × in) and mean magnitude ``x_abs`` per channel; the loss's products in ``dtype``.

    The α grid is :data:`ALPHAS`; unless ``exhaustive``, it is searched coarse to fine (every :data:`COARSE`-th α, then
    the halved steps either side of the best so far): 9 losses instead of 20, on the same grid."""
    h = h.to(dtype)
    x_mean = x_abs.float().clamp_min(1e-8)
    weights = [w.float() for w in weights]
    losses: dict[int, tuple[float, torch.Tensor]] = {}

    def loss_at(i: int) -> float:
        if i not in losses:
            s = x_mean.pow(ALPHAS[i])
            s = (s / (s.max() * s.min()).sqrt()).clamp_min(1e-4)
            losses[i] = (sum(output_error(fake_quantize(w * s, grid).div_(s).sub_(w), h) for w in weights), s)
        return losses[i][0]

    if exhaustive:
        for i in range(len(ALPHAS)):
            loss_at(i)
    else:
        step = COARSE
        best = min(range(0, len(ALPHAS), step), key=loss_at)
        while step > 1:
            step //= 2
            best = min((i for i in (best - step, best, best + step) if 0 <= i < len(ALPHAS)), key=loss_at)
    best = min(losses, key=lambda i: losses[i][0])
    s = losses[best][1] if best else torch.ones(h.shape[0])
    return s, ALPHAS[best], loss_at(0), losses[best][0]


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
            s, alpha, before, after = search(stats.hessian(first), stats.abs_mean(first), [lin.weight.data for lin in lins], grid,
                                           stats.dtype)
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
                "alphas": list(ALPHAS),
                "alpha_search": f"coarse to fine from every {COARSE}th α", "loss": "E‖x ΔWᵀ‖² from H = E[x xᵀ] over every calibration token"}

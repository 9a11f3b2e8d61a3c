"""Weight-only quantization of a decoder LM, one transformer block at a time (the GPTQ/AWQ schedule).

For each block, on the calibration text as the already-quantized blocks before it see it:
1. hooks gather every linear layer's input statistics (``H = E[x xᵀ]`` and ``E|x|`` per channel);
2. the enabled passes run in order: AWQ scales the input channels of the layers that read one tensor (folded into the
   producer), scale estimation fits each group's grid against the activation-weighted error, GPTQ rounds with error
   feedback (without it: round to nearest);
3. the block's weights are replaced by their dequantized values and the block is run again to feed the next one.

Embeddings and ``lm_head`` (tied or not) are quantized to ``embedding_bits`` by round to nearest with scale estimation.
Peak memory is the float model plus one block's activations for the calibration tokens.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import torch

from compressor.quantization.pipeline import WeightPass, weight_passes
from compressor.quantization.weight_only.grid import Grid, codes, dequantize, fit
from compressor.quantization.weight_only.plan import QuantizedWeight, WeightLayer, WeightOnlyPlan
from compressor.quantization.weight_only.scale_estimation import error_share, weighted_error
from compressor.quantization.weight_only.settings import WeightOnlySettings

BF16_MIN_SPEEDUP = 2.0
WINDOWS_PER_CALL = 4  # calibration windows batched into one block forward (the rotary/causal inputs broadcast)


class _Stop(Exception):
    pass


@dataclass
class AwqGroup:
    label: str
    producer: torch.nn.Module
    consumers: list[str]  # linear names inside the block


@dataclass
class Block:
    index: int
    module: torch.nn.Module
    prefix: str
    linears: dict[str, torch.nn.Linear]  # full module path -> layer
    awq_groups: list[AwqGroup] = field(default_factory=list)


def decoder_layers(model) -> tuple[str, torch.nn.ModuleList]:
    for path in ("model.layers", "transformer.h", "model.decoder.layers", "gpt_neox.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList):
            return path, obj
    raise ValueError(f"{type(model).__name__}: no list of decoder blocks found (looked for model.layers, transformer.h, …)")


def blocks(model) -> list[Block]:
    path, layers = decoder_layers(model)
    found = []
    for i, layer in enumerate(layers):
        prefix = f"{path}.{i}"
        linears = {f"{prefix}.{n}": m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
        b = Block(i, layer, prefix, linears)
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        names = set(linears)

        def have(*ns, prefix=prefix, names=names):
            return all(f"{prefix}.{n}" in names for n in ns)

        if attn is not None and have("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj") \
                and hasattr(layer, "input_layernorm"):
            b.awq_groups.append(AwqGroup("qkv", layer.input_layernorm,
                                         [f"{prefix}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")]))
        if have("self_attn.v_proj", "self_attn.o_proj") and \
                attn.v_proj.weight.shape == attn.o_proj.weight.shape:  # with GQA, v's rows do not map 1:1 onto o's inputs
            b.awq_groups.append(AwqGroup("o", attn.v_proj, [f"{prefix}.self_attn.o_proj"]))
        if mlp is not None and have("mlp.gate_proj", "mlp.up_proj") and hasattr(layer, "post_attention_layernorm"):
            b.awq_groups.append(AwqGroup("gate_up", layer.post_attention_layernorm,
                                         [f"{prefix}.mlp.gate_proj", f"{prefix}.mlp.up_proj"]))
        if have("mlp.up_proj", "mlp.down_proj"):
            b.awq_groups.append(AwqGroup("down", mlp.up_proj, [f"{prefix}.mlp.down_proj"]))
        found.append(b)
    return found


class _Stats:
    """Per linear input: Σ x xᵀ, Σ |x| and the token count. Layers that read the very same tensor (q, k and v; gate and
    up) share one accumulation."""

    def __init__(self, dtype: torch.dtype = torch.float32):
        self.dtype = dtype  # of the passes' loss products (AWQ); Σ x xᵀ itself is always float32: a bfloat16 product rounds
        # each entry to 8 bits, enough to make H of two correlated outlier channels indefinite and GPTQ's Cholesky fail
        self.h: dict[str, torch.Tensor] = {}
        self.n: dict[str, int] = {}
        self.a: dict[str, torch.Tensor] = {}
        self.alias: dict[str, str] = {}
        self._last: tuple | None = None

    def hook(self, name):
        def fn(_mod, args, _out):
            x = args[0]
            if self._last is not None and self._last[0] is x and self._last[1] != name:  # the same tensor object (held below)
                self.alias[name] = self.alias.get(self._last[1], self._last[1])
                return
            self._last = (x, name)
            x = x.detach().reshape(-1, x.shape[-1])
            if name not in self.h:
                self.h[name] = torch.zeros(x.shape[1], x.shape[1])
                self.a[name] = torch.zeros(x.shape[1])
                self.n[name] = 0
            x = x.float()
            self.h[name].addmm_(x.T, x)
            self.a[name].add_(x.abs().sum(0))
            self.n[name] += x.shape[0]
        return fn

    def owner(self, name: str) -> str:
        """The layer whose accumulation ``name`` shares (itself when it reads a tensor of its own)."""
        return self.alias.get(name, name)

    def hessian(self, name) -> torch.Tensor:
        own = self.owner(name)
        return self.h[own] / max(1, self.n[own])

    def abs_mean(self, name) -> torch.Tensor:
        own = self.owner(name)
        return self.a[own] / max(1, self.n[own])

    def rescale(self, names: list[str], inv: torch.Tensor) -> None:
        """The layers ``names`` now read x / s: H becomes diag(1/s) H diag(1/s) and E|x| becomes E|x| / s (once per shared
        accumulation)."""
        for own in {self.owner(n) for n in names}:
            self.h[own].mul_(inv.unsqueeze(0) * inv.unsqueeze(1))
            self.a[own].mul_(inv)


def _run_block(block: Block, inputs: list[torch.Tensor], kwargs: dict, dtype: torch.dtype) -> list[torch.Tensor]:
    """The block on each calibration window, :data:`WINDOWS_PER_CALL` at a time; with ``dtype`` bfloat16 its matmuls run
    under autocast (the residual stream and the outputs stay float32)."""
    outs = []
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        for i in range(0, len(inputs), WINDOWS_PER_CALL):
            x = torch.cat(inputs[i:i + WINDOWS_PER_CALL])
            y = block.module(x, **kwargs)
            outs.extend((y[0] if isinstance(y, tuple) else y).detach().float().split(1))
    return outs


def calibration_dtype(settings: WeightOnlySettings) -> tuple[torch.dtype, dict]:
    """The precision of the calibration forwards and statistics, and why: ``auto`` measures (bfloat16 where its matmul is at
    least ``BF16_MIN_SPEEDUP``× faster than float32 on this CPU)."""
    if settings.calib_precision != "auto":
        return getattr(torch, settings.calib_precision), {"chosen": settings.calib_precision, "by": "--calib-precision"}
    from compressor.core.environment import bf16_matmul_speedup

    speedup = bf16_matmul_speedup()
    chosen = "bfloat16" if speedup >= BF16_MIN_SPEEDUP else "float32"
    return getattr(torch, chosen), {"chosen": chosen, "by": f"auto: a bfloat16 matmul ran {speedup:.1f}× float32's speed "
                                    f"here (bfloat16 from {BF16_MIN_SPEEDUP}×)", "bf16_speedup": round(speedup, 2)}


def _capture_inputs(model, batches: list[torch.Tensor]) -> tuple[list[torch.Tensor], dict]:
    _, layers = decoder_layers(model)
    inputs, kw = [], {}

    def pre(_mod, args, kwargs):
        inputs.append((args[0] if args else kwargs.pop("hidden_states")).detach())
        if not kw:
            kw.update({k: v for k, v in kwargs.items() if k != "hidden_states"})
        raise _Stop

    handle = layers[0].register_forward_pre_hook(pre, with_kwargs=True)
    try:
        for ids in batches:
            try:
                model(input_ids=ids, use_cache=False)
            except _Stop:
                pass
    finally:
        handle.remove()
    kw.pop("past_key_values", None)
    kw.pop("past_key_value", None)
    kw["use_cache"] = False
    return inputs, kw


def input_channel_energy(model, batches: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean x² per input channel of every linear layer in the decoder blocks, from one float forward pass."""
    sums, counts, handles = {}, {}, []
    for b in blocks(model):
        for name, lin in b.linears.items():
            def fn(_m, args, _o, name=name):
                x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
                sums[name] = sums.get(name, 0) + (x * x).sum(0)
                counts[name] = counts.get(name, 0) + x.shape[0]
            handles.append(lin.register_forward_hook(fn))
    try:
        for ids in batches:
            model(input_ids=ids, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return {n: sums[n] / counts[n] for n in sums}


def unit_of(name: str) -> str:
    """Layers that runtimes pack into one MatMul share a grid: q, k and v are one unit."""
    return re.sub(r"\.(q|k|v)_proj$", ".qkv_proj", name)


def choose_int8_layers(model, batches, settings: WeightOnlySettings) -> tuple[set[str], dict[str, float]]:
    """The layers kept at 8 bits so that ``ratio`` of the block weights are at ``bits``: the most sensitive units first,
    where sensitivity is the activation-weighted error of plain rounding to ``bits`` (the share of output energy lost)."""
    energy = input_channel_energy(model, batches)
    grid = settings.grid()
    sens: dict[str, float] = {}
    units: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for b in blocks(model):
        for name, lin in b.linears.items():
            s, z = fit(lin.weight.data, grid)
            sens[name] = weighted_error(lin.weight.data, grid, s, z, energy.get(name))
            units.setdefault(unit_of(name), []).append(name)
            sizes[name] = lin.weight.numel()
    unit_size = {u: sum(sizes[n] for n in ns) for u, ns in units.items()}
    unit_sens = {u: sum(sens[n] * sizes[n] for n in ns) / unit_size[u] for u, ns in units.items()}
    total = sum(sizes.values())
    keep, kept = set(), 0
    for u in sorted(unit_sens, key=unit_sens.get, reverse=True):
        if kept + unit_size[u] > (1 - settings.ratio) * total + 1e-9:
            continue
        keep.update(units[u])
        kept += unit_size[u]
    return keep, sens


@torch.no_grad()
def _quantize_linears(names: list[str], lins: list, grid: Grid, h, passes: list[WeightPass],
                      prefixes: list[str]) -> list[tuple[WeightLayer, QuantizedWeight]]:
    """Layers that read one input (so share ``h``) on ``grid``: per layer the first pass that fits the grid (else the range
    fit), then the first pass that rounds them (together: GPTQ runs one column loop), else round to nearest; the layers
    then hold the dequantized weights."""
    ws = [lin.weight.data.float() for lin in lins]
    hd = torch.diag(h) if h is not None else None
    fits = []
    for w in ws:
        fitted = next(((p.name, r) for p in passes if (r := p.fit(w, grid, hd)) is not None), ("rtn", None))
        fits.append((fitted[0], *(fitted[1] if fitted[1] is not None else fit(w, grid))))
    scales, zeros = [f[1] for f in fits], [f[2] for f in fits]
    rounded = next(((p.name, qs) for p in passes if (qs := p.round_shared(ws, h, scales, zeros, grid)) is not None),
                   (None, None))
    qs = rounded[1] if rounded[1] is not None else [codes(w, s, z, grid) for w, s, z in zip(ws, scales, zeros)]
    done = []
    for name, lin, w, (how, scale, zero), q, prefix in zip(names, lins, ws, fits, qs, prefixes):
        dq = dequantize(q, scale, zero, grid)
        lin.weight.data.copy_(dq.to(lin.weight.dtype))
        layer = WeightLayer(name, grid.bits, grid.group, grid.symmetric, w.shape[1], w.shape[0],
                            prefix + how + (f"+{rounded[0]}" if rounded[0] else ""), error_share(w, dq, hd))
        done.append((layer, QuantizedWeight(q, scale.float(), zero.float())))
    return done


@torch.no_grad()
def quantize_model(model, batches: list[torch.Tensor], settings: WeightOnlySettings, progress=None) -> WeightOnlyPlan:
    """Quantize ``model``'s weights in place (dequantized values) and return the plan with the codes."""
    from compressor.core.progress import Progress

    progress = progress or Progress(quiet=True)
    t0 = time.perf_counter()
    model.eval()
    bl = blocks(model)
    int8_layers, sens = set(), {}
    transforms: dict = {}
    if settings.ratio < 1.0 and settings.bits != 8 and batches:
        with progress.stage("layer sensitivity measured (mixed precision)"):
            int8_layers, sens = choose_int8_layers(model, batches, settings)
        transforms["mixed_precision"] = {"ratio": settings.ratio, "int8_layers": sorted(int8_layers),
                                         "criterion": "activation-weighted rounding error at the low bit width"}
    plan = WeightOnlyPlan(settings=settings.model_dump(), layers=[], calibration={
        "sequences": len(batches), "tokens": int(sum(b.numel() for b in batches)),
        "sequence_length": int(batches[0].shape[1]) if batches else 0}, transforms=transforms)
    data_aware = bool(batches)
    passes = weight_passes(settings, data_aware)
    quantized_inputs = any(p.quantized_inputs for p in passes)
    if data_aware:
        transforms["block_inputs"] = ("the quantized blocks' outputs (" + ", ".join(p.name for p in passes if p.quantized_inputs)
                                      + " corrects the error they carry)") if quantized_inputs else "the float blocks' outputs"
    dtype = torch.float32
    if data_aware:
        dtype, transforms["calibration_precision"] = calibration_dtype(settings)
        with progress.stage("calibration text run up to the first block"):
            inputs, kwargs = _capture_inputs(model, batches)
    with progress.bar(f"weight-only {settings.label()} ({', '.join(p.name for p in passes) or 'rtn'}"
                      f"{'' if data_aware else ', data-free'})", len(bl)) as advance:
        for block in bl:
            stats = _Stats(dtype)
            if data_aware:
                handles = [lin.register_forward_hook(stats.hook(n)) for n, lin in block.linears.items()]
                try:
                    float_outputs = _run_block(block, inputs, kwargs, dtype)
                finally:
                    for h in handles:
                        h.remove()
            alphas: dict[str, float] = {}
            for p in passes:
                alphas.update(p.transform(block, stats, lambda n: 8 if n in int8_layers else settings.bits, settings))
            units: dict[tuple, list[str]] = {}  # layers reading one input, on one grid
            for name in block.linears:
                grid = Grid(8 if name in int8_layers else settings.bits, settings.group_size, settings.symmetric)
                units.setdefault((stats.owner(name), grid), []).append(name)
            for (owner, grid), names in units.items():
                h = stats.hessian(owner) if data_aware else None
                prefixes = ["awq+" if alphas.get(n) else "" for n in names]
                for name, (layer, qw) in zip(names, _quantize_linears(names, [block.linears[n] for n in names], grid, h,
                                                                      passes, prefixes)):
                    layer.awq_alpha = alphas.get(name)
                    plan.layers.append(layer)
                    plan.tensors[name] = qw
            if data_aware and block is not bl[-1]:  # the next block's inputs: the quantized block's outputs where a pass
                # needs them, else the float block's (one forward per block, as AWQ's reference implementation)
                inputs = _run_block(block, inputs, kwargs, dtype) if quantized_inputs else float_outputs
            advance(1)
    _quantize_embeddings(model, plan, settings)
    for p in passes:
        if p.record():
            transforms[p.name] = p.record()
    transforms["seconds"] = round(time.perf_counter() - t0, 1)
    return plan


def _quantize_embeddings(model, plan: WeightOnlyPlan, settings: WeightOnlySettings) -> None:
    emb = model.get_input_embeddings()
    head = model.get_output_embeddings()
    grid = Grid(settings.embedding_bits, settings.group_size, settings.symmetric)
    done = {}
    for name, mod in (("lm_head", head), ("model.embed_tokens", emb)):
        if mod is None or not hasattr(mod, "weight"):
            continue
        key = mod.weight.data_ptr()
        if key in done:
            done[key].tied_to.append(name)
            continue
        ((layer, qw),) = _quantize_linears([name], [mod], grid, None, [], [""])
        plan.layers.append(layer)
        plan.tensors[name] = qw
        done[key] = layer

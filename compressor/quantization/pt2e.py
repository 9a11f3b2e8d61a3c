"""The PT2E realiser: a quantization plan realised as a PT2E-quantized torch program (the ExecuTorch
targets, with ExecuTorch's ``XNNPACKQuantizer``; the Inductor targets, with the ``X86InductorQuantizer`` as
Intel Neural Compressor configures it for static INT8).

A PT2E quantizer (e.g. ExecuTorch's ``XNNPACKQuantizer``) decides where the runtime's INT8 kernels want
observers; this module decides their ranges, from the plan, so every target of a run shares one
calibration. Each observer is matched to the float ONNX tensor holding the same values on a probe
batch (the two graphs come from the same model; names differ, values do not), and takes that tensor's
range. Observers with no equivalent tensor are calibrated here with the same method and data, and
reported. Which layers are INT8 comes from the plan too (excluded modules, single-layer plans for
sensitivity).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from compressor.core.errors import InputError
from compressor.core.layers import torch_layer_kind
from compressor.core.progress import Progress
from compressor.io.export_torch import module_owner
from compressor.quantization.calibrate import BINS, Observation, choose_range
from compressor.quantization.plan import QuantPlan

FLAVOURS = ("xnnpack", "x86_inductor")
_PROBE_POSITIONS = 8


def fingerprint(x: np.ndarray) -> np.ndarray:
    """A few statistics and samples of a tensor: equal tensors have equal fingerprints (within float error)."""
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        return np.zeros(5 + _PROBE_POSITIONS)
    idx = np.linspace(0, flat.size - 1, _PROBE_POSITIONS).astype(np.int64)
    return np.concatenate([[flat.mean(), flat.std(), flat.min(), flat.max(), np.abs(flat).mean()], flat[idx]])


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(abs(a[2]), abs(a[3]), 1e-6)
    return bool(np.abs(a - b).max() <= 1e-3 * scale + 1e-5)


@dataclass
class TensorIndex:
    """Fingerprints of every float tensor of the float ONNX graph on a probe batch, by element count."""

    by_size: dict[int, list[tuple[str, np.ndarray]]] = field(default_factory=dict)

    @classmethod
    def build(cls, values: dict[str, np.ndarray]) -> TensorIndex:
        idx = cls()
        for name in sorted(values):
            a = values[name]
            idx.by_size.setdefault(int(np.asarray(a).size), []).append((name, fingerprint(a)))
        return idx

    def match(self, x: np.ndarray) -> str | None:
        fp = fingerprint(x)
        for name, other in self.by_size.get(int(np.asarray(x).size), []):
            if _same(fp, other):
                return name
        return None


@lru_cache(maxsize=1)
def observer_class():
    import torch
    from torchao.quantization.pt2e.observer import UniformQuantizationObserverBase

    class PlanObserver(UniformQuantizationObserverBase):
        """An activation observer whose range comes from the plan (``fixed``), or, for tensors the plan does
        not cover, from the SDK's calibration: ``range`` pass (min/max), then ``histogram`` pass."""

        def __init__(self, method: str = "mse", percentile: float = 99.999, **kwargs):
            super().__init__(**kwargs)
            self.method, self.percentile = method, percentile
            self.phase = "probe"
            self.clamp: tuple[float, float] | None = None  # a clamp (ReLU6) right after the observed op: observe its result
            self.fixed: tuple[float, float] | None = None
            self.probe: np.ndarray | None = None
            self.register_buffer("min_val", torch.tensor(float("inf")))
            self.register_buffer("max_val", torch.tensor(float("-inf")))
            self.hist: np.ndarray | None = None

        def forward(self, x):
            if x.numel() == 0 or self.fixed is not None and self.phase != "probe":
                return x
            xd = x.detach().float()
            if self.clamp is not None:
                xd = xd.clamp(*self.clamp)
            if self.phase == "probe":
                self.probe = xd.numpy().copy()
            elif self.phase == "range":
                self.min_val = torch.minimum(self.min_val, xd.min())
                self.max_val = torch.maximum(self.max_val, xd.max())
            else:
                absmax = float(max(abs(self.min_val.item()), abs(self.max_val.item())))
                if absmax > 0:
                    h = torch.histc(xd.abs().clamp(max=absmax), bins=BINS, min=0.0, max=absmax).numpy().astype(np.float64)
                    self.hist = h if self.hist is None else self.hist + h
            return x

        def calculate_qparams(self):
            if self.fixed is not None:
                lo, hi = self.fixed
            else:
                lo, hi = float(self.min_val.item()), float(self.max_val.item())
                if not np.isfinite(lo) or not np.isfinite(hi):
                    lo, hi = 0.0, 1.0
                lo, hi = choose_range(Observation(lo, hi, self.hist), self.method if self.hist is not None else "minmax", self.percentile)
            qmin, qmax = self.quant_min, self.quant_max
            scale = max((hi - lo) / float(qmax - qmin), 1e-8)
            zp = int(np.clip(round(qmin - lo / scale), qmin, qmax))
            return torch.tensor([scale], dtype=torch.float32), torch.tensor([zp], dtype=torch.int32)

        def extra_repr(self) -> str:
            return f"method={self.method}, fixed={self.fixed}"

    return PlanObserver


def _observers(prepared) -> dict[str, Any]:
    cls = observer_class()
    return {name: m for name, m in prepared.named_modules() if isinstance(m, cls)}


def _set_phase(prepared, phase: str) -> None:
    for m in _observers(prepared).values():
        m.phase = phase


def fold_clamps(prepared) -> int:
    """Where an observed op output feeds only a clamp (hardtanh: ReLU6), observe the clamped values.

    The quantizer annotates conv → observer → hardtanh → observer; with a wide pre-clamp range the first
    quantization is needlessly coarse. Observing the clamped values gives it the range [0, ≤6], where
    quantizing clamps exactly as ReLU6 does: the same folding the QDQ realiser does for Relu/Clip."""
    import torch

    cls = observer_class()
    clamps = {torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default}
    modules = dict(prepared.named_modules())
    n = 0
    for node in prepared.graph.nodes:
        if node.op != "call_function" or node.target not in clamps:
            continue
        src = node.args[0]
        lo = float(node.args[1]) if len(node.args) > 1 else -1.0
        hi = float(node.args[2]) if len(node.args) > 2 else 1.0
        if getattr(src, "op", None) == "call_module" and len(src.users) == 1 and isinstance(modules.get(src.target), cls):
            modules[src.target].clamp = (lo, hi)
            n += 1
    return n


_FOLLOWERS = ("batch_norm", "getitem", "relu", "hardtanh", "clamp")


def layer_filter(layers: list[str]):
    """A node filter accepting the nodes of ``layers``: their conv/linear, its weight and bias, and what a
    quantizer fuses after it (BatchNorm, ReLU, ReLU6). A pattern spans several modules (conv in ``features.0.0``,
    its BN in ``features.0.1``), so a filter by one module's name would never accept it; and the quantizer
    folds BatchNorm into new weight nodes before it annotates, so the filter looks at the graph it is given."""
    wanted = set(layers)

    def is_layer(n) -> bool:
        if torch_layer_kind(n) is None:
            return False
        return module_owner(n) in wanted

    def accept(n) -> bool:
        if n.op in ("get_attr", "placeholder"):
            return any(is_layer(u) and u.args[0] is not n for u in n.users)
        cur = n
        for _ in range(6):
            if is_layer(cur):
                return True
            if getattr(cur, "op", None) != "call_function" or not any(k in str(cur.target) for k in _FOLLOWERS) or not cur.args:
                return False
            cur = cur.args[0]
        return False

    return accept


def plan_tensor_nodes(exported_module, plan: QuantPlan, probe_batch: tuple, index: TensorIndex) -> set[str]:
    """Names of the graph's nodes whose output is a tensor the plan quantizes (matched by value on the probe batch): the
    joining and pooling ops the plan keeps on the INT8 path. A quantizer may annotate other ops (attention scores, a mask
    add); the plan does not quantize them, so neither may the realiser."""
    import torch

    wanted = set(plan.activations)
    found: set[str] = set()

    class Record(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.op == "call_function" and isinstance(out, torch.Tensor) and out.is_floating_point():
                t = index.match(out.detach().float().numpy())
                if t in wanted:
                    found.add(n.name)
            return out

    with torch.no_grad():
        Record(exported_module).run(*probe_batch)
    return found


def _quantizer(flavour: str, plan: QuantPlan, modules: set[str], joining: set[str] | None = None):
    """The PT2E quantizer of ``flavour`` with the SDK's observers, quantizing exactly the plan's INT8 layers (and, for
    XNNPACK, of the other ops only those in ``joining``: the nodes whose output the plan quantizes)."""
    if flavour not in FLAVOURS:
        raise InputError(f"unknown PT2E quantizer flavour '{flavour}': known are {', '.join(FLAVOURS)}")
    int8 = [l.name for l in plan.layers if l.precision == "int8" and l.name in modules]
    other = [l.name for l in plan.layers if l.precision != "int8" and l.name in modules]
    observer = observer_class().with_args(method=plan.calibration.get("method", "mse"), percentile=plan.calibration.get("percentile", 99.999))
    if flavour == "xnnpack":
        return _xnnpack(observer, int8, other, joining)
    return _x86_inductor(observer, int8, other)


def _xnnpack(observer, int8: list[str], other: list[str], joining: set[str] | None = None):
    """ExecuTorch's XNNPACK quantizer: int8 weights per channel (symmetric), int8 activations per tensor."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils import QuantizationConfig
    from torchao.quantization.pt2e.quantizer import QuantizationSpec

    base = get_symmetric_quantization_config(is_per_channel=True)
    act = QuantizationSpec(dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_affine, is_dynamic=False,
                           observer_or_fake_quant_ctr=observer)
    config = QuantizationConfig(input_activation=act, output_activation=act, weight=base.weight, bias=None, is_qat=False)
    quantizer = XNNPACKQuantizer().set_global(config)
    if len(int8) >= len(other):  # mostly INT8: everything but the float layers (and what is fused after them)
        excluded = layer_filter(other)
        if joining is None:
            quantizer.set_filter_function(lambda n: not excluded(n))
        else:  # and of the other ops, only those the plan quantizes
            layer = layer_filter(int8)
            quantizer.set_filter_function(lambda n: not excluded(n) and (layer(n) or n.name in joining))
    else:  # a few layers (per-layer sensitivity): only those
        quantizer.set_filter_function(layer_filter(int8))
    return quantizer


def _x86_inductor(observer, int8: list[str], other: list[str]):
    """The X86InductorQuantizer as Intel Neural Compressor sets it up for static INT8 (its default ``StaticQuantConfig``:
    int8 weights per channel, symmetric; uint8 activations per tensor, asymmetric), with the SDK's activation
    observers. Inductor fuses what it annotates into oneDNN ``qconv``/``qlinear`` kernels."""
    import dataclasses

    from compressor.quantization.inc_quantizer import inc_quiet

    inc_quiet()
    from neural_compressor.torch.algorithms.pt2e_quant.core import W8A8PT2EQuantizer
    from neural_compressor.torch.quantization import get_default_static_config

    quantizer = W8A8PT2EQuantizer.update_quantizer_based_on_quant_config(get_default_static_config())
    base = quantizer.global_config
    config = dataclasses.replace(base, input_activation=dataclasses.replace(base.input_activation, observer_or_fake_quant_ctr=observer),
                                 output_activation=dataclasses.replace(base.output_activation, observer_or_fake_quant_ctr=observer))
    if len(int8) >= len(other):
        quantizer.set_global(config)
        for name in other:
            quantizer.set_module_name_qconfig(name, None)
    else:
        quantizer.global_config = None
        for name in int8:
            quantizer.set_module_name_qconfig(name, config)
    return quantizer


def _prepare(exported_module, flavour: str, plan: QuantPlan, modules: set[str], probe_batch: tuple, index: TensorIndex):
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from compressor.io.export_torch import quiet

    joining = plan_tensor_nodes(exported_module, plan, probe_batch, index) if flavour == "xnnpack" and plan.activations else None
    with quiet():
        prepared = prepare_pt2e(exported_module, _quantizer(flavour, plan, modules, joining))
    return prepared, fold_clamps(prepared)


def _unpadded(node, x: np.ndarray) -> np.ndarray:
    """A zero ``pad``'s output cropped back to its input. Pads that the ONNX export folds into the next
    convolution have no ONNX tensor of their own; their input does, with the same range (ranges hold 0)."""
    import torch

    pads = {torch.ops.aten.pad.default, torch.ops.aten.constant_pad_nd.default}
    if getattr(node, "op", None) != "call_function" or node.target not in pads:
        return x
    amounts = list(node.args[1])
    mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
    value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value", 0.0)
    if (isinstance(mode, str) and mode != "constant") or (value or 0.0) != 0.0 or any(a < 0 for a in amounts):
        return x
    index = [slice(None)] * x.ndim
    for i in range(0, len(amounts), 2):  # (left, right) of the last dimension first
        axis = x.ndim - 1 - i // 2
        index[axis] = slice(amounts[i], x.shape[axis] - amounts[i + 1])
    return x[tuple(index)]


def _probe(prepared, batch: tuple) -> dict[str, np.ndarray]:
    """What each activation observer sees on ``batch`` (its clamp applied, a zero pad taken off)."""
    import torch

    _set_phase(prepared, "probe")
    with torch.no_grad():
        prepared(*batch)
    observers = _observers(prepared)
    fed_by = {n.target: n.args[0] for n in prepared.graph.nodes if n.op == "call_module" and n.target in observers}
    return {name: _unpadded(fed_by.get(name), m.probe) for name, m in observers.items() if m.probe is not None}


def observed_tensors(exported_module, flavour: str, plan: QuantPlan, modules: set[str], probe_batch: tuple,
                     index: TensorIndex) -> list[str]:
    """The float ONNX tensors whose ranges this flavour's quantizer needs (to calibrate them with the rest); observers
    with no equivalent tensor are calibrated by the realiser itself, and counted there."""
    prepared, _ = _prepare(exported_module, flavour, plan, modules, probe_batch, index)
    found = (index.match(x) for x in _probe(prepared, probe_batch).values())
    return list(dict.fromkeys(t for t in found if t is not None))


def realise(exported_module, flavour: str, plan: QuantPlan, modules: set[str], probe_batch: tuple, index: TensorIndex,
            ranges: dict[str, tuple[float, float]], calib_batches: list[tuple], progress: Progress) -> tuple[Any, dict[str, Any]]:
    """Prepare with ``flavour``'s quantizer, give each observer its plan range, convert; returns the converted
    module and what was done (observers from the plan, observers calibrated here, clamps folded)."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    from compressor.io.export_torch import quiet

    prepared, folded = _prepare(exported_module, flavour, plan, modules, probe_batch, index)
    observers = _observers(prepared)
    shared, own = 0, []
    for name, x in _probe(prepared, probe_batch).items():
        t = index.match(x)
        if t is not None and t in ranges:
            observers[name].fixed = ranges[t]
            shared += 1
        else:
            own.append(name)
    if own:  # no equivalent ONNX tensor: calibrate these observers here, same method and data
        phases = ("range",) if plan.calibration.get("method") == "minmax" else ("range", "histogram")
        with progress.bar(f"calibrated {len(own)} PT2E-only tensor(s)", total=len(calib_batches) * len(phases)) as advance, \
                torch.no_grad():
            for phase in phases:
                _set_phase(prepared, phase)
                for batch in calib_batches:
                    prepared(*batch)
                    advance(1)
    with quiet():
        converted = convert_pt2e(prepared)
    corrected = _correct_biases(converted, {l.name: l.bias_correction for l in plan.layers if l.bias_correction is not None})
    return converted, {"observers": len(observers), "ranges_from_plan": shared, "calibrated_in_pt2e": len(own),
                       "clamps_folded_into_quantization": folded, "bias_corrections_applied": corrected}


def _correct_biases(converted, corrections: dict[str, list[float]]) -> int:
    """Add the plan's bias corrections to the float biases of the converted model's conv/linear nodes."""
    import torch

    done = 0
    if not corrections:
        return done
    for node in converted.graph.nodes:
        if torch_layer_kind(node) is None:
            continue
        owner = module_owner(node)
        bias = node.args[2] if len(node.args) > 2 else None
        if owner not in corrections or getattr(bias, "op", None) != "get_attr":
            continue
        param = functools.reduce(getattr, bias.target.split("."), converted)
        corr = torch.as_tensor(corrections[owner], dtype=param.dtype)
        if corr.shape == param.shape:
            with torch.no_grad():
                param.add_(corr)
            done += 1
    return done

"""Quantization-aware training: the static INT8 plan's ranges and the model's weights trained together.

The model is trained with the plan simulated in it, as the exported artifact computes it:

- **weights** of every INT8 layer: per-output-channel symmetric int8 with the realiser's own scale
  (``max|w| / 127``, :func:`~compressor.quantization.qdq.quantize_weight`), rounded with a straight-through
  estimator; BatchNorm is folded into the convolution first, as the ONNX export folds it;
- **activations**: each tensor the plan quantizes at a layer's input or output gets one fake quantizer (shared by
  every layer that reads it), asymmetric uint8 like the plan, with its range learned from the PTQ range
  (both ends in log scale, so a learning rate means a relative step); a ReLU/ReLU6 folded into its producer's
  output quantization is what quantizing the producer's output with a range starting at 0 computes.

Training is the pruning recovery loop (:func:`compressor.training.finetune.finetune`): distillation from the FP32
model (plus labels where there are some), a held-out split choosing the best epoch, bf16 autocast where the CPU
has native bf16. Afterwards the fake quantizers are removed: the float model carries the trained weights (the
realisers quantize them exactly as the simulation did), and the learned ranges go into the plan the realisers
export (:meth:`QatResult.apply`). Tensors quantized only by joining ops (an ``Add`` on the INT8 path) are not
simulated; how far the exported artifact agrees with the fake-quantized model is measured after export.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compressor.core.errors import InputError
from compressor.core.options import QUANT, Settings, option
from compressor.core.progress import Progress
from compressor.core.searchable import Searchable
from compressor.core.targets import PlanMode
from compressor.quantization.plan import QuantPlan
from compressor.quantization.qdq import QMAX_W
from compressor.quantization.quantizers import QUANTIZERS


class QatSettings(Settings):
    enabled: bool = option(False, "Quantization-aware training for INT8 targets: learn the plan's activation ranges and the weights "
                                  "on --finetune DATA, distilled from the FP32 model.", flag="--qat", panel=QUANT,
                         search=Searchable("qat", default=(False, True), only="static", title="QAT", label="QAT", training="needs",
                                           capability="supports_qat"))
    epochs: int = option(2, "QAT epochs (default 2; the best epoch on a held-out tenth is kept).", flag="--qat-epochs", panel=QUANT, ge=1)
    lr: float = option(2e-5, "Peak learning rate of the weights in QAT (AdamW, one-cycle; default 2e-5).", flag="--qat-lr", panel=QUANT,
                       gt=0)
    range_lr: float = option(5e-3, "Learning rate of the activation ranges in QAT (a relative step: the ends are learned in log scale).",
                             ge=0)


@dataclass
class QatResult:
    module: Any  # the trained float model (fake quantizers removed; BatchNorm folded)
    fake_quant: Any  # the same weights with the simulation in place: what the artifact should compute
    ranges: dict[str, tuple[float, float]]  # (layer name, "input"|"output") keys joined by "|" -> learned range
    report: dict[str, Any] = field(default_factory=dict)

    def apply(self, plan: QuantPlan) -> QuantPlan:
        """``plan`` (made on the trained model's graph) with the learned ranges for the tensors at each layer's input and output."""
        from compressor.quantization.calibrate import quant_params

        plan = copy.deepcopy(plan)
        moved = 0
        for layer in plan.layers:
            for role, tensor in (("input", layer.inputs[0] if layer.inputs else None), ("output", layer.output)):
                r = self.ranges.get(f"{layer.name}|{role}")
                if r is not None and tensor in plan.activations and plan.activations[tensor].method != "qat":
                    plan.activations[tensor] = quant_params(tensor, r[0], r[1], plan.activations[tensor].dtype, "qat")
                    moved += 1
        for t, q in list(plan.activations.items()):  # tensors tied to a learned one (reshapes, pooling) share its new scale
            src = q.method[len("same as "):] if q.method.startswith("same as ") else None
            if src in plan.activations and plan.activations[src].method == "qat":
                s = plan.activations[src]
                plan.activations[t] = type(s)(t, s.dtype, s.scale, s.zero_point, s.range, q.method)
        plan.calibration = {**plan.calibration, "qat": {"learned_tensors": moved, "epochs": self.report.get("epochs_run")}}
        plan.transforms = {**plan.transforms, "qat": {k: v for k, v in self.report.items() if k != "history"}}
        return plan


def _round_ste(x):
    return x + (x.round() - x).detach()


def _weight_axis(module) -> int | None:
    from torch import nn

    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return 1
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear, nn.Embedding)):
        return 0
    return None


def _modules():
    import torch
    from torch import nn

    class WeightFakeQuant(nn.Module):
        """Per-channel symmetric int8 with the realiser's scale (max|w| / 127 per output channel)."""

        def __init__(self, axis: int):
            super().__init__()
            self.axis = axis

        def forward(self, w):
            dims = [d for d in range(w.dim()) if d != self.axis]
            scale = w.detach().abs().amax(dim=dims, keepdim=True).clamp(min=1e-12) / QMAX_W
            return _round_ste(w / scale).clamp(-QMAX_W, QMAX_W) * scale

    class ActFakeQuant(nn.Module):
        """Asymmetric uint8 over a learned range [lo, hi] (lo <= 0 <= hi, each end learned in log scale)."""

        def __init__(self, lo: float, hi: float):
            super().__init__()
            self.register_buffer("lo0", torch.tensor(min(lo, 0.0)))
            self.register_buffer("hi0", torch.tensor(max(hi, 1e-6)))
            self.log_lo = nn.Parameter(torch.zeros(()))
            self.log_hi = nn.Parameter(torch.zeros(()))

        def range(self) -> tuple:
            return self.lo0 * self.log_lo.exp(), self.hi0 * self.log_hi.exp()

        def forward(self, x):
            lo, hi = self.range()
            scale = (hi - lo) / 255.0
            zp = _round_ste(-lo / scale).clamp(0, 255)
            q = (_round_ste(x.float() / scale) + zp).clamp(0, 255)
            return ((q - zp) * scale).to(x.dtype)

    return WeightFakeQuant, ActFakeQuant


def check_quantizer(quantizer: str) -> None:
    """QAT's learned ranges reach the artifact only through the SDK's own realisers."""
    if not QUANTIZERS[quantizer].supports_qat:
        raise InputError(f"--qat cannot be combined with --quantizer {quantizer}: that quantizer chooses its own ranges, so learned "
                         "ranges could not reach the artifact; drop --quantizer")


def _check(plan: QuantPlan) -> None:
    if plan.mode != PlanMode.STATIC:
        raise InputError("--qat trains the ranges of static INT8 plans: a dynamic INT8 target has none (its activations are quantized "
                         "at run time); use a static INT8 target (ort-cpu-int8, openvino-cpu-int8, executorch-xnnpack-int8)")
    check_quantizer(plan.quantizer)
    if not plan.int8_layers:
        raise InputError("--qat: the plan has no INT8 layer to train (all excluded or unsupported)")


def instrument(module, plan: QuantPlan, example: tuple):
    """A copy of ``module`` with BatchNorm folded and the plan simulated in it; (model, activation quantizers by tensor, what was done)."""
    from torch.nn.utils import parametrize

    from compressor.quantization.equalize import TransformReport, fold_batchnorms

    _check(plan)
    WeightFakeQuant, ActFakeQuant = _modules()
    model = copy.deepcopy(module).eval()
    folded = TransformReport()
    fold_batchnorms(model, example, folded)
    modules = dict(model.named_modules())
    quantizers: dict[str, Any] = {}
    roles: dict[str, list[str]] = {}
    done = {"layers_simulated": 0, "layers_not_modules": [], "weight_only": 0, "batchnorm_folded": len(folded.batchnorm_folded)}

    def quantizer(tensor: str | None, key: str):
        if tensor is None or tensor not in plan.activations:
            return None
        if tensor not in quantizers:
            q = plan.activations[tensor]
            quantizers[tensor] = ActFakeQuant(*q.range)
        roles.setdefault(tensor, []).append(key)
        return quantizers[tensor]

    for layer in plan.quantized_layers:
        m = modules.get(layer.name)
        axis = _weight_axis(m) if m is not None else None
        if axis is None:
            done["layers_not_modules"].append(layer.name)
            continue
        parametrize.register_parametrization(m, "weight", WeightFakeQuant(axis))
        if layer.precision != "int8":
            done["weight_only"] += 1
            continue
        qin = quantizer(layer.inputs[0] if layer.inputs else None, f"{layer.name}|input")
        qout = quantizer(layer.output, f"{layer.name}|output")
        inv = getattr(m, "smooth_inv_scale", None)
        if qin is not None:
            if inv is not None:  # SmoothedLinear quantizes x * inv_scale
                m.register_forward_pre_hook(lambda mod, args, q=qin: (q(args[0] * mod.smooth_inv_scale) / mod.smooth_inv_scale, *args[1:]))
            else:
                m.register_forward_pre_hook(lambda mod, args, q=qin: (q(args[0]), *args[1:]))
        if qout is not None:
            if layer.op_type == "MatMul" and getattr(m, "bias", None) is not None:
                # the exporter wrote MatMul then Add(bias): the plan quantizes the product before the bias
                m.register_forward_hook(lambda mod, args, out, q=qout: q(out - mod.bias) + mod.bias)
            else:
                m.register_forward_hook(lambda mod, args, out, q=qout: q(out))
        m.add_module("qat_act_quantizers", _holder(qin, qout))
        done["layers_simulated"] += 1
    done["activation_tensors"] = len(quantizers)
    return model, quantizers, roles, done


def _holder(*qs):
    from torch import nn

    return nn.ModuleList([q for q in qs if q is not None])


def train(module, plan: QuantPlan, example: tuple, data, settings: QatSettings, finetune_settings, task: str,
          progress: Progress | None = None) -> QatResult:
    """QAT of ``module`` (the model the plan was made on) starting from ``plan``'s ranges, on ``data``."""
    from compressor.training.finetune import finetune

    progress = progress or Progress(quiet=True)
    if data is None or len(data) == 0:
        raise InputError("--qat needs training data: pass --finetune DATA (inputs like the eval data; labels are used where given, "
                         "and the FP32 model is distilled either way)")
    student, quantizers, roles, done = instrument(module, plan, example)
    teacher = copy.deepcopy(module).eval()
    ranges_before = {t: tuple(float(v.detach()) for v in q.range()) for t, q in quantizers.items()}
    ft = finetune_settings.model_copy(update={"epochs": settings.epochs, "lr": settings.lr, "distill": True,
                                              "patience": max(settings.epochs, finetune_settings.patience)})
    range_params = [p for q in quantizers.values() for p in (q.log_lo, q.log_hi)]
    t0 = time.time()
    report = finetune(student, teacher, data, ft, task, progress, extra_params=(range_params, settings.range_lr), what="QAT")
    learned: dict[str, tuple[float, float]] = {}
    changes = []
    for t, q in quantizers.items():
        lo, hi = (float(v.detach()) for v in q.range())
        changes.append(abs(float(np.log(hi / ranges_before[t][1]))))
        for key in roles[t]:
            learned[key] = (lo, hi)
    student.eval()
    clean = _without_simulation(module, student, example)
    result = {**done, "epochs": settings.epochs, "epochs_run": len(report["history"]) - 1, "lr": settings.lr, "range_lr": settings.range_lr,
              "samples": report["samples"], "validation_samples": report["validation_samples"], "loss": report["loss_used"],
              "validation_metric": report["validation_metric"], "best_val_metric": report["best_val_metric"],
              "bf16_autocast": report["bf16_autocast"], "history": report["history"], "seconds": round(time.time() - t0, 1),
              "median_relative_range_change": float(np.median(changes)) if changes else 0.0,
              "simulated": "per-channel symmetric int8 weights (max|w|/127), per-tensor asymmetric uint8 activations at each INT8 "
                           "layer's input and output, BatchNorm folded, ReLU/ReLU6 folded into the producer's output range"}
    return QatResult(clean, student, learned, result)


def _without_simulation(module, student, example: tuple):
    """The trained weights in a plain copy of ``module`` (BatchNorm folded as in the student), with no fake quantizer."""
    from compressor.quantization.equalize import TransformReport, fold_batchnorms

    clean = copy.deepcopy(module).eval()
    fold_batchnorms(clean, example, TransformReport())
    state = {k.replace("parametrizations.weight.original", "weight"): v for k, v in student.state_dict().items()
             if "qat_act_quantizers" not in k}
    clean.load_state_dict(state)
    return clean

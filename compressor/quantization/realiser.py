"""Realisers: a quantization plan made runnable in one IR, for one layout or flavour of it.

A realiser is a registry entry keyed by ``(IR format, flavour)``: ``(onnx, qdq-ort)`` writes QDQ in ONNX Runtime's
canonical layout, ``(onnx, qdq-tensorrt)`` TensorRT's symmetric one, ``(onnx, dynamic)`` dynamic INT8,
``(torch-export, pt2e-xnnpack)`` / ``(torch-export, pt2e-x86_inductor)`` a PT2E program with the plan's ranges,
``(onnx, nncf)`` NNCF's OpenVINO model and ``(torch-export, inc)`` Intel Neural Compressor's. Realisers are found
through the entry-point group ``compressor.realisers``, the built-in ones included, so a backend package ships the
realiser its runtime needs (a new QDQ layout, PT2E quantizer or quantizer of its own) next to its backend and edits
nothing here. A target names its flavour through its fields (``qdq_layout``, ``pt2e_quantizer``, ``quantizers``).

The calibration-free rule for ``backends/`` stays: a realiser gets a plan whose ranges are already chosen, and the
:class:`PlanSource` it reads (the float graph, the calibration batches, the model) from the quantization stage.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Protocol

from compressor.core.backend import IR
from compressor.core.errors import InputError
from compressor.core.model import ModelHandle
from compressor.core.plugins import load_group
from compressor.core.progress import Progress
from compressor.core.targets import IRFormat, PlanMode, TargetSpec
from compressor.quantization.plan import QuantPlan
from compressor.quantization.quantizers import QuantizerName, of_plan

GROUP = "compressor.realisers"


class PlanSource(Protocol):
    """What a realiser may read from the quantization stage that made the plan."""

    model: ModelHandle  # the model static plans start from (equalized / scale-migrated where that helped)
    original: ModelHandle  # the model as given
    original_onnx: Path
    progress: Progress

    def float_for(self, plan: QuantPlan) -> Any: ...  # the float ONNX graph the plan's names refer to
    def calib_feeds(self) -> list[dict]: ...
    def torch_batch(self, feeds: dict) -> tuple: ...
    def probe_feed(self) -> dict: ...
    def modules(self) -> set[str]: ...
    def tensor_index(self) -> Any: ...
    def capture(self, flavour: str, quiet: bool = False) -> Any: ...
    def new_path(self, stem: str) -> Path: ...
    def warn(self, message: str) -> None: ...


class Realiser:
    """One (IR format, flavour): ``realise`` returns the IR the target's backend compiles, with the plan in it."""

    ir: ClassVar[IRFormat]
    flavour: ClassVar[str]
    description: ClassVar[str]

    def realise(self, source: PlanSource, target: TargetSpec, plan: QuantPlan, progress: Progress, tuning: Any = None) -> IR:
        raise NotImplementedError


def flavour(target: TargetSpec, mode: str, quantizer: str = QuantizerName.SDK) -> str:
    """The flavour of realiser a ``mode`` (static / dynamic) plan of ``quantizer`` needs on ``target``: the quantizer's own
    where it chose the ranges, else the target's QDQ layout (static ONNX), dynamic INT8, or its PT2E quantizer."""
    if quantizer != QuantizerName.SDK:
        return quantizer
    if target.ir == IRFormat.TORCH:
        if target.pt2e_quantizer is None:
            raise InputError(f"{target.name} names no PT2E quantizer: its backend must declare pt2e_quantizer")
        return f"pt2e-{target.pt2e_quantizer}"
    return f"qdq-{target.qdq_layout}" if mode == PlanMode.STATIC else "dynamic"


@lru_cache(maxsize=1)
def _loaded() -> tuple[dict[tuple[IRFormat, str], Realiser], dict[str, str]]:
    found: dict[tuple[IRFormat, str], Realiser] = {}
    classes, errors = load_group(GROUP, Realiser)
    for name, cls in classes.items():
        key = (IRFormat(cls.ir), cls.flavour)
        if key in found:
            errors[name] = f"a realiser for {key[0].value} / {key[1]} is already registered ({type(found[key]).__name__}); {cls.__module__} "\
                           "is not used"
            continue
        found[key] = cls()
    return found, errors


def realisers() -> dict[tuple[IRFormat, str], Realiser]:
    return dict(_loaded()[0])


def load_errors() -> dict[str, str]:
    return dict(_loaded()[1])


def describe(target: TargetSpec) -> dict[str, str] | None:
    """Which realiser each quantizer ``target`` takes would use, for listings (None: a float target)."""
    if not target.precision.quantized:
        return None
    found = _loaded()[0]
    out = {}
    for q in target.quantizers:
        key = (target.ir, flavour(target, target.precision.quant_mode, q))
        out[q] = f"{key[0].value} / {key[1]}" + ("" if key in found else " (not installed)")
    return out


def realiser_for(target: TargetSpec, plan: QuantPlan) -> Realiser:
    key = (target.ir, flavour(target, plan.mode, of_plan(plan.quantizer).name))
    found, errors = _loaded()
    if key not in found:
        broken = f" (realisers that failed to load: {'; '.join(errors.values())})" if errors else ""
        raise InputError(f"no quantization realiser for {key[0].value} / {key[1]} ({target.name}){broken}: install the package that "
                         f"provides it, or pick another target")
    return found[key]

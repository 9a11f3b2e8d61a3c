"""Compression passes: the algorithms that make a model or its INT8 plan easier to quantize, as plugins.

A pass is a class with a name, a phase, its settings switch, ``applies_to``, ``run`` and ``report_lines``, found through
the entry-point group ``compressor.passes`` (the built-in ones registered in pyproject.toml as a plugin's would be). The
quantization stage runs the enabled passes of each phase in order and records each one's result in the plan
(``plan.transforms[name]``), which the manifest, REPORT.md and the terminal show through the pass's own ``report_lines``.

- ``float`` passes change the float model before any plan is made (cross-layer equalization and scale migration): every
  realiser then starts from the changed model, which must compute the same function.
- ``plan`` passes edit a calibrated static plan (bias correction; a plugin's weight or scale rounding): every realiser
  writes the edited plan.
- ``weight`` passes are the weight-only quantization of decoder LMs (AWQ, scale estimation, GPTQ): the block-by-block
  stage (:mod:`compressor.quantization.weight_only.stage`) runs them through :class:`WeightPass`'s three hooks.

A built-in pass is switched by its own settings field (``--bias-correction``); any pass, a plugin's included, also runs when
named with ``--pass NAME``. Adding a pass is its module and one entry-point line.
"""

from __future__ import annotations

import importlib.metadata
from functools import lru_cache
from typing import Any, ClassVar

from compressor.core.errors import InputError
from compressor.core.plugins import load_group

GROUP = "compressor.passes"
FLOAT, PLAN, WEIGHT = "float", "plan", "weight"
PHASES = (FLOAT, PLAN, WEIGHT)


class CompressionPass:
    name: ClassVar[str]
    phase: ClassVar[str]  # FLOAT | PLAN
    order: ClassVar[int] = 100  # within its phase, lower first
    description: ClassVar[str]
    #: the QuantizationSettings field that switches it on (a built-in's own flag); None: only by --pass NAME
    switch: ClassVar[str | None] = None
    #: how a person turns it on, where the switch alone does not say (listed by `compressor targets`)
    on_by: ClassVar[str | None] = None

    def enabled(self, settings) -> bool:
        return self.name in settings.passes or bool(self.switch and getattr(settings, self.switch))

    def applies_to(self, stage, plan=None) -> tuple[bool, str]:
        """(True, "") when it can run on this stage's model (and ``plan``), else (False, why): the why is recorded."""
        return True, ""

    def run(self, stage, plan=None) -> dict[str, Any]:
        """Do the work; return the record kept in ``plan.transforms[name]`` (``applied`` says whether it changed anything)."""
        raise NotImplementedError

    def report_lines(self, record: dict[str, Any]) -> list[str]:
        """Markdown bullet lines for REPORT.md and the terminal."""
        why = record.get("reason")
        return [f"- {self.name}: {'applied' if record.get('applied') else 'not applied'}" + (f" ({why})" if why else "")]


@lru_cache(maxsize=1)
def _loaded() -> tuple[dict[str, CompressionPass], dict[str, str]]:
    classes, errors = load_group(GROUP, CompressionPass)
    found = {}
    for ep_name, cls in classes.items():
        if getattr(cls, "phase", None) not in PHASES:
            errors[ep_name] = f"{cls.__module__}.{cls.__name__}.phase must be one of {', '.join(PHASES)}"
            continue
        found[cls.name] = cls()
    return dict(sorted(found.items(), key=lambda kv: (PHASES.index(kv[1].phase), kv[1].order, kv[0]))), errors


def registered() -> dict[str, CompressionPass]:
    """Every pass that loaded, float passes first, each phase in order."""
    return dict(_loaded()[0])


def load_errors() -> dict[str, str]:
    return dict(_loaded()[1])


def names() -> list[str]:
    """The installed passes' names, without importing them (for --help)."""
    return sorted(ep.name for ep in importlib.metadata.entry_points(group=GROUP))


class WeightPass(CompressionPass):
    r"""A weight-only pass for decoder LMs. Per block, on its calibration statistics, the stage calls ``transform`` of every
    enabled pass (a float change that keeps the block's function: AWQ's scaling), then per linear layer the first pass
    that ``fit``\ s a grid (else the range fit) and the first that ``round``\ s the codes (else round to nearest). ``switch``
    names the :class:`~compressor.quantization.weight_only.settings.WeightOnlySettings` field that turns it on."""

    phase = WEIGHT
    quantized_inputs = False  # True: its statistics must come from inputs that passed the blocks already quantized

    def enabled(self, settings) -> bool:
        return self.name in getattr(settings, "passes", ()) or bool(self.switch and getattr(settings, self.switch, False))

    def transform(self, block, stats, bits_of, settings) -> dict[str, float]:
        """Change the block's float weights (its function kept); returns a per-layer value for the plan (AWQ: α)."""
        return {}

    def fit(self, w, grid, h_diag):
        """(scale, zero) for ``w`` on ``grid`` given the input energy ``h_diag`` (None: no calibration), or None to pass."""
        return None

    def round(self, w, h, scale, zero, grid):
        """The codes of ``w`` on the fixed grid given the input Hessian ``h`` (None: no calibration), or None to pass."""
        return None

    def round_shared(self, ws, h, scales, zeros, grid):
        """:meth:`round` for several layers that read the same input (q, k and v; gate and up) and so share ``h``: a list
        of codes, or None to pass. Override it where the layers can be rounded together (GPTQ's column loop)."""
        found = [self.round(w, h, s, z, grid) for w, s, z in zip(ws, scales, zeros)]
        return None if any(q is None for q in found) else found

    def record(self) -> dict[str, Any]:
        """What it did over the whole model (the plan's ``transforms[name]``); empty: nothing to record."""
        return {}

    def run(self, stage, plan=None) -> dict[str, Any]:
        raise TypeError(f"{self.name} is a weight pass: the weight-only stage calls its hooks")


def weight_passes(settings, data_aware: bool) -> list[WeightPass]:
    """The enabled weight passes, in order (fresh instances: each run keeps its own record); none without calibration
    data, since every built-in one reads activation statistics."""
    found = registered()
    unknown = [n for n in getattr(settings, "passes", ()) if n not in found or found[n].phase != WEIGHT]
    if unknown:
        raise InputError(f"lm.passes {', '.join(unknown)}: no such weight pass is installed (installed: "
                         f"{', '.join(n for n, p in found.items() if p.phase == WEIGHT) or 'none'})")
    return [type(p)() for p in found.values() if p.phase == WEIGHT and data_aware and p.enabled(settings)]


def pipeline(settings, phase: str) -> list[CompressionPass]:
    """The enabled passes of ``phase``, in order; a --pass name that no installed pass has is refused."""
    found = registered()
    unknown = [n for n in settings.passes if n not in found]
    if unknown:
        broken = load_errors()
        raise InputError(f"--pass {', '.join(unknown)}: no such pass is installed (installed: {', '.join(found) or 'none'})"
                         + (f"; failed to load: {'; '.join(f'{k} ({v})' for k, v in broken.items())}" if broken else ""))
    return [p for p in found.values() if p.phase == phase and p.enabled(settings)]


def run_phase(stage, settings, phase: str, plan=None) -> dict[str, dict]:
    """Run the enabled passes of ``phase`` on ``stage`` (and ``plan``): {name: record}, in the order they ran."""
    records = {}
    for p in pipeline(settings, phase):
        ok, why = p.applies_to(stage, plan)
        records[p.name] = p.run(stage, plan) if ok else {"applied": False, "reason": f"not attempted: {why}"}
        records[p.name].setdefault("phase", phase)
    return records


def report_lines(transforms: dict[str, Any]) -> list[str]:
    """Every recorded pass's lines, in pipeline order (records of passes not installed here are named, not lost)."""
    found = registered()
    lines = []
    for name, record in transforms.items():
        if not isinstance(record, dict) or name == "qat":
            continue
        p = found.get(name)
        lines += p.report_lines(record) if p is not None else [f"- {name}: {record}"]
    return lines

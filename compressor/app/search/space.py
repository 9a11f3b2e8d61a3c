"""The search space: which candidates a trial may propose, after dropping what cannot run.

A *choice* is a concrete target with its precision plan: ``ort-cpu-fp32``, ``ort-cpu-int8``, ``ort-cpu-int8+auto`` (mixed
precision under the accuracy budget). Each listed target stands for its runtime (backend and device); the runtime is tried
at every plan of ``search.space.precisions`` through its sibling targets. A point is a choice, a pruning amount and, for
static INT8 plans, a calibration method and QAT off/on. Trials suggest these as optuna parameters (define-by-run, so the
INT8-only ones are conditional).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from compressor.core.errors import InputError, TargetError
from compressor.core.registry import catalogue, get_target, package_missing, runs_here
from compressor.core.targets import Precision, TargetSpec

AUTO = "+auto"


@dataclass(frozen=True)
class Point:
    choice: str  # a target name, with "+auto" for mixed precision
    prune: float = 0.0  # fraction of MACs removed
    calibration: str | None = None  # static INT8 plans only
    qat: bool | None = None  # static INT8 plans only

    @property
    def target(self) -> str:
        return self.choice.removesuffix(AUTO)

    @property
    def auto(self) -> bool:
        return self.choice.endswith(AUTO)

    @property
    def key(self) -> str:
        return json.dumps([self.choice, self.prune, self.calibration, self.qat])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        parts = [self.choice.replace(AUTO, " (auto mixed)")]
        if self.prune:
            parts.append(f"pruned {self.prune:.0%} MACs")
        if self.calibration:
            parts.append(self.calibration)
        if self.qat:
            parts.append("QAT")
        return ", ".join(parts)


def _static(spec: TargetSpec) -> bool:
    return spec.precision == Precision.INT8


def _sibling(spec: TargetSpec, precision: Precision) -> TargetSpec | None:
    if spec.precision == precision:
        return spec
    return next((t for t in catalogue().values() if t.backend == spec.backend and t.device == spec.device
                 and t.precision == precision), None)


@dataclass
class Space:
    choices: list[str]  # concrete targets (and +auto plans), in order
    prune: list[float]
    calibrations: list[str]
    qat: list[bool]
    baselines: list[Point]  # the plain `compress` of each listed target (evaluated first: what the search must beat)
    dropped: list[str]  # what was left out and why, for the user
    notes: list[str]  # what the user should know about what was kept

    def quantized_static(self, choice: str) -> bool:
        return _static(get_target(choice.removesuffix(AUTO)))

    def points(self) -> list[Point]:
        """Every point, in a fixed order (the grid sampler's)."""
        out = []
        for c in self.choices:
            for p in self.prune:
                if self.quantized_static(c):
                    out += [Point(c, p, cal, q) for cal in self.calibrations for q in self.qat]
                else:
                    out.append(Point(c, p))
        return out

    def suggest(self, trial) -> Point:
        """The point of an optuna trial (enqueued trials answer with their fixed parameters)."""
        choice = trial.suggest_categorical("target", self.choices)
        prune = trial.suggest_categorical("prune_macs", self.prune)
        if not self.quantized_static(choice):
            return Point(choice, prune)
        return Point(choice, prune, trial.suggest_categorical("calibration", self.calibrations), trial.suggest_categorical("qat", self.qat))

    @staticmethod
    def params(point: Point) -> dict[str, Any]:
        """The optuna parameters that make a trial propose ``point`` (for enqueue_trial)."""
        out: dict[str, Any] = {"target": point.choice, "prune_macs": point.prune}
        if point.calibration is not None:
            out.update(calibration=point.calibration, qat=point.qat)
        return out

    def describe(self) -> dict[str, Any]:
        return {"choices": self.choices, "prune_macs": self.prune, "calibrations": self.calibrations, "qat": self.qat,
                "baselines": [b.key for b in self.baselines]}


def build_space(config, executor_gpus: bool, status) -> Space:
    """The space of ``config.search`` on this machine (or cluster). ``status(spec) -> (ok, why)``: whether a target can be built
    here (its backend, the data it needs); ``executor_gpus``: the executor has GPU nodes (GPU targets are measured there)."""
    s = config.search
    sp = s.space
    cat = catalogue()
    names = list(s.targets)
    if names == ["all"]:
        names = [t.name for t in cat.values() if not t.reference]
    for n in names:
        if n not in cat:
            raise TargetError(f"unknown target '{n}' in --targets: known targets are {', '.join(cat)}")
    dropped: list[str] = []
    notes: list[str] = []
    has_train = bool(config.finetune.data)
    accuracy_budget = config.gate.active
    choices: list[str] = []
    runnable: dict[str, bool] = {}

    def usable(spec: TargetSpec) -> str | None:
        if spec.name not in runnable:
            ok, why = status(spec)
            if ok:
                runs, why_not = runs_here(spec)
                if not runs and not (executor_gpus and spec.device.value == "gpu"):
                    ok, why = False, f"built here but cannot run here ({why_not}); its latency and accuracy could not be measured"
            runnable[spec.name] = ok
            if not ok:
                dropped.append(f"{spec.name}: {why}")
        return None if runnable[spec.name] else "dropped"

    groups_seen: set[tuple] = set()
    for n in names:
        spec = cat[n]
        group = (spec.backend, spec.device)
        if group in groups_seen and n not in s.targets:
            continue
        groups_seen.add(group)
        for plan in sp.precisions:
            if plan in ("fp32", "bf16"):
                sib = _sibling(spec, Precision(plan))
            elif spec.precision == Precision.INT8_DYNAMIC and plan == "int8":
                sib = spec
            else:
                sib = _sibling(spec, Precision.INT8)
            if sib is None:
                if n in s.targets:
                    dropped.append(f"{n} at {plan}: its runtime has no {plan} target")
                continue
            if usable(sib):
                continue
            if plan == "auto":
                if not accuracy_budget:
                    dropped.append(f"{sib.name}+auto: mixed precision chooses layers against an accuracy budget; add "
                                   "--max-accuracy-drop, --min-agreement or --min-cosine")
                    continue
                if not config.benchmark.enabled:
                    dropped.append(f"{sib.name}+auto: mixed precision keeps the fastest passing plan, so it needs the benchmark")
                    continue
            choice = sib.name + (AUTO if plan == "auto" else "")
            if choice not in choices:
                choices.append(choice)
    prune = list(sp.prune_macs)
    if any(prune) and package_missing("torch_pruning"):
        dropped.append(f"pruning {', '.join(f'{p:g}' for p in prune if p)}: {package_missing('torch_pruning')}")
        prune = [p for p in prune if not p]
    elif any(prune) and not has_train:
        notes.append("pruned candidates are not fine-tuned: pass --finetune DATA to recover their accuracy")
    qat = list(dict.fromkeys(sp.qat))
    if True in qat and not has_train:
        dropped.append("QAT: needs training data (--finetune DATA)")
        qat = [q for q in qat if not q]
    if True in qat and not config.quantization.capabilities.supports_qat:
        dropped.append(f"QAT: trains the SDK's plan, not --quantizer {config.quantization.quantizer}")
        qat = [q for q in qat if not q]
    if not choices or not prune or not qat:
        what = "targets" if not choices else "pruning amounts" if not prune else "QAT settings"
        raise InputError(f"the search space is empty here (no {what} left): " + "; ".join(dropped)
                         + " — list other --targets, or give the data they need")
    default_cal = config.quantization.calibration
    calibrations = list(dict.fromkeys([*sp.calibrations, default_cal]))
    baselines = []
    for n in names:
        if n in s.targets and n in choices:
            static = _static(cat[n])
            baselines.append(Point(n, 0.0 if 0.0 in prune else prune[0], default_cal if static else None,
                                   (False if False in qat else qat[0]) if static else None))
    return Space(choices, prune, calibrations, qat, baselines, dropped, notes)

"""The search space: which candidates a trial may propose, after dropping what cannot run.

A *choice* is a concrete target with its precision plan: ``ort-cpu-fp32``, ``ort-cpu-int8``, ``ort-cpu-int8+auto`` (mixed
precision under the accuracy budget). Each listed target stands for its runtime (backend and device); the runtime is tried
at every plan of ``search.space.precisions`` through its sibling targets. A point is a choice and a value of each search
dimension that applies to it: the settings fields that declare one (:mod:`compressor.core.searchable`; by default a pruning
amount and, for static INT8 plans, a calibration method and QAT off/on). Trials suggest these as optuna parameters
(define-by-run, so the INT8-only ones are conditional).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from compressor.app.search_settings import BY_NAME, DIMENSIONS
from compressor.core.errors import InputError, TargetError
from compressor.core.registry import catalogue, get_target, package_missing, runs_here
from compressor.core.searchable import Dimension
from compressor.core.targets import Precision, TargetSpec
from compressor.quantization.quantizers import which_can

AUTO = "+auto"


@dataclass(frozen=True)
class Point:
    choice: str  # a target name, with "+auto" for mixed precision
    values: tuple[tuple[str, Any], ...] = ()  # (dimension name, value) for each search dimension that applies to the choice

    @classmethod
    def of(cls, data: dict[str, Any]) -> Point:
        """The point of :meth:`to_dict`'s mapping (a trial's record)."""
        rest = dict(data)
        return cls(rest.pop("choice"), tuple(rest.items()))

    @property
    def target(self) -> str:
        return self.choice.removesuffix(AUTO)

    @property
    def auto(self) -> bool:
        return self.choice.endswith(AUTO)

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.values).get(name, default)

    @property
    def key(self) -> str:
        return json.dumps([self.choice, sorted(self.values)])

    def to_dict(self) -> dict[str, Any]:
        return {"choice": self.choice, **dict(self.values)}

    def label(self) -> str:
        parts = [self.choice.replace(AUTO, " (auto mixed)")]
        parts += [BY_NAME[n].searchable.describe(v) for n, v in self.values if n in BY_NAME]
        return ", ".join(p for p in parts if p)


def _static(spec: TargetSpec) -> bool:
    return spec.precision == Precision.INT8


def static_plan(choice: str) -> bool:
    """Whether a choice (a target, or a target with "+auto") is a static INT8 plan: it has the static-INT8-only dimensions."""
    return _static(get_target(choice.removesuffix(AUTO)))


def _sibling(spec: TargetSpec, precision: Precision) -> TargetSpec | None:
    if spec.precision == precision:
        return spec
    return next((t for t in catalogue().values() if t.backend == spec.backend and t.device == spec.device
                 and t.precision == precision), None)


@dataclass
class Space:
    choices: list[str]  # concrete targets (and +auto plans), in order
    dimensions: list[tuple[Dimension, list]]  # the searched dimensions and the values tried, in declaration order
    baselines: list[Point]  # the plain `compress` of each listed target (evaluated first: what the search must beat)
    dropped: list[str]  # what was left out and why, for the user
    notes: list[str]  # what the user should know about what was kept

    def applying(self, choice: str) -> list[tuple[Dimension, list]]:
        """The dimensions a point of ``choice`` has (the static-INT8-only ones only for static INT8 plans)."""
        static = static_plan(choice)
        return [(d, v) for d, v in self.dimensions if d.searchable.applies(static)]

    def points(self) -> list[Point]:
        """Every point, in a fixed order (the grid sampler's)."""
        out = []
        for c in self.choices:
            dims = self.applying(c)
            out += [Point(c, tuple(zip([d.name for d, _ in dims], combo))) for combo in itertools.product(*[v for _, v in dims])]
        return out

    def suggest(self, trial) -> Point:
        """The point of an optuna trial (enqueued trials answer with their fixed parameters)."""
        choice = trial.suggest_categorical("target", self.choices)
        return Point(choice, tuple((d.name, trial.suggest_categorical(d.name, v)) for d, v in self.applying(choice)))

    @staticmethod
    def params(point: Point) -> dict[str, Any]:
        """The optuna parameters that make a trial propose ``point`` (for enqueue_trial)."""
        return {"target": point.choice, **dict(point.values)}

    def summary(self) -> str:
        """``3 target plans × 3 pruning × 2 calibration × 2 QAT`` (the static-INT8-only factors when a static plan is listed)."""
        static = any(static_plan(c) for c in self.choices)
        return " × ".join([f"{len(self.choices)} target plans"] + [f"{len(v)} {d.searchable.what}" for d, v in self.dimensions
                                                                   if d.searchable.applies(static)])

    def describe(self) -> dict[str, Any]:
        return {"choices": self.choices, **{d.searchable.key: v for d, v in self.dimensions},
                "baselines": [b.key for b in self.baselines]}


def _dimension_values(config, dimension: Dimension, values: list, dropped: list[str], notes: list[str]) -> list:
    """``values`` less those this machine and run cannot try (each left out with its reason, in ``dropped``)."""
    s = dimension.searchable
    active = [v for v in values if s.active(v)]
    if not active:
        return values
    why = None
    if s.package and package_missing(s.package):
        why = package_missing(s.package)
    elif s.training == "needs" and not config.finetune.data:
        why = "needs training data (--finetune DATA)"
    elif s.capability and not getattr(config.quantization.capabilities, s.capability):
        why = f"--quantizer {config.quantization.quantizer} does not support it (use {which_can(s.capability)})"
    if why is None:
        if s.training == "recovers" and not config.finetune.data:
            notes.append(f"{s.what} candidates are not fine-tuned: pass --finetune DATA to recover their accuracy")
        return values
    dropped.append(f"{s.what} {', '.join(str(v) for v in active)}: {why}")
    return [v for v in values if v not in active]


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
    dimensions: list[tuple[Dimension, list]] = []
    for d in DIMENSIONS:
        values = sp.values(d)
        if values is not None:
            dimensions.append((d, _dimension_values(config, d, list(values), dropped, notes)))
    empty = next((d.searchable.what for d, v in dimensions if not v), None)
    if not choices or empty:
        raise InputError(f"the search space is empty here (no {'targets' if not choices else empty + ' values'} left): "
                         + "; ".join(dropped) + " — list other --targets, or give the data they need")
    space = Space(choices, dimensions, [], dropped, notes)
    for n in names:
        if n in s.targets and n in choices:
            baseline = []
            for d, values in space.applying(n):
                current = d.current(getattr(config, d.section))
                baseline.append((d.name, current if current in values else values[0]))
            space.baselines.append(Point(n, tuple(baseline)))
    return space

"""Per-layer sensitivity of a quantization stage's plans: each layer alone measured on a runtime the caller supplies, and the
QDQ simulation that measures plans fast (only the part of the graph a plan changes is run, see :mod:`.suffix`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from compressor.core.errors import InputError
from compressor.core.targets import PlanMode
from compressor.data.feeds import calibration_feeds
from compressor.quantization.plan import QuantPlan

#: measure(plans) -> each realised plan's first output on the sensitivity feeds, concatenated, in order
Measure = Callable[[Sequence[QuantPlan]], Iterator[np.ndarray]]


class Simulation:
    def __init__(self, stage):
        self.stage = stage
        self._sens_feeds: list[dict] | None = None
        self._held: dict[int, tuple[Any, Any]] = {}  # id(float graph) → (that graph, its HeldWeights)

    def feeds(self) -> list[dict[str, np.ndarray]]:
        if self._sens_feeds is None:
            source = self.stage.analysis if self.stage.analysis is not None else self.stage.calib
            if source is None:
                raise InputError("per-layer sensitivity needs data: pass --eval DATA (or --calib DATA)")
            self._sens_feeds = calibration_feeds(source, self.stage.model.inputs, min(len(source), self.stage.settings.sensitivity_samples))
        return self._sens_feeds

    def simulate(self, plans: Sequence[QuantPlan]) -> Iterator[np.ndarray]:
        """The first output of each plan realised as QDQ/dynamic ONNX and run by the SDK's ONNX executor on the
        sensitivity feeds, in order. The float graph's weights stay outside each realised copy except those the plan
        quantizes (one layer's, in per-layer sensitivity) and every session shares them; and each plan runs only the
        part of its graph it changes, fed by one pass of the float graph made in segments (:mod:`.suffix`)."""
        from compressor.quantization.onnx_exec import element_types, run_model
        from compressor.quantization.qdq import realize_dynamic, realize_static
        from compressor.quantization.suffix import FloatStream, changed_part, sub_model

        feeds = self.feeds()
        work = []
        for plan in plans:
            fmodel = self.stage.float_for(plan)
            held = self._held_weights(fmodel)
            qmodel = (realize_static if plan.mode == PlanMode.STATIC else realize_dynamic)(held.with_data(self._read_by(plan)), plan)
            work.append((fmodel, held, qmodel, changed_part(qmodel, held.skeleton)))
        streams: dict[int, FloatStream] = {}
        for fmodel, held, qmodel, part in work:
            if part is None:
                yield np.concatenate([r["__outputs__"][0] for r in run_model(qmodel, feeds, [], self.stage.threads, held)])
                continue
            if id(fmodel) not in streams:
                wanted = [p.float_reads for f, _, _, p in work if f is fmodel and p is not None]
                streams[id(fmodel)] = FloatStream(held.skeleton, feeds, lambda m, fl, names, h=held: run_model(m, fl, names, self.stage.threads, h),
                                                  wanted, element_types(fmodel))
            values = streams[id(fmodel)].get(part.float_reads)
            if part.output_from_float:
                yield np.concatenate([v[part.output_from_float] for v in values])
                continue
            model = sub_model(qmodel, part.nodes, {q: values[0][f] for q, f in part.boundary.items()}, part.outputs,
                              element_types(qmodel, inferred=False))
            runs = run_model(model, [{q: v[f] for q, f in part.boundary.items()} for v in values], [], self.stage.threads, held)
            yield np.concatenate([r["__outputs__"][0] for r in runs])

    def _held_weights(self, model):
        from compressor.quantization.onnx_exec import HeldWeights

        if id(model) not in self._held:
            self._held[id(model)] = (model, HeldWeights(model))
        return self._held[id(model)][1]

    def _read_by(self, plan: QuantPlan) -> list[str]:
        """The initializers a realiser reads for ``plan``: the inputs of its quantized layers' nodes."""
        nodes = {l.node for l in plan.quantized_layers}
        return [i for n in self.stage.float_for(plan).graph.node if n.name in nodes for i in n.input]

    def sensitivity(self, plan: QuantPlan, measure: Measure, runtime: str) -> dict[str, Any]:
        """Each INT8 layer of ``plan`` alone, measured by ``measure`` (the target's runtime), against the float
        graph on the same samples; plus each layer's output SQNR in the full plan (QDQ simulation, where the
        plan has ranges)."""
        from compressor.quantization.qdq import realize_static
        from compressor.quantization.sensitivity import analyse

        feeds = self.feeds()
        simulate = None
        if plan.mode == PlanMode.STATIC and plan.activations:
            def simulate(p: QuantPlan, names: list[str]) -> list[dict]:
                return self.stage.run(realize_static(self.stage.float_for(p), p), feeds, names)
        layers = plan.int8_layers
        with self.stage.progress.bar(f"per-layer sensitivity on {runtime} ({len(layers)} layers)", total=len(layers) + 1) as advance:
            return analyse(plan, feeds, lambda names: self.stage.run(self.stage.float_for(plan), feeds, names), measure, simulate,
                           progress=advance, task=self.stage.task, runtime=runtime)

"""The quantization stage: one model's plans for every target built from it in a run, and their realisations.

- **Plan once.** Structure comes from the float ONNX graph; ranges from one calibration pass over the union
  of the tensors every requested realiser needs: the QDQ plan's own, plus those a PT2E quantizer observes
  (matched by value to ONNX tensors, see :mod:`.pt2e`). Register realisers with :meth:`want_pt2e` before
  the first :meth:`plan` so one calibration serves them all.
- **Realise per IR format.** QDQ or dynamic ONNX (ONNX Runtime, OpenVINO, TensorRT read that layout), a
  PT2E-quantized torch program (ExecuTorch), or NNCF's own OpenVINO model when asked for.
- **Sensitivity** measures each layer alone on whatever runs the realised plan (the target's own runtime,
  supplied by the caller), with the per-layer SQNR of the full plan from the QDQ simulation.

Backends never get here: they receive the realised IR.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.backend import IR
from compressor.core.errors import ExportError, InputError
from compressor.core.model import ModelHandle
from compressor.core.progress import Progress
from compressor.core.targets import IRFormat, PlanMode, TargetSpec
from compressor.data.context import RunContext
from compressor.data.feeds import calibration_feeds, first_samples
from compressor.quantization.pipeline import FLOAT, PLAN, run_phase
from compressor.quantization.plan import QuantPlan
from compressor.quantization.quantizers import QuantizerName
from compressor.quantization.realiser import realiser_for
from compressor.quantization.settings import DEFAULT_CALIB_SAMPLES, QuantizationSettings
from compressor.quantization.simulation import Simulation

#: the PT2E flavour captured with a strict torch.export first (see QuantizationStage.capture)
STRICT_FLAVOUR = "x86_inductor"


class QuantizationStage:
    def __init__(self, model: ModelHandle, float_onnx: Path, settings: QuantizationSettings, ctx: RunContext | None = None, qat=None):
        """``ctx``: the run's progress, warnings, threads, task and data (calibration data for the plans; the eval data, held out,
        for per-layer sensitivity); ``qat``: a QatResult, whose trained model this is and whose learned ranges static plans take."""
        ctx = ctx or RunContext()
        # the model as given (dynamic INT8 and NNCF start from it), and the one static plans start from: the same,
        # or its equalized / scale-migrated copy (see the float passes)
        self.original, self.original_onnx = model, Path(float_onnx)
        self.model = model
        self.float_onnx = Path(float_onnx)
        self.settings = settings
        self.ctx = ctx
        self.calib = ctx.calib
        self.calib_samples = ctx.calib_samples or DEFAULT_CALIB_SAMPLES
        self.progress, self.warn, self.threads, self.task = ctx.progress, ctx.warn, ctx.threads, ctx.task
        self.analysis = ctx.eval_data  # held-out data for sensitivity (the eval data in a run), else the calibration data
        self.qat = qat
        self._float = None
        self._original_float = None
        self._plans: dict[str, QuantPlan] = {}
        self._pt2e: set[str] = set()
        self._index = None
        self._feeds: list[dict] | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="compressor-quant-")
        self._n = 0
        self._transformed = False
        self.transforms: dict[str, Any] = {}  # what the float passes did
        self.simulation = Simulation(self)

    # --- inputs ------------------------------------------------------------------------------------

    @property
    def float_model(self):
        """The float graph static plans are made on (transformed where that helped)."""
        if self._float is None:
            import onnx

            self._float = onnx.load(str(self.float_onnx))
        return self._float

    @property
    def original_float(self):
        """The float graph as exported from the model as given (dynamic INT8 and NNCF start from it)."""
        if self.original_onnx == self.float_onnx:
            return self.float_model
        if self._original_float is None:
            import onnx

            self._original_float = onnx.load(str(self.original_onnx))
        return self._original_float

    def float_for(self, plan: QuantPlan):
        return self.float_model if plan.mode == PlanMode.STATIC and plan.quantizer == QuantizerName.SDK else self.original_float

    def run(self, model, feeds, names):
        from compressor.quantization.onnx_exec import run_model

        return run_model(model, feeds, names, self.threads)

    def calib_feeds(self) -> list[dict[str, np.ndarray]]:
        from compressor.quantization.ptq import check_calibration

        if self._feeds is None:
            if self.calib is None:
                raise InputError("static INT8 needs calibration data: pass --calib DATA (representative inputs, 100+ samples), "
                                 "or --synthetic (then marked synthetic)")
            n = min(len(self.calib), self.calib_samples)
            check_calibration(n)
            self._feeds = calibration_feeds(self.calib, self.model.inputs, n)
        return self._feeds

    def first_calib_feeds(self, n: int) -> list[dict[str, np.ndarray]]:
        """The first calibration batches holding at least ``n`` samples."""
        return first_samples(self.calib_feeds(), n)

    def _samples(self) -> int:
        return min(len(self.calib), self.calib_samples) if self.calib is not None else 0

    def torch_batch(self, feeds: dict[str, np.ndarray]) -> tuple:
        import torch

        return tuple(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.model.input_names)

    def probe_feed(self) -> dict[str, np.ndarray]:
        first = self.calib_feeds()[0]
        if self.model.inputs[0].dims[0].dynamic:
            return {k: v[:1] for k, v in first.items()}
        return first

    def modules(self) -> set[str]:
        return {n for n, _ in self.model.module.named_modules()} if hasattr(self.model.module, "named_modules") else set()

    def tensor_index(self):
        """Fingerprints of every float tensor of the float graph on the probe batch (for PT2E value matching)."""
        if self._index is None:
            from compressor.quantization.onnx_exec import float_tensors
            from compressor.quantization.pt2e import TensorIndex

            names = float_tensors(self.float_model)
            values = self.run(self.float_model, [self.probe_feed()], names)[0]
            values.pop("__outputs__")
            self._index = TensorIndex.build(values)
        return self._index

    # --- realisers to plan for ---------------------------------------------------------------------

    def want_pt2e(self, flavour: str) -> None:
        """A PT2E realiser of this flavour will run: calibrate the tensors its quantizer observes too."""
        if flavour in self._pt2e:
            return
        self._pt2e.add(flavour)
        if "static" in self._plans:  # planned before this realiser was announced: its tensors need a second calibration
            self.progress.note(f"  the {flavour} PT2E quantizer was not announced before calibrating: calibrating again")
            self._plans.pop("static")

    # --- float transforms ----------------------------------------------------------------------------

    def _transform(self) -> None:
        """The float passes (equalization, scale migration, a plugin's), once, before any plan: every realiser then starts from
        the same transformed model."""
        if not self._transformed:
            self._transformed = True
            self.transforms = run_phase(self, self.settings, FLOAT)

    def adopt_float_model(self, module, what: str) -> None:
        """A float pass's result becomes the model static plans start from (exported again to ONNX)."""
        from compressor.io.export_onnx import export_onnx

        self.model = ModelHandle(module=module, inputs=self.model.inputs, output_names=list(self.model.output_names),
                                 preprocessing=self.model.preprocessing, source=self.model.source)
        path = self.new_path("transformed")
        with self.progress.stage(f"exported {what}"):
            export_onnx(self.model, path)
        self.float_onnx, self._float, self._index = path, None, None

    # --- plans -------------------------------------------------------------------------------------

    def plan(self, mode: str) -> QuantPlan:
        """The plan for ``static`` or ``dynamic`` quantization, made once."""
        if mode == PlanMode.STATIC:
            self._transform()
        if mode not in self._plans:
            plan = self._static_plan() if mode == PlanMode.STATIC else self._dynamic_plan()
            self._plans[mode] = self.qat.apply(plan) if self.qat is not None and mode == PlanMode.STATIC else plan
        return self._plans[mode]

    def _dynamic_plan(self) -> QuantPlan:
        from compressor.quantization.ptq import dynamic_plan

        plan = dynamic_plan(self.original_float, self.original.module, self.settings, warn=self.warn)
        if self.analysis is not None or self.calib is not None:
            from compressor.quantization.ptq import keep_heavy_tailed_inputs_float

            keep_heavy_tailed_inputs_float(self.original_float, plan, self.simulation.feeds())
        return plan

    def _static_plan(self) -> QuantPlan:
        from compressor.quantization.ptq import static_plan, static_structure

        feeds = self.calib_feeds()
        structure = static_structure(self.float_model, self.model.module, self.settings, warn=self.warn)
        extra: list[str] = []
        if self._pt2e:
            from compressor.quantization.pt2e import observed_tensors

            probe_plan = self._structure_plan(structure)
            for flavour in sorted(self._pt2e):
                extra += observed_tensors(self.capture(flavour), flavour, probe_plan, self.modules(), self.torch_batch(self.probe_feed()),
                                          self.tensor_index())
        n = self._samples()
        steps = len(feeds) * (1 if self.settings.calibration == "minmax" else 2)
        with self.progress.bar(f"calibrated {n} samples ({self.settings.calibration})", total=steps) as advance:
            plan = static_plan(self.float_model, self.model.module, self.settings, feeds,
                               lambda f, names: self.run(self.float_model, [f], names)[0], progress=advance, warn=self.warn,
                               samples=n, extra_tensors=extra, structure=structure)
        if self.calib is not None and self.calib.synthetic:
            plan.warnings.append("calibrated on synthetic (random) data: scales may not fit real inputs")
        plan.transforms = {**self.transforms, **run_phase(self, self.settings, PLAN, plan)}
        return plan

    def _structure_plan(self, structure) -> QuantPlan:
        from compressor.quantization.ptq import _layers

        s, _ = structure
        return QuantPlan(mode=PlanMode.STATIC, activation_dtype="uint8", weight_dtype="int8",
                         calibration={"method": self.settings.calibration, "percentile": self.settings.percentile},
                         layers=_layers(self.float_model, s, False))

    def nncf_plan(self) -> QuantPlan:
        """The plan NNCF follows (the SDK's structure and exclusions; NNCF's own ranges)."""
        if "nncf" not in self._plans:
            from compressor.quantization.nncf_quantizer import nncf_plan
            from compressor.quantization.ptq import static_structure

            self.calib_feeds()  # refuses missing or too little calibration data, as for the SDK's own plan
            structure, warnings = static_structure(self.original_float, self.original.module, self.settings, warn=self.warn)
            self._plans["nncf"] = nncf_plan(self.original_float, structure, warnings, self._samples(), self.settings.exclude)
        return self._plans["nncf"]

    def inc_plan(self) -> QuantPlan:
        """The plan Intel Neural Compressor follows (the SDK's structure and exclusions; INC's own ranges)."""
        if "inc" not in self._plans:
            from compressor.quantization.inc_quantizer import inc_plan
            from compressor.quantization.ptq import static_structure

            self.calib_feeds()
            structure, warnings = static_structure(self.original_float, self.original.module, self.settings, warn=self.warn)
            self._plans["inc"] = inc_plan(self.original_float, structure, warnings, self._samples(), self.settings.exclude)
        return self._plans["inc"]

    def excluding(self, plan: QuantPlan, names: list[str] | tuple[str, ...], reason: str) -> QuantPlan:
        """``plan`` with the layers ``names`` returned to float (and, as an exclusion would, the tensors only they needed no longer
        quantized); the other ranges, weights and corrections stay as planned (no recalibration)."""
        import copy

        from compressor.quantization.ptq import _layers, static_structure

        if plan.mode != PlanMode.STATIC or plan.quantizer != QuantizerName.SDK:
            raise InputError("returning layers to float applies to the SDK's static INT8 plans")
        graph = self.float_for(plan)
        settings = self.settings.model_copy(update={"exclude": [*self.settings.exclude, *names]})
        structure, warnings = static_structure(graph, self.model.module, settings)
        missing = [t for t in structure.quantized if t not in plan.activations]
        if missing:
            raise InputError(f"returning {len(names)} layer(s) to float would quantize tensor(s) the plan has no range for: {missing[:3]}")
        out = copy.deepcopy(plan)
        before = {l.name: l for l in plan.layers}
        out.layers = _layers(graph, structure, True)
        for layer in out.layers:
            if layer.name in names:
                layer.reason = reason
            elif layer.name in before and layer.precision == "int8":
                layer.bias_correction = before[layer.name].bias_correction
        out.activations = {t: plan.activations[t] for t in structure.quantized}
        out.other_quantized_ops, out.folded, out.exclusions = structure.joining_ops, structure.folded, list(settings.exclude)
        return out

    def plan_for(self, target: TargetSpec) -> QuantPlan:
        if self.settings.quantizer == QuantizerName.NNCF and "nncf" in target.quantizers:
            return self.nncf_plan()
        if self.settings.quantizer == QuantizerName.INC and "inc" in target.quantizers:
            return self.inc_plan()
        return self.plan(target.precision.quant_mode)

    # --- realisers ---------------------------------------------------------------------------------

    def realise(self, target: TargetSpec, plan: QuantPlan | None = None, quiet: bool = False, tuning=None) -> IR:
        """The IR ``target`` compiles, with ``plan`` (default: the stage's plan for it) realised in it
        (``quiet``: no progress lines, e.g. for the many realisations of a sensitivity analysis; ``tuning``: an
        :class:`~compressor.quantization.inc_quantizer.Tuning` for INC's autotune)."""
        progress = Progress(quiet=True) if quiet else self.progress
        if not target.precision.quantized:
            raise InputError(f"{target.name} is {target.precision}: nothing to quantize")
        if self.settings.quantizer != QuantizerName.SDK and self.settings.quantizer not in target.quantizers:
            raise InputError(f"--quantizer {self.settings.quantizer} is not offered for {target.name} "
                             f"(it takes: {', '.join(target.quantizers)})")
        if target.ir == IRFormat.TORCH and target.pt2e_quantizer is not None:
            self.want_pt2e(target.pt2e_quantizer)
        plan = plan if plan is not None else self.plan_for(target)
        return realiser_for(target, plan).realise(self, target, plan, progress, tuning)

    def new_path(self, stem: str) -> Path:
        self._n += 1
        return Path(self._tmp.name) / f"{stem}-{self._n}.onnx"

    def capture(self, flavour: str, quiet: bool = False):
        """The model captured by ``torch.export`` for a PT2E quantizer. The x86 Inductor quantizer gets a strict export
        first (as Intel Neural Compressor's own export does): on a non-strict graph of a residual net its annotation
        fails with "Input partition has more than one output node"."""
        from compressor.io.export_torch import export_program

        if flavour == STRICT_FLAVOUR:
            try:
                return export_program(self.model, strict=True, what="PT2E quantization (strict)").module()
            except ExportError as e:
                if not quiet:
                    self.warn(f"{e}; using a non-strict export instead, which is known to break the x86 Inductor quantizer on "
                              "residual nets ('Input partition has more than one output node'): if INT8 fails, remove what stops "
                              "TorchDynamo in forward (graph breaks, Python side effects)")
        return export_program(self.model, what="PT2E quantization").module()

    def close(self) -> None:
        self._tmp.cleanup()

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.backend import IR
from compressor.core.errors import InputError
from compressor.core.model import ModelHandle
from compressor.core.progress import Progress
from compressor.core.targets import IRFormat, TargetSpec
from compressor.data.feeds import iter_feeds
from compressor.data.sources import DataSource
from compressor.quantization.plan import QuantPlan
from compressor.quantization.settings import DEFAULT_CALIB_SAMPLES, QuantizationSettings

#: measure(plan) -> the first output of the realised plan on the sensitivity feeds, concatenated
Measure = Callable[[QuantPlan], np.ndarray]


def calibration_feeds(data: DataSource, inputs, samples: int) -> list[dict[str, np.ndarray]]:
    """Batches of at most 16 samples (the spec's fixed batch where it has one)."""
    first = inputs[0].dims[0]
    batch = 16 if first.dynamic and first.max >= 16 else (first.value if not first.dynamic else first.max)
    return [feeds for feeds, _ in iter_feeds(data.take(samples), inputs, batch)]


class QuantizationStage:
    def __init__(self, model: ModelHandle, float_onnx: Path, settings: QuantizationSettings, calib: DataSource | None,
                 calib_samples: int | None = None, progress: Progress | None = None, warn: Callable[[str], None] = lambda m: None,
                 threads: int | None = None, analysis: DataSource | None = None, task: str = "auto"):
        self.model = model
        self.float_onnx = Path(float_onnx)
        self.settings = settings
        self.calib = calib
        self.calib_samples = calib_samples or DEFAULT_CALIB_SAMPLES
        self.progress = progress or Progress(quiet=True)
        self.warn = warn
        self.threads = threads
        self.analysis = analysis  # held-out data for sensitivity (the eval data in a run), else the calibration data
        self.task = task
        self._float = None
        self._plans: dict[str, QuantPlan] = {}
        self._pt2e: set[str] = set()
        self._index = None
        self._pt2e_missing: dict[str, int] = {}
        self._feeds: list[dict] | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="compressor-quant-")
        self._n = 0

    # --- inputs ------------------------------------------------------------------------------------

    @property
    def float_model(self):
        if self._float is None:
            import onnx

            self._float = onnx.load(str(self.float_onnx))
        return self._float

    def run(self, model, feeds, names):
        from compressor.quantization.onnx_exec import run_model

        return run_model(model, feeds, names, self.threads)

    def _calib_feeds(self) -> list[dict[str, np.ndarray]]:
        from compressor.quantization.ptq import check_calibration

        if self._feeds is None:
            if self.calib is None:
                raise InputError("static INT8 needs calibration data: pass --calib DATA (representative inputs, 100+ samples), "
                                 "or --synthetic (then marked synthetic)")
            n = min(len(self.calib), self.calib_samples)
            check_calibration(n)
            self._feeds = calibration_feeds(self.calib, self.model.inputs, n)
        return self._feeds

    def _samples(self) -> int:
        return min(len(self.calib), self.calib_samples) if self.calib is not None else 0

    def _torch_batch(self, feeds: dict[str, np.ndarray]) -> tuple:
        import torch

        return tuple(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.model.input_names)

    def _probe_feed(self) -> dict[str, np.ndarray]:
        first = self._calib_feeds()[0]
        if self.model.inputs[0].dims[0].dynamic:
            return {k: v[:1] for k, v in first.items()}
        return first

    def _modules(self) -> set[str]:
        return {n for n, _ in self.model.module.named_modules()} if hasattr(self.model.module, "named_modules") else set()

    def _tensor_index(self):
        """Fingerprints of every float tensor of the float graph on the probe batch (for PT2E value matching)."""
        if self._index is None:
            from compressor.quantization.onnx_exec import float_tensors
            from compressor.quantization.pt2e import TensorIndex

            names = float_tensors(self.float_model)
            values = self.run(self.float_model, [self._probe_feed()], names)[0]
            values.pop("__outputs__")
            self._index = TensorIndex.build(values, prefer=[])
        return self._index

    # --- plans -------------------------------------------------------------------------------------

    def want_pt2e(self, flavour: str) -> None:
        """A PT2E realiser of this flavour will run: calibrate the tensors its quantizer observes too."""
        if flavour in self._pt2e:
            return
        self._pt2e.add(flavour)
        if "static" in self._plans:  # planned before this realiser was announced: its tensors need a second calibration
            self.progress.note(f"  the {flavour} PT2E quantizer was not announced before calibrating: calibrating again")
            self._plans.pop("static")

    def plan(self, mode: str) -> QuantPlan:
        """The plan for ``static`` or ``dynamic`` quantization, made once."""
        if mode not in self._plans:
            self._plans[mode] = self._static_plan() if mode == "static" else self._dynamic_plan()
        return self._plans[mode]

    def _dynamic_plan(self) -> QuantPlan:
        from compressor.quantization.ptq import dynamic_plan

        return dynamic_plan(self.float_model, self.model.module, self.settings, warn=self.warn)

    def _static_plan(self) -> QuantPlan:
        from compressor.quantization.ptq import static_plan, static_structure

        feeds = self._calib_feeds()
        structure = static_structure(self.float_model, self.model.module, self.settings, warn=self.warn)
        extra: list[str] = []
        if self._pt2e:
            from compressor.io.export_torch import export_program
            from compressor.quantization.pt2e import observed_tensors

            probe_plan = self._structure_plan(structure)
            captured = export_program(self.model, what="PT2E quantization").module()
            for flavour in sorted(self._pt2e):
                found, missing = observed_tensors(captured, flavour, probe_plan, self._modules(), self._torch_batch(self._probe_feed()),
                                                  self._tensor_index())
                extra += found
                self._pt2e_missing[flavour] = missing
        n = self._samples()
        steps = len(feeds) * (1 if self.settings.calibration == "minmax" else 2)
        with self.progress.bar(f"calibrated {n} samples ({self.settings.calibration})", total=steps) as advance:
            plan = static_plan(self.float_model, self.model.module, self.settings, feeds,
                               lambda f, names: self.run(self.float_model, [f], names)[0], progress=advance, warn=self.warn,
                               samples=n, extra_tensors=extra, structure=structure)
        if self.calib is not None and self.calib.synthetic:
            plan.warnings.append("calibrated on synthetic (random) data: scales may not fit real inputs")
        return plan

    def _structure_plan(self, structure) -> QuantPlan:
        from compressor.quantization.ptq import _layers

        s, _ = structure
        return QuantPlan(mode="static", activation_dtype="uint8", weight_dtype="int8",
                         calibration={"method": self.settings.calibration, "percentile": self.settings.percentile},
                         layers=_layers(self.float_model, s, False))

    def nncf_plan(self) -> QuantPlan:
        """The plan NNCF follows (the SDK's structure and exclusions; NNCF's own ranges)."""
        if "nncf" not in self._plans:
            from compressor.quantization.nncf_quantizer import nncf_plan
            from compressor.quantization.ptq import check_calibration, static_structure

            if self.calib is None:
                raise InputError("INT8 needs calibration data: pass --calib DATA (100 or more representative inputs recommended)")
            check_calibration(self._samples())
            structure, warnings = static_structure(self.float_model, self.model.module, self.settings, warn=self.warn)
            self._plans["nncf"] = nncf_plan(self.float_model, structure, warnings, self._samples(), self.settings.exclude)
        return self._plans["nncf"]

    def plan_for(self, target: TargetSpec) -> QuantPlan:
        if self.settings.quantizer == "nncf" and "nncf" in target.quantizers:
            return self.nncf_plan()
        return self.plan(target.precision.quant_mode)

    # --- realisers ---------------------------------------------------------------------------------

    def realise(self, target: TargetSpec, plan: QuantPlan | None = None, quiet: bool = False) -> IR:
        """The IR ``target`` compiles, with ``plan`` (default: the stage's plan for it) realised in it
        (``quiet``: no progress lines, e.g. for the many realisations of a sensitivity analysis)."""
        progress = Progress(quiet=True) if quiet else self.progress
        if not target.precision.quantized:
            raise InputError(f"{target.name} is {target.precision}: nothing to quantize")
        if self.settings.quantizer != "sdk" and self.settings.quantizer not in target.quantizers:
            raise InputError(f"--quantizer {self.settings.quantizer} is not offered for {target.name} "
                             f"(it takes: {', '.join(target.quantizers)})")
        if target.ir == IRFormat.TORCH and target.pt2e_quantizer is not None:
            self.want_pt2e(target.pt2e_quantizer)
        plan = plan if plan is not None else self.plan_for(target)
        if plan.quantizer.startswith("nncf"):
            return self._realise_nncf(target, plan, progress)
        if target.ir == IRFormat.ONNX:
            return self._realise_onnx(target, plan)
        if target.ir == IRFormat.TORCH:
            return self._realise_pt2e(target, plan, progress)
        raise InputError(f"no quantization realiser for IR format {target.ir}")

    def _path(self, stem: str) -> Path:
        self._n += 1
        return Path(self._tmp.name) / f"{stem}-{self._n}.onnx"

    def _realise_onnx(self, target: TargetSpec, plan: QuantPlan) -> IR:
        import onnx

        from compressor.quantization.qdq import realize_dynamic, realize_static

        qmodel = (realize_static if plan.mode == "static" else realize_dynamic)(self.float_model, plan)
        path = self._path("qdq" if plan.mode == "static" else "dynamic")
        onnx.save_model(qmodel, str(path))
        return IR(IRFormat.ONNX, target.precision, path=path, plan=plan,
                  export={"quantization_realiser": "QDQ ONNX (ONNX Runtime's canonical layout)" if plan.mode == "static"
                          else "dynamic INT8 ONNX (DynamicQuantizeLinear + MatMulInteger)"})

    def _realise_nncf(self, target: TargetSpec, plan: QuantPlan, progress: Progress) -> IR:
        from compressor.quantization.nncf_quantizer import quantize

        feeds = calibration_feeds(self.calib, self.model.inputs, self._samples())
        native = quantize(self.float_onnx, plan, feeds, progress)
        return IR(target.ir, target.precision, native=native, plan=plan, export={"quantization_realiser": plan.quantizer})

    def _realise_pt2e(self, target: TargetSpec, plan: QuantPlan, progress: Progress) -> IR:
        from compressor.io.export_torch import export_program
        from compressor.quantization import pt2e

        if target.pt2e_quantizer is None:
            raise InputError(f"{target.name} names no PT2E quantizer: its backend must declare pt2e_quantizer")
        modules = self._modules()
        unmapped = [l.name for l in plan.layers if l.name not in modules]
        if unmapped and progress is self.progress:
            self.warn(f"{len(unmapped)} layer(s) of the plan are not PyTorch modules and follow the PT2E quantizer's default: "
                      f"{', '.join(unmapped[:5])}")
        captured = export_program(self.model, what="PT2E quantization").module()
        batches = [self._torch_batch(f) for f in self._calib_feeds()]
        converted, done = pt2e.realise(captured, target.pt2e_quantizer, plan, modules, self._torch_batch(self._probe_feed()),
                                       self._tensor_index(), plan.ranges(), batches, progress)
        program = export_program(self.model, converted, what=f"the PT2E-quantized model ({target.name})")
        return IR(IRFormat.TORCH, target.precision, program=program, plan=plan,
                  export={"quantization_realiser": f"PT2E {target.pt2e_quantizer} quantizer, ranges from the SDK's plan", "pt2e": done})

    # --- sensitivity -------------------------------------------------------------------------------

    def sensitivity_feeds(self) -> list[dict[str, np.ndarray]]:
        source = self.analysis if self.analysis is not None else self.calib
        if source is None:
            raise InputError("per-layer sensitivity needs data: pass --eval DATA (or --calib DATA)")
        return calibration_feeds(source, self.model.inputs, min(len(source), self.settings.sensitivity_samples))

    def simulate(self, plan: QuantPlan) -> np.ndarray:
        """The first output of ``plan`` realised as QDQ/dynamic ONNX and run by the SDK's ONNX executor, on the sensitivity feeds."""
        from compressor.quantization.qdq import realize_dynamic, realize_static

        qmodel = (realize_static if plan.mode == "static" else realize_dynamic)(self.float_model, plan)
        return np.concatenate([r["__outputs__"][0] for r in self.run(qmodel, self.sensitivity_feeds(), [])])

    def sensitivity(self, plan: QuantPlan, measure: Measure, runtime: str) -> dict[str, Any]:
        """Each INT8 layer of ``plan`` alone, measured by ``measure`` (the target's runtime), against the float
        graph on the same samples; plus each layer's output SQNR in the full plan (QDQ simulation, where the
        plan has ranges)."""
        from compressor.quantization.qdq import realize_static
        from compressor.quantization.sensitivity import analyse

        feeds = self.sensitivity_feeds()
        simulate = None
        if plan.mode == "static" and plan.activations:
            def simulate(p: QuantPlan, names: list[str]) -> list[dict]:
                return self.run(realize_static(self.float_model, p), feeds, names)
        layers = plan.int8_layers
        with self.progress.bar(f"per-layer sensitivity on {runtime} ({len(layers)} layers)", total=len(layers) + 1) as advance:
            return analyse(plan, feeds, lambda names: self.run(self.float_model, feeds, names), measure, simulate,
                           progress=advance, task=self.task, runtime=runtime)

    def close(self) -> None:
        self._tmp.cleanup()

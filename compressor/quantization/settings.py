"""Quantization settings: the recipe section ``quantization``, its CLI flags and API keywords, and what the
quantization stage receives as it is (see compressor/core/options.py)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import field_validator, model_validator

from compressor.core.options import QUANT, Settings, option
from compressor.core.searchable import Searchable
from compressor.quantization.pipeline import names as pipeline_names
from compressor.quantization.plan import CALIBRATION_METHODS, DEFAULT_CALIBRATION, DEFAULT_PERCENTILE
from compressor.quantization.quantizers import DEFAULT, NAMES, QUANTIZERS, quantizer, which_can

MIN_CALIB_SAMPLES = 10
DEFAULT_CALIB_SAMPLES = 128


class QuantizationSettings(Settings):
    calibration: Literal[CALIBRATION_METHODS] = option(  # type: ignore[valid-type]
        DEFAULT_CALIBRATION, "Activation calibration: minmax | percentile | mse (default) | entropy.", flag="--calibration", panel=QUANT,
        search=Searchable("calibration", space="calibrations", default=("mse", "percentile"), only="static", label="{value}"))
    percentile: float = option(DEFAULT_PERCENTILE, "Percentile for --calibration percentile (default 99.999).", flag="--percentile",
                               panel=QUANT, gt=50, le=100)
    exclude: list[str] = option(help="Keep layers float: a name or glob (layer4.*), re:<regex>, or type:<Conv2d|Linear|…>; repeatable.",
                                flag="--exclude", panel=QUANT, default_factory=list)
    equalize: bool = option(True, "Do not equalize channel ranges across layers joined by ReLU/pooling (cross-layer equalization).",
                            flag="--no-equalize", negate=True, panel=QUANT)
    scale_migration: bool = option(True, "Do not migrate activation scale into the Linear layers that read a LayerNorm (SmoothQuant).",
                                   flag="--no-scale-migration", negate=True, panel=QUANT)
    bias_correction: bool = option(False, "Correct the shift INT8 puts in each layer's mean output (fast bias correction; kept only "
                                          "where it lowers the output error on calibration data). Not exact, so not on by default.",
                                   flag="--bias-correction", panel=QUANT,
                                   search=Searchable("bias_correction", only="static", title="bias correction", label="bias corrected",
                                                     capability="supports_bias_correction"))
    passes: list[str] = option(help="Also run this compression pass, by name (repeatable); installed: " + ", ".join(pipeline_names())
                               + ". `compressor targets` describes each.", flag="--pass", keyword="passes", panel=QUANT,
                               default_factory=list, search=Searchable("extra_pass", space="passes", only="static", apply="append",
                                                                       title="extra pass", label="pass {value}"))
    quantizer: Literal[NAMES] = option(  # type: ignore[valid-type]
        DEFAULT, " | ".join(f"{q.name} ({q.help})" for q in QUANTIZERS.values()) + ".", flag="--quantizer", panel=QUANT)
    sensitivity: bool = option(True, "Skip the per-layer sensitivity analysis of INT8 targets.", flag="--no-sensitivity", negate=True,
                               panel=QUANT)
    sensitivity_on: Literal["simulation", "runtime"] = option(
        "simulation", "Where per-layer sensitivity is measured: simulation (the plan's QDQ on ONNX Runtime; fast, the default of "
        "compress and bench) | runtime (each layer realised and run on the target's own runtime; the default of analyze).",
        flag="--sensitivity-on", panel=QUANT)
    sensitivity_samples: int = option(16, "Samples the per-layer sensitivity is measured on.", ge=1)
    auto_precision: bool = option(False, "Mixed precision under the accuracy gate: start from all-INT8 and return the layers most "
                                         "sensitive on the target's runtime to float until the gate passes; keeps the fastest measured "
                                         "plan that passes (needs --max-accuracy-drop, --min-agreement or --min-cosine).",
                                  flag="--auto-precision", panel=QUANT)
    auto_precision_steps: int = option(12, "The most plans --auto-precision builds, validates and benchmarks.", ge=1)

    #: fields that change how results are analysed or chosen, not the plan: stages are shared across them
    NOT_PLAN: ClassVar[frozenset] = frozenset({"sensitivity", "sensitivity_on", "sensitivity_samples", "auto_precision", "auto_precision_steps"})

    @field_validator("passes")
    @classmethod
    def _installed(cls, v: list[str]) -> list[str]:
        unknown = [n for n in v if n not in pipeline_names()]
        if unknown:
            raise ValueError(f"no pass named {', '.join(unknown)} is installed (installed: {', '.join(pipeline_names()) or 'none'})")
        return v

    @model_validator(mode="after")
    def _capabilities(self):
        if self.bias_correction and not quantizer(self.quantizer).supports_bias_correction:
            raise ValueError(f"--bias-correction corrects the SDK's own plan, and --quantizer {self.quantizer} chooses its own ranges "
                             f"and biases: use {which_can('supports_bias_correction')}, or drop --bias-correction")
        return self

    @property
    def capabilities(self):
        return quantizer(self.quantizer)

    def plan_key(self) -> str:
        """What identifies the plans these settings make (one quantization stage per key)."""
        return self.model_dump_json(exclude=set(self.NOT_PLAN))

"""Intel Neural Compressor as an alternative quantizer behind the same stage (``--quantizer inc``; the
torch-inductor INT8 target).

INC's own PT2E flow: its export (strict first, then non-strict), ``prepare`` with its default
``StaticQuantConfig`` (the X86InductorQuantizer with INC's observers), calibration on the SDK's calibration
data, ``convert``. The SDK's exclusions become INC local configs (fp32). With a gate, INC's ``autotune``
searches its static INT8 configuration set (activation symmetry × observer algorithm) until the loss is within
the gate's tolerance, measured by the caller's function (the session's eval data): :class:`Tuning`.
What INC chose is recorded in the same plan shape and the backend's kernel report says what runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compressor.core.environment import package_version
from compressor.core.errors import ExportError, InputError, first_line
from compressor.core.progress import Progress
from compressor.core.registry import package_missing
from compressor.core.targets import PlanMode
from compressor.quantization.plan import QuantPlan
from compressor.quantization.ptq import _layers


@dataclass
class Tuning:
    """What INC's autotune optimises: ``evaluate(quantized module) -> metric`` (higher is better; the float model is
    evaluated first as the baseline) and the relative loss it tolerates (INC's ``tolerable_loss``)."""

    metric: str
    evaluate: Callable[[Any], float]
    tolerable_loss: float
    max_trials: int = 4


def inc_quiet() -> None:
    """Intel Neural Compressor logs every step (and its accelerator detection at import) at INFO/WARNING: keep errors only.
    A filter, not a level: INC sets its logger's level from $LOGLEVEL when it is imported."""
    import logging

    inc = logging.getLogger("neural_compressor")
    if not any(getattr(f, "compressor", False) for f in inc.filters):
        def errors_only(record):
            return record.levelno >= logging.ERROR
        errors_only.compressor = True
        inc.addFilter(errors_only)


def inc_plan(model, structure, warnings: list[str], samples: int, exclusions: list[str]) -> QuantPlan:
    """The plan INC is asked to follow: the SDK's structure and exclusions; ranges are INC's own."""
    return QuantPlan(mode=PlanMode.STATIC, activation_dtype="inc default (uint8 per tensor, asymmetric)", weight_dtype="int8",
                     calibration={"method": "inc default (minmax observers)", "samples": samples}, layers=_layers(model, structure, True),
                     exclusions=list(exclusions), warnings=list(warnings),
                     quantizer=f"inc {package_version('neural-compressor-pt')} (StaticQuantConfig, X86InductorQuantizer)")


def _config(plan: QuantPlan, modules: set[str], base=None):
    from neural_compressor.torch.quantization import StaticQuantConfig

    config = base if base is not None else StaticQuantConfig()
    for layer in plan.layers:
        if layer.precision != "int8" and layer.name in modules:
            config.set_local(layer.name, StaticQuantConfig(w_dtype="fp32", act_dtype="fp32"))
    return config


def quantize(module, example_inputs: tuple, dynamic_shapes, plan: QuantPlan, modules: set[str], batches: list[tuple],
             progress: Progress, tuning: Tuning | None = None) -> tuple[Any, dict[str, Any]]:
    """INC's static INT8 of ``module`` (calibrated on ``batches``), or its autotune under ``tuning``; the converted module
    and what INC did."""
    missing = package_missing("neural-compressor-pt", "neural_compressor")
    if missing:
        raise InputError(f"--quantizer inc needs Intel Neural Compressor: {missing}")
    import torch

    from compressor.io.export_torch import quiet

    inc_quiet()
    from neural_compressor.torch.export import export
    from neural_compressor.torch.quantization import INT8StaticQuantConfig, convert, prepare

    try:
        with quiet():
            exported = export(module, example_inputs, dynamic_shapes=dynamic_shapes)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"Intel Neural Compressor could not export the model (strict, then non-strict): {first_line(e)}") from e

    def calibrate(prepared) -> None:
        with torch.no_grad():
            for batch in batches:
                prepared(*batch)

    if tuning is None:  # INC's default static configuration
        with progress.stage(f"INC quantized with {plan.calibration['samples']} samples"), quiet():
            prepared = prepare(exported, _config(plan, modules))
            calibrate(prepared)
            return convert(prepared), {"autotune": None}
    from neural_compressor.torch.quantization import TuningConfig, autotune

    trials: list[dict[str, Any]] = []

    def evaluate(model) -> float:
        value = float(tuning.evaluate(model))
        trials.append({"metric": tuning.metric, "value": value})
        return value

    space = _config(plan, modules, INT8StaticQuantConfig.get_config_set_for_tuning())
    with progress.stage(f"INC autotune ({tuning.metric}, tolerable relative loss {tuning.tolerable_loss:.4g}, "
                        f"≤ {tuning.max_trials} trials)"), quiet():
        best = autotune(exported, TuningConfig(config_set=[space], tolerable_loss=tuning.tolerable_loss, max_trials=tuning.max_trials),
                        eval_fn=evaluate, run_fn=calibrate, example_inputs=example_inputs)
    baseline, results = trials[0]["value"], [t["value"] for t in trials[1:]]
    threshold = baseline * (1 - tuning.tolerable_loss)
    met = [i for i, v in enumerate(results) if v >= threshold]
    chosen = met[0] if met else max(range(len(results)), key=results.__getitem__)
    return best, {"autotune": {"metric": tuning.metric, "baseline": baseline, "tolerable_relative_loss": tuning.tolerable_loss,
                               "threshold": threshold, "trials": results, "chosen_trial": chosen + 1, "met": bool(met),
                               "space": "INT8StaticQuantConfig.get_config_set_for_tuning(): act_sym (True, False) × act_algo (kl, minmax)"}}

"""NNCF as an alternative quantizer behind the same stage (``--quantizer nncf``; OpenVINO targets).

NNCF's default post-training quantization of the float OpenVINO model, with the same calibration data
and the same exclusions as the SDK's own plan. NNCF chooses the ranges itself; what it did is recorded in
the same plan shape (layers, precisions, reasons) and the OpenVINO backend's kernel report says what runs.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from compressor.core.errors import InputError
from compressor.core.progress import Progress
from compressor.core.registry import package_missing
from compressor.core.targets import PlanMode
from compressor.quantization.plan import QuantPlan
from compressor.quantization.ptq import _layers


def nncf_plan(model, structure, warnings: list[str], samples: int, exclusions: list[str]) -> QuantPlan:
    """The plan NNCF is asked to follow: the SDK's structure and exclusions; ranges are NNCF's own."""
    import nncf

    return QuantPlan(mode=PlanMode.STATIC, activation_dtype="nncf default (u8/i8 per tensor)", weight_dtype="int8",
                     calibration={"method": "nncf default", "samples": samples}, layers=_layers(model, structure, True),
                     exclusions=list(exclusions), warnings=list(warnings), quantizer=f"nncf {nncf.__version__} (default preset, OpenVINO backend)")


def quantize(float_onnx: Path, plan: QuantPlan, feeds: list[dict], progress: Progress):
    """NNCF's quantization of the float model, keeping float every layer the plan keeps float; an ov.Model."""
    missing = package_missing("nncf")
    if missing:
        raise InputError(f"--quantizer nncf needs NNCF: {missing}")
    import nncf
    import openvino as ov

    ignored = [l.node for l in plan.layers if l.precision != "int8"]
    ov_model = ov.convert_model(str(float_onnx))
    # OpenVINO names an ONNX node's weight op "<node>/WithoutBiases" and its bias add "<node>"
    patterns = [f"^{re.escape(node)}(/.*)?$" for node in ignored]
    # NNCF draws its own progress bars on stdout: ours says the same on stderr, so stdout stays the command's results
    with progress.stage(f"NNCF quantized with {plan.calibration['samples']} samples"), contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(ov_model, nncf.Dataset(feeds), subset_size=len(feeds),
                             ignored_scope=nncf.IgnoredScope(patterns=patterns, validate=False) if patterns else None)

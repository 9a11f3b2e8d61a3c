"""Targets for decoder language models (``--task text-generation``): a runtime, the weight bit width, what it builds.

They are listed by ``compressor targets`` beside the tensor-in/tensor-out targets. A planned target that is not built yet
stays in the table with the reason, so nobody has to guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressor.core.errors import TargetError


@dataclass(frozen=True)
class LmTarget:
    name: str
    runtime: str  # onnxruntime-genai | openvino-genai | torch
    bits: int | None  # weight bits of the decoder blocks (None: float)
    description: str
    package: str | None = None  # the import that must succeed
    install: str = ""
    missing: str | None = None  # why it cannot be built by this SDK version (None: it can)

    @property
    def precision(self) -> str:
        return {None: "fp32", 4: "int4-wo", 8: "int8-wo"}[self.bits]

    @property
    def quantized(self) -> bool:
        return self.bits is not None

    def available(self) -> tuple[bool, str]:
        if self.missing:
            return False, self.missing
        if self.package:
            import importlib.util

            if importlib.util.find_spec(self.package) is None:
                return False, self.install
        return True, ""

    def to_dict(self) -> dict:
        return {"name": self.name, "runtime": self.runtime, "precision": self.precision, "bits": self.bits,
                "device": "cpu", "artifact_format": FORMATS.get(self.runtime, self.runtime)}


_GENAI = dict(runtime="onnxruntime-genai", package="onnxruntime_genai", install="pip install onnxruntime-genai==0.18.0")
_OV = dict(runtime="openvino-genai", package="openvino_genai",
           install="pip install openvino-genai==2026.4.1 openvino-tokenizers==2026.4.1")
FORMATS = {"onnxruntime-genai": "ONNX Runtime GenAI folder", "openvino-genai": "OpenVINO GenAI folder"}
LM_TARGETS: dict[str, LmTarget] = {t.name: t for t in (
    LmTarget("ort-cpu-int4", bits=4, description="ONNX Runtime GenAI: INT4 weight-only MatMulNBits (the plan's codes), "
                                                  "GroupQueryAttention with a KV cache; embeddings/lm_head INT8", **_GENAI),
    LmTarget("ort-cpu-int8-wo", bits=8, description="ONNX Runtime GenAI: INT8 weight-only MatMulNBits, float activations", **_GENAI),
    LmTarget("ort-cpu-fp32-lm", bits=None, description="ONNX Runtime GenAI: the float model (the INT4/INT8 siblings' baseline)",
             **_GENAI),
    LmTarget("torch-cpu-fp32-lm", runtime="torch", bits=None, description="PyTorch eager with the KV cache: the reference"),
    LmTarget("openvino-cpu-int4", bits=4, description="OpenVINO GenAI LLMPipeline: INT4 compressed weights (the plan's u4 codes, "
                                                       "scales, zero points), stateful KV cache; embeddings/lm_head INT8", **_OV),
    LmTarget("openvino-cpu-int8-wo", bits=8, description="OpenVINO GenAI LLMPipeline: INT8 compressed weights", **_OV),
    LmTarget("openvino-cpu-fp32-lm", bits=None, description="OpenVINO GenAI LLMPipeline: the float model (the INT4/INT8 "
                                                            "siblings' baseline)", **_OV),
    LmTarget("executorch-xnnpack-8da4w", runtime="executorch", bits=4, description="ExecuTorch XNNPACK, int8 dynamic activations "
             "and int4 weights", missing="planned: ExecuTorch's LLM export (export_llm) is not wired to the SDK's plan yet"),
)}


def get_lm_target(name: str) -> LmTarget:
    t = LM_TARGETS.get(name)
    if t is None:
        raise TargetError(f"'{name}' is not a language-model target; --task text-generation builds "
                          f"{', '.join(n for n, t in LM_TARGETS.items() if not t.missing)}")
    ok, why = t.available()
    if not ok:
        raise TargetError(f"target {name} cannot be built here: {why}")
    return t

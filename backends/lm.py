"""Which runtime opens a language-model artifact (verify, the generation benchmark): by the target's runtime."""

from __future__ import annotations

from pathlib import Path

from compressor.core.generation import LmRunner
from compressor.core.lm_targets import get_lm_target


def open_lm_artifact(folder: Path, target: str, threads: int | None = None) -> LmRunner:
    t = get_lm_target(target)
    if t.runtime == "onnxruntime-genai":
        from backends.ort_genai import OrtGenAiRunner

        return OrtGenAiRunner(Path(folder), threads)
    if t.runtime == "openvino-genai":
        from backends.openvino_genai import OpenVinoGenAiRunner

        return OpenVinoGenAiRunner(Path(folder), threads)
    raise NotImplementedError(f"{t.name}: no artifact runner for runtime {t.runtime}")

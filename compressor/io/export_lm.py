"""A causal LM written as a Hugging Face folder and as an ONNX Runtime GenAI model folder (the model builder, float)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from compressor.core.errors import InputError, first_line


def save_hf_folder(model, tokenizer, folder: Path) -> Path:
    """``model`` (its current weights) and its tokenizer as a plain HF folder: config.json, safetensors, tokenizer files.
    A GGUF source's ``quantization_config`` is dropped (the weights written are the dequantized float ones)."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    had = getattr(cfg, "quantization_config", None)
    if had is not None:
        del cfg.quantization_config
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        if had is not None:
            cfg.quantization_config = had
    tokenizer.save_pretrained(folder)
    conf = json.loads((folder / "config.json").read_text())
    if not conf.get("architectures"):  # the GenAI builder picks its writer by architecture
        conf["architectures"] = [type(model).__name__]
        (folder / "config.json").write_text(json.dumps(conf, indent=2))
    return folder


def build_genai(model, tokenizer, out: Path, precision: str = "fp32", extra: dict | None = None,
                timeout: float | None = None) -> Path:
    """Run onnxruntime-genai's model builder on ``model`` (in a subprocess: it holds its own copy of the weights)."""
    try:
        import onnxruntime_genai  # noqa: F401
    except ImportError as e:
        raise InputError("the ONNX Runtime GenAI targets need onnxruntime-genai: pip install onnxruntime-genai==0.18.0") from e
    with tempfile.TemporaryDirectory(prefix="compressor-hf-") as tmp:
        src = save_hf_folder(model, tokenizer, Path(tmp) / "hf")
        cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(src), "-o", str(out), "-p", precision,
               "-e", "cpu", "-c", str(Path(tmp) / "cache")]
        if extra:
            cmd += ["--extra_options", *(f"{k}={v}" for k, v in extra.items())]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if done.returncode != 0:
            tail = [ln for ln in (done.stderr or done.stdout).strip().splitlines() if ln.strip()]
            shutil.rmtree(out, ignore_errors=True)
            raise InputError(f"the ONNX Runtime GenAI model builder failed: {first_line(Exception(tail[-1] if tail else 'no output'))}")
    return out

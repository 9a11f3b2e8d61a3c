"""Loading a decoder language model: a Hugging Face model folder (``config.json``, ``*.safetensors``, tokenizer files) or
a GGUF file, through transformers. The architecture and tokenizer come from the files; no ``--arch`` is needed.

A GGUF file's weights are dequantized to float32 by transformers; the model that comes back is the float model the SDK
compresses (a GGUF published as Q4_1 is then a float model on a 4-bit grid: say so beside results).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor.core.errors import CheckpointError, InputError, first_line
from compressor.core.files import sha256_file


@dataclass
class CausalLm:
    model: Any  # transformers PreTrainedModel (…ForCausalLM), float32, eval mode
    tokenizer: Any
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self):
        return self.model.config

    def describe(self) -> str:
        c = self.config
        return (f"{type(self.model).__name__}: {self.source['parameters'] / 1e6:.1f} M parameters, {c.num_hidden_layers} layers, "
                f"vocabulary {c.vocab_size}")


def is_lm_source(path: Path) -> bool:
    return path.suffix.lower() == ".gguf" or (path.is_dir() and (path / "config.json").is_file())


def _transformers():
    try:
        import transformers
    except ImportError as e:
        raise InputError("--task text-generation needs transformers: pip install 'transformers==5.24.0' gguf accelerate") from e
    return transformers


def load_causal_lm(path: str | Path) -> CausalLm:
    """The float model and tokenizer of ``path`` (a HF folder or a ``.gguf``), or one line saying what is wrong."""
    import torch

    path = Path(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub: everything comes from the files given
    check_lm_path(path)
    tf = _transformers()
    folder, kw = (path.parent, {"gguf_file": path.name}) if path.is_file() else (path, {})
    if path.is_file():
        try:
            import gguf  # noqa: F401
        except ImportError as e:
            raise InputError("reading a .gguf file needs the gguf package: pip install gguf") from e
    else:
        _check_folder_config(path)
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(folder, **kw)
    except Exception as e:  # noqa: BLE001 - transformers raises many types; one line for the user
        raise CheckpointError(f"cannot load the tokenizer of '{path}': {first_line(e)}; a model folder needs tokenizer.json "
                              "(or the tokenizer files of its type) beside config.json") from e
    try:
        model = tf.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kw)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"cannot load '{path}' as a causal language model: {first_line(e)}") from e
    model.eval()
    if path.is_file():  # transformers dequantized every GGUF tensor to float32: drop its quantizer, so the model saves as float
        model.hf_quantizer = None
        if getattr(model, "is_quantized", False):
            model.is_quantized = False
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
    if tokenizer.eos_token_id is None:
        raise CheckpointError(f"the tokenizer of '{path}' has no end-of-sequence token: set eos_token in tokenizer_config.json")
    n = sum(p.numel() for p in model.parameters())
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
    source = {"path": str(path), "format": "gguf" if path.is_file() else "hf-folder", "architecture": type(model).__name__,
              "model_type": model.config.model_type, "parameters": n, "tied_embeddings": bool(getattr(model.config, "tie_word_embeddings", False)),
              "files": {f.name: sha256_file(f) for f in files}}
    if path.is_file():
        source["gguf_note"] = ("weights dequantized from the GGUF file's own quantization: the float baseline is the "
                               "dequantized published model")
    return CausalLm(model, tokenizer, source)


def check_lm_path(path: Path) -> None:
    """One line on what is wrong with ``path`` as a language model, before anything is loaded."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"model '{path}' does not exist: give a Hugging Face model folder or a .gguf file")
    if path.is_file() and path.suffix.lower() != ".gguf":
        raise InputError(f"'{path}' is not a language model for --task text-generation: give a Hugging Face model folder "
                         "(config.json, *.safetensors, tokenizer files) or a .gguf file")
    if path.is_dir() and not (path / "config.json").is_file():
        raise InputError(f"folder '{path}' has no config.json: a Hugging Face model folder needs config.json, the weights "
                         "(*.safetensors) and the tokenizer files")


def _check_folder_config(path: Path) -> None:
    try:
        conf = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"'{path / 'config.json'}' is not valid JSON: {e}") from e
    if not isinstance(conf, dict) or "model_type" not in conf:
        raise CheckpointError(f"'{path / 'config.json'}' has no 'model_type': it is not a Hugging Face model config")
    if not list(path.glob("*.safetensors")) and not list(path.glob("*.bin")):
        raise CheckpointError(f"folder '{path}' has no weights (*.safetensors): save the model with save_pretrained")
    if list(path.glob("*.bin")) and not list(path.glob("*.safetensors")):
        raise CheckpointError(f"folder '{path}' has only pickled *.bin weights; convert them to safetensors (unpickling runs "
                              "code from the file)")


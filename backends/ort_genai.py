"""ONNX Runtime GenAI: decoder LMs as a GenAI model folder (``genai_config.json``, ``model.onnx`` with
GroupQueryAttention and a KV cache, MatMulNBits for weight-only INT4/INT8, the tokenizer), run by ``og.Model``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.errors import InputError
from compressor.core.generation import Generation, LmRunner, timed_greedy


def available() -> tuple[bool, str]:
    try:
        import onnxruntime_genai  # noqa: F401
    except ImportError:
        return False, "pip install onnxruntime-genai==0.18.0"
    return True, ""


class OrtGenAiRunner(LmRunner):
    def __init__(self, folder: Path, threads: int | None = None):
        import onnxruntime_genai as og

        if not (Path(folder) / "genai_config.json").is_file():
            raise InputError(f"'{folder}' is not an ONNX Runtime GenAI model folder (no genai_config.json)")
        self.og = og
        self.folder = Path(folder)
        cfg = og.Config(str(folder))
        if threads:
            cfg.overlay(json.dumps({"model": {"decoder": {"session_options": {
                "intra_op_num_threads": int(threads), "inter_op_num_threads": 1}}}}))
        self.model = og.Model(cfg)
        conf = json.loads((self.folder / "genai_config.json").read_text())
        eos = conf["model"].get("eos_token_id")
        self.eos = eos[0] if isinstance(eos, list) else eos
        self.context = int(conf["model"].get("context_length", 2048))
        self.threads = threads

    def _generator(self, max_length: int, min_length: int = 0):
        p = self.og.GeneratorParams(self.model)
        p.set_search_options(max_length=min(max_length, self.context), min_length=min_length, do_sample=False)
        return self.og.Generator(self.model, p)

    def logits(self, ids: np.ndarray) -> np.ndarray:
        g = self._generator(ids.shape[1] + 1)
        g.append_tokens(np.asarray(ids, np.int32).reshape(1, -1))
        return np.asarray(g.get_output("logits"), np.float32)

    def generate(self, ids: list[int], max_new_tokens: int, exact: bool = False) -> Generation:
        total = len(ids) + max_new_tokens
        g = self._generator(total, total if exact else 0)

        def first():
            g.append_tokens(np.asarray(ids, np.int32).reshape(1, -1))
            g.generate_next_token()
            return int(g.get_next_tokens()[0])

        def nxt():
            g.generate_next_token()
            return int(g.get_next_tokens()[0])

        return timed_greedy(first, nxt, self.eos, max_new_tokens, exact)

    def describe(self) -> dict[str, Any]:
        import onnxruntime_genai as og

        return {"runtime": "onnxruntime-genai", "version": getattr(og, "__version__", "?"), "threads": self.threads,
                "context_length": self.context}

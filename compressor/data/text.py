"""Text for decoder LMs: where it comes from (a folder of ``.txt`` files, a ``.jsonl`` with a ``text`` field, or a
``package.module:function`` returning strings) and how it becomes token windows.

Documents are tokenized one by one and joined with the tokenizer's end-of-sequence token into one stream; calibration
takes ``samples`` windows of ``seq_len`` tokens from it, evaluation scores the first ``tokens`` of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from compressor.core.errors import DataError
from compressor.core.refs import resolve


@dataclass
class TextSource:
    ref: str
    documents: list[str]

    def describe(self) -> str:
        return f"{self.ref} ({len(self.documents)} documents, {sum(map(len, self.documents)):,} characters)"


def load_text(ref: str, what: str) -> TextSource:
    path = Path(ref)
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise DataError(f"{what}: folder {ref} has no .txt files; give a folder of .txt, a .jsonl with a 'text' field "
                            "or package.module:function")
        docs = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    elif path.suffix == ".jsonl" and path.is_file():
        docs = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{what}: {ref} line {i} is not JSON ({e.msg})") from e
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise DataError(f"{what}: {ref} line {i} has no string field 'text'")
            docs.append(row["text"])
    elif path.suffix == ".txt" and path.is_file():
        docs = [path.read_text(encoding="utf-8", errors="replace")]
    elif ":" in ref and not path.exists():
        out = resolve(ref, what, DataError)()
        docs = [out] if isinstance(out, str) else list(out)
        if not all(isinstance(d, str) for d in docs):
            raise DataError(f"{what} '{ref}' must return strings (documents)")
    else:
        raise DataError(f"{what}: {ref} does not exist or is not text; give a folder of .txt, a .txt, a .jsonl with a "
                        "'text' field or package.module:function")
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise DataError(f"{what}: {ref} holds no text")
    return TextSource(ref, docs)


def token_stream(source: TextSource, tokenizer, limit: int | None = None) -> torch.Tensor:
    """The documents tokenized and joined by the end-of-sequence token (1-D int64), stopping after ``limit`` tokens."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for doc in source.documents:
        ids += tokenizer(doc, add_special_tokens=False)["input_ids"]
        if eos is not None:
            ids.append(eos)
        if limit is not None and len(ids) >= limit:
            break
    return torch.tensor(ids[:limit] if limit else ids, dtype=torch.long)


def calibration_windows(stream: torch.Tensor, samples: int, seq_len: int, what: str) -> list[torch.Tensor]:
    """``samples`` windows of ``seq_len`` tokens, evenly spaced over the stream (1 × seq_len each)."""
    if stream.numel() < seq_len:
        raise DataError(f"{what}: {stream.numel()} tokens is shorter than one window of {seq_len}; give more text or a "
                        "smaller --seq-len")
    n = min(samples, stream.numel() // seq_len)
    step = (stream.numel() - seq_len) // max(1, n - 1) if n > 1 else 0
    return [stream[i * step: i * step + seq_len].unsqueeze(0) for i in range(n)]

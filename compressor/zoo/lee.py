"""The Lee corpus (gensim's test data): 50 news documents and 1,225 human similarity ratings.

Data callables for ``--eval``/``--calib`` (``compressor.zoo.lee:sentences`` / ``:documents``) yield
tokenized batches for :mod:`compressor.zoo.minilm`. Sentences are padded to 128 tokens and documents to
the longest (at most 256), so every batch of a source has the same shape. gensim is installed with ``--no-deps`` and never imported: only its data
files are read.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

SENTENCE_TOKENS = 128  # sentences are padded (and truncated) to one length, the fixed shape 1×128 of the benchmarks


def data_dir() -> Path:
    spec = importlib.util.find_spec("gensim")
    if spec is None or spec.origin is None:
        raise SystemExit("gensim is not installed: run `make setup` (installs it with --no-deps for its test data)")
    return Path(spec.origin).parent / "test" / "test_data"


def documents_text() -> list[str]:
    return [l.strip() for l in (data_dir() / "lee.cor").read_text(encoding="latin-1").splitlines() if l.strip()]


def sentences_text() -> list[str]:
    out = []
    for doc in documents_text():
        out += [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", doc) if len(s.split()) >= 3]
    return out


def human_similarity() -> np.ndarray:
    """The 50×50 matrix of human ratings (upper triangle used: 1,225 pairs)."""
    rows = [[float(v) for v in l.split()] for l in (data_dir() / "similarities0-1.txt").read_text().splitlines() if l.strip()]
    return np.asarray(rows)


def encode(texts: list[str], max_length: int = 256, width: int | None = None) -> dict[str, np.ndarray]:
    """Token ids and attention mask, padded to ``width`` (default: the longest text) after truncation to ``max_length``."""
    from compressor.zoo.minilm import tokenizer

    enc = tokenizer(max_length).encode_batch(texts)
    longest = max(width or 0, max(len(e.ids) for e in enc))
    ids = np.zeros((len(enc), longest), dtype=np.int64)
    mask = np.zeros((len(enc), longest), dtype=np.int64)
    for i, e in enumerate(enc):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _batches(texts: list[str], size: int = 32, width: int | None = SENTENCE_TOKENS):
    enc = encode(texts, max_length=width or 256, width=width)
    for i in range(0, len(texts), size):
        yield {k: v[i : i + size] for k, v in enc.items()}


def background_sentences_text() -> list[str]:
    """Sentences of lee_background.cor: 300 other news documents of the same corpus (training text, not the eval text)."""
    out = []
    for doc in (data_dir() / "lee_background.cor").read_text(encoding="latin-1").splitlines():
        out += [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", doc.strip()) if len(s.split()) >= 3]
    return out


def background_sentences():
    """Training text for distillation: every sentence of lee_background.cor, tokenized."""
    return _batches(background_sentences_text())


def sentences():
    """Every sentence of lee.cor, tokenized (padded to the longest sentence)."""
    return _batches(sentences_text())


def documents():
    """The 50 documents of lee.cor, tokenized (padded to the longest, at most 256 tokens)."""
    return _batches(documents_text(), width=None)


def pearson_with_humans(embeddings: np.ndarray) -> float:
    """Pearson correlation between embedding cosine similarity and the human ratings over the 1,225 pairs."""
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    sim = e @ e.T
    iu = np.triu_indices(len(e), k=1)
    return float(np.corrcoef(sim[iu], human_similarity()[iu])[0, 1])


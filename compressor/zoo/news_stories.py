"""all-MiniLM-L6-v2 as a 300-way classifier: which of the Lee background corpus's news stories a sentence is from.

A labelled task for the same encoder, so INT8's cost shows as top-1 accuracy and not only as embedding cosine.
Sentences of at least 8 words from the 300 stories of gensim's ``lee_background.cor``; within each story, the 1st,
3rd, 5th, … sentence enrols the story and the others are held out. The head's rows are the stories' centroids (the
unit-length mean FP32 embedding of their enrolment sentences), so a logit is 20 × the cosine with a story.

- model: ``--arch compressor.zoo.news_stories:classifier`` on the checkpoint :func:`weights` writes (the package's
  encoder weights and the centroids; ``examples/text/make_news_classifier.py``), inputs ``input_ids`` and
  ``attention_mask`` (int64, 1×64);
- ``--eval compressor.zoo.news_stories:eval_data``: the 1,205 held-out sentences, labelled with their story;
- ``--calib`` / ``--finetune compressor.zoo.news_stories:train_data``: the 1,359 enrolment sentences, labelled.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compressor.zoo import lee
from compressor.zoo.minilm import SentenceMiniLM, minilm_l6, weights_path

TOKENS = 64  # one fixed length for every batch (static shape 1×64)
MIN_WORDS = 8


class NewsStoryMiniLM(SentenceMiniLM):
    SCALE = 20.0

    def __init__(self, stories: int = 300):
        super().__init__()
        self.head = nn.Linear(self.pooler.dense.in_features, stories, bias=False)

    def forward(self, input_ids, attention_mask):
        return self.head(super().forward(input_ids, attention_mask)) * self.SCALE


def classifier() -> NewsStoryMiniLM:
    return NewsStoryMiniLM()


def sentences() -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sentences, story index 0..299, enrolment flag)."""
    texts, story, enrol = [], [], []
    docs = [d for d in (lee.data_dir() / "lee_background.cor").read_text(encoding="latin-1").splitlines() if d.strip()]
    for i, doc in enumerate(docs):
        k = 0
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", doc.strip()):
            if len(s.split()) >= MIN_WORDS:
                texts.append(s.strip())
                story.append(i)
                enrol.append(k % 2 == 0)
                k += 1
    return texts, np.asarray(story, dtype=np.int64), np.asarray(enrol)


def _batches(enrolment: bool, size: int = 32):
    texts, story, enrol = sentences()
    pick = np.flatnonzero(enrol == enrolment)
    enc = lee.encode([texts[i] for i in pick], max_length=TOKENS, width=TOKENS)
    for i in range(0, len(pick), size):
        yield {**{k: v[i : i + size] for k, v in enc.items()}, "labels": story[pick[i : i + size]]}


def eval_data():
    """The 1,205 held-out sentences, labelled with their story."""
    return _batches(False)


def train_data():
    """The 1,359 enrolment sentences, labelled: calibration and training text."""
    return _batches(True)


def weights(path: Path | None = None) -> Path:
    """The classifier's checkpoint, made once (deterministic, ~30 s) at ``path`` or
    ``~/.cache/compressor/minilm_news_stories.safetensors``."""
    from safetensors.torch import load_file, save_file

    path = Path(path) if path else Path.home() / ".cache" / "compressor" / "minilm_news_stories.safetensors"
    if path.is_file():
        return path
    state = load_file(str(weights_path()))
    encoder = minilm_l6().eval()
    encoder.load_state_dict(state)
    embeddings, stories = [], []
    with torch.inference_mode():
        for batch in train_data():
            embeddings.append(encoder(torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"])))
            stories.append(batch["labels"])
    e, y = torch.cat(embeddings), torch.from_numpy(np.concatenate(stories))
    centroids = torch.zeros(int(y.max()) + 1, e.shape[1]).index_add_(0, y, e)
    state["head.weight"] = nn.functional.normalize(centroids, dim=1).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)
    return path

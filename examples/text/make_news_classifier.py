"""Make the news-story classifier: all-MiniLM-L6-v2 with a 300-way head, a labelled task for the same encoder.

Which of the 300 news stories of gensim's Lee background corpus a sentence comes from. Each story's row of the head is
the unit-length mean FP32 embedding of its enrolment sentences (every other sentence of at least 8 words); the other
1,205 sentences are the eval data (``--eval compressor.zoo.news_stories:eval_data``, labelled), the enrolment sentences the
calibration and training data (``compressor.zoo.news_stories:train_data``). The model: ``--arch
compressor.zoo.news_stories:classifier``, inputs ``input_ids`` and ``attention_mask`` (int64, 1×64).

Static INT8 of every Linear costs it accuracy (benchmarks/results/qat.md), which ``--auto-precision
--max-accuracy-drop 0.3`` and ``--qat`` win back.

Run: ``.venv/bin/python examples/text/make_news_classifier.py [OUT.safetensors]`` (default
``~/.cache/compressor/minilm_news_stories.safetensors``; ~1 minute; deterministic). Prints the path and FP32 top-1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from compressor.zoo import news_stories


def main() -> None:
    path = news_stories.weights(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    model = news_stories.classifier().eval()
    model.load_state_dict(load_file(str(path)))
    right = total = 0
    with torch.inference_mode():
        for batch in news_stories.eval_data():
            pred = model(torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"])).argmax(1).numpy()
            right += int((pred == batch["labels"]).sum())
            total += len(pred)
    print(f"{path}\nFP32 top-1 on the {total} held-out sentences: {right / total:.4f} (300 stories; chance {1 / 300:.4f})")


if __name__ == "__main__":
    main()

"""The text data of the zoo: attention masks cover the real tokens only, and the news-story split is disjoint."""

from __future__ import annotations

import numpy as np

from compressor.zoo import lee, news_stories
from compressor.zoo.minilm import tokenizer


def test_attention_mask_covers_the_real_tokens_only():
    # tokenizer.json pads every text to 128 tokens: a mask over those pads made the model average [PAD] embeddings
    texts = ["A short one.", "A somewhat longer sentence about the weather in Sydney today."]
    enc = lee.encode(texts, max_length=64, width=64)
    real = [len(tokenizer(64).encode(t).ids) for t in texts]
    assert enc["input_ids"].shape == (2, 64)
    assert enc["attention_mask"].sum(1).tolist() == real
    assert real[0] < real[1] < 20
    for row, n in zip(enc["input_ids"], real):
        assert (row[n:] == 0).all() and (row[:n] != 0).all()


def test_sentence_batches_have_one_shape_and_documents_the_longest():
    assert {b["input_ids"].shape[1] for b in lee.sentences()} == {lee.SENTENCE_TOKENS}
    docs = lee.encode(lee.documents_text())
    assert docs["input_ids"].shape[1] == docs["attention_mask"].sum(1).max() <= 256


def test_news_story_split_is_disjoint_and_labelled():
    texts, story, enrol = news_stories.sentences()
    assert len(set(story.tolist())) == 300 and enrol.sum() == 1359 and (~enrol).sum() == 1205
    assert set(story[enrol].tolist()) == set(story.tolist())  # every story enrols
    batches = list(news_stories.eval_data())
    assert all(b["input_ids"].shape[1] == news_stories.TOKENS for b in batches)
    assert np.array_equal(np.concatenate([b["labels"] for b in batches]), story[~enrol])  # labels follow their sentences
    first = lee.encode([texts[np.flatnonzero(~enrol)[0]]], max_length=news_stories.TOKENS, width=news_stories.TOKENS)
    assert np.array_equal(batches[0]["input_ids"][0], first["input_ids"][0])

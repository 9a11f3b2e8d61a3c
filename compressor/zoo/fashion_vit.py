"""A small Vision Transformer for 28x28 grey images (Fashion-MNIST), ~0.2 M parameters.

4x4 patches (49 tokens), pre-LayerNorm blocks with explicit attention MatMuls and a GELU MLP, mean pooling, as
ViT/DeiT are built. Trained without BatchNorm, its LayerNorm and GELU outputs are what static INT8 finds hard: it
is the SDK's labelled model where post-training INT8 costs accuracy (``examples/fashion_mnist/train_vit.py``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class FashionViT(nn.Module):
    def __init__(self, num_classes: int = 10, dim: int = 64, depth: int = 4, heads: int = 4, mlp: int = 128, patch: int = 4):
        super().__init__()
        self.patch = nn.Conv2d(1, dim, patch, stride=patch)
        tokens = (28 // patch) ** 2
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(1))


def fashion_vit(**kwargs) -> FashionViT:
    return FashionViT(**kwargs)

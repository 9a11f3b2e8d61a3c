"""A model with constant (non-tensor) forward arguments bound, so its artifact's inputs are the tensors only.

silero-vad's TorchScript ``forward(x, sr: int)`` is the case: ``--forward-kwargs '{"sr": 16000}'``.
"""

from __future__ import annotations

import torch

from compressor.core.errors import InputError

CONSTANT_TYPES = (bool, int, float, str, type(None), list)


class BoundArguments(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, constants: dict):
        super().__init__()
        for k, v in constants.items():
            if not isinstance(v, CONSTANT_TYPES):
                raise InputError(f"--forward-kwargs {k}: a constant is a number, string, boolean or list, not {type(v).__name__}")
        self.model = model
        self.constants = dict(constants)

    def forward(self, *inputs):
        return self.model(*inputs, **self.constants)

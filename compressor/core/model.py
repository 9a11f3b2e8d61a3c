"""ModelHandle: a loaded model plus everything needed to feed it (input specs, preprocessing, source)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compressor.core.errors import InputError, first_line
from compressor.core.specs import InputSpec, Preprocessing

_NP_TO_TORCH = {
    "float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "int64": "int64",
    "int32": "int32", "uint8": "uint8", "bool": "bool",
}


@dataclass
class ModelHandle:
    module: Any  # torch.nn.Module, ScriptModule or an exported program's GraphModule
    inputs: list[InputSpec]
    output_names: list[str] = field(default_factory=list)
    preprocessing: Preprocessing | None = None
    source: dict[str, Any] = field(default_factory=dict)
    exported_program: Any = None  # a torch.export program when the source was one

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def kind(self) -> str:
        return self.source.get("kind", "unknown")

    def example_inputs(self, batch: int | None = 1, for_export: bool = False) -> tuple:
        import torch

        tensors = []
        gen = torch.Generator().manual_seed(0)
        for s in self.inputs:
            shape = s.export_shape() if for_export else s.shape(batch=batch)
            dtype = getattr(torch, _NP_TO_TORCH[s.dtype])
            if dtype.is_floating_point:
                tensors.append(torch.randn(shape, generator=gen).to(dtype))
            elif dtype == torch.bool:
                tensors.append(torch.ones(shape, dtype=dtype))
            else:
                tensors.append(torch.randint(0, 2, shape, generator=gen, dtype=dtype))
        return tuple(tensors)

    def probe(self) -> list[tuple[int, ...]]:
        """Run one example batch; name the outputs; raise a clear error if the model rejects the input."""
        import torch

        example = self.example_inputs(batch=1)
        try:
            with torch.inference_mode():
                outputs = flatten_outputs(self.module(*example))
        except Exception as e:  # noqa: BLE001 - any failure here means the spec does not fit
            first = first_line(e)
            shapes = ", ".join(f"{s.name}{tuple(t.shape)}" for s, t in zip(self.inputs, example))
            hint = (" If that argument is a constant, not a tensor, pass it with --forward-kwargs '{\"name\": value}'"
                    if "required positional argument" in first or "missing" in first else "")
            raise InputError(f"the model rejects input {shapes}: {first[:300]}. Check --input-shape and --input-dtype.{hint}")
        if not self.output_names:
            self.output_names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
        elif len(self.output_names) != len(outputs):
            raise InputError(f"{len(self.output_names)} output names given but the model returns {len(outputs)} outputs")
        return [tuple(t.shape) for t in outputs]


def numpy_dtype(name: str):
    return np.float32 if name == "bfloat16" else np.dtype(name)


def flatten_outputs(out) -> list:
    """Tensors of a model's output in order: a tensor, or a (nested) tuple/list/dict of them."""
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flatten_outputs(o)]
    raise TypeError(f"model output of type {type(out).__name__} is not a tensor, tuple, list or dict of tensors")

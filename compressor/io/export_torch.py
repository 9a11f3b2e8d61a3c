"""PyTorch → ``torch.export`` program, shared by every target whose IR is a torch program (the eager
reference, ExecuTorch, PT2E quantization). Dynamic dimensions of the input spec become ``Dim``s with
their range."""

from __future__ import annotations

import contextlib
import io
import warnings

from compressor.core.errors import ExportError, first_line
from compressor.core.model import ModelHandle


def dynamic_shapes(handle: ModelHandle):
    """``torch.export`` dynamic shapes for the handle's inputs, or None when every input is static."""
    import torch

    if not any(s.dynamic for s in handle.inputs):
        return None
    return tuple({i: torch.export.Dim(d.name, min=d.min, max=d.max) for i, d in enumerate(s.dims) if d.dynamic} or None
                 for s in handle.inputs)


@contextlib.contextmanager
def quiet():
    """torch.export and friends print warnings of their own; keep them out of the user's terminal."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def module_owner(node) -> str | None:
    """The path of the innermost module a node of a torch.export graph came from (``features.1.0``), or None."""
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else None


def export_program(handle: ModelHandle, module=None, strict: bool = False, what: str = "the torch program"):
    """``torch.export`` of ``module`` (default: the handle's own, or its exported program as loaded)."""
    import torch

    if module is None and handle.exported_program is not None:
        return handle.exported_program
    dims = dynamic_shapes(handle)
    try:
        with quiet():
            return torch.export.export(module if module is not None else handle.module, handle.example_inputs(for_export=True),
                                       dynamic_shapes=dims, strict=strict)
    except Exception as e:  # noqa: BLE001 - torch.export raises many types
        hint = (" — give fixed sizes or a narrow range (e.g. batch=1:8) in --input-shape") if dims else ""
        raise ExportError(f"torch.export failed for {what}: {first_line(e)}{hint}") from e


def cast_module(module, dtype):
    """``module`` computing in ``dtype`` (torch.bfloat16 / torch.float16), inputs and outputs float32 at the boundary; a deep
    copy (the module of an exported program shares its parameters with the program and the user's model)."""
    import copy

    import torch

    class Cast(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = copy.deepcopy(inner).to(dtype)

        def forward(self, *xs):
            out = self.inner(*[x.to(dtype) if x.is_floating_point() else x for x in xs])
            return torch.utils._pytree.tree_map(lambda t: t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, out)

    return Cast(module)


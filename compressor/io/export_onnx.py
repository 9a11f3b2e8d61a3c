"""PyTorch → ONNX export with graph clean-up, shared by every ONNX-consuming backend.

torch's dynamo exporter (with its optimiser: constant folding, Conv+BatchNorm folding) writes the
graph; ``onnxslim`` then removes what is left (identity chains, Pad+Conv, redundant shape ops); the
result must pass ``onnx.checker`` with full shape inference. Dynamic dimensions of the input spec
become named symbolic dimensions with their range recorded.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

from compressor.core.errors import ExportError, first_line
from compressor.core.model import ModelHandle

OPSET = 18
NODE_MODULES_KEY = "compressor.node_modules"  # model metadata: node name -> [PyTorch module path, module class]


def node_modules(model) -> dict[str, list[str]]:
    """Which PyTorch module each node came from, from the dynamo exporter's node metadata."""
    out = {}
    for n in model.graph.node:
        meta = {p.key: p.value for p in n.metadata_props}
        scopes, classes = meta.get("pkg.torch.onnx.name_scopes"), meta.get("pkg.torch.onnx.class_hierarchy")
        if not scopes or not classes:
            continue
        try:
            import ast

            scopes, classes = ast.literal_eval(scopes), ast.literal_eval(classes)
        except (ValueError, SyntaxError):
            continue
        if len(scopes) >= 2 and len(classes) >= 2 and scopes[-2]:
            out[n.name] = [scopes[-2], classes[-2].split(".")[-1]]
    return out


def read_node_modules(model) -> dict[str, list[str]]:
    import json

    for p in model.metadata_props:
        if p.key == NODE_MODULES_KEY:
            return json.loads(p.value)
    return {}


def _op_counts(model) -> dict[str, int]:
    return dict(sorted(collections.Counter(n.op_type for n in model.graph.node).items()))


def _dynamic_shapes(handle: ModelHandle):
    import torch

    if not any(s.dynamic for s in handle.inputs):
        return None
    shapes = []
    for s in handle.inputs:
        shapes.append({i: torch.export.Dim(d.name, min=d.min, max=d.max) for i, d in enumerate(s.dims) if d.dynamic} or None)
    return tuple(shapes)


@contextlib.contextmanager
def _quiet():
    """torch.onnx prints progress and warnings of its own; keep them out of the user's terminal."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def export_onnx(handle: ModelHandle, path: Path, opset: int = OPSET, slim: bool = True) -> dict[str, Any]:
    """Write ``handle`` as a cleaned-up, checked ONNX model at ``path``; return export facts."""
    import onnx
    import torch

    path = Path(path)
    example = handle.example_inputs(for_export=True)
    exporter = "dynamo"
    program = None
    errors = []
    source = handle.exported_program if handle.exported_program is not None else handle.module
    with _quiet():
        if not isinstance(source, torch.jit.ScriptModule):
            try:
                program = torch.onnx.export(
                    source,
                    example,
                    input_names=handle.input_names,
                    output_names=handle.output_names,
                    opset_version=opset,
                    dynamic_shapes=None if handle.exported_program is not None else _dynamic_shapes(handle),
                    dynamo=True,
                    external_data=False,
                    optimize=True,
                )
            except Exception as e:  # noqa: BLE001 - fall back to the TorchScript exporter below
                errors.append(f"dynamo exporter: {first_line(e)}")
        if program is None:
            exporter = "torchscript"
            dynamic_axes = {s.name: {i: d.name for i, d in enumerate(s.dims) if d.dynamic} for s in handle.inputs if s.dynamic}
            try:
                buf = io.BytesIO()
                torch.onnx.export(
                    handle.module,
                    example,
                    buf,
                    input_names=handle.input_names,
                    output_names=handle.output_names,
                    opset_version=opset,
                    dynamic_axes=dynamic_axes or None,
                    dynamo=False,
                    do_constant_folding=True,
                )
                model = onnx.load_from_string(buf.getvalue())
            except Exception as e:  # noqa: BLE001
                errors.append(f"torchscript exporter: {first_line(e)}")
                scripted = any(isinstance(m, torch.jit.ScriptModule) for m in handle.module.modules())
                what = ("a TorchScript archive exports only if its scripted code does: load the model's Python class with --arch "
                        "and its weights (a state_dict or safetensors file) instead" if scripted
                        else "simplify the unsupported operation or pick another target")
                raise ExportError(f"ONNX export failed ({'; '.join(errors)}): {what}")
        else:
            model = program.model_proto
    before = _op_counts(model)
    modules = node_modules(model)
    if slim:
        import onnxslim

        with _quiet():
            model = onnxslim.slim(model)
    after = _op_counts(model)
    _name_dynamic_dims(model, handle)
    if modules:
        import json

        kept = {n.name for n in model.graph.node}
        entry = model.metadata_props.add()
        entry.key, entry.value = NODE_MODULES_KEY, json.dumps({k: v for k, v in modules.items() if k in kept})
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - onnx raises ValidationError and InferenceError
        raise ExportError(f"the exported ONNX model fails onnx.checker: {first_line(e)}")
    onnx.save_model(model, str(path))
    return {
        "exporter": f"torch.onnx ({exporter})" + (" + onnxslim" if slim else ""),
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset),
        "ops_before_cleanup": before,
        "ops": after,
        "nodes_before_cleanup": sum(before.values()),
        "nodes": sum(after.values()),
        "batchnorm_remaining": after.get("BatchNormalization", 0),
        "dynamic_dims": {s.name: {d.name: [d.min, d.max] for d in s.dims if d.dynamic} for s in handle.inputs if s.dynamic},
        "fallback_reason": errors[0] if errors else None,
    }


def _name_dynamic_dims(model, handle: ModelHandle) -> None:
    """Give symbolic input dims the names of the spec (exporters sometimes invent s0, s1, …)."""
    by_name = {s.name: s for s in handle.inputs}
    renames: dict[str, str] = {}
    for vi in model.graph.input:
        spec = by_name.get(vi.name)
        if spec is None:
            continue
        for d, dim in zip(spec.dims, vi.type.tensor_type.shape.dim):
            if d.dynamic and dim.dim_param and dim.dim_param != d.name:
                renames[dim.dim_param] = d.name
    if not renames:
        return
    for vi in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        for dim in vi.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]

"""Loading a checkpoint into a :class:`ModelHandle`.

Formats, recognised by content rather than by name:

- a state_dict (``.pt``/``.pth``/``.bin`` via ``torch.load(weights_only=True)``, or ``.safetensors``)
  plus ``--arch``; wrapped checkpoints (``{"state_dict": ...}``, ``{"model": ...}``) and
  DataParallel ``module.`` prefixes are unwrapped;
- a whole pickled ``nn.Module``: only with ``trust_checkpoint=True`` (unpickling runs arbitrary code);
- a TorchScript archive (``torch.jit.save``);
- a ``torch.export`` program (``.pt2``).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compressor.core.errors import CheckpointError, InputError, UntrustedCheckpointError, first_line
from compressor.core.files import sha256_file
from compressor.core.model import ModelHandle
from compressor.core.specs import InputSpec, Preprocessing
from compressor.io.arch import build_architecture, check_finite_weights, load_weights, parse_kwargs
from compressor.io.pruned import apply_record, read_record

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def detect_format(path: Path) -> str:
    """One of: safetensors, torchscript, exported_program, torch_pickle."""
    if path.suffix == ".safetensors":
        return "safetensors"
    if zipfile.is_zipfile(path):
        try:
            names = zipfile.ZipFile(path).namelist()
        except zipfile.BadZipFile as e:
            raise CheckpointError(f"cannot read checkpoint '{path}': the archive is corrupt ({e}); re-save or re-download it")
        if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
            return "exported_program"
        if any("/code/__torch__" in n for n in names):
            return "torchscript"
    return "torch_pickle"


def _is_state_dict(obj: Any) -> bool:
    import torch

    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _nested_state_dict(obj: Any, path: Path, key: str | None) -> tuple[dict | None, str | None]:
    """The state_dict under ``key`` (dotted), or the only value of ``obj`` that is one (a training checkpoint such as
    ``{"step", "model_state", "optimizer_state"}``); (None, None) when there is none."""
    if key is not None:
        cur = obj
        for part in key.split("."):
            if not isinstance(cur, dict) or part not in cur:
                have = ", ".join(map(str, list(cur)[:8])) if isinstance(cur, dict) else type(cur).__name__
                raise CheckpointError(f"--checkpoint-key {key}: '{path.name}' has no '{part}' there (it has: {have})")
            cur = cur[part]
        state = _unwrap_state_dict(cur)
        if state is None:
            raise CheckpointError(f"--checkpoint-key {key}: '{path.name}'[{key}] is a {type(cur).__name__}, not a state_dict of tensors")
        return state, key
    if not isinstance(obj, dict):
        return None, None
    found = [k for k, v in obj.items() if _is_state_dict(v)]
    if len(found) > 1:
        raise CheckpointError(f"'{path.name}' holds several state_dicts ({', '.join(map(str, found))}): choose one with --checkpoint-key KEY")
    return (_unwrap_state_dict(obj[found[0]]), str(found[0])) if found else (None, None)


def _unwrap_state_dict(obj: Any) -> dict | None:
    import torch

    if isinstance(obj, dict):
        if all(isinstance(v, torch.Tensor) for v in obj.values()):  # {} is the state_dict of a parameterless model
            state = obj
        else:
            inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], dict)), None)
            return _unwrap_state_dict(inner) if inner is not None else None
        if all(k.startswith("module.") for k in state):
            state = {k[len("module."):]: v for k, v in state.items()}
        return state
    return None


#: modules a weights file's pickle may name (tensors, storages, ordered dicts); anything else is code the file asks to run
_WEIGHT_MODULES = ("torch", "collections", "numpy", "_codecs", "builtins")
_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def foreign_globals(path: Path) -> list[str]:
    """The globals a pickled file names outside the modules of plain weights, read without unpickling (``pickletools``): a
    zip checkpoint's ``data.pkl`` or a raw pickle, every pickle in the file (legacy ``torch.save`` writes several)."""
    import io
    import pickletools

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                data = b"".join(z.read(n) for n in z.namelist() if n.endswith(".pkl"))
        else:
            data = path.read_bytes()
    except Exception:  # noqa: BLE001 - bytes that look like a zip but are none (a damaged or random file): nothing to name
        return []
    found, strings, stream = [], [], io.BytesIO(data)
    while stream.tell() < len(data):
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name in _STRINGS:
                    strings = (strings + [str(arg)])[-2:]
                elif op.name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) == 2:
                    found.append(".".join(strings))
        except Exception:  # noqa: BLE001 - not a pickle (any more): what was read so far is the answer
            break
    return list(dict.fromkeys(g for g in found if g.split(".")[0] not in _WEIGHT_MODULES))


def _corrupt(path: Path, e: Exception) -> CheckpointError:
    first = first_line(e, 200)
    return CheckpointError(f"cannot read checkpoint '{path}': the file is truncated or corrupt ({first}); re-save or re-download it")


def _load_module_or_state(path: Path, fmt: str, trust: bool, key: str | None = None) -> tuple[str, Any, str | None]:
    """Return (kind, object, the checkpoint key the state_dict was found under): kind is state_dict | module | torchscript |
    exported_program."""
    import torch

    if fmt == "safetensors":
        from safetensors.torch import load_file

        try:
            return "state_dict", load_file(str(path)), None
        except Exception as e:  # noqa: BLE001 - safetensors raises several types for bad files
            raise _corrupt(path, e)
    if fmt == "torchscript":
        try:
            return "torchscript", torch.jit.load(str(path), map_location="cpu"), None
        except Exception as e:  # noqa: BLE001
            raise _corrupt(path, e)
    if fmt == "exported_program":
        try:
            return "exported_program", torch.export.load(str(path)), None
        except Exception as e:  # noqa: BLE001
            raise _corrupt(path, e)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", str(e))
        named = found.group(1) if found else next(iter(foreign_globals(path)), None)  # torch stops at an opcode it does not know
        if named is None and "safe_globals" not in str(e):
            raise _corrupt(path, ValueError("not a valid PyTorch checkpoint")) from e
        if not trust:
            what = f" (it references {named})" if named else ""
            raise UntrustedCheckpointError(
                f"'{path.name}' is a pickled Python object{what}, not plain weights, and unpickling it can run arbitrary code: "
                "pass --trust-checkpoint only if you trust where it came from, or save model.state_dict() and pass --arch"
            ) from e
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception as e2:  # noqa: BLE001
            raise _corrupt(path, e2)
    except Exception as e:  # noqa: BLE001 - the safe unpickler cannot run code: whatever else it raises, the file is not readable
        raise _corrupt(path, e)
    if isinstance(obj, torch.nn.Module) and key is None:
        return "module", obj, None
    if isinstance(obj, dict) and key is None:
        module = next((obj[k] for k in ("model", "module", "net") if isinstance(obj.get(k), torch.nn.Module)), None)
        if module is not None:
            return "module", module, None
    used = key
    state = _unwrap_state_dict(obj) if key is None else None
    if state is None:
        state, used = _nested_state_dict(obj, path, key)
    if state is None:
        raise CheckpointError(
            f"'{path.name}' holds a {type(obj).__name__} that is neither a state_dict nor an nn.Module: "
            "save model.state_dict() (with --arch) or the whole module" + (f" (its keys: {', '.join(map(str, list(obj)[:8]))}; "
                                                                           "--checkpoint-key KEY picks a nested state_dict)"
                                                                           if isinstance(obj, dict) else "")
        )
    return "state_dict", state, used


def load_model(
    checkpoint: str | Path,
    inputs: Sequence[InputSpec] | None,
    arch: str | None = None,
    arch_kwargs: str | dict | None = None,
    trust_checkpoint: bool = False,
    preprocessing: Preprocessing | None = None,
    output_names: Sequence[str] | None = None,
    checkpoint_key: str | None = None,
    forward_kwargs: dict | None = None,
) -> ModelHandle:
    path = Path(checkpoint)
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' not found: check the path")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint '{path}' is empty: re-save or re-download it")
    kwargs = parse_kwargs(arch_kwargs)
    fmt = detect_format(path)
    kind, obj, key_used = _load_module_or_state(path, fmt, trust_checkpoint, checkpoint_key)
    exported = None
    pruned = read_record(path) if fmt == "safetensors" else None
    if kind == "state_dict":
        if pruned is not None:  # a pruned checkpoint written by the SDK: its architecture travels with it
            arch = arch or pruned["arch"]
            kwargs = kwargs or pruned.get("arch_kwargs") or {}
        if not arch:
            raise CheckpointError(
                f"'{path.name}' holds only weights (a state_dict): pass --arch torchvision:<name> or --arch package.module:callable"
            )
        module = build_architecture(arch, kwargs)
        if pruned is not None:
            apply_record(module, pruned, obj)
        load_weights(module, obj, arch)
    elif kind == "exported_program":
        exported = obj
        module = obj.module()
        if not inputs:
            inputs = inputs_from_exported(obj)
    else:
        module = obj
        if arch:
            raise InputError(f"'{path.name}' already holds a whole model ({kind}); drop --arch")
    if kind != "exported_program" and hasattr(module, "eval"):
        module.eval()
    if hasattr(module, "state_dict"):
        check_finite_weights(module.state_dict())
    if forward_kwargs:
        from compressor.io.bound import BoundArguments

        module = BoundArguments(module, forward_kwargs)
    if not inputs:
        raise InputError("no input specification: pass --input-shape, e.g. --input-shape 1,3,224,224 (or batch,3,224,224)")
    handle = ModelHandle(
        module=module,
        inputs=list(inputs),
        output_names=list(output_names or []),
        preprocessing=preprocessing,
        source={
            "file": path.name,
            "path": str(path.resolve()),
            "sha256": sha256_file(path),
            "size_bytes": path.stat().st_size,
            "format": fmt,
            "kind": kind,
            "arch": arch,
            "arch_kwargs": kwargs,
            **({"pruned": pruned["pruning"]} if pruned else {}),
            **({"checkpoint_key": key_used} if key_used else {}),
            **({"forward_kwargs": dict(forward_kwargs)} if forward_kwargs else {}),
        },
        exported_program=exported,
    )
    handle.probe()
    return handle


def inputs_from_exported(ep) -> list[InputSpec]:
    """Input specs from an exported program's placeholders (static shapes as recorded)."""
    specs = []
    for node in ep.graph.nodes:
        if node.op != "placeholder" or node.name not in ep.graph_signature.user_inputs:
            continue
        val = node.meta.get("val")
        if val is None:
            continue
        dims = []
        for i, d in enumerate(val.shape):
            dims.append(str(int(d)) if isinstance(d, int) or str(d).isdigit() else f"dim{i}")
        specs.append(InputSpec.parse(",".join(dims), name=node.name, dtype=str(val.dtype).replace("torch.", "")))
    return specs

"""Runtime adapters, one module per runtime, registered by name and imported only when used.

Adding a backend: write ``backends/<runtime>.py`` with a :class:`compressor.runner.Backend`
subclass, add it to ``_REGISTRY`` and give its targets ``backend=<name>`` in
``compressor/targets.py``.
"""

from __future__ import annotations

import importlib
import importlib.util

from compressor.core.errors import TargetError
from compressor.core.backend import Backend
from compressor.core.targets import CATALOGUE, TargetSpec, planned_reason

_REGISTRY: dict[str, str] = {
    "torch": "backends.torch_eager:TorchBackend",
    "onnxruntime": "backends.ort:OrtBackend",
    "openvino": "backends.openvino:OpenVinoBackend",
    "executorch": "backends.executorch:ExecuTorchBackend",
}
_INSTANCES: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    if name not in _REGISTRY:
        raise TargetError(f"no backend '{name}' is registered: known backends are {', '.join(_REGISTRY)}")
    if name not in _INSTANCES:
        module, cls = _REGISTRY[name].split(":")
        _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return _INSTANCES[name]


def package_missing(dist: str, module: str | None = None) -> str | None:
    """A reason string when ``module`` cannot be imported, else None (without importing it)."""
    if importlib.util.find_spec(module or dist) is None:
        return f"package '{dist}' is not installed (pip install '{dist}', or the project extra that provides it)"
    return None


def target_status(spec: TargetSpec) -> tuple[bool, str]:
    """(usable here, reason if not) for a catalogue entry."""
    if not spec.implemented:
        return False, planned_reason()
    if spec.backend not in _REGISTRY:
        return False, f"backend '{spec.backend}' is not registered"
    return get_backend(spec.backend).available(spec)


def require(spec: TargetSpec) -> Backend:
    """The backend for ``spec``, or a TargetError saying why it cannot run here."""
    ok, why = target_status(spec)
    if not ok:
        raise TargetError(f"target '{spec.name}' cannot run on this machine: {why}")
    return get_backend(spec.backend)


def all_targets() -> list[tuple[TargetSpec, bool, str]]:
    return [(spec, *target_status(spec)) for spec in CATALOGUE.values()]

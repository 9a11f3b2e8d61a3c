"""Backends and their targets, found through Python entry points (group ``compressor.backends``).

The built-in backends are registered the same way as a third-party package's (see pyproject.toml), so a
package adds a backend by declaring an entry point ``name = "package.module:BackendClass"``; nothing in
this repository is edited. Backend modules import their runtime lazily, so listing targets stays light.
A plugin that fails to load is reported, and the others go on.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from functools import lru_cache
from pathlib import Path

from compressor.core.backend import Backend
from compressor.core.errors import InputError, TargetError
from compressor.core.plugins import load_group
from compressor.core.targets import Device, TargetSpec

GROUP = "compressor.backends"
_INSTANCES: dict[str, Backend] = {}


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}
    if not found:
        raise TargetError(f"no backends are registered under the entry-point group '{GROUP}': "
                          "install the package (pip install -e . or make setup) so its entry points exist")
    return found


@lru_cache(maxsize=1)
def _loaded() -> tuple[dict[str, type[Backend]], dict[str, str]]:
    _entry_points()  # none at all: the package is not installed (one clear error)
    return load_group(GROUP, Backend)


def load_errors() -> dict[str, str]:
    """Backends whose entry point could not be loaded, with why."""
    return dict(_loaded()[1])


def get_backend(name: str) -> Backend:
    classes, errors = _loaded()
    if name in errors:
        raise TargetError(f"backend '{name}' failed to load ({errors[name]}): reinstall the package that provides it")
    if name not in classes:
        raise TargetError(f"no backend '{name}' is registered: known backends are {', '.join(classes)}")
    if name not in _INSTANCES:
        _INSTANCES[name] = classes[name]()
    return _INSTANCES[name]


@lru_cache(maxsize=1)
def catalogue() -> dict[str, TargetSpec]:
    """Every known target: those the registered backends declare."""
    out: dict[str, TargetSpec] = {}
    for name, cls in _loaded()[0].items():
        for spec in cls.TARGETS:
            if spec.backend != name:
                raise TargetError(f"backend '{name}' declares target '{spec.name}' for backend '{spec.backend}': fix its TARGETS")
            if spec.name in out:
                raise TargetError(f"target '{spec.name}' is declared by two backends ({out[spec.name].backend} and {name})")
            out[spec.name] = spec
    rank = {Device.CPU: 0, Device.GPU: 1, Device.EDGE: 2}  # the reference first, then servers before edge devices
    return dict(sorted(out.items(), key=lambda kv: (not kv[1].reference, rank.get(kv[1].device, 3))))


def get_target(name: str) -> TargetSpec:
    """The catalogue entry for ``name``; an unknown name raises a TargetError."""
    cat = catalogue()
    spec = cat.get(name)
    if spec is None:
        raise TargetError(f"unknown target '{name}': known targets are {', '.join(cat)}")
    return spec


def reference_target() -> TargetSpec:
    """The FP32 eager reference (its speed is the baseline every speed-up is measured against)."""
    ref = next((t for t in catalogue().values() if t.reference), None)
    if ref is None:
        raise TargetError("no registered backend provides the FP32 reference target")
    return ref


def target_for_file(path: Path) -> TargetSpec:
    """The target a bare artifact file runs as by default, from its suffix."""
    suffix = Path(path).suffix
    candidates = [spec for spec in catalogue().values() if suffix in spec.opens]
    for backend in dict.fromkeys(spec.backend for spec in candidates):  # a backend that recognises the content wins
        try:
            name = get_backend(backend).target_for(Path(path))
        except (TargetError, OSError):
            continue
        if name is not None:
            return get_target(name)
    if candidates:
        return candidates[0]
    known = sorted({s for t in catalogue().values() for s in t.opens})
    raise InputError(f"cannot tell the target of '{Path(path).name}' from its suffix: pass --target (known suffixes: {', '.join(known)})")


def package_missing(dist: str, module: str | None = None) -> str | None:
    """A reason string when ``module`` cannot be imported, else None (without importing it)."""
    if importlib.util.find_spec(module or dist) is None:
        return f"package '{dist}' is not installed (pip install '{dist}', or the project extra that provides it)"
    return None


def target_status(spec: TargetSpec) -> tuple[bool, str]:
    """(usable here, reason if not) for a catalogue entry."""
    try:
        backend = get_backend(spec.backend)
    except TargetError as e:
        return False, str(e)
    return backend.available(spec)


def require(spec: TargetSpec) -> Backend:
    """The backend for ``spec``, or a TargetError saying why it cannot run here."""
    ok, why = target_status(spec)
    if not ok:
        raise TargetError(f"target '{spec.name}' cannot run on this machine: {why}")
    return get_backend(spec.backend)


def all_targets() -> list[tuple[TargetSpec, bool, str]]:
    return [(spec, *target_status(spec)) for spec in catalogue().values()]


def runs_here(spec: TargetSpec) -> tuple[bool, str]:
    """Whether a usable target's artifacts also run on this machine (GPU engines build here but may not run)."""
    try:
        return get_backend(spec.backend).runnable(spec)
    except TargetError as e:
        return False, str(e)

"""Plugins, found through Python entry points: backends (``compressor.backends``), quantization realisers
(``compressor.realisers``) and compression passes (``compressor.passes``). The SDK's own are registered in pyproject.toml
exactly as a third-party package registers its own, so a package adds one by declaring an entry point and edits nothing
here. A plugin that fails to load is reported by name with why, and the others go on."""

from __future__ import annotations

import importlib.metadata

from compressor.core.errors import first_line


def load_group(group: str, base: type) -> tuple[dict[str, type], dict[str, str]]:
    """{entry-point name: class} of every entry point of ``group`` that loads and is a ``base`` subclass, and {name: why} of
    those that are not."""
    classes: dict[str, type] = {}
    errors: dict[str, str] = {}
    for ep in importlib.metadata.entry_points(group=group):
        try:
            cls = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plugin is reported, the others go on
            errors[ep.name] = f"{ep.value}: {type(e).__name__}: {first_line(e)}"
            continue
        if not (isinstance(cls, type) and issubclass(cls, base)):
            errors[ep.name] = f"{ep.value} is not a {base.__module__}.{base.__qualname__} subclass"
            continue
        classes[ep.name] = cls
    return classes, errors

"""Small file helpers shared by every layer: content hashes and atomic writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fmt_size(n: int | None) -> str:
    """Bytes for people, in binary units labelled as such (the one size unit of every surface): ``812 B``, ``150.7 KiB``,
    ``4.7 MiB``."""
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def json_default(o: Any) -> Any:
    """What json.dumps cannot write by itself: numpy scalars and arrays, paths, enums, dataclass-like objects."""
    import enum

    import numpy as np

    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, enum.Enum):
        return o.value
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    raise TypeError(f"cannot write {type(o).__name__} as JSON")


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON through a temporary file and a rename: never half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=json_default) + "\n")
    tmp.replace(path)
    return path

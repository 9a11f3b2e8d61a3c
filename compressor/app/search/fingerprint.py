"""What the trials in a search's storage file were measured for: the whole run configuration and the search space, less
an explicit list of fields that cannot change a measurement, with every file or folder the configuration names taken by its
content (a data file edited in place is a different run). A resume must match it field for field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from compressor.app.recipe import RunConfig
from compressor.core.files import sha256_file

#: fields that decide where things are written, how many trials are asked for, or how work is spread, never what one trial
#: measures: changing them keeps a search resumable
NOT_MEASURED = frozenset({
    "output",  # where the chosen bundle is written
    "gate.force",  # refused by search anyway
    "model.trust_checkpoint",  # consent to unpickle: the same file gives the same model
    "search.trials", "search.time_budget",  # how long to go on: a resume may ask for more
    "search.executor", "search.ray_address",  # where trials run (the records carry each node's CPU)
    "search.keep_pareto",  # which bundles are written at the end
    "finetune.ddp",  # data-parallel processes: the same batches, the same updates (tests/test_search.py DDP parity)
    "build.timeout", "benchmark.timeout",  # limits on a run, not its result
})


def digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (each relative name with its content's sha256, in name order)."""
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, str) and value and (p := Path(value)).exists():
        out[prefix] = "sha256:" + digest(p)
    else:
        out[prefix] = value


def fields(config: RunConfig, space_description: dict[str, Any]) -> dict[str, Any]:
    """Every measured field of the run, flat (``qat.epochs``, ``data.eval`` …), files by content."""
    out: dict[str, Any] = {}
    _flatten(config.model_dump(mode="json"), "", out)
    _flatten({"space": space_description}, "", out)
    return {k: v for k, v in sorted(out.items()) if not any(k == n or k.startswith(n + ".") for n in NOT_MEASURED)}


def fingerprint(config: RunConfig, space_description: dict[str, Any]) -> dict[str, Any]:
    f = fields(config, space_description)
    return {"sha256": hashlib.sha256(json.dumps(f, sort_keys=True, default=str).encode()).hexdigest(), "fields": f}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The fields two fingerprints disagree on (a storage file from an older SDK has no field list: 'the settings')."""
    a, b = old.get("fields"), new["fields"]
    if not isinstance(a, dict):
        return ["the settings"]
    return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]

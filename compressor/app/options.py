"""The one table of options, derived from the recipe's settings models.

Every settings field declared with a ``flag`` (see compressor/core/options.py) becomes one row: its recipe
path (``pruning.macs``), its CLI flag (``--prune-macs``) and its API keyword (``prune_macs``). The CLI's
commands and the Python API are generated from these rows, and both end in the same validated
:class:`~compressor.app.recipe.RunConfig`; there is no second list to keep in step.

Inputs are the one composite: ``--input-shape`` / ``--input-name`` / ``--input-dtype`` (repeatable, one per
input) build the recipe's ``inputs`` list.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from compressor.core.errors import InputError
from compressor.core.options import INPUTS


@dataclass(frozen=True)
class Option:
    path: str  # recipe path, e.g. "pruning.macs"
    flag: str | None  # CLI flag, e.g. "--prune-macs" (None: a recipe and API setting with no flag)
    keyword: str  # API keyword, e.g. "prune_macs"
    help: str
    panel: str | None
    kind: str  # value | flag | negate | multiple
    type: type  # what the CLI reads: str, int or float
    parse: str | None = None  # floats | size | json | list (comma-separated) | seconds (600, 10m: the field converts)
    short: str | None = None
    commands: tuple[str, ...] | None = None  # the commands whose CLI has the flag (None: every run command)

    def offered_by(self, command: str) -> bool:
        return self.flag is not None and (self.commands is None or command in self.commands)


def _unwrap(annotation) -> tuple[type, bool]:
    """(scalar type the CLI reads, whether it is a list) for a field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else (str, False)
    if origin is list:
        inner, _ = _unwrap(typing.get_args(annotation)[0])
        return inner, True
    if origin is typing.Literal:
        return str, False
    if annotation in (bool, int, float, str):
        return annotation, False
    return str, False


def _section_model(annotation) -> type[BaseModel] | None:
    for a in (annotation, *typing.get_args(annotation)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


@lru_cache(maxsize=1)
def options() -> tuple[Option, ...]:
    from compressor.app.recipe import RunConfig

    rows: list[Option] = []
    flagless: list[tuple[str, str, Any]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            path = f"{prefix}{name}"
            if typing.get_origin(f.annotation) is not list:
                section = _section_model(f.annotation)
                if section is not None:
                    walk(section, f"{path}.")
                    continue
            cli = (f.json_schema_extra or {}).get("cli") if isinstance(f.json_schema_extra, dict) else None
            scalar, is_list = _unwrap(f.annotation)
            if not cli:
                if prefix and path != "model.checkpoint":
                    flagless.append((path, name, f))
                continue
            if cli["negate"]:
                kind, keyword = "negate", cli["keyword"] or name
            else:
                kind = "flag" if scalar is bool else ("multiple" if is_list and not cli["parse"] else "value")
                keyword = cli["keyword"] or cli["flag"].lstrip("-").replace("-", "_")
            rows.append(Option(path, cli["flag"], keyword, f.description or "", cli["panel"], kind,
                               str if cli["parse"] else scalar, cli["parse"], cli["short"], cli.get("commands")))

    walk(RunConfig, "")
    taken = {o.keyword for o in rows} | {o.keyword for o in INPUT_OPTIONS}
    names = [name for _, name, _ in flagless]
    for path, name, f in flagless:  # API keyword: the field's name, or section_field where that would be ambiguous
        keyword = name if names.count(name) == 1 and name not in taken else path.replace(".", "_")
        scalar, is_list = _unwrap(f.annotation)
        rows.append(Option(path, None, keyword, f.description or "", None, "flag" if scalar is bool else "value", scalar))
    return tuple(rows)


#: the inputs composite: CLI flag -> API keyword
INPUT_OPTIONS = (
    Option("inputs", "--input-shape", "input_shape", "Input shape, e.g. 1,3,224,224 or batch=1:32,3,224,224; repeat for several inputs.",
           INPUTS, "multiple", str),
    Option("inputs", "--input-name", "input_names", "Input name, one per --input-shape (default: input).", INPUTS, "multiple", str),
    Option("inputs", "--input-dtype", "input_dtype", "Input dtype (float32, int64, …): one, or one per input.", INPUTS, "multiple", str),
)


def flag_of(section: str, field: str | None) -> str | None:
    """The CLI flag of recipe field ``section.field`` (None: no such field, or it has no flag)."""
    path = f"{section}.{field}"
    return next((o.flag for o in options() if o.path == path), None) if field else None


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in str(text).split(",")]
    except ValueError:
        raise InputError(f"{flag} takes numbers separated by commas, like 0.485,0.456,0.406; got '{text}'") from None


def parse_value(opt: Option, value: Any) -> Any:
    """A CLI or API value as the recipe field wants it (API callers may already pass the parsed form)."""
    if not isinstance(value, str):
        return value
    if opt.parse == "floats":
        return _floats(value, opt.flag)
    if opt.parse == "size":
        vals = [int(v) for v in _floats(value, opt.flag)]
        return vals[0] if len(vals) == 1 else vals
    if opt.parse == "list":
        return [v.strip() for v in value.split(",") if v.strip()]
    if opt.parse == "json":
        from compressor.io.arch import JSON_EXAMPLES, parse_kwargs

        return parse_kwargs(value, opt.flag, JSON_EXAMPLES.get(opt.flag, '{"key": 1}'))
    return value


def _as_list(value) -> list | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return [value]
    return list(value) or None


def inputs_from(shapes, names=None, dtypes=None) -> list[dict] | None:
    """The recipe's ``inputs`` list from the composite flags."""
    shapes, names, dtypes = _as_list(shapes), _as_list(names), _as_list(dtypes)
    if shapes is None:
        if names or dtypes:
            raise InputError("--input-name and --input-dtype describe inputs given by --input-shape: add --input-shape")
        return None
    names = names or (["input"] if len(shapes) == 1 else [f"input_{i}" for i in range(len(shapes))])
    if len(names) != len(shapes):
        raise InputError(f"{len(shapes)} input shapes but {len(names)} input names: give one name per --input-shape")
    dtypes = dtypes or [None]
    if len(dtypes) == 1:
        dtypes = dtypes * len(shapes)
    if len(dtypes) != len(shapes):
        raise InputError(f"{len(shapes)} input shapes but {len(dtypes)} dtypes: give one --input-dtype, or one per input")
    return [{"name": n, "shape": str(s), **({"dtype": d} if d else {})} for n, s, d in zip(names, shapes, dtypes)]


def overrides(values: dict[str, Any]) -> dict[str, Any]:
    """Recipe overrides (dotted paths) from option values keyed by API keyword; None (or an empty list) means "not given".

    Besides the table's keywords: ``checkpoint``, the inputs composite, and a recipe section's name with a dict
    (``preprocessing={"mean": [0.5]}``) for several of its fields at once."""
    rows = {o.keyword: o for o in options()}
    sections = {o.path.split(".")[0] for o in rows.values() if "." in o.path}
    values = dict(values)
    out: dict[str, Any] = {}
    if values.get("checkpoint") is not None:
        out["model.checkpoint"] = str(values.pop("checkpoint"))
    values.pop("checkpoint", None)
    inputs = inputs_from(*(values.pop(o.keyword, None) for o in INPUT_OPTIONS))
    if inputs is not None:
        out["inputs"] = inputs
    for key, value in values.items():
        if key in sections and isinstance(value, dict):
            for field, v in value.items():
                if v is not None:
                    out[f"{key}.{field}"] = v
            continue
        opt = rows.get(key)
        if opt is None:
            import difflib

            close = difflib.get_close_matches(key, list(rows) + [o.keyword for o in INPUT_OPTIONS], n=3)
            raise InputError(f"unknown option '{key}'" + (f" (did you mean {', '.join(close)}?)" if close else "")
                             + ": see `compressor compress --help` (API keywords are the flags with underscores)")
        if value is None or (opt.kind == "multiple" and not _as_list(value)):
            continue
        if opt.kind == "negate":
            value = bool(value) if not isinstance(value, str) else value
        elif opt.kind == "multiple":
            value = [str(v) for v in _as_list(value)]
        else:
            value = parse_value(opt, value)
        out[opt.path] = str(value) if hasattr(value, "__fspath__") else value
    return out


def describe() -> str:
    """The table as text (for contributors and the docs): flag, API keyword, recipe path."""
    rows = [("flag", "API keyword", "recipe field")] + [(o.flag or "(recipe/API only)", o.keyword, o.path) for o in (*INPUT_OPTIONS, *options())]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, width)) for r in rows)

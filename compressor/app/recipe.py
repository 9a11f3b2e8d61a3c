"""Recipes: one validated description of a run, used by the CLI and the Python API alike.

A recipe is a YAML or JSON file following :class:`RunConfig`. CLI flags are shortcuts for recipe
fields (``--target`` sets ``target``, ``--eval`` sets ``data.eval``, …) applied on top of the file,
so there is a single code path. Unknown keys are errors that name the key and its line.
Relative paths are taken from the directory the command runs in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from compressor.app.search_settings import SearchSettings
from compressor.bundle.writer import OutputSettings
from compressor.core.build import BuildSettings
from compressor.core.errors import RecipeError
from compressor.core.options import Settings, clean_message, option
from compressor.core.specs import InputSpec, Preprocessing
from compressor.data.settings import DataSettings
from compressor.evaluation.benchmark import BenchmarkSettings
from compressor.evaluation.gate import GateSettings
from compressor.io.settings import InputSettings, ModelSettings
from compressor.pruning.settings import PruningSettings
from compressor.quantization.qat import QatSettings
from compressor.quantization.settings import QuantizationSettings
from compressor.quantization.weight_only.settings import WeightOnlySettings
from compressor.training.settings import FinetuneSettings

LM_INPUT = {"name": "input_ids", "shape": "1,tokens=1:8192", "dtype": "int64"}


class RunConfig(Settings):
    """A whole run: each section is the settings model of the stage that uses it."""

    model: ModelSettings
    inputs: list[InputSettings] = Field(min_length=1)
    preprocessing: Optional[Preprocessing] = None
    target: str = option("ort-cpu-fp32", "Target to build (see `compressor targets`). Default ort-cpu-fp32.", flag="--target", short="-t")
    data: DataSettings = Field(default_factory=DataSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    quantization: QuantizationSettings = Field(default_factory=QuantizationSettings)
    qat: QatSettings = Field(default_factory=QatSettings)
    lm: WeightOnlySettings = Field(default_factory=WeightOnlySettings)  # read by --task text-generation only
    pruning: Optional[PruningSettings] = None
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)
    benchmark: BenchmarkSettings = Field(default_factory=BenchmarkSettings)
    build: BuildSettings = Field(default_factory=BuildSettings)
    output: Optional[OutputSettings] = None  # required by compress (checked there), not by analyze or bench
    search: SearchSettings = Field(default_factory=SearchSettings)  # read by compressor search only

    @field_validator("inputs")
    @classmethod
    def _unique_names(cls, v: list[InputSettings]) -> list[InputSettings]:
        names = [i.name for i in v]
        if len(names) != len(set(names)):
            raise ValueError(f"input names must be unique, got {names}")
        return v

    def input_specs(self) -> list[InputSpec]:
        return [i.to_spec() for i in self.inputs]


def read_recipe(path: str | Path) -> tuple[dict[str, Any], Any]:
    """The recipe's raw mapping and its YAML node tree (for line numbers in errors)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe '{path}' not found: check the path")
    text = path.read_text()
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RecipeError(f"recipe '{path}' is not valid YAML/JSON{where}: {getattr(e, 'problem', e)}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"recipe '{path}' must be a mapping of fields (model:, inputs:, target:, …), not a {type(data).__name__}")
    return data, node


def _line_of(node, loc: tuple) -> int | None:
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if match is None:
                return node.start_mark.line + 1
            if key == loc[-1]:
                return match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node.start_mark.line + 1 if node is not None else None


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``set_path(d, "data.eval", x)`` sets ``d["data"]["eval"] = x``, creating mappings on the way."""
    keys = dotted.split(".")
    cur = data
    for k in keys[:-1]:
        nxt = cur.get(k)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[k] = nxt
        cur = nxt
    cur[keys[-1]] = value


def build_config(recipe: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Validate recipe file + overrides (dotted keys; None means "not given") into a RunConfig."""
    data, node, source = {}, None, "the run settings"
    if recipe is not None:
        data, node = read_recipe(recipe)
        source = f"recipe '{recipe}'"
    data = json.loads(json.dumps(data))  # a private copy
    for key, value in (overrides or {}).items():
        if value is not None:
            set_path(data, key, value)
    if isinstance(data.get("model"), dict) and data["model"].get("task") == "text-generation" and not data.get("inputs"):
        data["inputs"] = [LM_INPUT]  # a language model's input is its token ids; the tokenizer and the text data decide them
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(node, loc) if node is not None else None
        at = f" (line {line})" if line else ""
        if err["type"] == "extra_forbidden":
            msg = f"{source}: unknown key '{key}'{at}; known keys here are {', '.join(_known_keys(loc[:-1]))}"
        elif err["type"] == "missing":
            msg = f"{source}: '{key}' is required{at}" + _flag_hint(key)
        else:
            flag = _flag_of(loc)
            msg = f"{source}: '{key}'{f' ({flag})' if flag else ''}{at}: {clean_message(err['msg'])}"
        more = len(e.errors()) - 1
        raise RecipeError(msg + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""))


_FLAG_HINTS = {"model": "CHECKPOINT", "model.checkpoint": "CHECKPOINT", "inputs": "--input-shape", "output": "--output", "output.path": "--output"}


def _flag_hint(key: str) -> str:
    hint = _FLAG_HINTS.get(key)
    return f": give it in the recipe or with {hint}" if hint else ""


def _flag_of(loc: tuple) -> str | None:
    """The CLI flag of the field at ``loc`` (None for a field with no flag)."""
    parent = _model_at(loc[:-1])
    field = parent.model_fields.get(str(loc[-1])) if parent is not None and loc else None
    extra = field.json_schema_extra if field is not None and isinstance(field.json_schema_extra, dict) else {}
    return (extra.get("cli") or {}).get("flag")


def _model_at(loc: tuple, partial: bool = False) -> type[BaseModel] | None:
    """The settings model at ``loc`` (``partial``: the deepest one on the way when ``loc`` goes past the models)."""
    model: type[BaseModel] = RunConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        inner = next((a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif inner is not None:
            model = inner
        else:
            return model if partial else None
    return model


def _known_keys(loc: tuple) -> list[str]:
    return list(_model_at(loc, partial=True).model_fields)

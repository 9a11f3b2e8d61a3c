"""Recipes: one validated description of a run, used by the CLI and the Python API alike.

A recipe is a YAML or JSON file following :class:`RunConfig`. CLI flags are shortcuts for recipe
fields (``--target`` sets ``target``, ``--eval`` sets ``data.eval``, …) applied on top of the file,
so there is a single code path. Unknown keys are errors that name the key and its line.
Relative paths are taken from the directory the command runs in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compressor.core.errors import RecipeError
from compressor.quantization.plan import CALIBRATION_METHODS, DEFAULT_CALIBRATION, DEFAULT_PERCENTILE
from compressor.core.specs import INTERPOLATIONS, InputSpec, Preprocessing


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    checkpoint: str
    arch: Optional[str] = None
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    trust_checkpoint: bool = False
    output_names: Optional[list[str]] = None
    task: Literal["auto", "classification", "embedding", "other"] = "auto"


class InputConfig(_Strict):
    name: str = "input"
    shape: str
    dtype: str = "float32"

    def to_spec(self) -> InputSpec:
        return InputSpec.parse(self.shape, name=self.name, dtype=self.dtype)


class PreprocessingConfig(_Strict):
    resize: Optional[Union[int, list[int]]] = None
    interpolation: Literal[INTERPOLATIONS] = "bilinear"  # type: ignore[valid-type]
    crop: Optional[Union[int, list[int]]] = None
    scale: float = 1.0 / 255.0
    mean: list[float] = Field(default_factory=lambda: [0.0])
    std: list[float] = Field(default_factory=lambda: [1.0])
    channel_order: Literal["rgb", "bgr"] = "rgb"
    layout: Literal["nchw", "nhwc"] = "nchw"

    def to_preprocessing(self) -> Preprocessing:
        return Preprocessing(**self.model_dump())


class DataConfig(_Strict):
    eval: Optional[str] = None
    eval_labels: Optional[str] = None
    eval_samples: Optional[int] = Field(default=None, ge=1)
    calib: Optional[str] = None
    calib_labels: Optional[str] = None
    calib_samples: Optional[int] = Field(default=None, ge=1)
    synthetic: bool = False
    synthetic_samples: int = Field(default=32, ge=1)


class GateConfig(_Strict):
    max_accuracy_drop: Optional[float] = Field(default=None, ge=0)
    min_agreement: Optional[float] = Field(default=None, ge=0, le=1)
    min_cosine: Optional[float] = Field(default=None, ge=-1, le=1)
    max_size_mb: Optional[float] = Field(default=None, gt=0)
    max_memory_mb: Optional[float] = Field(default=None, gt=0)
    force: bool = False


class BenchmarkConfig(_Strict):
    enabled: bool = True
    threads: Optional[int] = Field(default=None, ge=1)
    batch_size: int = Field(default=1, ge=1)
    duration: float = Field(default=3.0, gt=0)
    iterations: int = Field(default=50, ge=1)
    warmup_iterations: int = Field(default=10, ge=10)
    warmup_seconds: float = Field(default=0.2, ge=0.2)
    compare_eager: bool = True


class QuantizationConfig(_Strict):
    calibration: Literal[CALIBRATION_METHODS] = DEFAULT_CALIBRATION  # type: ignore[valid-type]
    percentile: float = Field(default=DEFAULT_PERCENTILE, gt=50, le=100)
    exclude: list[str] = Field(default_factory=list)
    sensitivity: bool = True
    sensitivity_samples: int = Field(default=16, ge=1)
    quantizer: Literal["sdk", "nncf"] = "sdk"


class PruningConfig(_Strict):
    ratio: Optional[float] = None
    macs: Optional[float] = None
    heads: Optional[float] = None
    importance: Literal["l1", "l2", "taylor", "bn_scale"] = "l2"
    global_pruning: bool = False
    round_to: Optional[int] = Field(default=None, ge=1)
    exclude: list[str] = Field(default_factory=list)
    keep_first_and_last: bool = True
    save: Optional[str] = None
    hook: Optional[str] = None


class FinetuneConfig(_Strict):
    data: Optional[str] = None
    labels: Optional[str] = None
    samples: Optional[int] = Field(default=None, ge=1)
    epochs: int = Field(default=1, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=64, ge=1)
    distill: bool = False
    temperature: float = Field(default=2.0, gt=0)
    alpha: float = Field(default=0.5, ge=0, le=1)
    patience: int = Field(default=2, ge=1)
    amp: Literal["auto", "bf16", "off"] = "auto"
    loss: Optional[str] = None


class OutputConfig(_Strict):
    path: str
    overwrite: bool = False
    tar: bool = False
    reference_samples: int = Field(default=8, ge=1)


class RunConfig(_Strict):
    model: ModelConfig
    inputs: list[InputConfig] = Field(min_length=1)
    preprocessing: Optional[PreprocessingConfig] = None
    target: str = "ort-cpu-fp32"
    data: DataConfig = Field(default_factory=DataConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    pruning: Optional[PruningConfig] = None
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig)
    output: Optional[OutputConfig] = None  # required by compress (checked there), not by analyze

    @field_validator("inputs")
    @classmethod
    def _unique_names(cls, v: list[InputConfig]) -> list[InputConfig]:
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
            msg = f"{source}: '{key}'{at}: {err['msg']}"
        more = len(e.errors()) - 1
        raise RecipeError(msg + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""))


_FLAG_HINTS = {"model": "CHECKPOINT", "model.checkpoint": "CHECKPOINT", "inputs": "--input-shape", "output": "--output", "output.path": "--output"}


def _flag_hint(key: str) -> str:
    hint = _FLAG_HINTS.get(key)
    return f": give it in the recipe or with {hint}" if hint else ""


def _known_keys(loc: tuple) -> list[str]:
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
            break
    return list(model.model_fields)

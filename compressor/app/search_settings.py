"""Search settings: the recipe section ``search`` (its flags exist only on ``compressor search``) and the search space
(``search.space``, recipe and API only), generated from the search dimensions the settings fields declare. The budgets are
the gate's own fields (``--max-latency-ms``, ``--max-size-mb``, ``--max-memory-mb``, ``--max-accuracy-drop`` /
``--min-agreement`` / ``--min-cosine``): one definition for compress and search."""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from compressor.core.errors import InputError
from compressor.core.options import SEARCH, Settings, clean_message, option
from compressor.core.searchable import Dimension, dimensions
from compressor.pruning.settings import PruningSettings
from compressor.quantization.qat import QatSettings
from compressor.quantization.settings import QuantizationSettings

PRECISION_PLANS = ("fp32", "bf16", "int8", "auto")
SEARCH_ONLY = ("search",)


#: the run configuration's sections whose fields may declare a search dimension (``option(..., search=Searchable(...))``)
SECTIONS = {"pruning": PruningSettings, "quantization": QuantizationSettings, "qat": QatSettings}
DIMENSIONS = dimensions(SECTIONS)
BY_NAME = {d.name: d for d in DIMENSIONS}


class _Space(Settings):
    """What a trial chooses from, besides the target (``--targets``): the precision plans, and one list of values per search
    dimension declared on a settings field (generated below; ``null``: the dimension is not searched)."""

    precisions: list[Literal[PRECISION_PLANS]] = option(  # type: ignore[valid-type]
        help="Precision plans per target's runtime: fp32, bf16, int8 (all-INT8 PTQ), auto (mixed precision under the accuracy "
             "budget, as --auto-precision).", default_factory=lambda: list(PRECISION_PLANS), min_length=1)

    def values(self, dimension: Dimension) -> list | None:
        return getattr(self, dimension.searchable.key)

    @model_validator(mode="after")
    def _valid_values(self):
        """Each value is one its own settings model accepts (checked now, not when a trial builds it)."""
        for d in DIMENSIONS:
            values = self.values(d)
            if values is None:
                continue
            deduped = list(dict.fromkeys(values))
            if len(deduped) != len(values):
                object.__setattr__(self, d.searchable.key, deduped)
            for v in deduped:
                if d.searchable.absent(v):
                    continue
                try:
                    SECTIONS[d.section].model_validate({d.field: [v] if d.searchable.apply == "append" else v})
                except (ValidationError, InputError) as e:
                    msg = clean_message(e.errors()[0]["msg"]) if isinstance(e, ValidationError) else str(e)
                    raise ValueError(f"{d.searchable.key}: {v!r} is not a value of {d.section}.{d.field}: {msg}") from None
        return self


def _dimension_field(d: Dimension):
    s = d.searchable
    help = (f"Values of {d.section}.{d.field} tried" + (" (static INT8 plans only)" if s.only == "static" else "")
            + ("; not searched unless listed" if s.default is None else "") + ".")
    default = None if s.default is None else list(s.default)
    return Optional[list[d.annotation]], option(default, help, min_length=1)


SpaceSettings = create_model("SpaceSettings", __base__=_Space, __module__=__name__,
                             **{d.searchable.key: _dimension_field(d) for d in DIMENSIONS})


def _seconds(v):
    """``600``, ``600s``, ``10m`` or ``1.5h`` as seconds."""
    if v is None or isinstance(v, (int, float)):
        return v
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(v))
    if not m:
        raise ValueError(f"give seconds, or a number with s, m or h (600, 10m, 1.5h); got '{v}'")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


class SearchSettings(Settings):
    targets: list[str] = option(help="Targets whose runtimes the search compares (comma-separated, or 'all': every target usable here); "
                                     "each runtime is tried at every precision plan of the space.", flag="--targets", panel=SEARCH,
                                parse="list", commands=SEARCH_ONLY, default_factory=lambda: ["all"], min_length=1)
    objective: Literal["latency", "size", "accuracy"] = option(
        "latency", "What the best feasible trial minimises: latency (p50) | size | accuracy (the loss the accuracy budget measures).",
        flag="--objective", panel=SEARCH, commands=SEARCH_ONLY)
    trials: int = option(20, "Candidates to evaluate (distinct; a repeat proposal is answered from the first).", flag="--trials",
                         panel=SEARCH, commands=SEARCH_ONLY, ge=1)
    time_budget: Optional[float] = option(None, "Stop proposing trials after this long (600, 10m, 1h); the running trial finishes.",
                                          flag="--time-budget", panel=SEARCH, parse="seconds", commands=SEARCH_ONLY, gt=0)
    sampler: Literal["tpe", "random", "grid"] = option("tpe", "tpe (optuna's TPE, seeded; default) | random | grid (every point, in order).",
                                                       flag="--sampler", panel=SEARCH, commands=SEARCH_ONLY)
    seed: int = option(0, "Seed of the sampler.", flag="--seed", panel=SEARCH, commands=SEARCH_ONLY)
    executor: Literal["local", "ray"] = option(
        "local", "local (default: one benchmark at a time on this machine) | ray (trials on a Ray cluster; CPU targets on CPU nodes, "
        "GPU targets on GPU nodes).", flag="--executor", panel=SEARCH, commands=SEARCH_ONLY)
    ray_address: Optional[str] = option(None, "--executor ray: 'auto' (the cluster this machine belongs to) or HOST:PORT; default: a "
                                              "local Ray started for the search.", flag="--ray-address", panel=SEARCH, commands=SEARCH_ONLY)
    keep_pareto: bool = option(False, "Also write a bundle for every trial of the Pareto front (in OUTPUT-search/pareto/).",
                               flag="--keep-pareto", panel=SEARCH, commands=SEARCH_ONLY)
    space: SpaceSettings = Field(default_factory=SpaceSettings)

    @field_validator("time_budget", mode="before")
    @classmethod
    def _time(cls, v):
        return _seconds(v)

    @field_validator("targets")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        names = [t.strip() for item in v for t in str(item).split(",") if t.strip()]
        if not names:
            raise ValueError("give a comma-separated list of targets or 'all' (see `compressor targets`)")
        return list(dict.fromkeys(names))

"""Search settings: the recipe section ``search`` (its flags exist only on ``compressor search``) and the search space
(``search.space``, recipe and API only). The budgets are the gate's own fields (``--max-latency-ms``, ``--max-size-mb``,
``--max-memory-mb``, ``--max-accuracy-drop`` / ``--min-agreement`` / ``--min-cosine``): one definition for compress and search."""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field, field_validator

from compressor.core.options import SEARCH, Settings, option
from compressor.quantization.plan import CALIBRATION_METHODS

PRECISION_PLANS = ("fp32", "bf16", "int8", "auto")
SEARCH_ONLY = ("search",)


class SpaceSettings(Settings):
    """What a trial chooses from, besides the target (``--targets``)."""

    precisions: list[Literal[PRECISION_PLANS]] = option(  # type: ignore[valid-type]
        help="Precision plans per target's runtime: fp32, bf16, int8 (all-INT8 PTQ), auto (mixed precision under the accuracy "
             "budget, as --auto-precision).", default_factory=lambda: list(PRECISION_PLANS), min_length=1)
    prune_macs: list[float] = option(help="Fractions of MACs pruned away (0: not pruned); fine-tuned with --finetune data when given.",
                                     default_factory=lambda: [0.0, 0.25, 0.5], min_length=1)
    calibrations: list[Literal[CALIBRATION_METHODS]] = option(  # type: ignore[valid-type]
        help="Activation calibration methods tried for static INT8 plans.", default_factory=lambda: ["mse", "percentile"], min_length=1)
    qat: list[bool] = option(help="QAT off/on for static INT8 plans (on needs --finetune data).", default_factory=lambda: [False, True],
                             min_length=1)

    @field_validator("prune_macs")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not 0.0 <= x < 1.0]
        if bad:
            raise ValueError(f"pruning amounts are fractions of MACs in [0, 1), got {bad}")
        return sorted(set(v))


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

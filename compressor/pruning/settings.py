"""Pruning settings: the recipe section ``pruning``, its CLI
flags and API keywords (see compressor/core/options.py), and what the algorithms receive as they are."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import ValidationInfo, field_validator, model_validator

from compressor.core.errors import InputError
from compressor.core.options import PRUNE, Settings, option
from compressor.core.searchable import Searchable

IMPORTANCES = ("l1", "l2", "taylor", "bn_scale")


class PruningSettings(Settings):
    ratio: Optional[float] = option(None, "Prune this fraction of channels instead.", flag="--prune-ratio", panel=PRUNE)
    macs: Optional[float] = option(None, "Prune channels until this fraction of MACs is gone (e.g. 0.5).", flag="--prune-macs", panel=PRUNE,
                                   search=Searchable("prune_macs", default=(0.0, 0.25, 0.5), title="pruning", label="pruned {value:.0%} MACs",
                                                     off=0.0, clears=("ratio",), package="torch_pruning", training="recovers"))
    heads: Optional[float] = option(None, "Remove this fraction of attention heads (transformers).", flag="--prune-heads", panel=PRUNE)
    importance: Literal[IMPORTANCES] = option("l2", "l1 | l2 (default) | taylor (needs labelled --finetune data) | bn_scale.",  # type: ignore[valid-type]
                                              flag="--prune-importance", panel=PRUNE)
    global_pruning: bool = option(False, "Rank channels across layers instead of per layer.", flag="--prune-global", panel=PRUNE)
    round_to: Optional[int] = option(None, "Round channel counts to this multiple (default: the target's channel multiple).",
                                     flag="--round-to", panel=PRUNE, ge=1)
    exclude: list[str] = option(help="Keep layers whole: name/glob, re:<regex>, type:<Conv2d|Linear>; repeatable.",
                                flag="--prune-exclude", panel=PRUNE, default_factory=list)
    keep_first_and_last: bool = option(True, "Keep the first layer and the classifier whole.")
    save: Optional[str] = option(None, "Also write the pruned model as a .safetensors that reloads with --arch + the file.",
                                 flag="--save-pruned", panel=PRUNE)
    hook: Optional[str] = option(None, "package.module:callable(model, step) run after each pruning step (your own training).",
                                 flag="--prune-hook", panel=PRUNE)
    max_steps: int = option(40, "Most iterative steps to reach a MACs target.", ge=1)
    sparsity: Optional[str] = option(None, "Zero weights by magnitude: an N:M pattern (2:4: NVIDIA's sparse tensor cores) or a fraction "
                                           "(0.5, unstructured); fine-tuned with --finetune, stored compressed (the bundle is also "
                                           "written as .tar.gz).", flag="--sparsity", panel=PRUNE)

    @field_validator("sparsity")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            from compressor.pruning.sparsity import SparsityPattern

            try:
                return str(SparsityPattern.parse(v)).split()[0]
            except InputError as e:
                raise ValueError(str(e).removeprefix(f"--sparsity {v}: ").removeprefix(f"--sparsity {v!r}: ")) from None
        return v

    @property
    def structured(self) -> bool:
        """Channels or heads are removed (not only weights zeroed)."""
        return self.ratio is not None or self.macs is not None or bool(self.heads)

    @field_validator("ratio", "macs", "heads")
    @classmethod
    def _fraction(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and not 0.0 < v < 1.0:
            flag = cls.model_fields[info.field_name].json_schema_extra["cli"]["flag"]
            raise ValueError(f"{flag} must be between 0 and 1 (exclusive), got {v}: e.g. 0.5 removes half")
        return v

    @model_validator(mode="after")
    def _one_target(self) -> PruningSettings:
        if self.ratio is None and self.macs is None and not self.heads and self.sparsity is None:
            raise InputError("pruning needs a target: --prune-ratio R, --prune-macs R or --prune-heads R (each in (0, 1)), "
                             "or --sparsity 2:4")
        if self.ratio is not None and self.macs is not None:
            raise InputError("give either --prune-ratio or --prune-macs, not both")
        return self

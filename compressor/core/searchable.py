"""Search dimensions declared where the setting lives.

A settings field becomes searchable by declaring it: ``option(..., search=Searchable("calibration", space="calibrations",
default=("mse", "percentile"), only="static"))``. ``compressor search`` generates its space from these declarations
(``search.space.<space>`` in a recipe lists the values tried, ``default`` is what it tries when the recipe says nothing;
``None`` means "searchable, not searched unless listed"), so a new pass becomes searchable by declaring its own field,
without editing ``compressor/app/search/``.

Everything here is plain data (values are what optuna's categorical parameters take: None, bool, int, float, str).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: a sentinel for "this dimension has no value that switches its section off"
_NONE = "__no_off_value__"


@dataclass(frozen=True)
class Searchable:
    name: str  # the trial parameter and the key of a point (``calibration``)
    space: str = ""  # the key of ``search.space`` listing the values tried (default: ``name``)
    default: tuple | None = None  # values tried by default; None: only when the recipe lists some
    only: Literal["any", "static"] = "any"  # "static": only for static INT8 plans (the other plans have no such setting)
    title: str = ""  # what the user reads in "left out" lines and the space summary (default: ``name``)
    label: str = "{name} {value}"  # how a point shows a truthy value (``{value}``, ``{name}``); falsy values are not shown
    apply: Literal["set", "append"] = "set"  # how a value enters the field: set it, or append it to the field's list
    off: Any = _NONE  # the value that means "this optional section is absent" (pruning's 0.0 MACs)
    clears: tuple[str, ...] = ()  # sibling fields set to None when a value is set (--prune-macs clears --prune-ratio)
    package: str | None = None  # a module truthy values need (left out of the space, and said, when it is missing)
    training: Literal["none", "recovers", "needs"] = "none"  # truthy values need (or benefit from) --finetune data
    capability: str | None = None  # a quantizer capability truthy values need (``supports_qat``)

    @property
    def key(self) -> str:
        return self.space or self.name

    @property
    def what(self) -> str:
        return self.title or self.name

    @property
    def has_off(self) -> bool:
        return self.off != _NONE

    def applies(self, static: bool) -> bool:
        """Whether a plan has this dimension (``static``: the plan is static INT8)."""
        return self.only == "any" or static

    def absent(self, value: Any) -> bool:
        """``value`` adds nothing to the run: the off value of an optional section, or no entry for a list field."""
        return (self.has_off and value == self.off) or (self.apply == "append" and not value)

    def active(self, value: Any) -> bool:
        """``value`` turns something on (what needs a package, training data or a capability, and what a label shows)."""
        return bool(value) and not self.absent(value)

    def describe(self, value: Any) -> str:
        return self.label.format(name=self.name, value=value) if self.active(value) else ""


@dataclass(frozen=True)
class Dimension:
    """A searchable field where it sits in the run configuration."""

    section: str  # the run configuration's section (``quantization``)
    field: str  # the field in it (``calibration``)
    searchable: Searchable
    annotation: Any  # the field's type (a list field's item type for ``apply="append"``)

    @property
    def name(self) -> str:
        return self.searchable.name

    def current(self, section: Any) -> Any:
        """The value a run with ``section`` (None: the optional section is absent) has for this dimension."""
        s = self.searchable
        if section is None:
            return s.off if s.has_off else None
        value = getattr(section, self.field)
        if s.apply == "append":
            return ""
        return s.off if value is None and s.has_off else value

    def set(self, data: dict[str, Any], value: Any) -> None:
        """Put ``value`` into the run configuration mapping ``data`` (a ``RunConfig.model_dump``)."""
        s = self.searchable
        if s.has_off and value == s.off:
            data[self.section] = None
            return
        section = dict(data.get(self.section) or {})
        if s.apply == "append":
            if not s.absent(value):
                section[self.field] = [*section.get(self.field, []), value]
        else:
            section[self.field] = value
        for other in s.clears:
            section[other] = None
        data[self.section] = section

    def switch_off(self, data: dict[str, Any]) -> None:
        """For a plan this dimension does not apply to (a static-INT8 setting of an FP32 point): a switch is turned off, the
        rest is left as the run has it."""
        if self.annotation is bool and isinstance(data.get(self.section), dict):
            data[self.section][self.field] = False


def dimensions(sections: dict[str, type]) -> list[Dimension]:
    """The searchable fields of the run configuration's ``sections`` (name -> settings model), in declaration order."""
    from typing import get_args

    out: list[Dimension] = []
    for section, model in sections.items():
        for field, info in model.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            s = extra.get("search")
            if s is None:
                continue
            annotation = info.annotation
            if s.apply == "append":
                annotation = get_args(annotation)[0]
            out.append(Dimension(section, field, s, annotation))
    names = [d.name for d in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"search dimensions declared twice: {', '.join(dupes)}")
    return out

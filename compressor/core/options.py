"""One definition of each option: a settings field that is also a recipe key, a CLI flag and an API keyword.

Each algorithm owns its settings model (a pydantic class next to the algorithm: ``PruningSettings`` in
``compressor/pruning/settings.py``, ``QuantizationSettings`` in ``compressor/quantization/settings.py``, …),
and receives it as it is. The recipe (``compressor/app/recipe.py``) is made of those models, and the CLI
and the API are generated from the same fields (``compressor/app/options.py``): a field declared with
:func:`option` and a ``flag`` is all it takes to add an option everywhere.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# help panels of `compressor compress --help`
MODEL, INPUTS, PREPROCESSING, DATA, GATE, QUANT, PRUNE, BENCH, OUTPUT, SEARCH = (
    "Model", "Inputs", "Preprocessing", "Data", "Accuracy gate", "Quantization (INT8 targets)", "Pruning", "Benchmark", "Output", "Search")


class Settings(BaseModel):
    """Base of every settings model: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def checked(cls, **values: Any):
        """Like the constructor, but a bad value is an InputError that names the flag (or field) and says why."""
        from pydantic import ValidationError

        from compressor.core.errors import InputError

        try:
            return cls(**values)
        except ValidationError as e:
            err = e.errors()[0]
            name = str(err["loc"][0]) if err["loc"] else cls.__name__
            field = cls.model_fields.get(name)
            extra = field.json_schema_extra if field is not None and isinstance(field.json_schema_extra, dict) else {}
            flag = (extra.get("cli") or {}).get("flag") or name
            raise InputError(f"{flag}: {clean_message(err['msg'])} (got {err.get('input')!r})") from None


def option(default: Any = ..., help: str = "", *, flag: str | None = None, panel: str | None = None, keyword: str | None = None,
           negate: bool = False, parse: str | None = None, short: str | None = None, commands: tuple[str, ...] | None = None,
           default_factory=None, search=None, **constraints) -> Any:
    """A settings field; with ``flag`` it is also a CLI option and an API keyword.

    - ``flag``: the CLI flag (``--prune-macs``); the API keyword is the flag's name with underscores
      (``prune_macs``) unless ``keyword`` says otherwise.
    - ``negate``: a boolean whose flag turns it off (``--no-sensitivity`` sets ``sensitivity: false``); its
      API keyword is the field's own name (``sensitivity=False``).
    - ``parse``: how the CLI reads the text: ``floats`` (``0.485,0.456``), ``size`` (``224`` or ``256,320``),
      ``json`` (an object); lists are repeatable flags.
    - ``commands``: the commands whose CLI offers the flag (default: every command that takes the run options; e.g.
      ``("search",)`` for a setting only a search reads). The recipe and the API accept the field everywhere.
    - ``search``: a :class:`~compressor.core.searchable.Searchable`: ``compressor search`` may vary the field (its space is
      generated from these declarations).
    - ``constraints``: pydantic's (``ge``, ``gt``, ``le``, …).
    """
    cli = None
    if flag is not None:
        cli = {"flag": flag, "panel": panel, "keyword": keyword, "negate": negate, "parse": parse, "short": short, "commands": commands}
    kwargs: dict[str, Any] = {"description": help, **constraints}
    extra = {k: v for k, v in (("cli", cli), ("search", search)) if v is not None}
    if extra:
        kwargs["json_schema_extra"] = extra
    if default_factory is not None:
        return Field(default_factory=default_factory, **kwargs)
    return Field(default, **kwargs)


def clean_message(msg: str) -> str:
    """pydantic's message without its "Value error, " prefix."""
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")

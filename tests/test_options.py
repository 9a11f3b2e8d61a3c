"""One definition of each option: the settings models make the table; the CLI flags, the API keywords and the
recipe keys all come from it."""

from __future__ import annotations

import pytest

import compressor
from compressor.app.options import INPUT_OPTIONS, options, overrides
from compressor.app.recipe import RunConfig, build_config
from compressor.core.errors import InputError, RecipeError

from .conftest import FASHION, FASHION_ARCH, cli


def _field(path: str):
    model = RunConfig
    parts = path.split(".")
    for part in parts[:-1]:
        ann = model.model_fields[part].annotation
        model = next(a for a in (ann, *getattr(ann, "__args__", ())) if isinstance(a, type) and hasattr(a, "model_fields"))
    return model.model_fields[parts[-1]]


def test_every_option_is_a_recipe_field_with_one_flag_and_one_keyword():
    rows = [*INPUT_OPTIONS, *options()]
    flags = [o.flag for o in rows if o.flag]
    keywords = [o.keyword for o in rows]
    assert len(flags) == len(set(flags)) and len(keywords) == len(set(keywords))
    for o in options():
        assert _field(o.path).description, o.path  # the help text is the field's description
    assert {"--prune-macs", "--calib", "--exclude", "--no-sensitivity", "--max-accuracy-drop", "--threads", "--output"} <= set(flags)


@pytest.mark.parametrize("command", ["compress", "search"])
def test_cli_help_lists_every_flag(command):
    """Each command lists every flag it offers, and no other command's own flags (``--trials`` is the search's)."""
    res = cli(command, "--help", env={"COLUMNS": "250"})
    assert res.returncode == 0
    rows = [*INPUT_OPTIONS, *options()]
    missing = [o.flag for o in rows if o.offered_by(command) and o.flag not in res.stdout]
    assert not missing, missing
    foreign = [o.flag for o in rows if o.flag and not o.offered_by(command) and f"{o.flag} " in res.stdout]
    assert not foreign, foreign


def test_flag_keyword_and_recipe_reach_the_same_field(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{checkpoint: x.pt, arch: '{FASHION_ARCH}'}}\ninputs: [{{shape: '1,1,28,28'}}]\n"
                      "pruning: {macs: 0.3}\nquantization: {sensitivity_on: runtime}\n")
    from_recipe = build_config(recipe)
    from_api = build_config(None, overrides(dict(checkpoint="x.pt", arch=FASHION_ARCH, input_shape="1,1,28,28", prune_macs=0.3,
                                                 sensitivity_on="runtime")))
    assert from_recipe == from_api
    assert build_config(recipe, overrides(dict(prune_macs=0.5, sensitivity=False))).pruning.macs == 0.5  # flags override the recipe


def test_unknown_keyword_and_bad_value_name_themselves():
    with pytest.raises(InputError, match="unknown option 'prune_mac' .*did you mean prune_macs"):
        compressor.compress(FASHION / "fashion_cnn.safetensors", prune_mac=0.5)
    with pytest.raises(RecipeError, match="'pruning.macs'.*between 0 and 1"):
        build_config(None, overrides(dict(checkpoint="x.pt", input_shape="1,1,28,28", prune_macs=2.0)))

"""The search space is generated from the search dimensions declared on settings fields: a pass's own field (or a plugin
pass named through ``search.space.passes``) becomes searchable without editing ``compressor/app/search/``."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytest

from compressor.app.recipe import build_config
from compressor.app.search.evaluator import candidate_config
from compressor.app.search.space import Point, Space, build_space
from compressor.app.search_settings import DIMENSIONS, SpaceSettings
from compressor.core.errors import CompressorError
from compressor.core.options import Settings, option
from compressor.core.searchable import Searchable, dimensions


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "eval.npz"
    np.savez(path, x=np.zeros((4, 1, 28, 28), np.float32))
    return path


def _config(data, **overrides):
    base = {"model.checkpoint": str(data), "inputs": [{"shape": "1,1,28,28"}], "data.eval": str(data), "data.calib": str(data),
            "search.targets": ["ort-cpu-int8"], "search.space.precisions": ["fp32", "int8"]}
    return build_config(None, {**base, **overrides})


def _space(config) -> Space:
    return build_space(config, False, lambda spec: (True, ""))


def test_the_default_space_is_the_declared_defaults():
    assert [d.name for d in DIMENSIONS] == ["prune_macs", "calibration", "bias_correction", "extra_pass", "qat"]
    space = SpaceSettings()
    assert (space.prune_macs, space.calibrations, space.qat) == ([0.0, 0.25, 0.5], ["mse", "percentile"], [False, True])
    assert space.bias_correction is None and space.passes is None  # searchable, but only searched when listed


def test_points_cover_the_declared_dimensions_and_static_ones_only_for_int8(data):
    space = _space(_config(data, **{"search.space.prune_macs": [0.0, 0.5], "finetune.data": str(data)}))
    assert space.choices == ["ort-cpu-fp32", "ort-cpu-int8"]
    points = space.points()
    fp32 = [p for p in points if p.target == "ort-cpu-fp32"]
    int8 = [p for p in points if p.target == "ort-cpu-int8"]
    assert [dict(p.values) for p in fp32] == [{"prune_macs": 0.0}, {"prune_macs": 0.5}]
    assert len(int8) == 2 * 2 * 2 and {tuple(dict(p.values)) for p in int8} == {("prune_macs", "calibration", "qat")}
    assert space.summary() == "2 target plans × 2 pruning × 2 calibration × 2 QAT"
    assert space.baselines == [Point("ort-cpu-int8", (("prune_macs", 0.0), ("calibration", "mse"), ("qat", False)))]
    assert [Point.of(p.to_dict()) for p in points] == points  # a trial's record gives its point back


def test_a_pass_switch_and_a_named_pass_are_searched_when_listed(data):
    config = _config(data, **{"search.space.prune_macs": [0.0], "search.space.qat": [False], "search.space.calibrations": ["mse"],
                              "search.space.bias_correction": [False, True], "search.space.passes": ["", "equalization"]})
    space = _space(config)
    int8 = [p for p in space.points() if p.target == "ort-cpu-int8"]
    assert len(int8) == 4
    point = next(p for p in int8 if p.get("bias_correction") and p.get("extra_pass"))
    assert point.label() == "ort-cpu-int8, mse, bias corrected, pass equalization"
    built = candidate_config(config, point)
    assert built.quantization.bias_correction and built.quantization.passes == ["equalization"] and built.pruning is None
    fp32 = candidate_config(config.model_copy(update={"qat": config.qat.model_copy(update={"enabled": True})}),
                            Point("ort-cpu-fp32", (("prune_macs", 0.5),)))
    assert fp32.pruning.macs == 0.5 and fp32.pruning.ratio is None and not fp32.qat.enabled  # a static-only switch is turned off


def test_values_a_run_cannot_try_are_left_out_with_the_reason(data):
    space = _space(_config(data, **{"quantization.quantizer": "nncf", "search.space.bias_correction": [False, True],
                                    "search.space.prune_macs": [0.0]}))
    assert {d.name: v for d, v in space.dimensions}["bias_correction"] == [False]
    assert any(d.startswith("bias correction True: --quantizer nncf does not support it (use --quantizer sdk)") for d in space.dropped)
    assert any(d.startswith("QAT True: needs training data") for d in space.dropped)


@pytest.mark.parametrize("key,value,needle", [
    ("search.space.calibrations", ["bogus"], "calibrations"),
    ("search.space.passes", ["no-such-pass"], "no pass named no-such-pass is installed"),
    ("search.space.prune_macs", [1.5], "--prune-macs must be between 0 and 1"),
])
def test_a_value_its_own_settings_refuse_is_refused_up_front(data, key, value, needle):
    with pytest.raises(CompressorError, match=needle):
        _config(data, **{key: value})


def test_a_new_settings_field_declares_its_own_dimension():
    class RoundingSettings(Settings):
        bits: Optional[int] = option(None, "Round weights to this many bits.", search=Searchable("round_bits", default=(4, 8),
                                                                                                   label="{value}-bit rounding"))

    (dim,) = dimensions({"rounding": RoundingSettings})
    assert (dim.section, dim.field, dim.annotation) == ("rounding", "bits", Optional[int])
    data: dict = {"rounding": {}}
    dim.set(data, 4)
    assert data == {"rounding": {"bits": 4}} and dim.searchable.describe(4) == "4-bit rounding"

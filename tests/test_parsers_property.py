"""Property-based tests (hypothesis) of everything that parses user text or files: any input gives a result or one
CompressorError (a one-line message for the user), never another exception."""

from __future__ import annotations

import json

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from compressor.app.bench import parse_batch_sizes, parse_targets
from compressor.app.recipe import build_config
from compressor.core.errors import CompressorError
from compressor.core.specs import InputSpec
from compressor.data.sources import load_data

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DIM = st.one_of(st.integers(-3, 5000).map(str), st.sampled_from(["batch", "seq", "n=1:8", "batch=4:2", "b=0:3", "x=1:", "=3", "1.5", "",
                                                                   "-", "batch=1:64", "×", "1e3", " 7 "]))
SHAPE_TEXT = st.one_of(st.lists(DIM, min_size=0, max_size=6).map(",".join), st.text(max_size=40))


def _one_line(e: CompressorError) -> None:
    text = str(e)
    assert text and "\n" not in text, text


@FAST
@given(SHAPE_TEXT, st.sampled_from(["float32", "int64", "uint8", "bfloat16", "float33", "", "str"]))
def test_input_shapes(text, dtype):
    try:
        spec = InputSpec.parse(text, dtype=dtype)
    except CompressorError as e:
        _one_line(e)
        return
    assert spec.rank >= 1 and all(d >= 1 for d in spec.shape(batch=1))


@FAST
@given(st.one_of(st.lists(st.sampled_from(["ort-cpu-fp32", "ort-cpu-int8", "openvino-cpu-int8", "nope", "", " ", "all", "ORT-CPU-FP32"]),
                          max_size=5).map(",".join), st.text(max_size=30)))
def test_target_lists(text):
    try:
        names = parse_targets(text)
    except CompressorError as e:
        _one_line(e)
        return
    assert names and len(names) == len(set(names))


@FAST
@given(st.one_of(st.lists(st.integers(-5, 300).map(str), max_size=4).map(",".join), st.text(max_size=20)))
def test_batch_sizes(text):
    try:
        sizes = parse_batch_sizes(text, 1)
    except CompressorError as e:
        _one_line(e)
        return
    assert sizes and all(b >= 1 for b in sizes)


SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True), st.text(max_size=12))
KEYS = st.sampled_from(["model", "inputs", "target", "output", "quantization", "pruning", "benchmark", "gate", "qat", "finetune", "bogus",
                        "checkpoint", "shape", "name", "dtype", "calibration_method", "max_accuracy_drop", "epochs", "ratio"])
RECIPE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)


@FAST
@given(RECIPE)
def test_recipes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("r") / "recipe.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, float) else json.dumps(data))
    try:
        build_config(path)
    except CompressorError as e:
        _one_line(e)


@FAST
@given(st.text(max_size=200))
def test_recipe_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("r") / "recipe.yaml"
    path.write_text(text)
    try:
        build_config(path)
    except CompressorError as e:
        _one_line(e)


DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.uint8, np.int8, np.bool_, np.complex64])


@FAST
@given(arrays(DTYPES, array_shapes(min_dims=1, max_dims=4, max_side=5)), st.one_of(st.none(), arrays(np.int64, st.integers(0, 6))),
       st.sampled_from(["x", "input", "y", "images", "data"]), st.sampled_from(["1,4", "batch,2,5", "1,1,5,5", "batch=1:4,3"]))
def test_data_files(tmp_path_factory, x, y, key, shape):
    path = tmp_path_factory.mktemp("d") / "data.npz"
    np.savez(path, **{**({"y": y} if y is not None else {}), key: x})
    try:
        src = load_data(str(path), [InputSpec.parse(shape)])
    except CompressorError as e:
        _one_line(e)
        return
    assert len(src) >= 1 and all(np.isfinite(a).all() for a in src.inputs if np.issubdtype(a.dtype, np.floating))

"""The typed manifest: its JSON Schema ships with the package, `verify` checks every manifest against it and
names the field that breaks it, bundles of an earlier minor schema still verify, another major is refused."""

from __future__ import annotations

import json
import shutil

import pytest

import compressor
from compressor.bundle.manifest import SCHEMA_FILE, SCHEMA_VERSION, json_schema
from compressor.core.errors import VerificationError

from .conftest import FAST_BENCH, cli


@pytest.fixture(scope="module")
def bundle(fashion_bundles):
    """Any real bundle: the one test_pipeline reads too (built once per session)."""
    return fashion_bundles.get("ort-cpu-fp32", calib=None, max_accuracy_drop=0.1, tar=True, **FAST_BENCH).bundle


def _edited(bundle, tmp_path, edit):
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    m = json.loads((copy / "manifest.json").read_text())
    edit(m)
    (copy / "manifest.json").write_text(json.dumps(m))
    return copy


def test_shipped_schema_is_the_models_schema():
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), "regenerate it: python -m compressor.bundle.manifest"
    assert SCHEMA_VERSION in json_schema()["$id"]


def test_bundle_manifest_follows_the_schema(bundle):
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["schema_version"] == SCHEMA_VERSION and m["target"]["ir"] == "onnx"
    assert compressor.verify(bundle)["passed"]


@pytest.mark.parametrize("edit, field", [
    (lambda m: m["reference"]["tolerance"].__setitem__("atol", "tiny"), "reference.tolerance.atol"),
    (lambda m: m["artifact"].pop("path"), "artifact.path"),
    (lambda m: m["metrics"]["fidelity"].__setitem__("samples", 0), "metrics.fidelity.samples"),
    (lambda m: m.__setitem__("surprise", 1), "surprise"),
])
def test_verify_names_the_field_that_breaks_the_schema(bundle, tmp_path, edit, field):
    copy = _edited(bundle, tmp_path, edit)
    with pytest.raises(VerificationError, match=f"breaks its schema at '{field}'"):
        compressor.verify(copy)
    res = cli("verify", str(copy))
    assert res.returncode == 4 and f"'{field}'" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_bundle_of_schema_1_0_still_verifies(bundle, tmp_path):
    """Written before 1.1 added target.ir: the minor version only adds optional fields."""
    def to_1_0(m):
        m["schema_version"] = "1.0"
        m["target"].pop("ir")
    assert compressor.verify(_edited(bundle, tmp_path, to_1_0))["passed"]


def test_another_major_schema_is_refused_with_the_reason(bundle, tmp_path):
    copy = _edited(bundle, tmp_path, lambda m: m.__setitem__("schema_version", "2.0"))
    with pytest.raises(VerificationError, match="manifest schema 2.0 is not readable by this SDK"):
        compressor.verify(copy)

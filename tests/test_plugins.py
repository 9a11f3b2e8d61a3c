"""Backends are plugins: a package outside this repository adds one through the entry point group
``compressor.backends``, and the SDK lists it, builds, validates, benchmarks and verifies its bundles."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from .conftest import FASHION, FASHION_ARCH, ROOT, cli

PLUGIN = ROOT / "tests" / "plugin_backend"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    """The plugin package pip-installed into a folder of its own (the project's venv is left untouched)."""
    target = tmp_path_factory.mktemp("plugin-site")
    build = tmp_path_factory.mktemp("plugin-src")
    import shutil

    shutil.copytree(PLUGIN, build / "plugin")  # pip builds in place: keep the repository clean
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(build / "plugin")], check=True)
    return target


def _env(plugin_path):
    return {"PYTHONPATH": os.pathsep.join([str(plugin_path), str(ROOT)])}


def test_plugin_is_listed_and_writes_a_validated_bundle(plugin_path, tmp_path):
    res = cli("targets", "--json", str(tmp_path / "t.json"), env=_env(plugin_path))
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads((tmp_path / "t.json").read_text())}
    assert rows["onnxref-cpu-fp32"]["usable"] and rows["onnxref-cpu-fp32"]["backend"] == "onnxref"
    assert "onnxref-cpu-fp32" in res.stdout

    out = tmp_path / "bundle"
    res = cli("compress", str(FASHION / "fashion_cnn.safetensors"), "--arch", FASHION_ARCH, "--input-shape", "batch=1:64,1,28,28",
              "--scale", str(1 / 255), "--mean", "0.2860", "--std", "0.3530", "--eval", str(FASHION / "test_subset.npz"),
              "--eval-samples", "64", "--target", "onnxref-cpu-fp32", "--min-agreement", "0.99", "--duration", "0.2",
              "--iterations", "5", "--no-eager-baseline", "-o", str(out), env=_env(plugin_path))
    assert res.returncode == 0, res.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["target"]["name"] == "onnxref-cpu-fp32" and m["gate"]["passed"]
    assert m["metrics"]["fidelity"]["top1_agreement"] == 1.0 and m["metrics"]["latency_ms"]["p50"] > 0
    assert m["benchmark"]["runtime"]["runtime"] == "onnx.reference"
    assert "compressor-onnxref example plugin" in (out / "REPORT.md").read_text()  # the backend's own report section
    res = cli("verify", str(out), env=_env(plugin_path))
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr


def test_a_plugin_realiser_and_pass_run_end_to_end(plugin_path, tmp_path):
    """The plugin's INT8 target is written by its own realiser (a QDQ layout the SDK does not know), with its own plan pass
    (power-of-two activation scales) switched on by name: listed, described in --help, validated, reported, verified."""
    import onnx
    from onnx import numpy_helper

    res = cli("targets", "--json", str(tmp_path / "t.json"), env=_env(plugin_path))
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads((tmp_path / "t.json").read_text())}
    assert rows["onnxref-cpu-int8"]["usable"] and rows["onnxref-cpu-int8"]["realisers"] == {"sdk": "onnx / qdq-reference"}
    flat = "".join(res.stdout.split())  # the tables, at any terminal width
    assert "qdq-reference" in flat and "pow2-scales" in flat and "compressor_onnxref" in flat
    res = cli("compress", "--help", env={**_env(plugin_path), "COLUMNS": "250"})
    assert "pow2-scales" in res.stdout  # --pass lists the installed passes

    out = tmp_path / "int8"
    res = cli("compress", str(FASHION / "fashion_cnn.safetensors"), "--arch", FASHION_ARCH, "--input-shape", "batch=1:64,1,28,28",
              "--scale", str(1 / 255), "--mean", "0.2860", "--std", "0.3530", "--eval", str(FASHION / "test_subset.npz"),
              "--eval-samples", "64", "--calib", str(FASHION / "calib_subset.npz"), "--calib-samples", "32", "--no-sensitivity",
              "--target", "onnxref-cpu-int8", "--pass", "pow2-scales", "--min-agreement", "0.9", "--duration", "0.2", "--iterations", "5",
              "--no-eager-baseline", "-o", str(out), env=_env(plugin_path))
    assert res.returncode == 0, res.stderr
    m = json.loads((out / "manifest.json").read_text())
    q = m["quantization"]
    assert m["gate"]["passed"] and m["metrics"]["fidelity"]["top1_agreement"] >= 0.9 and q["layers_int8"] == q["layers_total"]
    assert m["artifact"]["build"]["quantization_realiser"] == "compressor-onnxref qdq-reference"
    pow2 = q["transforms"]["pow2-scales"]
    assert pow2["applied"] and pow2["phase"] == "plan" and pow2["tensors"] > 0
    assert list(q["transforms"])[-1] == "pow2-scales"  # after the built-in plan passes, as its order says
    # the artifact's activation scales really are powers of two (weights keep their per-channel scales)
    model = onnx.load(str(out / "model.onnx"))
    q_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    scales = [float(inits[n.input[1]]) for n in q_nodes if n.input[1] in inits]
    assert scales and all(math.log2(s) == round(math.log2(s)) for s in scales)
    assert "Power-of-two activation scales" in (out / "REPORT.md").read_text()
    res = cli("verify", str(out), env=_env(plugin_path))
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr


def test_an_unknown_pass_is_refused_naming_the_installed_ones(tmp_path):
    from .conftest import cli_in_process, fashion_args, one_line_error

    one_line_error(cli_in_process(*fashion_args(FASHION / "fashion_cnn.safetensors", FASHION / "test_subset.npz", tmp_path / "o",
                                                "--target", "ort-cpu-int8", "--calib", str(FASHION / "calib_subset.npz"),
                                                "--pass", "no-such-pass", "--no-benchmark")),
                   "(--pass): no pass named no-such-pass is installed", "equalization", "bias_correction")
    assert not (tmp_path / "o").exists()


def test_without_the_plugin_its_target_is_unknown(tmp_path):
    res = cli("compress", str(FASHION / "fashion_cnn.safetensors"), "--arch", FASHION_ARCH, "--input-shape", "1,1,28,28",
              "--synthetic", "--target", "onnxref-cpu-fp32", "-o", str(tmp_path / "b"))
    assert res.returncode != 0 and "unknown target 'onnxref-cpu-fp32'" in res.stderr
    assert not (tmp_path / "b").exists()


def test_a_broken_plugin_is_reported_and_the_others_go_on(tmp_path):
    """An entry point that fails to import does not take the built-in backends down with it."""
    site = tmp_path / "site"
    dist = site / "broken_backend-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[compressor.backends]\nbroken = no_such_module:Backend\n")
    res = cli("targets", env={"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])})
    assert res.returncode == 0, res.stderr
    assert "backend 'broken' failed to load" in res.stdout and "ort-cpu-fp32" in res.stdout

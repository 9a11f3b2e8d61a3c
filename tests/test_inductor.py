"""PyTorch-native targets: AOTInductor packages built from the SDK's plan through the x86 quantizer as Intel Neural
Compressor configures it, INC's own flow (--quantizer inc, its autotune under a gate), and what is refused.

One AOTI compile in the whole file (the Fashion-MNIST INT8 bundle, shared by the tests that need a package);
everything else stops before compiling."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import compressor
from compressor.core.errors import CompressorError
from compressor.core.registry import get_backend, get_target, target_for_file

from .conftest import FASHION, FASHION_ARCH, FASHION_PRE, cli, read_manifest

FIXED = dict(arch=FASHION_ARCH, input_shape="1,1,28,28", preprocessing=FASHION_PRE, eval=FASHION / "test_subset.npz",
             calib=FASHION / "calib_subset.npz")
CLI_FIXED = ["--arch", FASHION_ARCH, "--input-shape", "1,1,28,28", "--scale", str(1 / 255), "--mean", "0.2860", "--std", "0.3530",
             "--eval", str(FASHION / "test_subset.npz"), "--eval-samples", "256", "--calib", str(FASHION / "calib_subset.npz")]
TARGET = "torch-inductor-cpu-int8"


@pytest.fixture(scope="module")
def int8_bundle(fashion_bundles):
    return fashion_bundles.get(TARGET, input_shape="1,1,28,28", benchmark=False, sensitivity=False)


@pytest.mark.slow
def test_int8_package_runs_onednn_int8_and_keeps_accuracy(int8_bundle):
    m = int8_bundle.manifest
    assert int8_bundle.fidelity["accuracy_drop_pp"] <= 0.3  # 2,000 test images
    q = m["quantization"]
    assert q["kernels"]["weight_layers_int8"] == q["kernels"]["weight_layers_total"] == 6
    assert sum(q["kernels"]["int8_kernels"].values()) == 6 and any(k.startswith("_qconv") for k in q["kernels"]["int8_kernels"])
    assert q["pt2e"]["ranges_from_plan"] == q["pt2e"]["observers"] > 0  # the SDK's ranges, not INC's observers
    build = m["artifact"]["build"]
    assert build["torch"] == torch.__version__ and build["neural_compressor"] and build["inductor_configs"] == {"freezing": True}
    assert build["compiler"] and build["compile_seconds"] > 0 and "AVX" in (build["cpu_isa"] or "")
    report = (int8_bundle.bundle / "REPORT.md").read_text()
    assert "## AOTInductor package" in report and "Intel Neural Compressor" in report


@pytest.mark.slow
def test_bundle_verifies_in_a_fresh_process_without_the_model_code(int8_bundle, tmp_path):
    # the architecture's module cannot be imported in the verifying process: the package carries everything
    res = cli("verify", str(int8_bundle.bundle), cwd=tmp_path, prelude="import sys; sys.modules['compressor.zoo.fashion_cnn'] = None")
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout and TARGET in res.stdout
    # a bare package is recognised by its content (a torch.export program is .pt2 too)
    assert target_for_file(int8_bundle.bundle / "model.pt2").name == TARGET
    assert [s.shape_str for s in get_backend("inductor").artifact_inputs(int8_bundle.bundle / "model.pt2")] == ["1,1,28,28"]


@pytest.mark.slow
def test_a_package_from_another_torch_is_refused(int8_bundle, tmp_path, monkeypatch):
    bundle = tmp_path / "other-torch"
    shutil.copytree(int8_bundle.bundle, bundle)
    m = read_manifest(bundle)
    m["artifact"]["build"]["torch"] = "2.99.0"
    (bundle / "manifest.json").write_text(json.dumps(m))
    res = cli("verify", str(bundle))
    assert res.returncode != 0
    assert "compiled by torch 2.99.0" in res.stderr and "install torch==2.99.0" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    # the package itself says which torch built it: loading it under another torch is refused before the library is opened
    monkeypatch.setattr(torch, "__version__", "2.99.0")
    with pytest.raises(CompressorError, match=r"compiled by torch .* but this machine has torch 2\.99\.0"):
        get_backend("inductor").load(bundle / "model.pt2", get_target(TARGET))


def test_no_cxx_compiler_is_named(tmp_path):
    res = cli("compress", str(FASHION / "fashion_cnn.safetensors"), *CLI_FIXED, "--target", TARGET, "--output", str(tmp_path / "b"),
              env={"CXX": "no-such-g++"})
    assert res.returncode != 0
    assert "no C++ compiler" in res.stderr and "no-such-g++" in res.stderr and "apt-get install g++" in res.stderr
    assert not (tmp_path / "b").exists()
    listed = cli("targets", env={"CXX": "no-such-g++"})
    assert "torch-inductor-cpu-fp32" in listed.stdout and "no C++ compiler" in listed.stdout


def test_int8_with_a_dynamic_batch_is_refused(tmp_path):
    args = [a if a != "1,1,28,28" else "batch=1:64,1,28,28" for a in CLI_FIXED]
    res = cli("compress", str(FASHION / "fashion_cnn.safetensors"), *args, "--target", TARGET, "--output", str(tmp_path / "b"))
    assert res.returncode != 0
    assert "dynamic" in res.stderr and "--input-shape 1,1,28,28" in res.stderr
    assert not (tmp_path / "b").exists()


def test_inc_quantizer_is_refused_for_other_targets(tmp_path):
    res = cli("compress", str(FASHION / "fashion_cnn.safetensors"), *CLI_FIXED, "--target", "ort-cpu-int8", "--quantizer", "inc",
              "--output", str(tmp_path / "b"))
    assert res.returncode != 0
    assert "--quantizer inc is not offered for ort-cpu-int8" in res.stderr and not (tmp_path / "b").exists()


def _session(**options):
    from compressor.app.options import overrides
    from compressor.app.recipe import build_config
    from compressor.app.session import open_session
    from compressor.core.progress import Progress

    config = build_config(None, overrides({"target": TARGET, **options}))
    return open_session(config, Progress(quiet=True), calibrate=True)


def _ir(session):
    from compressor.evaluation.session import Candidate

    spec = get_target(TARGET).with_run(session.model.inputs, session.threads)
    session.prepare([Candidate(TARGET)])
    variant = session.variants.get(None, spec)
    return session.variants.ir(variant, "as loaded", spec, tuning=session._tuning(variant.model))


def _agreement(session, ir, n: int = 128) -> float:
    """Top-1 agreement of the quantized program (run eagerly, one sample at a time: its shape is fixed) with the float model."""
    n = min(n, len(session.eval_data))
    x = torch.from_numpy(session.eval_data.inputs[0][:n])
    module = ir.program.module()
    with torch.no_grad():
        got = torch.cat([module(x[i:i + 1]) for i in range(n)])
        return float((got.argmax(1) == session.model.module(x).argmax(1)).float().mean())


def test_inc_quantizer_uses_incs_own_flow_and_autotunes_under_a_gate():
    common = dict(checkpoint=str(FASHION / "fashion_cnn.safetensors"), arch=FASHION_ARCH, input_shape=["1,1,28,28"], scale=1 / 255,
                  mean=[0.2860], std=[0.3530], eval=str(FASHION / "test_subset.npz"), eval_samples=512, calib=str(FASHION / "calib_subset.npz"),
                  quantizer="inc")
    with _session(**common) as s:
        ir = _ir(s)
        assert ir.plan.quantizer.startswith("inc ") and "INC's observers" in ir.export["quantization_realiser"]
        assert ir.export["autotune"] is None  # no gate: INC's default static configuration
        assert _agreement(s, ir) >= 0.98
    with _session(**common, max_accuracy_drop=0.3) as s:
        ir = _ir(s)
        t = ir.export["autotune"]
        assert t["metric"] == "accuracy" and t["met"] and 1 <= t["chosen_trial"] <= len(t["trials"]) <= 4
        assert t["trials"][t["chosen_trial"] - 1] >= t["threshold"] == pytest.approx(t["baseline"] - 0.003)
        assert _agreement(s, ir) >= 0.98


def test_strict_export_failure_falls_back_with_a_warning(tmp_path):
    from tests.models_for_tests import graph_break_cnn

    torch.save(graph_break_cnn().state_dict(), tmp_path / "gb.pth")
    with _session(checkpoint=str(tmp_path / "gb.pth"), arch="tests.models_for_tests:graph_break_cnn", input_shape=["1,1,28,28"],
                  scale=1 / 255, eval=str(FASHION / "test_subset.npz"), eval_samples=64, calib=str(FASHION / "calib_subset.npz")) as s:
        ir = _ir(s)
        warning = next(w for w in s.warnings if "non-strict" in w)
        assert "strict" in warning and "Input partition has more than one output node" in warning and "graph breaks" in warning
        assert ir.program is not None and _agreement(s, ir) >= 0.9
        x = np.asarray(s.eval_data.inputs[0][:1])
        assert ir.program.module()(torch.from_numpy(x)).shape == (1, 10)


@pytest.mark.slow
def test_bf16_package_leaves_the_model_float_for_the_next_target(tmp_path):
    from compressor.core.environment import cpu_info

    res = compressor.bench_targets(FASHION / "fashion_cnn.safetensors", targets="torch-inductor-cpu-bf16,ort-cpu-fp32", sensitivity=False,
                                   duration=0.2, iterations=5, eval_samples=256, **{**FIXED, "input_shape": "batch=1:16,1,28,28"})
    rows = {r["target"]: r for r in res["rows"]}
    if not {"avx512_bf16", "amx_bf16"} & set(cpu_info()["isa"]):
        assert rows["torch-inductor-cpu-bf16"]["status"] == "unusable" and "no native bf16" in rows["torch-inductor-cpu-bf16"]["reason"]
    else:
        assert rows["torch-inductor-cpu-bf16"]["status"] == "ok" and rows["torch-inductor-cpu-bf16"]["fidelity"]["top1_agreement"] >= 0.98
    # the bf16 build casts a copy: the FP32 target built after it from the same session is still exact
    assert rows["ort-cpu-fp32"]["status"] == "ok" and rows["ort-cpu-fp32"]["fidelity"]["cosine_min"] > 0.99999

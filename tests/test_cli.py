"""The real `compressor` command in fresh processes: bad input gets one line, a non-zero exit, nothing written."""

import json
import sys

import numpy as np
import pytest
import torch

from .conftest import FASHION_ARCH, cli, cli_in_process, fashion_args, one_line_error, read_manifest


def test_help_is_light():
    """`compressor --help` must answer fast: importing the CLI pulls in no ML runtime or numpy."""
    code = ("import sys, compressor.app.cli; heavy = [m for m in ('torch', 'numpy', 'onnx', 'onnxruntime', 'pydantic') if m in sys.modules];"
            " print(heavy)")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    res = cli("--help")
    assert res.returncode == 0 and "compress" in res.stdout and "verify" in res.stdout


def test_targets_lists_all_with_reasons(tmp_path):
    res = cli("targets", "--json", str(tmp_path / "t.json"))
    assert res.returncode == 0
    rows = {r["name"]: r for r in json.loads((tmp_path / "t.json").read_text())}
    assert rows["ort-cpu-fp32"]["usable"] and rows["torch-cpu-fp32"]["usable"]
    import torch

    if not torch.cuda.is_available():  # GPU engines build here and say why they cannot run
        trt = rows["tensorrt-gpu-fp16"]
        assert trt["usable"] and not trt["runs_here"] and trt["reason"].startswith("built, not run: no NVIDIA GPU")
        assert "build only" in res.stdout
    assert "executorch-xnnpack-int8" in res.stdout


def test_missing_backend_package_is_named(tmp_path, fashion_ckpt, fashion_small):
    hide = "import sys; sys.modules['onnxruntime'] = None"  # the package is absent for this process
    res = cli("targets", prelude=hide)
    assert "package 'onnxruntime' is not installed" in res.stdout
    res = cli(*fashion_args(fashion_ckpt, fashion_small, tmp_path / "o"), prelude=hide)
    one_line_error(res, "onnxruntime", "not installed")
    assert not (tmp_path / "o").exists()


def test_compress_and_verify_via_cli(tmp_path, fashion_ckpt, fashion_small):
    out = tmp_path / "bundle"
    res = cli(*fashion_args(fashion_ckpt, fashion_small, out, "--duration", "0.3", "--iterations", "10", "--json", str(tmp_path / "r.json")))
    assert res.returncode == 0, res.stderr
    # what was printed is checked from the JSON and the manifest (a narrow terminal wraps the table and the lines)
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["metrics"]["fidelity"]["top1_agreement"] == 1.0 and result["metrics"]["speedup_vs_torch_eager"] > 0
    assert read_manifest(out)["gate"]["passed"] and read_manifest(out)["target"]["name"] == "ort-cpu-fp32"
    flat = "".join(res.stderr.split())
    assert "✓builtort-cpu-fp32artifact" in flat and "passeditsgate" in "".join(res.stdout.split())  # progress, verdict
    res = cli("verify", str(out))
    assert res.returncode == 0 and res.stdout.startswith("OK")
    (out / "reference" / "inputs.npz").write_bytes(b"tampered")
    one_line_error(cli("verify", str(out)), "reference/inputs.npz changed")


@pytest.mark.parametrize(
    "case, needles",
    [
        ("missing", ["not found"]),
        ("corrupt", ["truncated or corrupt"]),
        ("mismatch", ["does not fit", "missing key"]),
        ("pickled", ["--trust-checkpoint"]),
        ("bad_shape", ["rejects input"]),
        ("bad_data", ["expects"]),
        ("unknown_target", ["unknown target", "ort-cpu-fp32"]),
        ("exists", ["already exists", "--overwrite"]),
        ("no_eval", ["--synthetic"]),
    ],
)
def test_bad_input(case, needles, tmp_path, fashion_ckpt, fashion_small):
    from compressor.zoo.fashion_cnn import fashion_cnn

    ckpt, data, extra = fashion_ckpt, fashion_small, []
    out = tmp_path / "out"
    if case == "missing":
        ckpt = tmp_path / "nope.safetensors"
    elif case == "corrupt":
        ckpt = tmp_path / "c.pth"
        ckpt.write_bytes(fashion_ckpt.read_bytes()[:1000])
    elif case == "mismatch":
        ckpt = tmp_path / "m.pth"
        torch.save({"features.0.0.weight": torch.zeros(1)}, ckpt)
    elif case == "pickled":
        ckpt = tmp_path / "p.pt"
        torch.save(fashion_cnn(), ckpt)
        args = ["compress", str(ckpt), "--input-shape", "1,1,28,28", "--eval", str(data), "-o", str(out)]
    elif case == "bad_data":
        data = tmp_path / "d.npz"
        np.savez(data, x=np.zeros((4, 1, 32, 32), np.float32))
    elif case == "unknown_target":
        extra = ["--target", "ort-gpu-fp99"]
    elif case == "exists":
        out.mkdir()
    if case == "bad_shape":
        args = ["compress", str(ckpt), "--arch", FASHION_ARCH, "--input-shape", "1,3,28,28", "--synthetic", "-o", str(out)]
    elif case == "no_eval":
        args = ["compress", str(ckpt), "--arch", FASHION_ARCH, "--input-shape", "1,1,28,28", "-o", str(out)]
    elif case != "pickled":
        args = fashion_args(ckpt, data, out, *extra)
    before = set(tmp_path.iterdir())
    one_line_error(cli_in_process(*args), *needles)
    after = set(tmp_path.iterdir())
    assert after == before, f"something was written: {after - before}"


def test_debug_shows_traceback(tmp_path):
    res = cli("--debug", "compress", str(tmp_path / "nope.pt"), "--input-shape", "1,3", "--synthetic", "-o", str(tmp_path / "o"))
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_recipe_runs_and_flags_override(tmp_path, fashion_ckpt, fashion_small):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
model:
  checkpoint: {fashion_ckpt}
  arch: {FASHION_ARCH}
inputs:
  - shape: batch,1,28,28
preprocessing: {{scale: {1 / 255}, mean: [0.2860], std: [0.3530]}}
target: torch-cpu-fp32
data:
  eval: {fashion_small}
benchmark:
  enabled: false
output:
  path: {tmp_path / "from-recipe"}
""")
    res = cli("compress", "--recipe", str(recipe), "--target", "ort-cpu-fp32")
    assert res.returncode == 0, res.stderr
    m = read_manifest(tmp_path / "from-recipe")
    assert m["target"]["name"] == "ort-cpu-fp32"  # the flag won over the recipe
    assert m["recipe"]["data"]["eval"] == str(fashion_small) and m["metrics"]["fidelity"]["accuracy"] > 0.85


def test_recipe_errors_name_key_and_line(tmp_path):
    r = tmp_path / "r.yaml"
    r.write_text("model:\n  checkpoint: x.pt\n  archh: torchvision:resnet18\ninputs:\n  - shape: 1,3\noutput:\n  path: o\n")
    one_line_error(cli_in_process("compress", "--recipe", str(r)), "unknown key 'model.archh'", "line 3", "arch")
    r.write_text("model: [unclosed\n")
    one_line_error(cli_in_process("compress", "--recipe", str(r)), "not valid YAML")
    one_line_error(cli_in_process("compress", "--recipe", str(tmp_path / "none.yaml")), "not found")
    r.write_text("model:\n  checkpoint: x.pt\ninputs:\n  - shape: 1,3\noutput:\n  path: o\nbenchmark:\n  duration: -1\n")
    one_line_error(cli_in_process("compress", "--recipe", str(r)), "benchmark.duration", "line 8")


def test_bench_on_bundle_and_artifact(tmp_path, fashion_ckpt, fashion_small):
    out = tmp_path / "b"
    assert cli(*fashion_args(fashion_ckpt, fashion_small, out, "--no-benchmark")).returncode == 0
    res = cli("bench", str(out), "--duration", "0.3", "--iterations", "10", "--threads", "1", "--json", str(tmp_path / "b.json"))
    assert res.returncode == 0, res.stderr
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["threads"] == 1 and r["iterations"] >= 10 and r["latency_ms"]["p50"] > 0 and r["warmup"]["iterations"] >= 10
    assert r["feeds"].startswith("bundle reference inputs") and "cpu" in r["environment"]
    res = cli("bench", str(out / "model.onnx"), "--batch-size", "4", "--duration", "0.3", "--iterations", "10")
    assert res.returncode == 0 and "random inputs" in res.stdout
    # what a user needs to know never depends on the terminal's width (a narrow one cuts table titles)
    narrow = cli("bench", str(out / "model.onnx"), "--duration", "0.2", "--iterations", "5", env={"COLUMNS": "40"})
    assert narrow.returncode == 0 and "random inputs" in narrow.stdout, narrow.stdout
    one_line_error(cli_in_process("bench", str(out), "--duration", "0"), "--duration", "greater than 0")
    one_line_error(cli_in_process("bench", str(out), "--batch-size", "100"), "outside the batch range")
    one_line_error(cli_in_process("bench", str(tmp_path / "none")), "not found")


def test_resnet18_state_dict_with_npz_eval(tmp_path, resnet18_ckpt):
    """The check a new user runs: torchvision resnet18 state_dict, .npz eval data, ort-cpu-fp32, verify, tamper."""
    np.savez(tmp_path / "eval.npz", x=np.random.default_rng(0).standard_normal((4, 3, 224, 224)).astype(np.float32))
    out = tmp_path / "r18"
    res = cli("compress", str(resnet18_ckpt), "--arch", "torchvision:resnet18", "--input-shape", "1,3,224,224",
              "--eval", str(tmp_path / "eval.npz"), "--target", "ort-cpu-fp32", "--output", str(out),
              "--duration", "0.3", "--iterations", "10", "--min-agreement", "1.0")
    assert res.returncode == 0, res.stderr
    m = read_manifest(out)
    for key in ("schema_version", "target", "precision", "files", "inputs", "outputs", "preprocessing", "source", "environment"):
        assert key in m
    assert {"p50", "p90", "p99", "mean"} <= set(m["metrics"]["latency_ms"]) and m["metrics"]["throughput_per_s"] > 0
    assert m["metrics"]["fidelity"]["top1_agreement"] == 1.0 and m["metrics"]["fidelity"]["synthetic"] is False
    assert cli("verify", str(out)).returncode == 0
    data = bytearray((out / "model.onnx").read_bytes())
    data[-100] ^= 0xFF
    (out / "model.onnx").write_bytes(bytes(data))
    one_line_error(cli("verify", str(out)), "model.onnx changed")

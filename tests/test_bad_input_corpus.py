"""Bad input a user can hand us, case by case: one line naming the problem and what to do, a non-zero exit, nothing
written. Each case builds its bad file from the real Fashion-MNIST model and data, runs the real CLI in a fresh process,
and checks the output folder was never created."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import FASHION_ARCH, cli, fashion_args, read_manifest
from tests.test_cli import one_line_error

MODELS = "tests.models_for_tests"


class RunsACommand:
    """A pickle that names os.system: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _eval_nan(tmp, ckpt, data):
    with np.load(data) as z:
        x = (z["x"][:16].astype(np.float32) / 255.0 - 0.286) / 0.353
        x[3, 0, 5, 5] = np.nan
        np.savez(tmp / "nan.npz", x=x, y=z["y"][:16])
    return fashion_args(ckpt, tmp / "nan.npz", tmp / "out", "--no-benchmark"), ("non-finite", "sample 3")


def _labels_beyond_classes(tmp, ckpt, data):
    with np.load(data) as z:
        np.savez(tmp / "labels.npz", x=z["x"][:16], y=np.full(16, 5000))
    return fashion_args(ckpt, tmp / "labels.npz", tmp / "out", "--no-benchmark"), ("go up to 5000", "10 classes", "0..9")


def _negative_labels(tmp, ckpt, data):
    with np.load(data) as z:
        np.savez(tmp / "labels.npz", x=z["x"][:16], y=np.full(16, -1))
    return fashion_args(ckpt, tmp / "labels.npz", tmp / "out", "--no-benchmark"), ("negative labels",)


def _nan_weights(tmp, ckpt, data):
    state = load_file(str(ckpt))
    name = next(k for k in state if k.endswith("weight"))
    state[name][0] = float("nan")
    save_file(state, str(tmp / "nan.safetensors"))
    return fashion_args(tmp / "nan.safetensors", data, tmp / "out", "--no-benchmark"), ("NaN/inf", name, "diverged")


def _not_onnx(tmp, ckpt, data):
    (tmp / "model.onnx").write_bytes(b"this is not an ONNX model\n")
    return ["bench", str(tmp / "model.onnx"), "--duration", "0.1"], ("cannot be read as", "not a valid .onnx")


def _pickle_runs_code(tmp, ckpt, data):
    torch.save({"weights": load_file(str(ckpt)), "hook": RunsACommand(tmp / "ran")}, tmp / "evil.pt")
    return fashion_args(tmp / "evil.pt", data, tmp / "out", "--no-benchmark"), ("system", "arbitrary code", "--trust-checkpoint")


def _missing_constant(tmp, ckpt, data):
    np.savez(tmp / "x.npz", x=np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32))
    torch.save({"fc." + k: v for k, v in torch.nn.Linear(16, 4).state_dict().items()}, tmp / "m.pt")
    return (["compress", str(tmp / "m.pt"), "--arch", f"{MODELS}:with_sample_rate", "--input-shape", "1,16", "--eval", str(tmp / "x.npz"),
             "--output", str(tmp / "out"), "--no-benchmark"], ("sr", "--forward-kwargs"))


def _shape_beyond_memory(tmp, ckpt, data):
    return (["compress", str(ckpt), "--arch", FASHION_ARCH, "--input-shape", "1,1,200000,200000", "--synthetic", "--output",
             str(tmp / "out"), "--no-benchmark"], ("out of memory", "smaller --input-shape"))


CASES = {f.__name__[1:]: f for f in (_eval_nan, _labels_beyond_classes, _negative_labels, _nan_weights, _not_onnx, _pickle_runs_code,
                                     _missing_constant, _shape_beyond_memory)}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, tmp_path, fashion_ckpt, fashion_small):
    args, needles = CASES[case](tmp_path, fashion_ckpt, fashion_small)
    one_line_error(cli(*args), *needles)
    assert not (tmp_path / "out").exists(), "a failed run must leave nothing behind"
    assert not (tmp_path / "ran").exists(), "the checkpoint's code ran"
    assert not list(tmp_path.glob(".compressor-*")), "a temporary folder was left behind"


def test_training_checkpoint_layout_is_found_and_named(tmp_path, fashion_ckpt, fashion_small):
    torch.save({"step": 1200, "model_state": load_file(str(fashion_ckpt)), "optimizer_state": {"lr": 0.1}}, tmp_path / "train.pt")
    res = cli(*fashion_args(tmp_path / "train.pt", fashion_small, tmp_path / "out", "--no-benchmark", "--eval-samples", "32"))
    assert res.returncode == 0, res.stderr
    assert "model_state" in res.stdout + res.stderr
    assert read_manifest(tmp_path / "out")["source"]["checkpoint_key"] == "model_state"


def test_constant_forward_argument(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32))
    torch.save({"fc." + k: v for k, v in torch.nn.Linear(16, 4).state_dict().items()}, tmp_path / "m.pt")
    res = cli("compress", str(tmp_path / "m.pt"), "--arch", f"{MODELS}:with_sample_rate", "--input-shape", "1,16", "--eval",
              str(tmp_path / "x.npz"), "--forward-kwargs", '{"sr": 8000}', "--output", str(tmp_path / "out"), "--no-benchmark",
              "--min-cosine", "0.9999")
    assert res.returncode == 0, res.stderr
    m = read_manifest(tmp_path / "out")
    assert m["source"]["forward_kwargs"] == {"sr": 8000} and [i["name"] for i in m["inputs"]] == ["input"]
    one_line_error(cli("compress", str(tmp_path / "m.pt"), "--arch", f"{MODELS}:with_sample_rate", "--input-shape", "1,16",
                       "--forward-kwargs", '{"sr": {"a": 1}}', "--synthetic", "--output", str(tmp_path / "o2")), "--forward-kwargs sr", "not dict")
    assert not (tmp_path / "o2").exists()

"""Bad input a user can hand us, case by case: one line naming the problem and what to do, a non-zero exit, nothing
written. Each case builds its bad file from the real Fashion-MNIST model and data, runs the real CLI in a fresh process,
and checks the output folder was never created."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import FASHION_ARCH, cli, cli_in_process, fashion_args, one_line_error, read_manifest

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


def _raw_pickle_runs_code(tmp, ckpt, data):
    """A plain (non-zip) pickle in protocol 4, which torch's safe unpickler stops at before it reaches the global."""
    import pickle

    with open(tmp / "evil.pkl", "wb") as f:
        pickle.dump({"weights": load_file(str(ckpt)), "hook": RunsACommand(tmp / "ran")}, f, protocol=4)
    return fashion_args(tmp / "evil.pkl", data, tmp / "out", "--no-benchmark"), ("system", "arbitrary code", "--trust-checkpoint")


def _missing_constant(tmp, ckpt, data):
    np.savez(tmp / "x.npz", x=np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32))
    torch.save({"fc." + k: v for k, v in torch.nn.Linear(16, 4).state_dict().items()}, tmp / "m.pt")
    return (["compress", str(tmp / "m.pt"), "--arch", f"{MODELS}:with_sample_rate", "--input-shape", "1,16", "--eval", str(tmp / "x.npz"),
             "--output", str(tmp / "out"), "--no-benchmark"], ("sr", "--forward-kwargs"))


def _shape_beyond_memory(tmp, ckpt, data):
    return (["compress", str(ckpt), "--arch", FASHION_ARCH, "--input-shape", "1,1,200000,200000", "--synthetic", "--output",
             str(tmp / "out"), "--no-benchmark"], ("out of memory", "smaller --input-shape"))


class _ScriptedBitwiseNot(torch.nn.Module):
    """Scripted code ONNX cannot express (bitwise Not of an integer tensor), as silero-vad's TorchScript archive has."""

    def forward(self, x):
        return x * (~x.sum().long()).float()


def _unexportable_torchscript(tmp, ckpt, data):
    torch.jit.save(torch.jit.script(_ScriptedBitwiseNot()), str(tmp / "scripted.pt"))
    return (["compress", str(tmp / "scripted.pt"), "--input-shape", "1,16", "--synthetic", "--output", str(tmp / "out"),
             "--no-benchmark"], ("ONNX export failed", "TorchScript archive", "--arch"))


CASES = {f.__name__[1:]: f for f in (_eval_nan, _labels_beyond_classes, _negative_labels, _nan_weights, _not_onnx, _pickle_runs_code,
                                     _raw_pickle_runs_code, _missing_constant, _shape_beyond_memory, _unexportable_torchscript)}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, tmp_path, fashion_ckpt, fashion_small):
    args, needles = CASES[case](tmp_path, fashion_ckpt, fashion_small)
    one_line_error(cli_in_process(*args), *needles)
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


# --- the rest of the corpus, run in this process (the same CLI entry point; no fresh interpreter per case) --------------


def _fashion(tmp, ckpt, data, *extra, checkpoint=None):
    return fashion_args(checkpoint or ckpt, data, tmp / "out", "--no-benchmark", *extra)


def _write(tmp, name, content: bytes):
    (tmp / name).write_bytes(content)
    return tmp / name


def _npz(tmp, name, **arrays):
    np.savez(tmp / name, **arrays)
    return tmp / name


def _pickled_module(tmp):
    torch.save(torch.nn.Linear(2, 2), tmp / "module.pt")
    return tmp / "module.pt"


def _tarball(tmp):
    return _write(tmp, "bundle.tar.gz", b"\x1f\x8b not really gzip")


QUICK = {
    "checkpoint missing": (lambda t, c, d: _fashion(t, c, d, checkpoint=t / "none.pth"), ("not found",)),
    "checkpoint empty": (lambda t, c, d: _fashion(t, c, d, checkpoint=_write(t, "e.pth", b"")), ("empty",)),
    "checkpoint is a folder": (lambda t, c, d: _fashion(t, c, d, checkpoint=t), ("not a file",)),
    "checkpoint random bytes": (lambda t, c, d: _fashion(t, c, d, checkpoint=_write(t, "r.pth", os.urandom(4096))), ("corrupt",)),
    "safetensors truncated": (lambda t, c, d: _fashion(t, c, d, checkpoint=_write(t, "t.safetensors", c.read_bytes()[:300])),
                              ("corrupt",)),
    "state_dict without --arch": (lambda t, c, d: ["compress", str(c), "--input-shape", "1,1,28,28", "--eval", str(d), "--output",
                                                   str(t / "out")], ("--arch",)),
    "architecture that does not fit": (lambda t, c, d: ["compress", str(c), "--arch", "torchvision:resnet18", "--input-shape", "1,3,28,28",
                                                        "--eval", str(d), "--output", str(t / "out")], ("does not fit",)),
    "architecture module unknown": (lambda t, c, d: ["compress", str(c), "--arch", "no_such_pkg.models:net", "--input-shape", "1,1,28,28",
                                                     "--eval", str(d), "--output", str(t / "out")], ("no_such_pkg",)),
    "arch kwargs not JSON": (lambda t, c, d: _fashion(t, c, d, "--arch-kwargs", "{width: 4"), ("--arch-kwargs",)),
    "arch kwargs unknown": (lambda t, c, d: _fashion(t, c, d, "--arch-kwargs", '{"depth": 4}'), ("depth",)),
    "shape not numbers": (lambda t, c, d: ["compress", str(c), "--arch", FASHION_ARCH, "--input-shape", "1,abc!,28", "--synthetic",
                                           "--output", str(t / "out")], ("abc!",)),
    "dtype unknown": (lambda t, c, d: _fashion(t, c, d, "--input-dtype", "float33"), ("inputs.0.dtype", "'float32'")),
    "shape the model rejects": (lambda t, c, d: ["compress", str(c), "--arch", FASHION_ARCH, "--input-shape", "1,3,28,28", "--synthetic",
                                                 "--output", str(t / "out")], ("rejects input",)),
    "eval data missing": (lambda t, c, d: _fashion(t, c, t / "none.npz"), ("not found",)),
    "eval data wrong key": (lambda t, c, d: _fashion(t, c, _npz(t, "k.npz", pixels=np.zeros((4, 1, 28, 28), np.float32))), ("pixels",)),
    "eval data wrong shape": (lambda t, c, d: _fashion(t, c, _npz(t, "s.npz", x=np.zeros((4, 3, 28, 28), np.float32))), ("shape",)),
    "eval data text": (lambda t, c, d: _fashion(t, c, _npz(t, "u.npz", x=np.full((4, 1, 28, 28), "a"))), ("dtype",)),
    "eval labels count": (lambda t, c, d: _fashion(t, c, _npz(t, "l.npz", x=np.zeros((4, 1, 28, 28), np.uint8), y=np.zeros(3, np.int64))),
                          ("3 labels",)),
    "eval labels file missing": (lambda t, c, d: _fashion(t, c, d, "--eval-labels", str(t / "none.npy")), ("labels",)),
    "image folder empty": (lambda t, c, d: (t / "imgs").mkdir() or _fashion(t, c, t / "imgs"), ("imgs",)),
    "recipe missing": (lambda t, c, d: _fashion(t, c, d, "--recipe", str(t / "none.yaml")), ("not found",)),
    "recipe not YAML": (lambda t, c, d: _fashion(t, c, d, "--recipe", str(_write(t, "r.yaml", b"a: [1, 2\nb: {"))), ("not valid YAML",)),
    "recipe unknown key": (lambda t, c, d: _fashion(t, c, d, "--recipe", str(_write(t, "r.yaml", b"quantisation:\n  method: mse\n"))),
                           ("quantisation",)),
    "recipe wrong type": (lambda t, c, d: _fashion(t, c, d, "--recipe", str(_write(t, "r.yaml", b"benchmark:\n  duration: soon\n"))),
                          ("duration",)),
    "target unknown": (lambda t, c, d: _fashion(t, c, d, "--target", "ort-gpu-int3"), ("ort-gpu-int3",)),
    "accuracy budget negative": (lambda t, c, d: _fashion(t, c, d, "--max-accuracy-drop", "-1"), ("max_accuracy_drop",)),
    "cosine above one": (lambda t, c, d: _fashion(t, c, d, "--min-cosine", "1.5"), ("min_cosine",)),
    "prune ratio above one": (lambda t, c, d: _fashion(t, c, d, "--prune-ratio", "1.5"), ("ratio",)),
    "QAT without data": (lambda t, c, d: _fashion(t, c, d, "--target", "ort-cpu-int8", "--calib", str(d), "--qat"), ("--finetune",)),
    "auto precision without gate": (lambda t, c, d: _fashion(t, c, d, "--target", "ort-cpu-int8", "--calib", str(d), "--auto-precision"),
                                    ("gate",)),
    "static INT8 without calibration": (lambda t, c, d: _fashion(t, c, d, "--target", "ort-cpu-int8"), ("--calib",)),
    "calibration data missing": (lambda t, c, d: _fashion(t, c, d, "--target", "ort-cpu-int8", "--calib", str(t / "none")), ("none",)),
    "checkpoint key absent": (lambda t, c, d: _fashion(t, c, d, "--checkpoint-key", "model_state", checkpoint=_pt(t, c)), ("model_state",)),
    "pickled module untrusted": (lambda t, c, d: ["compress", str(_pickled_module(t)), "--input-shape", "1,2", "--synthetic", "--output",
                                                  str(t / "out")], ("--trust-checkpoint",)),
    "scale zero": (lambda t, c, d: _fashion(t, c, d, "--scale", "0"), ("scale",)),
    "std zero": (lambda t, c, d: _fashion(t, c, d, "--std", "0"), ("std",)),
    "threads zero": (lambda t, c, d: _fashion(t, c, d, "--threads", "0"), ("threads",)),
    "output is a file": (lambda t, c, d: fashion_args(c, d, _write(t, "out", b"x"), "--no-benchmark"), ("out",)),
    "bench duration zero": (lambda t, c, d: ["bench", str(c), "--arch", FASHION_ARCH, "--input-shape", "1,1,28,28", "--targets",
                                             "ort-cpu-fp32", "--duration", "0"],
                            ("duration", "greater than 0")),
    "bench batch sizes": (lambda t, c, d: ["bench", str(c), "--arch", FASHION_ARCH, "--input-shape", "batch,1,28,28", "--targets",
                                           "ort-cpu-fp32", "--batch-sizes", "1,x"], ("--batch-sizes",)),
    "bench tarball corrupt": (lambda t, c, d: ["bench", str(_tarball(t))], ("bundle.tar.gz",)),
    "ExecuTorch INT8 of an LSTM": (lambda t, c, d: ["compress", str(_lstm(t)), "--arch", f"{MODELS}:small_lstm", "--input-shape", "1,160,8",
                                                    "--eval", str(_seq(t)), "--calib", str(_seq(t)), "--target", "executorch-xnnpack-int8",
                                                    "--output", str(t / "out")],
                                   ("unrolls", "ort-cpu-int8-dynamic")),
    "build past its time limit": (lambda t, c, d: _fashion(t, c, d, "--target", "ort-cpu-int8", "--calib", str(d), "--build-timeout", "0.2"),
                                  ("did not finish in 0.2 s", "--build-timeout")),
    "bench folder without manifest": (lambda t, c, d: (t / "b").mkdir() or ["bench", str(t / "b")], ("manifest",)),
    "accuracy budget on an embedding": (lambda t, c, d: _fashion(t, c, d, "--task", "embedding", "--max-accuracy-drop", "1"),
                                        ("--max-accuracy-drop needs class scores", "--min-cosine")),
    "agreement budget without a classifier": (lambda t, c, d: _fashion(t, c, d, "--task", "embedding", "--min-agreement", "0.9"),
                                              ("--min-agreement needs class scores", "--min-cosine")),
    "forward kwargs not JSON": (lambda t, c, d: _fashion(t, c, d, "--forward-kwargs", "{sr: 16000}"),
                                ("--forward-kwargs is not valid JSON", '{"sr": 16000}')),
    "input layout on a target that has none": (lambda t, c, d: _fashion(t, c, d, "--input-layout", "nhwc"),
                                               ("--input-layout nhwc is a LiteRT option", "ort-cpu-fp32", "litert-xnnpack-")),
    "bias correction with a quantizer that cannot": (
        lambda t, c, d: _fashion(t, c, d, "--target", "openvino-cpu-int8", "--calib", str(d), "--quantizer", "nncf", "--bias-correction"),
        ("--bias-correction", "--quantizer nncf", "--quantizer sdk")),
}


def _seq(tmp):
    return _npz(tmp, "seq.npz", x=np.random.default_rng(0).standard_normal((4, 160, 8)).astype(np.float32))


def _lstm(tmp):
    from tests.models_for_tests import small_lstm

    torch.save(small_lstm().state_dict(), tmp / "lstm.pt")
    return tmp / "lstm.pt"


def _pt(tmp, ckpt):
    torch.save(load_file(str(ckpt)), tmp / "plain.pt")
    return tmp / "plain.pt"


@pytest.mark.parametrize("case", list(QUICK))
def test_bad_input_quick(case, tmp_path, fashion_ckpt, fashion_small):
    make, needles = QUICK[case]
    args = make(tmp_path, fashion_ckpt, fashion_small)
    before = {p for p in tmp_path.rglob("*")}
    res = cli_in_process(*args)
    assert res.returncode not in (0, 1), f"{case}: exit {res.returncode}: {res.stderr}{res.stdout}"  # 1 is an internal error
    one_line_error(res, *needles)
    assert {p for p in tmp_path.rglob("*")} == before, f"{case}: the failed run wrote {set(tmp_path.rglob('*')) - before}"


def test_the_corpus_has_forty_cases():
    assert len(CASES) + len(QUICK) >= 40

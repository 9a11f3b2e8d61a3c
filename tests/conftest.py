"""Shared fixtures: real models (the committed Fashion-MNIST CNN, torchvision resnet18, EfficientNet-Lite0)
and real data (the committed Fashion-MNIST test subset, foolbox's ImageNet images)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FASHION = ROOT / "examples" / "fashion_mnist"
FASHION_ARCH = "compressor.zoo.fashion_cnn:fashion_cnn"
FASHION_PRE = {"scale": 1 / 255, "mean": [0.2860], "std": [0.3530]}
FAST_BENCH = dict(duration=0.3, iterations=10)


@pytest.fixture(scope="session")
def fashion_ckpt() -> Path:
    return FASHION / "fashion_cnn.safetensors"


@pytest.fixture(scope="session")
def fashion_subset() -> Path:
    return FASHION / "test_subset.npz"


@pytest.fixture(scope="session")
def fashion_small(tmp_path_factory, fashion_subset) -> Path:
    """The first 256 samples of the committed subset, for tests that need real data but not 2,000 samples."""
    path = tmp_path_factory.mktemp("data") / "fashion256.npz"
    with np.load(fashion_subset) as z:
        np.savez(path, x=z["x"][:256], y=z["y"][:256])
    return path


@pytest.fixture(scope="session")
def resnet18_ckpt(tmp_path_factory) -> Path:
    import torch
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, prelude: str = "") -> subprocess.CompletedProcess:
    """Run the real `compressor` CLI in a fresh process (optionally after a Python prelude)."""
    code = f"{prelude}\nimport sys\nfrom compressor.app.cli import run\nsys.argv = ['compressor'] + {list(map(str, args))!r}\nrun()"
    full_env = {"COLUMNS": "200", **os.environ, "PYTHONPATH": str(ROOT), **(env or {})}  # a COLUMNS the caller sets wins
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd or ROOT, env=full_env, timeout=900)


def fashion_args(ckpt: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "compress", str(ckpt), "--arch", FASHION_ARCH, "--input-shape", "batch=1:64,1,28,28", "--scale", str(1 / 255),
        "--mean", "0.2860", "--std", "0.3530", "--eval", str(data), "--output", str(out), *extra,
    ]


def read_manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


@pytest.fixture(scope="session", autouse=True)
def _strict_errors():
    """An exception from outside the SDK's error family is raised where it happens (as under --debug), in this process and in
    every CLI process a test starts: a test never passes on an SDK bug turned into a "failed" row."""
    from compressor.core.errors import STRICT_ENV

    os.environ[STRICT_ENV] = "1"
    yield

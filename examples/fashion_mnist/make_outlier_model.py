"""Make the bundled Fashion-MNIST CNN into a model with activation outliers, without changing what it computes.

A few output channels of every BatchNorm layer are scaled by 64 (their weight and bias), and the matching input
channels of the layer after them by 1/64. ReLU, max pooling and average pooling commute with a positive
per-channel scale, so the network's function is unchanged (the largest output difference is printed), but those
activation channels now span 64x the range of the others: a per-tensor INT8 scale spends its levels on them and
the rest collapse. This is the case cross-layer equalization was made for (Nagel et al. 2019).

Run: ``.venv/bin/python examples/fashion_mnist/make_outlier_model.py``; writes ``fashion_cnn_outliers.safetensors``
(load it with ``--arch compressor.zoo.fashion_cnn:fashion_cnn``) and ``outliers.json`` next to this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from compressor.zoo.fashion_cnn import fashion_cnn

HERE = Path(__file__).resolve().parent
FACTOR = 64.0
# (BatchNorm whose output channels grow, the layer that reads them, channels): each block into the next
EDITS = [("features.0.1", "features.1.0", [2, 11, 27]),
         ("features.1.1", "features.3.0", [4, 19]),  # through max pooling
         ("features.3.1", "features.4.0", [5, 40]),
         ("features.4.1", "features.6.0", [9, 33, 50]),  # through max pooling
         ("features.6.1", "classifier.1", [7, 64, 100])]  # through average pooling and flatten


def main() -> None:
    state = load_file(str(HERE / "fashion_cnn.safetensors"))
    model = fashion_cnn().eval()
    model.load_state_dict(state)
    edited = {k: v.clone() for k, v in state.items()}
    for bn, consumer, channels in EDITS:
        idx = torch.tensor(channels)
        edited[f"{bn}.weight"][idx] *= FACTOR
        edited[f"{bn}.bias"][idx] *= FACTOR
        edited[f"{consumer}.weight"][:, idx] /= FACTOR
    outlier = fashion_cnn().eval()
    outlier.load_state_dict(edited)
    with np.load(HERE / "test_subset.npz") as z:
        x = torch.from_numpy(((z["x"].astype(np.float32) / 255.0) - 0.2860) / 0.3530)
        y = z["y"]
    with torch.no_grad():
        a, b = model(x), outlier(x)
    diff = float((a - b).abs().max())
    acc = float((b.argmax(1).numpy() == y).mean())
    save_file(edited, str(HERE / "fashion_cnn_outliers.safetensors"))
    record = {"source": "fashion_cnn.safetensors", "factor": FACTOR, "edits": [{"scaled_batchnorm": bn, "inverse_in": c, "channels": ch}
                                                                              for bn, c, ch in EDITS],
              "max_abs_output_difference": diff, "test_subset_accuracy": acc}
    (HERE / "outliers.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

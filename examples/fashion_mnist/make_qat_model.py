"""Train the QAT example: a Fashion-MNIST CNN without BatchNorm, whose INT8 PTQ costs accuracy.

``compressor.zoo.fashion_cnn:fashion_plain`` (Conv+ReLU blocks, no BatchNorm, a 64-unit hidden layer) trained with
plain SGD-momentum and no weight decay, so nothing keeps its weights and activations in a narrow range: per-tensor
INT8 activations then lose accuracy that quantization-aware training can win back. Writes next to this file:
``fashion_plain.safetensors`` and ``fashion_plain.json`` (how it was trained, what it reached). Uses the bundled
``test_subset.npz`` for the reported accuracy. Needs ``apt-get install -y dataset-fashion-mnist``.

Run: ``.venv/bin/python examples/fashion_mnist/make_qat_model.py``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from compressor.zoo.fashion import MEAN, STD, read_idx
from compressor.zoo.fashion_cnn import fashion_plain

HERE = Path(__file__).resolve().parent


def normalise(x: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(x.astype(np.float32)) / 255.0 - MEAN) / STD


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(normalise(x[i:i + 500])).argmax(1) for i in range(0, len(x), 500)])
    return float((pred.numpy() == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    xtr, ytr = read_idx("train")
    with np.load(HERE / "test_subset.npz") as z:
        xte, yte = z["x"], z["y"]
    model = fashion_plain()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    steps = args.epochs * (len(xtr) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(xtr))
        for i in range(len(xtr) // 128):
            idx = order[i * 128:(i + 1) * 128]
            loss = nn.functional.cross_entropy(model(normalise(xtr[idx])), torch.from_numpy(ytr[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, test-subset acc {evaluate(model, xte, yte):.4f}, "
              f"{time.time() - t0:.0f}s", flush=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(HERE / "fashion_plain.safetensors"))
    info = {"architecture": "compressor.zoo.fashion_cnn:fashion_plain", "epochs": args.epochs, "seed": args.seed, "optimizer":
            f"SGD momentum 0.9, one-cycle max lr {args.lr}, no weight decay, no augmentation", "train_images": int(len(xtr)),
            "test_subset_accuracy": round(evaluate(model, xte, yte), 4), "train_seconds": round(time.time() - t0, 1),
            "preprocessing": {"scale": 1 / 255, "mean": [MEAN], "std": [STD]}}
    (HERE / "fashion_plain.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()

"""Train the bundled Fashion-MNIST CNN and write the committed checkpoint and test subset.

Needs the Debian package ``dataset-fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``).
Run once: ``.venv/bin/python examples/fashion_mnist/train.py``. Writes, next to this file:

- ``fashion_cnn.safetensors``: the trained state_dict (load with ``--arch compressor.zoo.fashion_cnn:fashion_cnn``)
- ``test_subset.npz``: a fixed, seeded 2,000-image subset of the official test split (``x`` uint8 N,1,28,28; ``y``)
- ``calib_subset.npz``: 512 training images (seeded), for INT8 calibration, disjoint from the test split
- ``finetune_subset.npz``: 6,000 other training images, for recovery fine-tuning after pruning
  (``--subsets-only`` rewrites just these two files, without training)
- ``training.json``: how it was trained and what it reached
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from compressor.zoo.fashion_cnn import fashion_cnn

HERE = Path(__file__).resolve().parent
DATA = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set statistics on the 0..1 scale


def read_idx(kind: str) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(DATA / f"{kind}-labels-idx1-ubyte.gz", "rb") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    with gzip.open(DATA / f"{kind}-images-idx3-ubyte.gz", "rb") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(len(labels), 1, 28, 28)
    return images, labels.astype(np.int64)


def normalise(x: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(x.astype(np.float32)) / 255.0 - MEAN) / STD


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), 500):
            correct += (model(normalise(x[i : i + 500])).argmax(1).numpy() == y[i : i + 500]).sum()
    return float(correct) / len(x)


def write_calib_subset(size: int = 512, seed: int = 4321, finetune_size: int = 6000) -> None:
    """calib_subset.npz (512) and finetune_subset.npz (6,000): disjoint, seeded draws from the training split."""
    xtr, ytr = read_idx("train")
    calib = np.sort(np.random.default_rng(seed).choice(len(xtr), size=size, replace=False))
    np.savez_compressed(HERE / "calib_subset.npz", x=xtr[calib], y=ytr[calib])
    rest = np.setdiff1d(np.arange(len(xtr)), calib)
    pick = np.sort(np.random.default_rng(seed + 1).choice(rest, size=finetune_size, replace=False))
    np.savez_compressed(HERE / "finetune_subset.npz", x=xtr[pick], y=ytr[pick])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subset", type=int, default=2000)
    ap.add_argument("--subsets-only", action="store_true", help="write calib_subset.npz only, no training")
    args = ap.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: apt-get install -y dataset-fashion-mnist")
    write_calib_subset()
    if args.subsets_only:
        return
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    xtr, ytr = read_idx("train")
    xte, yte = read_idx("t10k")
    model = fashion_cnn()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = args.epochs * (len(xtr) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(xtr))
        for i in range(len(xtr) // 128):
            idx = order[i * 128 : (i + 1) * 128]
            xb = normalise(xtr[idx])
            if rng.random() < 0.5:  # horizontal flip: clothes are left/right symmetric
                xb = xb.flip(3)
            loss = nn.functional.cross_entropy(model(xb), torch.from_numpy(ytr[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = evaluate(model, xte, yte)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, test acc {acc:.4f}, {time.time() - t0:.0f}s", flush=True)
    full_acc = evaluate(model, xte, yte)
    pick = np.sort(np.random.default_rng(1234).choice(len(xte), size=args.subset, replace=False))
    sub_acc = evaluate(model, xte[pick], yte[pick])
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(HERE / "fashion_cnn.safetensors"))
    np.savez_compressed(HERE / "test_subset.npz", x=xte[pick], y=yte[pick])
    info = {
        "architecture": "compressor.zoo.fashion_cnn:fashion_cnn",
        "epochs": args.epochs,
        "seed": args.seed,
        "train_images": int(len(xtr)),
        "test_accuracy_full_10k": round(full_acc, 4),
        "test_accuracy_subset": round(sub_acc, 4),
        "subset": {"size": args.subset, "seed": 1234, "source": "t10k (official test split)"},
        "preprocessing": {"scale": 1 / 255, "mean": [MEAN], "std": [STD]},
        "train_seconds": round(time.time() - t0, 1),
    }
    (HERE / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()

"""What the benchmark suites share: paths, the bundled examples' options, the 20 ImageNet images, the
torchvision cases, and the suite runner (arguments, a scratch folder, results JSON + markdown)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from compressor.core.environment import describe_environment  # noqa: E402
from compressor.core.specs import InputSpec, Preprocessing  # noqa: E402
from compressor.data.sources import load_data  # noqa: E402
from compressor.zoo.paths import imagenet_samples  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LABELS = ROOT / "examples" / "imagenet20_labels.txt"
FASHION = ROOT / "examples" / "fashion_mnist"
FASHION_OPTS = dict(arch="compressor.zoo.fashion_cnn:fashion_cnn", input_shape="batch,1,28,28",
                    preprocessing={"scale": 1 / 255, "mean": [0.2860], "std": [0.3530]},
                    eval=FASHION / "test_subset.npz", calib=FASHION / "calib_subset.npz")
EFFNET_OPTS = dict(recipe=ROOT / "examples" / "efficientnet_lite0.yaml", eval=None, eval_labels=LABELS, calib=None, calib_labels=LABELS)
TORCHVISION_PRE = Preprocessing(resize=256, crop=224, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


def say(msg: str) -> None:
    print(msg, flush=True)


def imagenet20(pre: Preprocessing):
    spec = [InputSpec.parse("1,3,224,224")]
    ds = load_data(str(imagenet_samples()), spec, pre, labels_file=str(LABELS))
    return ds.inputs[0], ds.labels


def torchvision_case(name: str, tmp: Path) -> tuple[Path, np.ndarray]:
    """A torchvision model's state_dict (random weights, seed 0) and the 20 ImageNet images preprocessed for it,
    also saved as ``tmp/imagenet20.npz`` (inputs only: random weights have no accuracy to report)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    ckpt = tmp / f"{name}.pth"
    torch.save(torchvision.models.get_model(name).state_dict(), ckpt)
    x, _ = imagenet20(TORCHVISION_PRE)
    np.savez(tmp / "imagenet20.npz", x=x)
    return ckpt, x


def run_suite(name: str, description: str, sections: Callable[[Path, argparse.Namespace], dict],
              markdown: Callable[[dict], str]) -> None:
    """Parse --repeats/--duration/--only, run ``sections`` in a scratch folder, write results/<name>.json and .md.

    ``sections`` returns name → result, or name → a function that computes it (then ``--only a,b`` reruns those
    sections and keeps the others from the last results file; each rerun is listed under ``reruns`` with its date and CPU,
    since only ratios measured in one run compare)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--only", help="comma-separated sections to rerun; the others are kept from the last results file")
    ap.add_argument("--render", action="store_true", help="only rewrite the markdown from the last results file")
    args = ap.parse_args()
    path = RESULTS / f"{name}.json"
    if args.render:
        return _write(path, json.loads(path.read_text()), markdown)
    with tempfile.TemporaryDirectory() as t:
        parts = sections(Path(t), args)
        only = [s for s in (args.only or "").split(",") if s]
        if only:
            unknown = [s for s in only if s not in parts or not callable(parts[s])]
            if unknown or not path.exists():
                ap.error(f"--only: {', '.join(unknown) or name} cannot be rerun alone (sections that can: "
                         f"{', '.join(k for k, v in parts.items() if callable(v)) or 'none'}; a full run must have written {path.name})")
            res = json.loads(path.read_text())
            env = describe_environment()
            res.update({s: parts[s]() for s in only})
            res.setdefault("reruns", []).append({"sections": only, "date": datetime.now(UTC).isoformat(timespec="seconds"),
                                                 "cpu": env["cpu"]["model"], "repeats": args.repeats})
        else:
            res = {"suite": name, "date": datetime.now(UTC).isoformat(timespec="seconds"), "repeats": args.repeats,
                   **{k: v() if callable(v) else v for k, v in parts.items()}, "environment": describe_environment()}
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=2, default=str) + "\n")
    _write(path, res, markdown)


def _write(path: Path, res: dict, markdown: Callable[[dict], str]) -> None:
    md = markdown(res)
    if res.get("reruns"):
        md += "\n" + "\n".join(f"Rerun alone on {r['date'][:16]} ({r['cpu']}): {', '.join(r['sections'])}." for r in res["reruns"]) + "\n"
    path.with_suffix(".md").write_text(md)
    print(md)

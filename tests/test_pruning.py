"""Structured pruning: targets, rounding, recovery fine-tuning, persistence, composition with INT8 and bench."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import compressor
from compressor.core.errors import CheckpointError, InputError
from compressor.pruning.prune import prune
from compressor.pruning.settings import PruningSettings

from .conftest import FASHION, FASHION_ARCH, FASHION_PRE, ROOT, cli, read_manifest

FASHION_OPTS = dict(arch=FASHION_ARCH, input_shape="batch=1:64,1,28,28", preprocessing=FASHION_PRE, eval=FASHION / "test_subset.npz")


@pytest.mark.parametrize("kw, match", [
    ({"ratio": 1.5}, "between 0 and 1"), ({"macs": 0.0}, "between 0 and 1"), ({}, "needs a target"),
    ({"ratio": 0.3, "macs": 0.3}, "either"), ({"ratio": 0.3, "importance": "random"}, "Input should be"),
])
def test_bad_pruning_settings(kw, match):
    with pytest.raises((InputError, ValidationError), match=match):
        PruningSettings(**kw)


def test_resnet18_half_macs_rounded_and_reloads_identically(tmp_path):
    import torchvision

    from compressor.io.pruned import save_pruned

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    example = (torch.randn(1, 3, 224, 224),)
    pruned, rep = prune(model, example, PruningSettings(macs=0.5), round_to=8)
    assert rep["macs_removed"] >= 0.5 and rep["macs_after"] < rep["macs_before"]
    assert rep["kept_whole"] == ["conv1", "fc"]
    for name, change in rep["layers_changed"].items():
        if "out" in change["after"] and name not in rep["kept_whole"]:
            assert change["after"]["out"] % 8 == 0, (name, change)
    path = save_pruned(pruned, tmp_path / "pruned.safetensors", "torchvision:resnet18", {}, {k: rep[k] for k in ("macs_removed",)})
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    with torch.no_grad():
        here = pruned(torch.from_numpy(x)).numpy()
    code = (f"import numpy as np, torch; from compressor.io.loading import load_model; from compressor.core.specs import InputSpec; "
            f"h = load_model(r'{path}', [InputSpec.parse('batch,3,224,224')], 'torchvision:resnet18'); "
            f"np.save(r'{tmp_path / 'y.npy'}', h.module(torch.from_numpy(np.load(r'{tmp_path / 'x.npy'}'))).detach().numpy())")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    assert np.array_equal(np.load(tmp_path / "y.npy"), here)  # a fresh process rebuilds exactly the pruned model
    # the same weights saved as a plain state_dict do not fit the unpruned architecture: say so, and how to fix it
    torch.save(pruned.state_dict(), tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match="shape mismatch.*--save-pruned"):
        from compressor.core.specs import InputSpec
        from compressor.io.loading import load_model

        load_model(tmp_path / "plain.pth", [InputSpec.parse("1,3,224,224")], "torchvision:resnet18")


def test_unreachable_target_says_the_best_reached():
    from compressor.zoo.fashion_cnn import fashion_cnn

    with pytest.raises(InputError, match="not reachable without removing whole layers: the best reached is 0\\.\\d+"):
        prune(fashion_cnn().eval(), (torch.randn(1, 1, 28, 28),), PruningSettings(macs=0.98), round_to=8)


@pytest.mark.slow
def test_fashion_half_macs_finetuned_stays_within_one_point(tmp_path):
    """Pruned to half its MACs and fine-tuned for 2 epochs on the 60,000 training images (Debian package)."""
    r = compressor.compress(FASHION / "fashion_cnn.safetensors", target="ort-cpu-fp32", prune_macs=0.5, finetune="compressor.zoo.fashion:train",
                            finetune_epochs=2, output=tmp_path / "p", benchmark=False, save_pruned=tmp_path / "pruned.safetensors",
                            **FASHION_OPTS)
    f = r.fidelity
    assert f["accuracy_drop_pp"] <= 1.0, f  # against the unpruned model's accuracy on the committed test subset
    m = read_manifest(r.bundle)
    p = m["pruning"]
    assert p["macs_removed"] >= 0.5 and p["finetune"]["samples"] == 54000 and len(p["finetune"]["history"]) <= 3
    assert p["layers_changed"] and "## Pruning" in (r.bundle / "REPORT.md").read_text()
    # the saved pruned checkpoint reloads with plain --arch and composes with INT8
    q = compressor.compress(tmp_path / "pruned.safetensors", arch=FASHION_ARCH, input_shape="batch=1:64,1,28,28", preprocessing=FASHION_PRE,
                            eval=FASHION / "test_subset.npz", calib=FASHION / "calib_subset.npz", target="ort-cpu-int8",
                            output=tmp_path / "q", benchmark=False, sensitivity=False)
    assert q.manifest["source"]["pruned"]["macs_removed"] >= 0.5
    assert abs(q.fidelity["reference_accuracy"] - f["accuracy"]) < 0.002  # the reloaded pruned model is the fine-tuned one


def test_pruning_input_errors(tmp_path):
    with pytest.raises(InputError, match="--finetune without pruning"):
        compressor.compress(FASHION / "fashion_cnn.safetensors", finetune=FASHION / "finetune_subset.npz", output=tmp_path / "a",
                            benchmark=False, **FASHION_OPTS)
    with pytest.raises(InputError, match="taylor needs labelled data"):
        compressor.compress(FASHION / "fashion_cnn.safetensors", prune_ratio=0.3, prune_importance="taylor", output=tmp_path / "b",
                            benchmark=False, **FASHION_OPTS)
    with pytest.raises(InputError, match="between 0 and 1"):
        compressor.compress(FASHION / "fashion_cnn.safetensors", prune_ratio=1.2, output=tmp_path / "c", benchmark=False, **FASHION_OPTS)
    assert not list(tmp_path.iterdir())


def test_bench_shows_pruned_rows_beside_unpruned(tmp_path):
    res = cli("bench", str(FASHION / "fashion_cnn.safetensors"), "--targets", "ort-cpu-fp32,ort-cpu-int8", "--arch", FASHION_ARCH,
              "--input-shape", "batch,1,28,28", "--scale", str(1 / 255), "--mean", "0.2860", "--std", "0.3530",
              "--eval", str(FASHION / "test_subset.npz"), "--eval-samples", "256", "--calib", str(FASHION / "calib_subset.npz"),
              "--calib-samples", "64", "--no-sensitivity", "--prune-ratio", "0.3", "--duration", "0.2", "--iterations", "5",
              "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    rows = {r["target"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    for t in ("ort-cpu-fp32", "ort-cpu-fp32 (pruned)", "ort-cpu-int8", "ort-cpu-int8 (pruned)"):
        assert rows[t]["status"] == "ok"
    assert rows["ort-cpu-int8 (pruned)"]["pruning"]["round_to"] == 16 and rows["ort-cpu-fp32 (pruned)"]["pruning"]["round_to"] == 8
    assert "ort-cpu-int8 (pruned)" in res.stdout


@pytest.mark.slow
def test_minilm_heads_and_mlp_width(tmp_path):
    from compressor.zoo.minilm import weights_path

    r = compressor.compress(weights_path(), arch="compressor.zoo.minilm:minilm_l6", input_shape=["batch,seq=1:256", "batch,seq=1:256"],
                            input_names=["input_ids", "attention_mask"], input_dtype="int64", task="embedding",
                            eval="compressor.zoo.lee:sentences", eval_samples=32, target="ort-cpu-fp32", prune_heads=0.25,
                            prune_ratio=0.25, output=tmp_path / "m", benchmark=False)
    changed = r.manifest["pruning"]["layers_changed"]
    heads = [c["after"]["heads"] for n, c in changed.items() if "heads" in c["after"]]
    assert heads and all(h == 9 for h in heads) and len(heads) == 6  # a quarter of 12 heads gone, in every layer
    assert all(c["after"]["out"] == 1152 for n, c in changed.items() if n.endswith("intermediate.dense"))
    assert 0 < r.fidelity["cosine_mean"] < 1  # reported honestly (no fine-tuning here: the benchmark distils)
